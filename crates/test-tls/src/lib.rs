//! For devenv's tests and benchmarks (a dev-dependency, never shipped): a real PostgreSQL that
//! requires TLS, as RDS does with `rds.force_ssl = 1`, and the test PKI around it.
//!
//! [`Pki::new`] makes, with rcgen, a test CA, a server certificate for `localhost` (not for
//! `127.0.0.1`, so connecting by address is a name mismatch), a client certificate for the
//! role [`CERT_USER`], and an unrelated CA (the "wrong CA" of the tests); the files live in a
//! temporary directory, keys 0600.
//!
//! [`TlsServer::start`] starts a native PostgreSQL ([`TempServer`]: a throw-away cluster on a
//! free port of 127.0.0.1, run as the `postgres` account under root), puts the server's
//! certificate, key and the CA (to check client certificates) in its data directory, turns
//! `ssl` on with `ALTER SYSTEM` and writes `pg_hba.conf` as a force-SSL server has it:
//! `hostssl` lines only and `hostnossl ... reject` ([`Access::TlsOnly`]), with the certificate
//! login of [`CERT_USER`] (`trust clientcert=verify-full`); or, for side-by-side benchmarks,
//! plain and TLS both accepted ([`Access::Both`]). Then it reloads and waits until TLS is in
//! force.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devenv_server::native::TempServer;
use devenv_server::Server;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The superuser's password.
pub const PASSWORD: &str = "tls-test-pw";

/// The role that logs in with its client certificate (its certificate's CN).
pub const CERT_USER: &str = "devenv_cert";

/// The test CA and the certificates it signed, as files.
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
    /// The CA that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// Another CA, which signed nothing here.
    pub other_ca: PathBuf,
    /// The server's certificate (for `localhost`) and key.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// The client certificate of [`CERT_USER`].
    pub client_cert: PathBuf,
    /// Its key (0600).
    pub client_key: PathBuf,
}

fn write_private(path: &Path, text: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    file.write_all(text.as_bytes()).expect("writing a test key");
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "devenv tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key")).expect("a CA")
}

fn leaf(
    names: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate().expect("a leaf key");
    let cert = params.signed_by(&key, issuer).expect("a signed leaf");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    /// A new CA, server and client certificates, and an unrelated CA.
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("devenv-tls-pki-")
            .tempdir()
            .expect("a temporary directory");
        let ca = ca("devenv test CA");
        let other = ca_other();
        let (server_cert, server_key) = leaf(
            &["localhost"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
        );
        let (client_cert, client_key) =
            leaf(&[], CERT_USER, ExtendedKeyUsagePurpose::ClientAuth, &ca);
        let at = |name: &str| dir.path().join(name);
        std::fs::write(at("ca.crt"), ca.pem()).expect("writing the CA");
        std::fs::write(at("other-ca.crt"), other.pem()).expect("writing the other CA");
        std::fs::write(at("server.crt"), server_cert).expect("writing the server certificate");
        write_private(&at("server.key"), &server_key);
        std::fs::write(at("client.crt"), client_cert).expect("writing the client certificate");
        write_private(&at("client.key"), &client_key);
        Pki {
            ca: at("ca.crt"),
            other_ca: at("other-ca.crt"),
            server_cert: at("server.crt"),
            server_key: at("server.key"),
            client_cert: at("client.crt"),
            client_key: at("client.key"),
            dir,
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn ca_other() -> CertifiedIssuer<'static, KeyPair> {
    ca("some other CA")
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// Which connections the server's `pg_hba.conf` lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `hostssl` only, `hostnossl ... reject`: RDS with `rds.force_ssl = 1`.
    TlsOnly,
    /// Plain and TLS alike (for benchmarks that compare them on one server).
    Both,
}

/// A running PostgreSQL with `ssl = on`, its certificates from a [`Pki`].
#[derive(Debug)]
pub struct TlsServer {
    /// The server (stopped and removed on drop).
    pub temp: TempServer,
    /// Its certificates.
    pub pki: Pki,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl TlsServer {
    /// Starts the server and waits until TLS is in force.
    pub async fn start(access: Access) -> TlsServer {
        let pki = Pki::new();
        let temp = TempServer::start(PASSWORD)
            .await
            .expect("a native PostgreSQL (scripts/ensure-postgres.sh installs the binaries)");
        let port = temp.server().port();
        let data = temp.native.layout.data_dir.clone();
        configure(&data, &pki, access);
        let server = TlsServer { temp, pki, port };
        server.switch_on().await;
        server
    }

    /// ALTER SYSTEM for ssl, a reload, and the wait for it: the reload is a signal with no
    /// answer, so the first TLS login that works says it is done (bounded, 10 s).
    async fn switch_on(&self) {
        let plain = self.temp.server();
        let (client, connection) = plain
            .connect("postgres")
            .await
            .expect("the new server, before TLS is required");
        let task = tokio::spawn(connection);
        // One statement at a time: ALTER SYSTEM refuses a transaction block.
        for sql in [
            "ALTER SYSTEM SET ssl = on".to_owned(),
            "ALTER SYSTEM SET ssl_cert_file = 'server.crt'".into(),
            "ALTER SYSTEM SET ssl_key_file = 'server.key'".into(),
            "ALTER SYSTEM SET ssl_ca_file = 'ca.crt'".into(),
            format!("CREATE ROLE {CERT_USER} LOGIN SUPERUSER"),
            "SELECT pg_reload_conf()".into(),
        ] {
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        drop(client);
        let _ = task.await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let server = self.server("sslmode=verify-full", &self.pki.ca);
            match server.connect("postgres").await {
                Ok(_) => return,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "TLS not in force 10 s after the reload: {}",
                    e.report()
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `postgresql://postgres:PASSWORD@localhost:PORT/DATABASE`, then `?` and `params` when
    /// not empty (`sslmode=verify-full&sslrootcert=...`).
    pub fn url(&self, database: &str, params: &str) -> String {
        self.url_at("localhost", database, params)
    }

    /// The same URL with another host name (`127.0.0.1`: a name the certificate lacks).
    pub fn url_at(&self, host: &str, database: &str, params: &str) -> String {
        let mut url = format!(
            "postgresql://postgres:{PASSWORD}@{host}:{}/{database}",
            self.port
        );
        if !params.is_empty() {
            url.push('?');
            url.push_str(params);
        }
        url
    }

    /// The URL of [`CERT_USER`], logging in with its certificate (no password).
    pub fn cert_url(&self, database: &str) -> String {
        format!(
            "postgresql://{CERT_USER}@localhost:{}/{database}?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            self.port,
            self.pki.ca.display(),
            self.pki.client_cert.display(),
            self.pki.client_key.display()
        )
    }

    /// The server parsed from `url("", params + "&sslrootcert=" + root)`, no environment.
    pub fn server(&self, params: &str, root: &Path) -> Server {
        let url = self.url("", &format!("{params}&sslrootcert={}", root.display()));
        Server::parse(&url, |_| None)
            .expect("the test URL parses")
            .0
    }

    /// Stops the server and removes its files.
    pub async fn stop(self) {
        self.temp.stop().await;
    }
}

/// A temporary project of the example's schema and seed (the workspace's `db/`) whose
/// devenv.yaml says `backend: external` on `url`, `database: DATABASE`.
pub fn external_project(url: &str, database: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("devenv-tls-project-")
        .tempdir()
        .expect("a temporary directory");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::create_dir(dir.path().join("db")).expect("db/");
    for file in ["db/schema.sql", "db/seed.sql"] {
        std::fs::copy(example.join(file), dir.path().join(file)).expect("the example's SQL");
    }
    std::fs::write(
        dir.path().join("devenv.yaml"),
        format!("database: {database}\nbackend: external\nurl: \"{url}\"\n"),
    )
    .expect("writing devenv.yaml");
    dir
}

/// Copies the certificates into the data directory (owned as the directory is: the server
/// runs as `postgres` under root and insists its key is private to it) and writes
/// `pg_hba.conf`.
fn configure(data: &Path, pki: &Pki, access: Access) {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(data).expect("the data directory");
    for (from, name) in [
        (&pki.server_cert, "server.crt"),
        (&pki.server_key, "server.key"),
        (&pki.ca, "ca.crt"),
    ] {
        let to = data.join(name);
        std::fs::copy(from, &to).expect("copying a certificate into the data directory");
        std::os::unix::fs::chown(&to, Some(meta.uid()), Some(meta.gid()))
            .expect("giving the file to the server's account");
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("making the file private");
    }
    let lines = match access {
        Access::TlsOnly => format!(
            "# As RDS with rds.force_ssl = 1: TLS or nothing.\n\
             local all all trust\n\
             hostssl all {CERT_USER} 127.0.0.1/32 trust clientcert=verify-full\n\
             hostssl all {CERT_USER} ::1/128 trust clientcert=verify-full\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl all all ::1/128 scram-sha-256\n\
             hostnossl all all 0.0.0.0/0 reject\n\
             hostnossl all all ::/0 reject\n"
        ),
        Access::Both => format!(
            "# Plain and TLS alike (benchmarks).\n\
             local all all trust\n\
             hostssl all {CERT_USER} 127.0.0.1/32 trust clientcert=verify-full\n\
             host all all 127.0.0.1/32 scram-sha-256\n\
             host all all ::1/128 scram-sha-256\n"
        ),
    };
    // Written in place: the file keeps its owner.
    std::fs::write(data.join("pg_hba.conf"), lines).expect("writing pg_hba.conf");
}
