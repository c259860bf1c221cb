//! Database operations on a server: connect, create, drop (other sessions ended first), rename,
//! close and open, and the names devenv gives the databases it makes. Identifiers and literals
//! are quoted with postgres-protocol's escaping ([`devenv_server::sql`]); values go as bound
//! parameters wherever the statement takes them (DDL does not).
//!
//! - [`marks`]: what a database devenv made is for (typed, parsed once). A database without a
//!   project mark is not devenv's and is never dropped, replaced or reloaded without a guarded
//!   request.
//! - [`lock`]: advisory locks, one key scheme, released by a guard.
//!
//! Closing a live database to connections (`ALLOW_CONNECTIONS false`, which a copy with
//! `CREATE DATABASE ... TEMPLATE` needs) is stored in the catalog and outlives the session that
//! did it, while the rebuild lock held across it does not: a closed live database whose lock
//! nobody holds was left so by a holder that died, and [`reopen_if_abandoned`] opens it again.

pub mod lock;
pub mod marks;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use devenv_server::{quote_ident, quote_literal, Server};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::error::{db, CoreError};
pub use marks::{Kind, Marks, Role};

/// An admin connection, shared with the locks taken on its session.
pub type Admin = Arc<Client>;

/// Connects to `database` with the server's TLS rules (the connection runs on the current
/// runtime).
pub async fn connect(server: &Server, database: &str) -> Result<Client, CoreError> {
    let (client, connection) =
        server
            .connect(database)
            .await
            .map_err(|source| CoreError::Connect {
                database: database.to_owned(),
                source,
            })?;
    tokio::spawn(connection);
    Ok(client)
}

/// A loader for `server` (files relative to `root`) whose connections follow the server's
/// TLS rules: the one way devenv makes loaders.
pub fn loader(server: &Server, root: impl Into<PathBuf>) -> devenv_sql::Loader {
    devenv_sql::Loader::new(server.config("postgres"), root)
        .connector(Arc::new(TlsConnect(server.tls().clone())))
}

/// The loader's connections through [`devenv_server::tls`].
struct TlsConnect(devenv_server::Tls);

impl devenv_sql::Connect for TlsConnect {
    fn connect<'a>(
        &'a self,
        config: &'a tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<'a, Result<devenv_sql::Connected, String>> {
        Box::pin(async move {
            let (client, connection) = self.0.connect(config).await.map_err(|e| e.report())?;
            Ok(devenv_sql::Connected::new(client, connection))
        })
    }
}

/// Connects as the superuser to the maintenance database.
pub async fn admin(server: &Server) -> Result<Admin, CoreError> {
    Ok(Arc::new(connect(server, "postgres").await?))
}

/// The current transaction id with its epoch (`txid_current()`, which takes a new one),
/// asked on the admin session: every row `database` holds now has an `xmin` before it.
pub async fn current_txid(client: &Client, database: &str) -> Result<u64, CoreError> {
    let id: i64 = client
        .query_one("SELECT txid_current()", &[])
        .await
        .map_err(db("reading the transaction id after loading", database))?
        .get(0);
    Ok(u64::try_from(id).unwrap_or(0))
}

/// Whether a database exists.
pub async fn exists(client: &Client, name: &str) -> Result<bool, CoreError> {
    Ok(client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(db("looking up", name))?
        .is_some())
}

/// `server_version_num`, e.g. 150004.
pub async fn server_version_num(client: &Client) -> Result<i32, CoreError> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(db("reading the version of", "postgres"))?;
    Ok(row.get(0))
}

/// Creates an empty database. On PostgreSQL 15+ with `STRATEGY = FILE_COPY`: the default
/// `WAL_LOG` writes every block of the template through the WAL, which measured 150 ms
/// against 40 ms for a fresh `template1` on a native server with fsync off (the checkpoint
/// `FILE_COPY` needs is cheap without fsync, and every devenv server runs without it).
pub async fn create(client: &Client, name: &str) -> Result<(), CoreError> {
    create_from(client, name, None).await
}

/// Creates `name` as a copy of `template` (or empty), with `FILE_COPY` on 15+, which clones
/// the files on 18+ where the data directory's filesystem can ([`crate::clone`]).
pub async fn create_from(
    client: &Client,
    name: &str,
    template: Option<&str>,
) -> Result<(), CoreError> {
    let version = server_version_num(client).await?;
    if version >= 180_000 {
        crate::clone::enable(client).await;
    }
    let strategy = if version >= 150_000 {
        " STRATEGY = FILE_COPY"
    } else {
        ""
    };
    let template = template.map_or_else(String::new, |t| format!(" TEMPLATE {}", quote_ident(t)));
    client
        .batch_execute(&format!(
            "CREATE DATABASE {}{template}{strategy}",
            quote_ident(name)
        ))
        .await
        .map_err(db("creating", name))
}

/// Ends every other session on `name` and waits until they are gone (polled every 1 ms for
/// the first 20 ms, when a session that was told to go usually has, then every 5 ms:
/// `pg_terminate_backend(pid, timeout)` and `DROP ... WITH (FORCE)` wait in 100 ms steps).
/// One round trip per poll (the name a bound parameter, sent with the statement).
pub async fn terminate_sessions(client: &Client, name: &str) -> Result<(), CoreError> {
    terminate_sessions_but(client, name, 0).await
}

/// Ends the sessions on `name` but the one with process id `keep` (and the caller's own).
pub async fn terminate_sessions_but(
    client: &Client,
    name: &str,
    keep: i32,
) -> Result<(), CoreError> {
    for poll in 0..420 {
        let left: i64 = client
            .query_typed_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid() AND pid <> $2",
                &[
                    (&name, tokio_postgres::types::Type::TEXT),
                    (&keep, tokio_postgres::types::Type::INT4),
                ],
            )
            .await
            .map_err(db("ending the sessions of", name))?
            .get(0);
        if left == 0 {
            return Ok(());
        }
        let pause = if poll < 20 { 1 } else { 5 };
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
    }
    Ok(())
}

/// Closes `name` to new connections (a missing database is not an error).
pub async fn close(client: &Client, name: &str) -> Result<(), CoreError> {
    match client
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            quote_ident(name)
        ))
        .await
    {
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_DATABASE) => Ok(()),
        other => other.map_err(db("closing to new connections", name)),
    }
}

/// Opens `name` to connections again.
pub async fn open(client: &Client, name: &str) -> Result<(), CoreError> {
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            quote_ident(name)
        ))
        .await
        .map_err(db("opening to connections", name))
}

/// Drops a database if it exists: its sessions ended first, then `DROP ... WITH (FORCE)`
/// (13+) for a session that slips in between. Two round trips when nobody is connected.
pub async fn drop_if_exists(client: &Client, name: &str) -> Result<(), CoreError> {
    terminate_sessions(client, name).await?;
    let drop = format!("DROP DATABASE IF EXISTS {}", quote_ident(name));
    match client.batch_execute(&format!("{drop} WITH (FORCE)")).await {
        // PostgreSQL 12 and older have no FORCE.
        Err(e) if e.code() == Some(&SqlState::SYNTAX_ERROR) => client.batch_execute(&drop).await,
        other => other,
    }
    .map_err(db("dropping", name))
}

/// Renames a database.
pub async fn rename(client: &Client, from: &str, to: &str) -> Result<(), CoreError> {
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(from),
            quote_ident(to)
        ))
        .await
        .map_err(db("renaming", from))
}

/// Settings whose stored value is a list of quoted elements (pg_dump's
/// `variable_is_guc_list_quote`).
const LIST_SETTINGS: [&str; 6] = [
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// Copies what `CREATE DATABASE ... TEMPLATE` does not copy from `from` to `to`: the
/// database-level settings (the user's `ALTER DATABASE ... SET`, devenv's marks excepted),
/// the comment, the owner, the connection limit and the privileges (`GRANT ... ON DATABASE`).
pub async fn copy_attributes(client: &Client, from: &str, to: &str) -> Result<(), CoreError> {
    let row = client
        .query_one(
            "SELECT pg_get_userbyid(d.datdba), d.datconnlimit, \
                    shobj_description(d.oid, 'pg_database'), \
                    coalesce((SELECT array_agg(c) FROM unnest(s.setconfig) c \
                              WHERE c NOT LIKE 'devenv.%'), '{}'), \
                    coalesce((SELECT array_agg(format('GRANT %s ON DATABASE %I TO %s', \
                                 a.privilege_type, $2::text, \
                                 CASE WHEN a.grantee = 0 THEN 'PUBLIC' \
                                      ELSE quote_ident(pg_get_userbyid(a.grantee)) END)) \
                              FROM aclexplode(d.datacl) a \
                              WHERE a.grantee <> d.datdba), '{}'), \
                    d.datacl IS NULL \
             FROM pg_database d \
             LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0 \
             WHERE d.datname = $1",
            &[&from, &to],
        )
        .await
        .map_err(db("reading the attributes of", from))?;
    let (owner, limit, comment): (String, i32, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    let (settings, grants, default_acl): (Vec<String>, Vec<String>, bool) =
        (row.get(3), row.get(4), row.get(5));
    let target = quote_ident(to);
    let mut sql =
        format!(
        "ALTER DATABASE {target} OWNER TO {}; ALTER DATABASE {target} CONNECTION LIMIT {limit}; \
         COMMENT ON DATABASE {target} IS {};",
        quote_ident(&owner),
        comment.as_deref().map_or_else(|| "NULL".to_owned(), quote_literal)
    );
    for setting in &settings {
        if let Some((key, value)) = setting.split_once('=') {
            // List settings are stored flattened with their elements already quoted (as
            // pg_dump knows): set them back verbatim, others as one literal.
            let value = if LIST_SETTINGS.contains(&key) {
                value.to_owned()
            } else {
                quote_literal(value)
            };
            let _ = write!(sql, "ALTER DATABASE {target} SET {key} = {value};");
        }
    }
    if !default_acl {
        // Start from no grants beyond the owner's, then add those of the source.
        let _ = write!(sql, "REVOKE ALL ON DATABASE {target} FROM PUBLIC;");
    }
    for grant in &grants {
        sql.push_str(grant);
        sql.push(';');
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(db("copying database attributes to", to))
}

/// `name` with `suffix`, within PostgreSQL's 63-byte identifier limit. A name too long to
/// take the suffix whole is cut and followed by a short hash of the full name, so two long
/// names that share their first bytes never give the same temporary name. What a temporary
/// database is a copy of is in its marks (the full name), never read back from its name.
pub fn with_suffix(name: &str, suffix: &str) -> String {
    if name.len() + suffix.len() <= 63 {
        return format!("{name}{suffix}");
    }
    let hash = &devenv_server::files::short_id(&[name.as_bytes()])[..8];
    let mut cut = 63usize.saturating_sub(suffix.len() + hash.len() + 1);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash}{suffix}", &name[..cut])
}

/// The size of a database in bytes; `None` when unknown (it was dropped meanwhile).
pub async fn size(client: &Client, name: &str) -> Option<i64> {
    client
        .query_one(
            "SELECT pg_database_size(oid) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .ok()
        .and_then(|row| row.get::<_, Option<i64>>(0))
}

/// Whether `name` exists and is closed to new connections.
pub async fn is_closed(client: &Client, name: &str) -> Result<bool, CoreError> {
    Ok(client
        .query_opt(
            "SELECT NOT datallowconn FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .map_err(db("looking up", name))?
        .is_some_and(|row| row.get(0)))
}

/// Opens `live` (the project's live database) again when it is closed to connections and
/// nobody holds its rebuild lock: the save, swap or restore that closed it died (a SIGKILL, a
/// lost connection, a server crash) before opening it again. Returns whether it did.
pub async fn reopen_if_abandoned(
    admin: &Admin,
    live: &str,
    project: &str,
) -> Result<bool, CoreError> {
    if !is_closed(admin, live).await? {
        return Ok(false);
    }
    let ours = Marks::read(admin, live)
        .await?
        .is_some_and(|m| m.is_of(project) && matches!(m.role, None | Some(Role::Live)));
    if !ours {
        return Ok(false);
    }
    let Some(held) = lock::try_lock(admin, lock::Key::Rebuild(live)).await? else {
        // Work under way: its holder opens it again.
        return Ok(false);
    };
    let reopened = if is_closed(admin, live).await? {
        open(admin, live).await.map(|()| true)
    } else {
        Ok(false)
    };
    held.release().await;
    reopened
}

/// Whether a server error says its disk is full (SQLSTATE 53100, or the operating system's
/// "No space left on device" inside another error).
pub fn is_disk_full(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::DISK_FULL)
        || e.as_db_error()
            .is_some_and(|d| d.message().contains("No space left on device"))
}

/// After the connection was lost during work on `live` (the server crashed or restarted, as
/// it does when its disk fills up during a checkpoint): connects again, waiting up to `wait`
/// for the server to accept connections (it refuses them while it recovers; polled every
/// 200 ms, as there is no event to wait on from outside), and opens `live` if it was left
/// closed. Returns whether it opened it; an error when the server did not answer in time.
pub async fn reopen_after_lost_connection(
    server: &Server,
    live: &str,
    project: &str,
    wait: std::time::Duration,
) -> Result<bool, CoreError> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match admin(server).await {
            Ok(admin) => return reopen_if_abandoned(&admin, live, project).await,
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}
