//! How to reach a server, and connection strings as data: a URL or a key=value conninfo string
//! is parsed (tokio-postgres' own parser, after [`split_tls`] has taken out the TLS parameters
//! it does not know, for [`crate::tls`]), never pattern-matched, and printed back from the
//! parsed form, with the password replaced for anything a human or a log sees (TLS parameters
//! are printed: none is a secret). The same parsed form decides whether a target is local
//! (every host and `hostaddr` loopback or a Unix socket).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio_postgres::config::{ChannelBinding, Host, TargetSessionAttrs};

use crate::tls::{self, ConnectError, SslMode, Tls};

/// The `application_name` of devenv's own sessions (so `db sessions --kill-idle` spares them).
pub const APPLICATION_NAME: &str = "devenv";

/// What replaces a password in everything printed.
pub const MASK: &str = "****";

/// A connection string that could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConnInfoError {
    /// Not a connection string.
    #[error("not a PostgreSQL connection string ({len} characters; URL `postgresql://...` or `host=... dbname=...`)")]
    Syntax {
        /// Its length (the text itself may hold a password).
        len: usize,
        /// The parser's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A TLS parameter that cannot be taken.
    #[error(transparent)]
    Tls(#[from] tls::ParamError),
}

/// How to reach a PostgreSQL server as one role: hosts, ports, options and TLS, without a
/// database.
#[derive(Clone)]
pub struct Server {
    base: tokio_postgres::Config,
    tls: Tls,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked_url("postgres"))
    }
}

impl PartialEq for Server {
    fn eq(&self, other: &Self) -> bool {
        self.url("") == other.url("")
    }
}

impl Eq for Server {}

/// Characters escaped in URL user info and path segments.
const URL_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn esc(text: &str) -> impl std::fmt::Display + '_ {
    utf8_percent_encode(text, URL_ESCAPE)
}

/// `text` percent-encoded as it appears in the URLs devenv renders (user, password, database).
pub fn url_escaped(text: &str) -> String {
    esc(text).to_string()
}

impl Server {
    /// A server on 127.0.0.1:`port` (every server devenv starts on this machine).
    pub fn local(port: u16, user: &str, password: &str) -> Server {
        Server::on("127.0.0.1", port, user, password)
    }

    /// A server on `host`:`port` (a container of an engine on another address).
    pub fn on(host: &str, port: u16, user: &str, password: &str) -> Server {
        let mut base = tokio_postgres::Config::new();
        base.host(host).port(port).user(user).password(password);
        Server {
            base,
            tls: Tls::plain(),
        }
    }

    /// Parses a URL or key=value string; returns the server and the database it names. Hosts,
    /// ports, user, password and TLS parameters missing from the string come from `PGHOST`,
    /// `PGHOSTADDR`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGSSLMODE`, `PGSSLROOTCERT`,
    /// `PGSSLCERT` and `PGSSLKEY` in `env` as psql would take them (else localhost, 5432,
    /// postgres, `sslmode=prefer`).
    pub fn parse(
        conninfo: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Server, Option<String>), ConnInfoError> {
        let (rest, tls_params) = split_tls(conninfo);
        let mut base: tokio_postgres::Config =
            rest.parse().map_err(|source| ConnInfoError::Syntax {
                len: conninfo.chars().count(),
                source,
            })?;
        let tls = Tls::from_params(&tls_params, &env)?;
        if base.get_hosts().is_empty() && base.get_hostaddrs().is_empty() {
            let pghost = env("PGHOST").filter(|h| !h.is_empty());
            let pghostaddr = env("PGHOSTADDR").filter(|h| !h.is_empty());
            match (pghost, pghostaddr) {
                (Some(hosts), _) => {
                    for host in hosts.split(',') {
                        add_host(&mut base, host);
                    }
                }
                (None, Some(addrs)) => {
                    for addr in addrs.split(',') {
                        match addr.trim().parse::<IpAddr>() {
                            Ok(ip) => base.hostaddr(ip),
                            Err(_) => base.host(addr.trim()),
                        };
                    }
                }
                (None, None) => {
                    base.host("localhost");
                }
            }
        }
        if base.get_ports().is_empty() {
            let port = env("PGPORT").and_then(|p| p.parse().ok()).unwrap_or(5432);
            base.port(port);
        }
        if base.get_user().is_none() {
            base.user(env("PGUSER").as_deref().unwrap_or("postgres"));
        }
        if base.get_password().is_none() {
            if let Some(password) = env("PGPASSWORD") {
                base.password(password);
            }
        }
        let database = base.get_dbname().map(str::to_owned);
        Ok((Server { base, tls }, database))
    }

    /// The same server with `mode` when neither the string nor `PGSSLMODE` names one (`--target
    /// prod` says `verify-full`).
    #[must_use]
    pub fn or_sslmode(mut self, mode: SslMode) -> Server {
        self.tls = self.tls.or_mode(mode);
        self
    }

    /// What the connection string and the environment say about TLS.
    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    /// Connects to `database` with the string's TLS semantics ([`Tls::connect`]); the
    /// connection future is the caller's to spawn.
    pub async fn connect(
        &self,
        database: &str,
    ) -> Result<(tokio_postgres::Client, tls::Connection), ConnectError> {
        self.tls.connect(&self.config(database)).await
    }

    /// The role.
    pub fn user(&self) -> &str {
        self.base.get_user().unwrap_or("postgres")
    }

    /// The password (empty when there is none).
    pub fn password(&self) -> String {
        String::from_utf8_lossy(self.base.get_password().unwrap_or_default()).into_owned()
    }

    /// The first port.
    pub fn port(&self) -> u16 {
        self.base.get_ports().first().copied().unwrap_or(5432)
    }

    /// The first host, as text (a Unix socket directory is a path).
    pub fn host(&self) -> String {
        match self.base.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => self
                .base
                .get_hostaddrs()
                .first()
                .map_or_else(|| "localhost".into(), ToString::to_string),
        }
    }

    /// The same server as another role.
    #[must_use]
    pub fn with_credentials(&self, user: &str, password: &str) -> Server {
        let mut base = self.base.clone();
        base.user(user).password(password);
        Server {
            base,
            tls: self.tls.clone(),
        }
    }

    /// A tokio-postgres configuration for `database`, named [`APPLICATION_NAME`] unless the
    /// string named another, with a 5 s connect timeout unless it set one. Its `sslmode` means
    /// nothing: connect through [`Server::connect`] or [`Server::tls`].
    pub fn config(&self, database: &str) -> tokio_postgres::Config {
        let mut config = self.base.clone();
        config.dbname(database);
        if config.get_application_name().is_none() {
            config.application_name(APPLICATION_NAME);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config
    }

    /// The URL of `database`, password included: for the exported variables and the code
    /// under test, never for display (see [`Server::masked_url`]).
    pub fn url(&self, database: &str) -> String {
        render(&self.base, &self.tls, Some(database), Password::Shown)
    }

    /// The URL of `database` with the password replaced by [`MASK`].
    pub fn masked_url(&self, database: &str) -> String {
        render(&self.base, &self.tls, Some(database), Password::Masked)
    }

    /// The URL of `database` without the password (which goes through `PGPASSWORD`).
    pub fn url_without_password(&self, database: &str) -> String {
        render(&self.base, &self.tls, Some(database), Password::Omitted)
    }

    /// Whether every host and `hostaddr` is a loopback address, `localhost` or a Unix socket:
    /// only then is the target this machine.
    pub fn is_local(&self) -> bool {
        let hosts_local = self.base.get_hosts().iter().all(|h| match h {
            Host::Unix(_) => true,
            Host::Tcp(name) => is_loopback_name(name),
        });
        let addrs_local = self.base.get_hostaddrs().iter().all(IpAddr::is_loopback);
        hosts_local && addrs_local
    }
}

fn add_host(base: &mut tokio_postgres::Config, host: &str) {
    let host = host.trim();
    if host.starts_with('/') {
        base.host_path(host);
    } else {
        base.host(host);
    }
}

fn is_loopback_name(name: &str) -> bool {
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A connection string with its password masked, printed from its parsed form; a string that
/// does not parse is not shown at all (it may hold a password where no parser expects one).
///
/// ```
/// use devenv_server::mask;
/// assert_eq!(
///     mask("postgresql://app:s3cret@db.example.com:5432/app"),
///     "postgresql://app:****@db.example.com:5432/app"
/// );
/// assert_eq!(mask("host=db.example.com password=s3cret user=app dbname=app"),
///     "postgresql://app:****@db.example.com/app");
/// assert!(!mask("postgresql://app:s3@cret@db.example.com/app").contains("cret"));
/// ```
pub fn mask(conninfo: &str) -> String {
    // A host holding `@` is the tail of a password with an unescaped `@` (libpq and
    // tokio-postgres both end the user info at the first `@`): not shown either.
    let (rest, tls_params) = split_tls(conninfo);
    let parsed = rest
        .parse::<tokio_postgres::Config>()
        .ok()
        .filter(|c| {
            !c.get_hosts()
                .iter()
                .any(|h| matches!(h, Host::Tcp(name) if name.contains('@')))
        })
        .zip(Tls::from_params(&tls_params, |_| None).ok());
    match parsed {
        Some((config, tls)) => render(&config, &tls, None, Password::Masked),
        None => format!(
            "(a connection string that does not parse, {} characters, not shown)",
            conninfo.chars().count()
        ),
    }
}

/// How a rendered URL shows the password.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Password {
    Shown,
    Masked,
    Omitted,
}

/// Renders a parsed configuration as a `postgresql://` URL; `database` overrides its dbname.
fn render(
    config: &tokio_postgres::Config,
    tls: &Tls,
    database: Option<&str>,
    password: Password,
) -> String {
    let mut url = String::from("postgresql://");
    if let Some(user) = config.get_user() {
        let _ = write!(url, "{}", esc(user));
        if let Some(secret) = config.get_password() {
            match password {
                Password::Shown => {
                    let _ = write!(url, ":{}", esc(&String::from_utf8_lossy(secret)));
                }
                Password::Masked => {
                    url.push(':');
                    url.push_str(MASK);
                }
                Password::Omitted => {}
            }
        }
        url.push('@');
    }
    let ports = config.get_ports();
    let port_of = |i: usize| ports.get(i).or_else(|| ports.first()).copied();
    let mut params: Vec<(String, String)> = Vec::new();
    let mut tcp = Vec::new();
    // A host holding `@` is the tail of a password with an unescaped `@` (libpq, like
    // tokio-postgres, ends the user info at the first `@`): masked with the password.
    let tail_of_password = |name: &str| password != Password::Shown && name.contains('@');
    for (i, host) in config.get_hosts().iter().enumerate() {
        match host {
            Host::Tcp(name) => {
                let shown = if tail_of_password(name) {
                    MASK.to_owned()
                } else if name.contains(':') {
                    format!("[{name}]")
                } else {
                    esc(name).to_string()
                };
                tcp.push(match port_of(i) {
                    Some(port) => format!("{shown}:{port}"),
                    None => shown,
                });
            }
            Host::Unix(path) => params.push(("host".into(), path.display().to_string())),
        }
    }
    if tcp.is_empty() && config.get_hosts().is_empty() {
        if let Some(port) = port_of(0) {
            params.push(("port".into(), port.to_string()));
        }
    }
    url.push_str(&tcp.join(","));
    url.push('/');
    if let Some(db) = database.or(config.get_dbname()) {
        let _ = write!(url, "{}", esc(db));
    }
    let addrs = config.get_hostaddrs();
    if !addrs.is_empty() {
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        params.push(("hostaddr".into(), list.join(",")));
    }
    if let Some(name) = config
        .get_application_name()
        .filter(|n| *n != APPLICATION_NAME)
    {
        params.push(("application_name".into(), name.into()));
    }
    if let Some(options) = config.get_options() {
        params.push(("options".into(), options.into()));
    }
    for (key, value) in tls.params() {
        params.push((key.into(), value));
    }
    if let Some(timeout) = config.get_connect_timeout() {
        params.push(("connect_timeout".into(), timeout.as_secs().to_string()));
    }
    if config.get_target_session_attrs() == TargetSessionAttrs::ReadWrite {
        params.push(("target_session_attrs".into(), "read-write".into()));
    }
    match config.get_channel_binding() {
        ChannelBinding::Disable => params.push(("channel_binding".into(), "disable".into())),
        ChannelBinding::Require => params.push(("channel_binding".into(), "require".into())),
        _ => {}
    }
    for (i, (key, value)) in params.iter().enumerate() {
        let _ = write!(
            url,
            "{}{key}={}",
            if i == 0 { '?' } else { '&' },
            esc(value)
        );
    }
    url
}

/// Takes the TLS parameters tokio-postgres does not know ([`tls::PARAMS`]: it parses
/// `sslmode` as disable/prefer/require only) out of a connection string: returns the rest, for
/// tokio-postgres' parser, and the taken `(key, value)` pairs, decoded, in order. Both forms are
/// tokenised as tokio-postgres tokenises them (a URL's query after the user info and host; a
/// key=value string's quoting and backslash escapes), so a value holding `sslmode=...` is never
/// taken for a parameter. A string that does not tokenise is returned whole, for
/// tokio-postgres to report.
pub fn split_tls(conninfo: &str) -> (String, Vec<(String, String)>) {
    let taken = if let Some(rest) = ["postgresql://", "postgres://"]
        .iter()
        .find_map(|p| conninfo.strip_prefix(p))
    {
        split_url_query(conninfo, conninfo.len() - rest.len())
    } else {
        split_key_values(conninfo)
    };
    taken.unwrap_or_else(|| (conninfo.to_owned(), Vec::new()))
}

fn is_tls_key(key: &str) -> bool {
    tls::PARAMS.contains(&key)
}

/// The URL form: tokio-postgres ends the user info at the first `@`, the host and path at the
/// first `?` after it; the query is `key=value` pairs split at `&`, the key ending at the next
/// `=`, both percent-decoded.
fn split_url_query(url: &str, start: usize) -> Option<(String, Vec<(String, String)>)> {
    let after_user = url[start..].find('@').map_or(start, |at| start + at + 1);
    let Some(q) = url[after_user..].find('?').map(|i| after_user + i) else {
        return Some((url.to_owned(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    let mut rest = &url[q + 1..];
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = percent_decode_str(&rest[..eq]).decode_utf8().ok()?;
        let after = &rest[eq + 1..];
        let (value, next) = match after.find('&') {
            Some(amp) => (&after[..amp], &after[amp + 1..]),
            None => (after, ""),
        };
        if is_tls_key(&key) {
            let value = percent_decode_str(value).decode_utf8().ok()?;
            taken.push((key.into_owned(), value.into_owned()));
        } else {
            kept.push(&rest[..eq + 1 + value.len()]);
        }
        rest = next;
    }
    let mut out = url[..q].to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Some((out, taken))
}

/// The key=value form, as libpq and tokio-postgres read it: whitespace between pairs, `=`
/// with optional whitespace around it, a value bare (to the next whitespace) or in single
/// quotes, `\` escaping the next character in both.
fn split_key_values(conninfo: &str) -> Option<(String, Vec<(String, String)>)> {
    let mut kept: Vec<&str> = Vec::new();
    let mut taken = Vec::new();
    let mut it = conninfo.char_indices().peekable();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        let Some(&(start, _)) = it.peek() else {
            break;
        };
        while it
            .next_if(|(_, c)| !c.is_whitespace() && *c != '=')
            .is_some()
        {}
        let key_end = it.peek().map_or(conninfo.len(), |(i, _)| *i);
        let key = &conninfo[start..key_end];
        skip_ws(&mut it);
        it.next_if(|(_, c)| *c == '=')?;
        skip_ws(&mut it);
        let mut value = String::new();
        if it.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match it.next()? {
                    (_, '\'') => break,
                    (_, '\\') => value.push(it.next()?.1),
                    (_, c) => value.push(c),
                }
            }
        } else {
            while let Some((_, c)) = it.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some((_, escaped)) = it.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return None;
            }
        }
        let end = it.peek().map_or(conninfo.len(), |(i, _)| *i);
        if is_tls_key(key) {
            taken.push((key.to_owned(), value));
        } else {
            kept.push(&conninfo[start..end]);
        }
    }
    Some((kept.join(" "), taken))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn local_urls_escape_and_mask() {
        let s = Server::local(5432, "postgres", "p@ss:w/rd");
        let u = s.url("crud dur");
        assert_eq!(
            u,
            "postgresql://postgres:p%40ss%3Aw%2Frd@127.0.0.1:5432/crud%20dur"
        );
        assert_eq!(
            s.masked_url("crud dur"),
            "postgresql://postgres:****@127.0.0.1:5432/crud%20dur"
        );
        let parsed: tokio_postgres::Config = u.parse().unwrap();
        assert_eq!(parsed.get_password(), Some(&b"p@ss:w/rd"[..]));
        assert_eq!(parsed.get_dbname(), Some("crud dur"));
        assert!(s.is_local());
        assert!(!format!("{s:?}").contains("p@ss"));
    }

    #[test]
    fn masking_parses_every_form() {
        // An unescaped `@` in the password: the hand-written masker leaked its tail.
        let m = mask("postgresql://u:se@cret@db.example.com:5432/app");
        assert!(!m.contains("cret"), "{m}");
        let kv = mask("host=db.example.com password=Secret dbname=app user=u");
        assert_eq!(kv, "postgresql://u:****@db.example.com/app");
        let query = mask("postgresql://db.example.com/app?user=u&password=Secret");
        assert!(!query.contains("Secret") && query.contains(MASK), "{query}");
        let garbage = mask("host=x password='unterminated");
        assert!(!garbage.contains("unterminated"), "{garbage}");
    }

    #[test]
    fn an_unescaped_at_in_a_password_is_masked_whole() {
        let (s, db) = Server::parse(
            "postgresql://u:Broken@Secret2@db.example.com:5432/app",
            no_env,
        )
        .unwrap();
        for shown in [
            s.masked_url("app"),
            s.url_without_password("app"),
            format!("{s:?}"),
        ] {
            assert!(
                !shown.contains("Secret2") && !shown.contains("Broken"),
                "{shown}"
            );
            assert!(shown.contains(MASK), "{shown}");
        }
        assert_eq!(db.as_deref(), Some("app"));
        let m = mask("postgresql://u:Broken@Secret2@db.example.com:5432/app");
        assert!(!m.contains("Secret2"), "{m}");
    }

    #[test]
    fn local_only_when_every_host_and_hostaddr_is() {
        let local = |s: &str| Server::parse(s, no_env).unwrap().0.is_local();
        assert!(local("postgresql://u:p@localhost:5432/db"));
        assert!(local("postgresql://u:p@127.0.0.1:1,[::1]:5432/db"));
        assert!(local("host=/var/run/postgresql dbname=db"));
        assert!(!local(
            "postgresql://u:p@localhost:5432/db?hostaddr=192.0.2.1"
        ));
        assert!(!local("postgresql://u:p@127.0.0.1:1,192.0.2.1:5432/db"));
        assert!(!local("host=127.0.0.1,db.example.com dbname=db"));
        assert!(!local("host=localhost hostaddr=192.0.2.1 dbname=db"));
    }

    #[test]
    fn missing_hosts_come_from_the_environment_like_psql() {
        let env = |k: &str| (k == "PGHOST").then(|| "192.0.2.7".to_owned());
        let (s, db) = Server::parse("postgresql:///app", env).unwrap();
        assert!(!s.is_local());
        assert_eq!(db.as_deref(), Some("app"));
        let env = |k: &str| (k == "PGHOSTADDR").then(|| "192.0.2.7".to_owned());
        assert!(!Server::parse("dbname=app", env).unwrap().0.is_local());
        assert!(Server::parse("dbname=app", no_env).unwrap().0.is_local());
    }

    #[test]
    fn tls_parameters_are_taken_out_by_a_tokenizer_not_a_search() {
        let (rest, taken) = split_tls(
            "postgresql://u:p%40ss@h:5432/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca%20dir%2Fca.pem",
        );
        assert_eq!(rest, "postgresql://u:p%40ss@h:5432/db?application_name=x");
        assert_eq!(
            taken,
            [
                ("sslmode".to_owned(), "verify-full".to_owned()),
                ("sslrootcert".to_owned(), "/tmp/ca dir/ca.pem".to_owned())
            ]
        );
        // Everything up to the first `@` is user info for tokio-postgres (and libpq): a `?`
        // in an unescaped password is not a query.
        let odd = "postgresql://u:pw?sslmode=disable@h/db";
        assert_eq!(split_tls(odd), (odd.to_owned(), Vec::new()));
        // key=value: quoting and backslash escapes as libpq reads them.
        let (rest, taken) = split_tls(
            "host=h password='a sslmode=disable b' sslmode = require  sslrootcert='/path with space/ca.pem' user=a\\ sslcert=x",
        );
        assert_eq!(
            rest,
            "host=h password='a sslmode=disable b' user=a\\ sslcert=x"
        );
        assert_eq!(
            taken,
            [
                ("sslmode".to_owned(), "require".to_owned()),
                (
                    "sslrootcert".to_owned(),
                    "/path with space/ca.pem".to_owned()
                )
            ]
        );
        let parsed: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(parsed.get_user(), Some("a sslcert=x"));
        // What does not tokenise is left whole, for tokio-postgres to report.
        assert_eq!(split_tls("host=x password='open").1, Vec::new());
    }

    #[test]
    fn tls_parameters_come_from_the_string_then_the_environment_and_print_back() {
        let env = |k: &str| match k {
            "PGSSLMODE" => Some("verify-full".to_owned()),
            "PGSSLROOTCERT" => Some("/etc/ca.pem".to_owned()),
            _ => None,
        };
        let (s, _) = Server::parse("postgresql://u:secret@db.example.com/app", env).unwrap();
        assert_eq!(s.tls().mode(), SslMode::VerifyFull);
        let shown = s.masked_url("app");
        assert_eq!(
            shown,
            "postgresql://u:****@db.example.com:5432/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem"
        );
        // The string wins; the rendered URL parses back to the same server.
        let (s, _) = Server::parse(
            "host=db.example.com sslmode=require sslcert=/c.pem sslkey=/k.pem user=u password=p",
            env,
        )
        .unwrap();
        assert_eq!(s.tls().mode(), SslMode::Require);
        let (again, _) = Server::parse(&s.url("app"), no_env).unwrap();
        assert_eq!(again, s);
        assert!(
            s.masked_url("app").contains("sslkey=%2Fk.pem"),
            "{}",
            s.masked_url("app")
        );
        // Nothing said: prefer, and nothing printed; a target's default fills only a gap.
        let (s, _) = Server::parse("postgresql://u@h/app", no_env).unwrap();
        assert_eq!(s.tls().mode(), SslMode::Prefer);
        assert_eq!(s.url("app"), "postgresql://u@h:5432/app");
        assert_eq!(
            s.clone().or_sslmode(SslMode::VerifyFull).tls().mode(),
            SslMode::VerifyFull
        );
        let (s, _) = Server::parse("postgresql://u@h/app?sslmode=disable", no_env).unwrap();
        assert_eq!(
            s.or_sslmode(SslMode::VerifyFull).tls().mode(),
            SslMode::Disable
        );
        // sslrootcert=system means verify-full (libpq 16).
        let (s, _) = Server::parse("postgresql://u@h/app?sslrootcert=system", no_env).unwrap();
        assert_eq!(s.tls().mode(), SslMode::VerifyFull);
        // psql is handed the bundle for an RDS host that verify-full checks against it.
        let rds = "postgresql://u@db.c8x1.us-east-1.rds.amazonaws.com/app";
        let (s, _) = Server::parse(rds, no_env).unwrap();
        let s = s.or_sslmode(SslMode::VerifyFull);
        assert!(s.tls().uses_rds_bundle(&s.config("app")));
        let (s, _) = Server::parse(&format!("{rds}?sslrootcert=/ca.pem"), no_env).unwrap();
        let s = s.or_sslmode(SslMode::VerifyFull);
        assert!(!s.tls().uses_rds_bundle(&s.config("app")));
        // devenv's own servers: plain, nothing printed.
        assert_eq!(Server::local(1, "u", "p").tls().mode(), SslMode::Disable);
    }

    #[test]
    fn bad_tls_parameters_are_configuration_errors() {
        let e = Server::parse("postgresql://u@h/app?sslmode=verify_full", no_env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sslmode `verify_full` is not one of disable, allow, prefer, require, verify-ca, verify-full"
        );
        let e = Server::parse("host=h sslpassword=hunter2", no_env).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("sslpassword (an encrypted client key) is not supported"),
            "{e}"
        );
        assert!(!e.to_string().contains("hunter2"));
        let e = Server::parse("postgresql://u@h/app?sslmode=verify-full", |k| {
            (k == "PGSSLMODE").then(|| "bogus".to_owned())
        });
        assert!(e.is_ok(), "the string's sslmode wins over a bad PGSSLMODE");
        assert!(
            mask("postgresql://u:pw@h/app?sslmode=verify-full&sslkey=%2Fk")
                .ends_with("?sslmode=verify-full&sslkey=%2Fk")
        );
    }

    #[test]
    fn rendering_keeps_what_connects() {
        let src = "postgresql://u:p@h1:5433,h2:5434/db?application_name=app&sslmode=disable&connect_timeout=3&hostaddr=192.0.2.1,192.0.2.2";
        let (s, _) = Server::parse(src, no_env).unwrap();
        let again: tokio_postgres::Config = s.url("db").parse().unwrap();
        assert_eq!(again.get_hosts().len(), 2);
        assert_eq!(again.get_ports(), &[5433, 5434]);
        assert_eq!(again.get_hostaddrs().len(), 2);
        assert_eq!(again.get_application_name(), Some("app"));
        assert_eq!(again.get_connect_timeout(), Some(&Duration::from_secs(3)));
    }
}
