//! TLS on every connection devenv makes, with libpq's meaning of the connection string's TLS
//! parameters, over rustls (ring; no OpenSSL). [`Tls`] is what a connection string (or
//! `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`) says; [`Tls::connect`] turns it and a
//! tokio-postgres configuration into a connected client.
//!
//! - `sslmode`: `disable` (plain), `allow` (plain, then TLS if the server refuses plain),
//!   `prefer` (TLS when the server offers it, else plain; the default, as libpq), `require`
//!   (TLS, no certificate check), `verify-ca` (the chain must lead to a trusted root),
//!   `verify-full` (and the certificate must name the host). As in libpq, `allow`, `prefer`
//!   and `require` check the chain when a root file is there (`sslrootcert` names one, or
//!   `~/.postgresql/root.crt` exists), and `sslrootcert=system` means `verify-full` and
//!   refuses a weaker mode.
//! - `sslrootcert`: a PEM file of CA certificates, or `system` (the OS store). Without one,
//!   hosts under `rds.amazonaws.com` are checked against Amazon's RDS bundle shipped in
//!   [`rds`], others against `~/.postgresql/root.crt`.
//! - `sslcert` / `sslkey`: a client certificate chain and its key (PEM; the key file private
//!   to its owner, as libpq insists), default `~/.postgresql/postgresql.crt` / `.key` when
//!   they exist.
//! - A Unix-socket host never uses TLS (PostgreSQL has none there); a host given only as a
//!   `hostaddr` is checked by its address.
//!
//! Failures say what to do ([`ConnectError`]): a server that requires TLS refusing a plain
//! connection, a certificate no root vouches for (naming the host, the issuer and the roots),
//! a certificate for another name. Nothing here prints a key; messages carry masked URLs at
//! most. The rustls configuration (roots, client key) is built once per [`Tls`] and shared by
//! its clones; the RDS bundle is parsed once per process.

pub mod rds;
mod verify;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;
use tokio_postgres::config::{Host, SslMode as WireMode};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use verify::Refused;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain only.
    Disable,
    /// Plain, then TLS if the server refuses a plain connection.
    Allow,
    /// TLS when the server offers it, else plain (libpq's default).
    Prefer,
    /// TLS, the certificate not checked (unless a root file is there, as libpq).
    Require,
    /// TLS, the certificate's chain checked against the roots.
    VerifyCa,
    /// TLS, the chain checked and the certificate naming the host.
    VerifyFull,
}

impl SslMode {
    /// Every mode, as libpq spells them.
    pub const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate must be checked (`verify-ca`, `verify-full`).
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SslMode {
    type Err = ParamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SslMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| ParamError::Mode(s.to_owned()))
    }
}

/// `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// `system`: the operating system's trusted roots.
    System,
}

impl RootCert {
    fn parse(value: &str) -> RootCert {
        if value == "system" {
            RootCert::System
        } else {
            RootCert::File(PathBuf::from(value))
        }
    }

    fn as_param(&self) -> String {
        match self {
            RootCert::File(path) => path.display().to_string(),
            RootCert::System => "system".into(),
        }
    }
}

/// A TLS parameter that cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// An `sslmode` libpq does not know.
    #[error("sslmode `{0}` is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    Mode(String),
    /// `sslpassword`: an encrypted client key.
    #[error("sslpassword (an encrypted client key) is not supported: decrypt the key (`openssl pkey -in KEY -out PLAIN.key`, mode 0600) and point sslkey at it")]
    KeyPassword,
}

/// The connection parameters this module takes out of a connection string before
/// tokio-postgres parses the rest (it knows `sslmode` as disable/prefer/require only).
pub const PARAMS: [&str; 5] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword"];

/// What a connection string and the environment say about TLS, as libpq reads them.
#[derive(Clone, Default)]
pub struct Tls {
    /// `sslmode` as said (string, `PGSSLMODE`, or a target's default); `None`: not said.
    mode: Option<SslMode>,
    /// The mode when none is said: libpq's `prefer` for connection strings; `disable` for
    /// the servers devenv starts (they have no TLS: no SSLRequest round trip).
    unsaid: Unsaid,
    root_cert: Option<RootCert>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    /// `~/.postgresql`, for libpq's default files.
    home: Option<PathBuf>,
    /// The rustls configuration, built at the first TLS connection.
    built: Arc<OnceLock<Result<Arc<ClientConfig>, SettingsError>>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Unsaid {
    #[default]
    Prefer,
    Disable,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.params()).finish()
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        self.params() == other.params() && self.unsaid == other.unsaid
    }
}

impl Eq for Tls {}

impl Tls {
    /// No TLS, and none said: the servers devenv starts itself (loopback, no TLS configured).
    pub fn plain() -> Tls {
        Tls {
            unsaid: Unsaid::Disable,
            ..Tls::default()
        }
    }

    /// The TLS parameters taken out of a connection string (`params`, in order, the last of a
    /// key winning), with libpq's environment defaults for those it does not set
    /// (`PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`) and `HOME` for its default
    /// files.
    pub fn from_params(
        params: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Tls, ParamError> {
        let mut tls = Tls::default();
        let get = |key: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let said = |key: &str, var: &str| get(key).or_else(|| env(var).filter(|v| !v.is_empty()));
        if get("sslpassword").is_some_and(|p| !p.is_empty()) {
            return Err(ParamError::KeyPassword);
        }
        tls.mode = said("sslmode", "PGSSLMODE")
            .map(|m| m.parse())
            .transpose()?;
        tls.root_cert = said("sslrootcert", "PGSSLROOTCERT")
            .filter(|v| !v.is_empty())
            .map(|v| RootCert::parse(&v));
        tls.cert = said("sslcert", "PGSSLCERT")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        tls.key = said("sslkey", "PGSSLKEY")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        tls.home = env("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| Path::new(&h).join(".postgresql"));
        Ok(tls)
    }

    /// The same, with `mode` when neither the string nor `PGSSLMODE` said one (`--target
    /// prod`: `verify-full`).
    #[must_use]
    pub fn or_mode(mut self, mode: SslMode) -> Tls {
        if self.mode.is_none() && self.root_cert != Some(RootCert::System) {
            self.mode = Some(mode);
            self.built = Arc::default();
        }
        self
    }

    /// The mode connections use.
    pub fn mode(&self) -> SslMode {
        match (self.mode, &self.root_cert, self.unsaid) {
            (Some(mode), _, _) => mode,
            // libpq 16: `sslrootcert=system` makes verify-full the default.
            (None, Some(RootCert::System), _) => SslMode::VerifyFull,
            (None, _, Unsaid::Prefer) => SslMode::Prefer,
            (None, _, Unsaid::Disable) => SslMode::Disable,
        }
    }

    /// `sslrootcert`, when said.
    pub fn root_cert(&self) -> Option<&RootCert> {
        self.root_cert.as_ref()
    }

    /// The parameters to print back into a connection string (none is a secret: `sslkey` is
    /// a path; a key's contents are never read into anything printed).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(mode) = self.mode {
            out.push(("sslmode", mode.as_str().to_owned()));
        }
        if let Some(root) = &self.root_cert {
            out.push(("sslrootcert", root.as_param()));
        }
        if let Some(cert) = &self.cert {
            out.push(("sslcert", cert.display().to_string()));
        }
        if let Some(key) = &self.key {
            out.push(("sslkey", key.display().to_string()));
        }
        out
    }

    /// Whether a connection to `config`'s hosts would check certificates against the RDS
    /// bundle devenv ships (a host under `rds.amazonaws.com`, no `sslrootcert`), so that a
    /// tool handed the URL (psql) needs the bundle as a file.
    pub fn uses_rds_bundle(&self, config: &Config) -> bool {
        self.mode().verifies()
            && self.root_cert.is_none()
            && config
                .get_hosts()
                .iter()
                .any(|h| matches!(h, Host::Tcp(name) if rds::is_rds_host(name)))
    }

    /// Connects to `config` (its own `sslmode` is ignored: this decides), trying plain and
    /// TLS in libpq's order for the mode. The connection future is the caller's to spawn.
    pub async fn connect(&self, config: &Config) -> Result<(Client, Connection), ConnectError> {
        let mut plan = Plan::new(self, config)?;
        loop {
            let (attempt, connector) = plan.next_attempt();
            // Boxed: tokio-postgres' connect future with a TLS handshake in it is large, and
            // every caller's future would carry it.
            let result = Box::pin(attempt.connect(connector.clone())).await;
            match result {
                Ok(connected) => return Ok(connected),
                Err(error) => {
                    if let Some(error) = plan.failed(error, &connector) {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// Cancels the query running on the session `token` came from, over the same kind of
    /// connection (tokio-postgres sends the cancel request with the session's `sslmode`).
    pub async fn cancel(&self, token: &tokio_postgres::CancelToken) -> Result<(), ConnectError> {
        let client = if self.mode() == SslMode::Disable {
            plain_client_config()
        } else {
            self.client_config().map_err(ConnectError::Settings)?
        };
        token
            .cancel_query(Connector::new(client))
            .await
            .map_err(ConnectError::Postgres)
    }

    /// [`Tls::connect`] for a blocking client (the `postgres` crate): `connect` makes one
    /// attempt with the configuration and connector it is given.
    pub fn connect_blocking<T>(
        &self,
        config: &Config,
        mut connect: impl FnMut(&Config, Connector) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, ConnectError> {
        let mut plan = Plan::new(self, config)?;
        loop {
            let (attempt, connector) = plan.next_attempt();
            match connect(&attempt, connector.clone()) {
                Ok(connected) => return Ok(connected),
                Err(error) => {
                    if let Some(error) = plan.failed(error, &connector) {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// The rustls configuration: roots, verifier and client certificate, built once.
    fn client_config(&self) -> Result<Arc<ClientConfig>, SettingsError> {
        self.built.get_or_init(|| self.build()).clone()
    }

    fn build(&self) -> Result<Arc<ClientConfig>, SettingsError> {
        let mode = self.mode();
        if self.root_cert == Some(RootCert::System) && !matches!(mode, SslMode::VerifyFull) {
            return Err(SettingsError::WeakWithSystem(mode));
        }
        let explicit = match &self.root_cert {
            Some(RootCert::File(path)) => Some(verify::Roots::from_file(path, false)?),
            Some(RootCert::System) => Some(verify::Roots::system()?),
            None => None,
        };
        let home_root = self
            .home
            .as_ref()
            .map(|h| h.join("root.crt"))
            .filter(|p| p.is_file());
        let home = match home_root {
            Some(path) if explicit.is_none() => Some(verify::Roots::from_file(&path, true)?),
            _ => None,
        };
        let verifier = verify::Verifier::new(mode, explicit, home);
        let builder = ClientConfig::builder_with_provider(verify::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| SettingsError::Rustls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config =
            match self.client_identity()? {
                Some((chain, key, cert_path)) => builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| SettingsError::ClientCert {
                        path: cert_path,
                        problem: format!("does not go with the key: {e}"),
                    })?,
                None => builder.with_no_client_auth(),
            };
        // libpq 17 names the protocol; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Arc::new(config))
    }

    /// The client certificate chain and key: `sslcert`/`sslkey`, else libpq's defaults in
    /// `~/.postgresql` when the certificate is there.
    fn client_identity(
        &self,
    ) -> Result<
        Option<(
            Vec<CertificateDer<'static>>,
            PrivateKeyDer<'static>,
            PathBuf,
        )>,
        SettingsError,
    > {
        let home = |name: &str| self.home.as_ref().map(|h| h.join(name));
        let (cert, explicit) = match &self.cert {
            Some(path) => (path.clone(), true),
            None => match home("postgresql.crt").filter(|p| p.is_file()) {
                Some(path) => (path, false),
                None => return Ok(None),
            },
        };
        if !cert.is_file() {
            return if explicit {
                Err(SettingsError::ClientCert {
                    path: cert,
                    problem: "does not exist".into(),
                })
            } else {
                Ok(None)
            };
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .and_then(Iterator::collect)
            .map_err(|e| SettingsError::ClientCert {
                path: cert.clone(),
                problem: format!("is not a PEM certificate file ({e})"),
            })?;
        if chain.is_empty() {
            return Err(SettingsError::ClientCert {
                path: cert,
                problem: "holds no PEM certificate".into(),
            });
        }
        let key = self
            .key
            .clone()
            .or_else(|| home("postgresql.key"))
            .ok_or_else(|| SettingsError::ClientKey {
                path: PathBuf::from("sslkey"),
                problem: "is not set (sslcert needs its key)".into(),
            })?;
        check_key_file(&key)?;
        // The parser's error may quote a line of the file: only the kind of problem is told.
        let key_der = PrivateKeyDer::from_pem_file(&key).map_err(|_| SettingsError::ClientKey {
            path: key.clone(),
            problem: "is not a PEM private key (PKCS#8, PKCS#1 or SEC1; an encrypted key must be decrypted first)".into(),
        })?;
        Ok(Some((chain, key_der, cert)))
    }
}

/// libpq's rule for a client key file: a regular file, private to its owner (0600 or less),
/// or owned by root and readable by its group at most (0640).
fn check_key_file(path: &Path) -> Result<(), SettingsError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).map_err(|e| SettingsError::ClientKey {
        path: path.to_path_buf(),
        problem: format!("cannot be read ({e})"),
    })?;
    if !meta.is_file() {
        return Err(SettingsError::ClientKey {
            path: path.to_path_buf(),
            problem: "is not a regular file".into(),
        });
    }
    let mode = meta.mode();
    let mine = meta.uid() == nix::unistd::geteuid().as_raw();
    if (mine && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0) {
        return Err(SettingsError::ClientKey {
            path: path.to_path_buf(),
            problem: "has group or world access; it must have permissions u=rw (0600) or less if owned by the current user, or u=rw,g=r (0640) or less if owned by root".into(),
        });
    }
    Ok(())
}

/// The stream of a connection made here (plain or TLS).
pub type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// A connection made by [`Tls::connect`]; spawn it.
pub type Connection = tokio_postgres::Connection<Socket, Stream>;

/// tokio-postgres' rustls connector, noting whether a TLS handshake began (the server said
/// yes to the SSLRequest): what tells "the server has no TLS" from a failed handshake.
#[derive(Clone)]
pub struct Connector {
    inner: MakeRustlsConnect,
    started: Arc<AtomicBool>,
}

impl Connector {
    fn new(config: Arc<ClientConfig>) -> Connector {
        Connector {
            inner: MakeRustlsConnect::new(Arc::unwrap_or_clone(config)),
            started: Arc::default(),
        }
    }

    fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }
}

impl MakeTlsConnect<Socket> for Connector {
    type Stream = Stream;
    type TlsConnect = Handshake;
    type Error = std::io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Handshake, std::io::Error> {
        // Asked for every connection, a Unix socket's too (with an empty name): only a
        // handshake needs a valid name.
        Ok(Handshake {
            inner: MakeTlsConnect::<Socket>::make_tls_connect(&mut self.inner, domain).map_err(
                |e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("`{domain}` cannot be checked against a certificate: {e}"),
                    )
                },
            ),
            started: self.started.clone(),
        })
    }
}

type InnerConnect = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;

/// One handshake of a [`Connector`].
pub struct Handshake {
    inner: Result<InnerConnect, std::io::Error>,
    started: Arc<AtomicBool>,
}

impl TlsConnect<Socket> for Handshake {
    type Stream = Stream;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = futures_util::future::Either<
        futures_util::future::MapErr<
            <InnerConnect as TlsConnect<Socket>>::Future,
            fn(std::io::Error) -> Self::Error,
        >,
        futures_util::future::Ready<Result<Stream, Self::Error>>,
    >;

    fn connect(self, stream: Socket) -> Self::Future {
        use futures_util::TryFutureExt as _;
        self.started.store(true, Ordering::Relaxed);
        match self.inner {
            Ok(inner) => futures_util::future::Either::Left(
                inner
                    .connect(stream)
                    .map_err(Into::into as fn(std::io::Error) -> Self::Error),
            ),
            Err(e) => {
                futures_util::future::Either::Right(futures_util::future::ready(Err(Box::new(e))))
            }
        }
    }
}

/// The attempts of one connection, in libpq's order for the mode, and what their failures
/// mean.
struct Plan<'t> {
    tls: &'t Tls,
    base: Config,
    steps: Vec<Step>,
    next: usize,
    client: Arc<ClientConfig>,
    /// The failure of a TLS attempt, kept while a plain one is tried after it.
    tls_failure: Option<ConnectError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Plain,
    /// TLS if the server offers it, else plain on the same connection.
    Offer,
    /// TLS or fail.
    Insist,
}

impl<'t> Plan<'t> {
    fn new(tls: &'t Tls, config: &Config) -> Result<Plan<'t>, ConnectError> {
        let mut base = config.clone();
        let sockets_only = !base.get_hosts().is_empty()
            && base.get_hosts().iter().all(|h| matches!(h, Host::Unix(_)));
        let steps = if sockets_only {
            vec![Step::Plain]
        } else {
            match tls.mode() {
                SslMode::Disable => vec![Step::Plain],
                SslMode::Allow => vec![Step::Plain, Step::Insist],
                SslMode::Prefer => vec![Step::Offer, Step::Plain],
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => vec![Step::Insist],
            }
        };
        let client = if steps == [Step::Plain] {
            plain_client_config()
        } else {
            tls.client_config().map_err(ConnectError::Settings)?
        };
        // tokio-postgres hands TLS the `host` name only: a server given by `hostaddr` alone
        // is checked by its address.
        if base.get_hosts().is_empty() {
            for addr in config.get_hostaddrs() {
                base.host(addr.to_string());
            }
        }
        Ok(Plan {
            tls,
            base,
            steps,
            next: 0,
            client,
            tls_failure: None,
        })
    }

    fn next_attempt(&mut self) -> (Config, Connector) {
        let step = self.steps[self.next];
        self.next += 1;
        let mut config = self.base.clone();
        config.ssl_mode(match step {
            Step::Plain => WireMode::Disable,
            Step::Offer => WireMode::Prefer,
            Step::Insist => WireMode::Require,
        });
        (config, Connector::new(self.client.clone()))
    }

    /// The error to return, or `None` to go on with the next attempt.
    fn failed(
        &mut self,
        error: tokio_postgres::Error,
        connector: &Connector,
    ) -> Option<ConnectError> {
        let step = self.steps[self.next - 1];
        let handshake = connector.started();
        let rejected = is_hba_rejection(&error);
        let more = self.next < self.steps.len();
        let explained = explain(self.tls, &self.base, step, handshake, error);
        match step {
            // prefer: after TLS that the server took but that failed (the handshake, or the
            // server's rules for TLS connections), plain, as libpq.
            Step::Offer if more && handshake && (rejected || is_tls_failure(&explained)) => {
                self.tls_failure = Some(explained);
                None
            }
            // allow: after plain refused by the server's rules, TLS.
            Step::Plain if more && rejected => None,
            // The plain retry of prefer was refused for want of TLS: the TLS failure is the
            // one to fix.
            Step::Plain if explained.needs_tls() => {
                Some(self.tls_failure.take().unwrap_or(explained))
            }
            _ => Some(explained),
        }
    }
}

/// A configuration for plain-only plans (the connector wants one; it is never used).
fn plain_client_config() -> Arc<ClientConfig> {
    static PLAIN: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    PLAIN
        .get_or_init(|| {
            let config = ClientConfig::builder_with_provider(verify::provider())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// A login the server's pg_hba.conf refused for this connection's kind (SQLSTATE 28000: no
/// entry, or a `reject` line): the kind of connection (plain or TLS) may be the reason.
fn is_hba_rejection(error: &tokio_postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|c| *c == tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
}

fn is_tls_failure(error: &ConnectError) -> bool {
    matches!(error, ConnectError::Explained { kind, .. } if *kind != Why::NeedsTls)
        || error
            .postgres()
            .is_some_and(|e| e.as_db_error().is_none() && rustls_error(e).is_some())
}

/// The rustls error inside a tokio-postgres error (a handshake that failed).
fn rustls_error(error: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(found) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(found);
            }
        }
        cause = e.source();
    }
    None
}

/// What a failure was, when devenv can say it in the user's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The server refused a plain connection: its pg_hba.conf wants TLS.
    NeedsTls,
    /// The mode asked for TLS and the server has none.
    NoTlsOnServer,
    /// The server's certificate is not vouched for by the roots.
    Untrusted,
    /// The certificate is for another name.
    WrongName,
    /// The certificate was refused for another reason (expired, not yet valid, ...).
    BadCertificate,
    /// No root certificate to check the server against.
    NoRoot,
    /// The server wants a client certificate.
    NeedsClientCert,
    /// The server refused the client certificate.
    ClientCertRefused,
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TLS settings cannot be used; nothing was sent.
    #[error(transparent)]
    Settings(SettingsError),
    /// A failure devenv can explain; the client's error follows as the source.
    #[error("{message}")]
    Explained {
        /// What it was.
        kind: Why,
        /// What happened and what to do.
        message: String,
        /// The client's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Any other failure (the server down, a wrong password, ...).
    #[error(transparent)]
    Postgres(tokio_postgres::Error),
}

impl ConnectError {
    /// The client's error, unless the settings failed before anything was sent.
    pub fn postgres(&self) -> Option<&tokio_postgres::Error> {
        match self {
            ConnectError::Settings(_) => None,
            ConnectError::Explained { source, .. } => Some(source),
            ConnectError::Postgres(e) => Some(e),
        }
    }

    /// The server's SQLSTATE, when it answered with an error.
    pub fn code(&self) -> Option<&tokio_postgres::error::SqlState> {
        self.postgres().and_then(tokio_postgres::Error::code)
    }

    /// What devenv knows the failure to be.
    pub fn why(&self) -> Option<Why> {
        match self {
            ConnectError::Explained { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Whether the TLS settings are at fault (a configuration error): nothing was sent.
    pub fn is_settings(&self) -> bool {
        matches!(self, ConnectError::Settings(_))
    }

    fn needs_tls(&self) -> bool {
        self.why() == Some(Why::NeedsTls)
    }

    /// The message and every cause after it, one line (for reports that are text).
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            let more = e.to_string();
            if !text.ends_with(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            cause = e.source();
        }
        text
    }
}

/// TLS settings that cannot be used (a configuration error: exit code 2 at the CLI).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SettingsError {
    /// A root certificate file cannot be used.
    #[error("sslrootcert {} {problem}", path.display())]
    RootCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The system's store has no certificate.
    #[error("sslrootcert=system: the system's certificate store has no certificate ({detail}); install the CA certificates (Debian: `apt-get install ca-certificates`) or point sslrootcert at a CA file")]
    NoSystemRoots {
        /// What rustls-native-certs said.
        detail: String,
    },
    /// `sslrootcert=system` with a mode that does not check names.
    #[error("sslmode={0} may not be used with sslrootcert=system (any certificate the system trusts would pass): use sslmode=verify-full")]
    WeakWithSystem(SslMode),
    /// The client certificate cannot be used.
    #[error("sslcert {} {problem}", path.display())]
    ClientCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The client key cannot be used (its contents are never shown).
    #[error("sslkey {} {problem}", path.display())]
    ClientKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// rustls refused the configuration.
    #[error("the TLS configuration: {0}")]
    Rustls(String),
}

/// Turns a failed attempt into the error to show: explained when devenv knows what it means.
fn explain(
    tls: &Tls,
    config: &Config,
    step: Step,
    handshake: bool,
    error: tokio_postgres::Error,
) -> ConnectError {
    let hosts = host_list(config);
    let mode = tls.mode();
    let explained = |kind: Why, message: String, source| ConnectError::Explained {
        kind,
        message,
        source,
    };
    if let Some(db) = error.as_db_error() {
        let message = db.message();
        if step == Step::Plain && is_hba_rejection(&error) && message.contains("no encryption") {
            return explained(
                Why::NeedsTls,
                format!(
                    "the server requires TLS (pg_hba has no entry without encryption): add \
                     `?sslmode=require` or `verify-full` to the connection string (sslmode is \
                     {mode} for {hosts})"
                ),
                error,
            );
        }
        if is_hba_rejection(&error) && message.contains("client certificate") {
            let sent = tls.cert.is_some()
                || tls
                    .home
                    .as_ref()
                    .is_some_and(|h| h.join("postgresql.crt").is_file());
            if !sent {
                return explained(
                    Why::NeedsClientCert,
                    format!("{hosts} wants a client certificate for this login (pg_hba clientcert): set sslcert and sslkey to a certificate its CA signed and the key that goes with it"),
                    error,
                );
            }
        }
        return ConnectError::Postgres(error);
    }
    if step != Step::Plain && !handshake && error.to_string().contains("TLS") {
        return explained(
            Why::NoTlsOnServer,
            format!("{hosts} does not offer TLS, and sslmode={mode} requires it: use sslmode=prefer (or disable) for this server, or turn `ssl` on in its postgresql.conf"),
            error,
        );
    }
    match rustls_error(&error) {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
            match other.0.downcast_ref::<Refused>() {
                Some(refused) => {
                    let (kind, message) = refused.explain(mode);
                    explained(kind, message, error)
                }
                None => ConnectError::Postgres(error),
            }
        }
        Some(rustls::Error::AlertReceived(alert)) if client_cert_alert(*alert) => {
            let cert = tls.cert.as_ref().map_or_else(
                || "~/.postgresql/postgresql.crt".to_owned(),
                |p| p.display().to_string(),
            );
            explained(
                Why::ClientCertRefused,
                format!("{hosts} refused the client certificate {cert} ({alert:?}): it must be signed by a CA in the server's ssl_ca_file, and be valid now"),
                error,
            )
        }
        _ => ConnectError::Postgres(error),
    }
}

fn client_cert_alert(alert: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::UnknownCA
            | A::BadCertificate
            | A::CertificateExpired
            | A::CertificateRequired
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::AccessDenied
    )
}

/// The hosts of a configuration, as `host:port` (or a socket directory), for messages.
fn host_list(config: &Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| {
        ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432)
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", port(i)),
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            Host::Unix(dir) => dir.display().to_string(),
        })
        .collect();
    match hosts.as_slice() {
        [] => "the server".into(),
        [one] => format!("the server at {one}"),
        many => format!("the servers at {}", many.join(", ")),
    }
}
