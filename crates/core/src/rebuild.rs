//! Build-then-swap: a database is (re)built from scratch under a temporary name and swapped in
//! only when every file loaded, so a broken file never costs the working database.
//!
//! The swap: forbid new connections to the live database, end its sessions (terminate without
//! waiting, then poll until they are gone: `pg_terminate_backend(pid, timeout)` and
//! `DROP ... WITH (FORCE)` wait in 100 ms steps), rename it away, rename the new one in. The
//! old database is dropped after the swap, off the critical path ([`Rebuilt::cleanup`]).
//! The name and the URLs never change; a client that reconnects sees the new content.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use devenv_server::Server;
use devenv_sql::{LoadError, LoadSummary, Loader};

use crate::db::{self, ident};

/// Why a rebuild did not swap anything in. The live database is untouched in both cases.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// A file did not load; the report has its `path:line:col`.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The server refused an operation.
    #[error("{what}: {message}")]
    Db {
        /// Which step.
        what: &'static str,
        /// The server's message.
        message: String,
    },
}

fn step(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> RebuildError {
    move |e| RebuildError::Db {
        what,
        message: devenv_sql::error::client_error_text(&e),
    }
}

/// A successful rebuild.
#[derive(Debug)]
pub struct Rebuilt {
    /// What the loader did.
    pub summary: LoadSummary,
    /// How long the live database was unavailable.
    pub swap: Duration,
    /// From the start of the build to the end of the swap.
    pub total: Duration,
    /// Drops the old database; await it before the next rebuild.
    pub cleanup: tokio::task::JoinHandle<()>,
}

/// `name` with `suffix`, cut to PostgreSQL's 63-byte identifier limit.
fn with_suffix(name: &str, suffix: &str) -> String {
    let mut cut = 63usize.saturating_sub(suffix.len()).min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &name[..cut])
}

/// The temporary name a database is built under.
pub fn next_name(live: &str) -> String {
    with_suffix(live, "__devenv_next")
}

/// The name the replaced database has until it is dropped.
pub fn old_name(live: &str) -> String {
    with_suffix(live, "__devenv_old")
}

/// Builds `live` anew from `files` and swaps it in.
pub async fn rebuild(
    server: &Server,
    loader: &Loader,
    live: &str,
    files: &[PathBuf],
) -> Result<Rebuilt, RebuildError> {
    let started = Instant::now();
    let (next, old) = (next_name(live), old_name(live));
    let admin = db::admin(server)
        .await
        .map_err(step("connecting to the server"))?;
    // Leftovers of an interrupted run.
    db::drop_if_exists(&admin, &next)
        .await
        .map_err(step("dropping a leftover database"))?;
    db::drop_if_exists(&admin, &old)
        .await
        .map_err(step("dropping a leftover database"))?;
    db::create(&admin, &next)
        .await
        .map_err(step("creating the new database"))?;
    let summary = match loader.load_files(&next, files).await {
        Ok(summary) => summary,
        Err(e) => {
            let _ = db::drop_if_exists(&admin, &next).await;
            return Err(e.into());
        }
    };
    let swap_started = Instant::now();
    // The loader's sessions may not have ended on the server yet.
    db::terminate_sessions(&admin, &next)
        .await
        .map_err(step("ending the loader's sessions"))?;
    let had_live = db::exists(&admin, live)
        .await
        .map_err(step("looking up the live database"))?;
    if had_live {
        if let Err(e) = swap_out(&admin, live, &old).await {
            // Put things back as they were; the new database goes.
            let _ = admin
                .batch_execute(&format!(
                    "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                    ident(live)
                ))
                .await;
            let _ = db::drop_if_exists(&admin, &next).await;
            return Err(e);
        }
    }
    if let Err(e) = admin
        .batch_execute(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            ident(&next),
            ident(live)
        ))
        .await
    {
        if had_live {
            let _ = admin
                .batch_execute(&format!(
                    "ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} ALLOW_CONNECTIONS true",
                    ident(&old),
                    ident(live),
                    ident(live)
                ))
                .await;
        }
        let _ = db::drop_if_exists(&admin, &next).await;
        return Err(step("renaming the new database in")(e));
    }
    let swap = swap_started.elapsed();
    let total = started.elapsed();
    let cleanup = tokio::spawn(async move {
        if had_live {
            let _ = db::drop_if_exists(&admin, &old).await;
        }
    });
    Ok(Rebuilt {
        summary,
        swap,
        total,
        cleanup,
    })
}

async fn swap_out(
    admin: &tokio_postgres::Client,
    live: &str,
    old: &str,
) -> Result<(), RebuildError> {
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            ident(live)
        ))
        .await
        .map_err(step("closing the live database to new connections"))?;
    db::terminate_sessions(admin, live)
        .await
        .map_err(step("ending sessions on the live database"))?;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            ident(live),
            ident(old)
        ))
        .await
        .map_err(step("renaming the live database away"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_fit_the_identifier_limit() {
        assert_eq!(next_name("cruddur"), "cruddur__devenv_next");
        let long = "é".repeat(40);
        let n = next_name(&long);
        assert!(n.len() <= 63 && n.ends_with("__devenv_next"), "{n}");
    }
}
