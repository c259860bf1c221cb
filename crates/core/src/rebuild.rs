//! Build-then-swap: a database is (re)built from scratch under a temporary name and swapped in
//! only when every file loaded, so a broken file never costs the working database.
//!
//! The swap: forbid new connections to the live database, end its sessions (terminate without
//! waiting, then poll until they are gone: `pg_terminate_backend(pid, timeout)` and
//! `DROP ... WITH (FORCE)` wait in 100 ms steps), rename it away, rename the new one in. The
//! old database is dropped after the swap, off the critical path, and an empty spare is
//! created for the next rebuild ([`Rebuilder`]).
//! The name and the URLs never change; a client that reconnects sees the new content.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::sync::Arc;

use devenv_server::Server;
use devenv_sql::{LoadError, LoadSummary, Loader};
use tokio_postgres::Client;

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

/// Marks an empty database created ahead of the next rebuild. A claimed spare loses the mark
/// before anything is loaded into it, so a half-built leftover is never taken for a spare.
const SPARE_MARK: &str = "devenv: empty spare";

/// Rebuilds one server's databases, keeping an admin connection and, between rebuilds, an
/// empty spare database ready so that `CREATE DATABASE` (a checkpoint and a copy of
/// `template1`, about 15-20 ms) is off the critical path. Dropping the replaced database
/// happens in the background too.
#[derive(Debug)]
pub struct Rebuilder {
    server: Server,
    admin: Option<Arc<Client>>,
    background: Option<tokio::task::JoinHandle<()>>,
}

impl Rebuilder {
    /// A rebuilder for `server`.
    pub fn new(server: Server) -> Self {
        Rebuilder {
            server,
            admin: None,
            background: None,
        }
    }

    async fn admin(&mut self) -> Result<Arc<Client>, RebuildError> {
        match &self.admin {
            Some(admin) if !admin.is_closed() => Ok(admin.clone()),
            _ => {
                let admin = Arc::new(
                    db::admin(&self.server)
                        .await
                        .map_err(step("connecting to the server"))?,
                );
                self.admin = Some(admin.clone());
                Ok(admin)
            }
        }
    }

    /// Waits for background work (dropping the old database, creating the spare).
    pub async fn settle(&mut self) {
        if let Some(task) = self.background.take() {
            let _ = task.await;
        }
    }

    /// Builds `live` anew from `files` and swaps it in.
    pub async fn rebuild(
        &mut self,
        loader: &Loader,
        live: &str,
        files: &[PathBuf],
    ) -> Result<Rebuilt, RebuildError> {
        self.settle().await;
        let started = Instant::now();
        let (next, old) = (next_name(live), old_name(live));
        let admin = self.admin().await?;
        // Another process (`devenv db setup` beside `devenv up`) may rebuild the same database.
        lock(&admin, live).await?;
        let result = self
            .locked_rebuild(&admin, loader, live, files, started)
            .await;
        unlock(&admin, live).await;
        // After a swap the old database goes; in every case a spare is made for next time.
        let swapped = result.is_ok();
        let live = live.to_owned();
        let background = tokio::spawn(async move {
            if lock(&admin, &live).await.is_ok() {
                if swapped {
                    let _ = db::drop_if_exists(&admin, &old).await;
                }
                create_spare(&admin, &next).await;
                unlock(&admin, &live).await;
            }
        });
        self.background = Some(background);
        result
    }

    async fn locked_rebuild(
        &self,
        admin: &Client,
        loader: &Loader,
        live: &str,
        files: &[PathBuf],
        started: Instant,
    ) -> Result<Rebuilt, RebuildError> {
        let (next, old) = (next_name(live), old_name(live));
        prepare_next(admin, &next, &old).await?;
        tracing::debug!(elapsed = ?started.elapsed(), "{next} ready to load");
        let summary = match loader.load_files(&next, files).await {
            Ok(summary) => summary,
            Err(e) => {
                let _ = db::drop_if_exists(admin, &next).await;
                return Err(e.into());
            }
        };
        tracing::debug!(elapsed = ?started.elapsed(), "loaded {next}");
        let swap_started = Instant::now();
        swap(admin, live, &next, &old).await?;
        let swap = swap_started.elapsed();
        let total = started.elapsed();
        tracing::debug!(?swap, ?total, "swapped {next} in as {live}");
        Ok(Rebuilt {
            summary,
            swap,
            total,
        })
    }
}

/// Makes `next` an empty database to load into: the spare when there is one, else a new one
/// (after removing leftovers of an interrupted run).
async fn prepare_next(admin: &Client, next: &str, old: &str) -> Result<(), RebuildError> {
    let rows = admin
        .query(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database \
             WHERE datname = $1 OR datname = $2",
            &[&next, &old],
        )
        .await
        .map_err(step("looking up databases"))?;
    let mut spare = false;
    for row in &rows {
        let (name, mark): (String, Option<String>) = (row.get(0), row.get(1));
        if name == next && mark.as_deref() == Some(SPARE_MARK) {
            spare = true;
        } else {
            db::drop_if_exists(admin, &name)
                .await
                .map_err(step("dropping a leftover database"))?;
        }
    }
    if spare {
        admin
            .batch_execute(&format!("COMMENT ON DATABASE {} IS NULL", ident(next)))
            .await
            .map_err(step("claiming the spare database"))
    } else {
        db::create(admin, next)
            .await
            .map_err(step("creating the new database"))
    }
}

async fn create_spare(admin: &Client, next: &str) {
    if db::create(admin, next).await.is_ok() {
        let _ = admin
            .batch_execute(&format!(
                "COMMENT ON DATABASE {} IS '{SPARE_MARK}'",
                ident(next)
            ))
            .await;
    }
}

/// Session-level advisory lock on `live`'s name, held across a rebuild and around the
/// background work, so rebuilds of one database by several processes take turns.
async fn lock(admin: &Client, live: &str) -> Result<(), RebuildError> {
    admin
        .execute(
            "SELECT pg_advisory_lock(hashtext('devenv.rebuild:' || $1))",
            &[&live],
        )
        .await
        .map(drop)
        .map_err(step("taking the rebuild lock"))
}

async fn unlock(admin: &Client, live: &str) {
    let _ = admin
        .execute(
            "SELECT pg_advisory_unlock(hashtext('devenv.rebuild:' || $1))",
            &[&live],
        )
        .await;
}

/// Swaps `next` in as `live`; on failure puts things back as they were.
async fn swap(admin: &Client, live: &str, next: &str, old: &str) -> Result<(), RebuildError> {
    // The loader's sessions may not have ended on the server yet.
    db::terminate_sessions(admin, next)
        .await
        .map_err(step("ending the loader's sessions"))?;
    let had_live = db::exists(admin, live)
        .await
        .map_err(step("looking up the live database"))?;
    if had_live {
        if let Err(e) = swap_out(admin, live, old).await {
            let _ = admin
                .batch_execute(&format!(
                    "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                    ident(live)
                ))
                .await;
            let _ = db::drop_if_exists(admin, next).await;
            return Err(e);
        }
    }
    if let Err(e) = admin
        .batch_execute(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            ident(next),
            ident(live)
        ))
        .await
    {
        if had_live {
            let _ = admin
                .batch_execute(&format!(
                    "ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} ALLOW_CONNECTIONS true",
                    ident(old),
                    ident(live),
                    ident(live)
                ))
                .await;
        }
        let _ = db::drop_if_exists(admin, next).await;
        return Err(step("renaming the new database in")(e));
    }
    Ok(())
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
