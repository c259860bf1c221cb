//! A loading session: one connection, the notices it receives, the automatic variables
//! psql sets after every connect (`DBNAME`, `USER`, `HOST`, `PORT`, `ENCODING`,
//! `SERVER_VERSION_NUM`, ...), taken from the connection's startup parameters without a
//! round trip, and whether a transaction block is open, followed from the statements sent
//! (`BEGIN`/`START TRANSACTION` open one; `COMMIT`, `END`, `ROLLBACK`, `ABORT` and `PREPARE
//! TRANSACTION` close it, except `... AND CHAIN` and `ROLLBACK TO`), which the batches need
//! ([`super::batch`]).
//!
//! Connections are opened by the loader's [`Connect`] (the caller's TLS rules; plain by
//! default).

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::config::Host;
use tokio_postgres::error::DbError;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

use super::{Durability, Loader};
use crate::error::client_error_text;
use crate::scan::Variables;

/// How the loader opens its connections (one per file, and per `\c`): the caller's rules
/// (TLS above all) applied to the configuration the loader made.
pub trait Connect: Send + Sync {
    /// Opens a connection to `config`; the error is the text the load error shows.
    fn connect<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, Result<Connected, String>>;
}

/// Plain connections (`NoTls`): the loader's default, for servers without TLS.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Connect for Plain {
    fn connect<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, Result<Connected, String>> {
        Box::pin(async move {
            let (client, connection) = config
                .connect(NoTls)
                .await
                .map_err(|e| client_error_text(&e))?;
            Ok(Connected::new(client, connection))
        })
    }
}

/// A connection a [`Connect`] made: the client, the startup parameters the session reads, and
/// the connection's messages (driving it).
pub struct Connected {
    client: Client,
    session_user: String,
    encoding: String,
    server_version: String,
    messages: BoxStream<'static, Result<AsyncMessage, tokio_postgres::Error>>,
}

impl Connected {
    /// Takes a tokio-postgres client and its connection, whatever its streams.
    pub fn new<S, T>(client: Client, mut connection: tokio_postgres::Connection<S, T>) -> Connected
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let parameter = |name: &str| connection.parameter(name).unwrap_or_default().to_owned();
        let session_user = parameter("session_authorization");
        let encoding = parameter("client_encoding");
        let server_version = parameter("server_version");
        Connected {
            client,
            session_user,
            encoding,
            server_version,
            messages: futures_util::stream::poll_fn(move |cx| connection.poll_message(cx)).boxed(),
        }
    }
}

/// A connection and the notices it receives.
pub(super) struct Session {
    pub(super) client: Client,
    pub(super) database: String,
    pub(super) notices: mpsc::UnboundedReceiver<DbError>,
    /// `(name, value)` of the automatic variables for this connection.
    automatic: Vec<(&'static str, String)>,
    /// Whether a transaction block is open.
    pub(super) in_block: bool,
}

impl Session {
    pub(super) async fn open(
        loader: &Loader,
        config: &Config,
        database: &str,
    ) -> Result<Self, String> {
        let mut config = config.clone();
        config.dbname(database);
        if config.get_application_name().is_none() {
            config.application_name("devenv");
        }
        if loader.durability == Durability::Relaxed {
            let options = config.get_options().unwrap_or_default().to_owned();
            config.options(format!("{options} -c synchronous_commit=off").trim());
        }
        let Connected {
            client,
            session_user,
            encoding,
            server_version,
            mut messages,
        } = loader.connector.connect(&config).await?;
        let automatic =
            automatic_variables(&config, database, &session_user, &encoding, &server_version);
        let (tx, notices) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notice(notice) = message {
                    let _ = tx.send(notice);
                }
            }
        });
        Ok(Session {
            client,
            database: database.to_owned(),
            notices,
            automatic,
            in_block: false,
        })
    }

    /// Follows the transaction block through `sql`, which ran without an error.
    pub(super) fn track(&mut self, sql: &str) {
        for item in crate::scan::split(sql.as_bytes()) {
            if let crate::scan::Item::Statement(statement) = item {
                self.in_block = block_after(self.in_block, &statement.sql);
            }
        }
    }

    /// Sets the automatic variables for this connection, as psql does after a connect.
    pub(super) fn set_variables(&self, vars: &mut Variables) {
        for (name, value) in &self.automatic {
            vars.insert((*name).to_owned(), value.clone());
        }
    }
}

/// Whether a transaction block is open after `sql` ran, when `in_block` says whether one was
/// before.
fn block_after(in_block: bool, sql: &[u8]) -> bool {
    let words = first_words(sql, 5);
    let word = |i: usize| words.get(i).map_or("", String::as_str);
    match word(0) {
        "begin" => true,
        "start" if word(1) == "transaction" => true,
        "prepare" if word(1) == "transaction" => false,
        "commit" | "end" | "abort" | "rollback" => {
            let mut i = 1;
            if matches!(word(i), "work" | "transaction") {
                i += 1;
            }
            match word(i) {
                // `ROLLBACK TO SAVEPOINT`; `COMMIT PREPARED` runs outside a block only.
                "to" | "prepared" => in_block,
                "and" => word(i + 1) == "chain" && in_block,
                _ => false,
            }
        }
        _ => in_block,
    }
}

/// The first `n` words of `sql`, lowercased, past whitespace and comments.
fn first_words(sql: &[u8], n: usize) -> Vec<String> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < sql.len() && words.len() < n {
        let rest = &sql[i..];
        if rest[0].is_ascii_whitespace() {
            i += 1;
        } else if rest.starts_with(b"--") {
            i += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        } else if rest.starts_with(b"/*") {
            i += rest
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(rest.len(), |p| p + 2);
        } else if rest[0].is_ascii_alphabetic() {
            let len = rest
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            words.push(String::from_utf8_lossy(&rest[..len]).to_ascii_lowercase());
            i += len;
        } else {
            break;
        }
    }
    words
}

/// psql's automatic variables for a connection. `VERSION*` describe the client in psql; the
/// loader speaks the psql of the server it loads into, so they repeat the server's version.
fn automatic_variables(
    config: &Config,
    database: &str,
    session_user: &str,
    encoding: &str,
    server_version: &str,
) -> Vec<(&'static str, String)> {
    let user = config
        .get_user()
        .map_or_else(|| session_user.to_owned(), str::to_owned);
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(dir)) => dir.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let version_num = version_number(server_version).to_string();
    let encoding = if encoding.is_empty() {
        "UTF8"
    } else {
        encoding
    };
    vec![
        ("DBNAME", database.to_owned()),
        ("USER", user),
        ("HOST", host),
        ("PORT", port.to_string()),
        ("ENCODING", encoding.to_owned()),
        ("SERVER_VERSION_NAME", server_version.to_owned()),
        ("SERVER_VERSION_NUM", version_num.clone()),
        ("VERSION_NAME", server_version.to_owned()),
        ("VERSION_NUM", version_num),
        (
            "VERSION",
            format!("PostgreSQL {server_version} (devenv loader)"),
        ),
        ("ON_ERROR_STOP", "on".to_owned()),
        ("AUTOCOMMIT", "on".to_owned()),
    ]
}

/// libpq's `PQserverVersion` from `server_version`: `15.18 (Debian ...)` is 150018, `9.6.3`
/// is 90603; 0 when unreadable.
fn version_number(version: &str) -> u32 {
    let numbers: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .take_while(|part| !part.is_empty())
        .filter_map(|part| part.parse().ok())
        .collect();
    match numbers.as_slice() {
        [major, minor, patch, ..] if *major < 10 => major * 10_000 + minor * 100 + patch,
        [major, minor] if *major < 10 => major * 10_000 + minor * 100,
        [major, minor, ..] => major * 10_000 + minor,
        [major] => major * 10_000,
        [] => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::{block_after, version_number};

    #[test]
    fn transaction_blocks_are_followed_through_the_statements() {
        for (before, sql, after) in [
            (false, "BEGIN", true),
            (false, "begin isolation level serializable;", true),
            (false, "/* x */ START TRANSACTION;", true),
            (true, "COMMIT;", false),
            (true, "end", false),
            (true, "ROLLBACK TO SAVEPOINT a;", true),
            (true, "rollback work to a", true),
            (true, "COMMIT AND CHAIN", true),
            (true, "COMMIT AND NO CHAIN", false),
            (true, "PREPARE TRANSACTION 'x'", false),
            (false, "COMMIT PREPARED 'x'", false),
            (true, "INSERT INTO t VALUES (1)", true),
            (false, "SAVEPOINT a", false),
        ] {
            assert_eq!(block_after(before, sql.as_bytes()), after, "{sql}");
        }
    }

    #[test]
    fn server_version_numbers_as_libpq_computes_them() {
        assert_eq!(version_number("15.18 (Debian 15.18-0+deb12u1)"), 150_018);
        assert_eq!(version_number("17.0"), 170_000);
        assert_eq!(version_number("16beta1"), 160_000);
        assert_eq!(version_number("9.6.3"), 90_603);
        assert_eq!(version_number(""), 0);
    }
}
