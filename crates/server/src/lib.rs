//! Where devenv's PostgreSQL comes from. Three backends hand out the same [`Server`]
//! description (host, published port, superuser credentials):
//!
//! - [`docker`]: a container started through testcontainers, its port published on 127.0.0.1,
//!   on a user-defined network where it answers to the alias `db`, labelled with the project.
//! - [`native`]: local `initdb`/`postgres` binaries with a data directory of devenv's, run as an
//!   unprivileged user when devenv runs as root.
//! - external: a URL the user gives; nothing is started or stopped (just a [`Server`]).
//!
//! Readiness is always "a connection authenticates and `SELECT 1` answers" ([`ready`]), never a
//! count of log lines.

pub mod docker;
pub mod native;
pub mod ready;

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Server settings of every dev server devenv starts, as `-c` arguments: durability off (a dev
/// database is rebuilt from its files) and room for many per-test connections.
pub const DEV_SETTINGS: [&str; 4] = [
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
];

/// [`DEV_SETTINGS`] as `postgres` arguments: `-c fsync=off -c ...`.
pub fn dev_settings_args() -> Vec<String> {
    DEV_SETTINGS
        .iter()
        .flat_map(|s| ["-c".to_owned(), (*s).to_owned()])
        .collect()
}

/// The `application_name` of devenv's own sessions (so `db sessions --kill-idle` spares them).
pub const APPLICATION_NAME: &str = "devenv";

/// How to reach a running PostgreSQL server as its superuser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Host clients on this machine use (127.0.0.1 for local backends).
    pub host: String,
    /// Port clients on this machine use.
    pub port: u16,
    /// Superuser name.
    pub user: String,
    /// Superuser password.
    pub password: String,
}

/// Characters escaped in URL user info and path segments.
const URL_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Server {
    /// A tokio-postgres configuration for `database` on this server.
    pub fn config(&self, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .dbname(database)
            .application_name(APPLICATION_NAME)
            .connect_timeout(Duration::from_secs(5));
        config
    }

    /// `postgresql://user:pass@host:port/database`, escaped.
    pub fn url(&self, database: &str) -> String {
        url(&self.user, &self.password, &self.host, self.port, database)
    }
}

/// Builds a `postgresql://` URL with its parts escaped.
pub fn url(user: &str, password: &str, host: &str, port: u16, database: &str) -> String {
    format!(
        "postgresql://{}:{}@{host}:{port}/{}",
        utf8_percent_encode(user, URL_ESCAPE),
        utf8_percent_encode(password, URL_ESCAPE),
        utf8_percent_encode(database, URL_ESCAPE)
    )
}

/// The same URL with the password replaced by `****`, for output and logs.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:****{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// A free TCP port on 127.0.0.1 (for `port: 0`).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Whether something already listens on 127.0.0.1:`port`.
pub fn port_in_use(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_escape_and_mask() {
        let u = url("postgres", "p@ss:w/rd", "127.0.0.1", 5432, "crud dur");
        assert_eq!(
            u,
            "postgresql://postgres:p%40ss%3Aw%2Frd@127.0.0.1:5432/crud%20dur"
        );
        assert_eq!(
            mask_url(&u),
            "postgresql://postgres:****@127.0.0.1:5432/crud%20dur"
        );
        assert_eq!(mask_url("postgresql://h/db"), "postgresql://h/db");
        let parsed: tokio_postgres::Config = u.parse().unwrap();
        assert_eq!(parsed.get_password(), Some(&b"p@ss:w/rd"[..]));
        assert_eq!(parsed.get_dbname(), Some("crud dur"));
    }
}
