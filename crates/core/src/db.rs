//! Database operations on a server: connect, create, drop (other sessions ended first), rename,
//! and devenv's marks. Identifiers and literals are always quoted (postgres-protocol's
//! escaping).
//!
//! Marks say what devenv made: database-level settings in the `devenv.` namespace
//! (`ALTER DATABASE x SET devenv.project = '...'`, stored in `pg_db_role_setting` by the
//! database's oid). They move with the database through renames, unlike a name, and a user's
//! `COMMENT ON DATABASE` or `GRANT` never touches them. A database without `devenv.project` is
//! not devenv's and is never dropped, replaced or reloaded without a guarded request.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use devenv_server::{quote_ident, quote_literal, Server};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::error::{db, CoreError};

/// Quotes an identifier.
pub fn ident(name: &str) -> String {
    quote_ident(name)
}

/// Connects to `database` (the connection runs on the current runtime).
pub async fn connect(server: &Server, database: &str) -> Result<Client, CoreError> {
    let (client, connection) = server
        .config(database)
        .connect(NoTls)
        .await
        .map_err(db("connecting to", database))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Connects as the superuser to the maintenance database.
pub async fn admin(server: &Server) -> Result<Client, CoreError> {
    connect(server, "postgres").await
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
    let template = template.map_or_else(String::new, |t| format!(" TEMPLATE {}", ident(t)));
    client
        .batch_execute(&format!(
            "CREATE DATABASE {}{template}{strategy}",
            ident(name)
        ))
        .await
        .map_err(db("creating", name))
}

/// Ends every other session on `name` and waits until they are gone (polled every 5 ms:
/// `pg_terminate_backend(pid, timeout)` and `DROP ... WITH (FORCE)` wait in 100 ms steps).
/// One simple-protocol round trip per poll.
pub async fn terminate_sessions(client: &Client, name: &str) -> Result<(), CoreError> {
    let sql = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = {} AND pid <> pg_backend_pid()",
        quote_literal(name)
    );
    for _ in 0..400 {
        let left = client
            .simple_query(&sql)
            .await
            .map_err(db("ending the sessions of", name))?
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            });
        if left.as_deref() == Some("0") {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Closes `name` to new connections (a missing database is not an error).
pub async fn close(client: &Client, name: &str) -> Result<(), CoreError> {
    match client
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            ident(name)
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
            ident(name)
        ))
        .await
        .map_err(db("opening to connections", name))
}

/// Drops a database if it exists: its sessions ended first, then `DROP ... WITH (FORCE)`
/// (13+) for a session that slips in between. Two round trips when nobody is connected.
pub async fn drop_if_exists(client: &Client, name: &str) -> Result<(), CoreError> {
    terminate_sessions(client, name).await?;
    let drop = format!("DROP DATABASE IF EXISTS {}", ident(name));
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
            ident(from),
            ident(to)
        ))
        .await
        .map_err(db("renaming", from))
}

/// devenv's marks on one database (`devenv.` settings, prefix stripped).
pub type Marks = BTreeMap<String, String>;

/// The mark saying which project a database belongs to.
pub const PROJECT_MARK: &str = "project";

/// Every database with its marks (empty for databases devenv did not make).
pub async fn all_marks(client: &Client) -> Result<Vec<(String, Marks)>, CoreError> {
    let rows = client
        .query(
            "SELECT d.datname, coalesce(s.setconfig, '{}') FROM pg_database d \
             LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0 \
             ORDER BY d.datname",
            &[],
        )
        .await
        .map_err(db("reading the marks of the databases on", "postgres"))?;
    Ok(rows
        .iter()
        .map(|row| {
            let settings: Vec<String> = row.get(1);
            let marks = settings
                .iter()
                .filter_map(|s| s.strip_prefix("devenv.")?.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            (row.get(0), marks)
        })
        .collect())
}

/// The marks of `name` (`None` when it does not exist).
pub async fn marks(client: &Client, name: &str) -> Result<Option<Marks>, CoreError> {
    Ok(all_marks(client)
        .await?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, m)| m))
}

/// Sets marks on `name` (an empty value removes the mark).
pub async fn set_marks(
    client: &Client,
    name: &str,
    marks: &[(&str, &str)],
) -> Result<(), CoreError> {
    let sql: String = marks
        .iter()
        .map(|(key, value)| {
            if value.is_empty() {
                format!("ALTER DATABASE {} RESET devenv.{key};", ident(name))
            } else {
                format!(
                    "ALTER DATABASE {} SET devenv.{key} = {};",
                    ident(name),
                    quote_literal(value)
                )
            }
        })
        .collect();
    client
        .batch_execute(&sql)
        .await
        .map_err(db("marking", name))
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
    let target = ident(to);
    let mut sql =
        format!(
        "ALTER DATABASE {target} OWNER TO {}; ALTER DATABASE {target} CONNECTION LIMIT {limit}; \
         COMMENT ON DATABASE {target} IS {};",
        ident(&owner),
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

/// `name` with `suffix`, cut to PostgreSQL's 63-byte identifier limit.
pub fn with_suffix(name: &str, suffix: &str) -> String {
    let mut cut = 63usize.saturating_sub(suffix.len()).min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &name[..cut])
}

/// The mark key of a database's role (`live`, `spare`, `snapshot`).
pub const ROLE_MARK: &str = "role";
/// The mark key of the content hash of the files a database was built from.
pub const FILES_MARK: &str = "files";
/// The mark key of when a database was built (seconds since the epoch).
pub const BUILT_MARK: &str = "built";

/// Session-level advisory lock on `live`'s name, held across a rebuild and around the
/// background work, so rebuilds of one database by several processes take turns.
pub async fn rebuild_lock(admin: &Client, live: &str) -> Result<(), CoreError> {
    lock(admin, "devenv.rebuild:", live, "taking the rebuild lock of").await
}

/// Releases [`rebuild_lock`].
pub async fn rebuild_unlock(admin: &Client, live: &str) {
    unlock(admin, "devenv.rebuild:", live).await;
}

/// Session-level advisory lock on a snapshot database's name, held while its ready copy is
/// made, so two copiers (the supervisor, `snapshot save`) take turns.
pub async fn copy_lock(admin: &Client, snapshot: &str) -> Result<(), CoreError> {
    lock(admin, "devenv.ready:", snapshot, "taking the copy lock of").await
}

/// Releases [`copy_lock`].
pub async fn copy_unlock(admin: &Client, snapshot: &str) {
    unlock(admin, "devenv.ready:", snapshot).await;
}

async fn lock(
    admin: &Client,
    space: &str,
    name: &str,
    what: &'static str,
) -> Result<(), CoreError> {
    admin
        .execute(
            "SELECT pg_advisory_lock(hashtext($1::text || $2::text))",
            &[&space, &name],
        )
        .await
        .map(drop)
        .map_err(db(what, name))
}

async fn unlock(admin: &Client, space: &str, name: &str) {
    let _ = admin
        .execute(
            "SELECT pg_advisory_unlock(hashtext($1::text || $2::text))",
            &[&space, &name],
        )
        .await;
}
