//! How to reach a server, and connection strings as data: a URL or a key=value conninfo string
//! is parsed (tokio-postgres' own parser), never pattern-matched, and printed back from the
//! parsed form, with the password replaced for anything a human or a log sees. The same parsed
//! form decides whether a target is local (every host and `hostaddr` loopback or a Unix socket).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio_postgres::config::{ChannelBinding, Host, SslMode, TargetSessionAttrs};

/// The `application_name` of devenv's own sessions (so `db sessions --kill-idle` spares them).
pub const APPLICATION_NAME: &str = "devenv";

/// What replaces a password in everything printed.
pub const MASK: &str = "****";

/// A connection string that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("not a PostgreSQL connection string ({} characters; URL `postgresql://...` or `host=... dbname=...`)", .len)]
pub struct ConnInfoError {
    /// Its length (the text itself may hold a password).
    pub len: usize,
    /// The parser's error.
    #[source]
    pub source: tokio_postgres::Error,
}

/// How to reach a PostgreSQL server as one role: hosts, ports and options, without a database.
#[derive(Clone)]
pub struct Server {
    base: tokio_postgres::Config,
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
        Server { base }
    }

    /// Parses a URL or key=value string; returns the server and the database it names. Hosts,
    /// ports, user and password missing from the string come from `PGHOST`, `PGHOSTADDR`,
    /// `PGPORT`, `PGUSER` and `PGPASSWORD` in `env` as psql would take them (else localhost,
    /// 5432, postgres).
    pub fn parse(
        conninfo: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Server, Option<String>), ConnInfoError> {
        let mut base: tokio_postgres::Config =
            conninfo.parse().map_err(|source| ConnInfoError {
                len: conninfo.chars().count(),
                source,
            })?;
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
        Ok((Server { base }, database))
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
        Server { base }
    }

    /// A tokio-postgres configuration for `database`, named [`APPLICATION_NAME`] unless the
    /// string named another, with a 5 s connect timeout unless it set one.
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
        render(&self.base, Some(database), Password::Shown)
    }

    /// The URL of `database` with the password replaced by [`MASK`].
    pub fn masked_url(&self, database: &str) -> String {
        render(&self.base, Some(database), Password::Masked)
    }

    /// The URL of `database` without the password (which goes through `PGPASSWORD`).
    pub fn url_without_password(&self, database: &str) -> String {
        render(&self.base, Some(database), Password::Omitted)
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
pub fn mask(conninfo: &str) -> String {
    // A host holding `@` is the tail of a password with an unescaped `@` (libpq and
    // tokio-postgres both end the user info at the first `@`): not shown either.
    let parsed = conninfo.parse::<tokio_postgres::Config>().ok().filter(|c| {
        !c.get_hosts()
            .iter()
            .any(|h| matches!(h, Host::Tcp(name) if name.contains('@')))
    });
    match parsed {
        Some(config) => render(&config, None, Password::Masked),
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
fn render(config: &tokio_postgres::Config, database: Option<&str>, password: Password) -> String {
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
    let sslmode = match config.get_ssl_mode() {
        SslMode::Disable => Some("disable"),
        SslMode::Require => Some("require"),
        _ => None,
    };
    if let Some(mode) = sslmode {
        params.push(("sslmode".into(), mode.into()));
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
