//! Advisory locks: one key scheme for every lock devenv takes on a server, and a guard that
//! releases the lock however the holder's code ends (an early return, an error, a cancelled
//! future).
//!
//! Every key is the first 8 bytes of SHA-256 of `devenv:<space>:<name>`, taken with the
//! one-argument (`bigint`) form of `pg_advisory_lock`: no two spaces can alias each other,
//! and no name can alias a fixed key. Locks are session-level (`CREATE DATABASE` cannot run
//! inside a transaction block, so transaction-level locks cannot hold across one), so a lock
//! goes with its session: a holder that dies (SIGKILL, a lost connection, a server restart)
//! releases it. That is also how a stale state is told from work under way: a live database
//! found closed while nobody holds its rebuild lock was left so by a holder that died
//! ([`super::reopen_if_abandoned`]).

use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tokio_postgres::Client;

use crate::error::{db, CoreError};

/// What a lock guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// Rebuilds, restores, snapshot saves and the background work after them, of one live
    /// database (by name): they take turns.
    Rebuild(&'a str),
    /// Making the ready copy of one snapshot database (by name).
    ReadyCopy(&'a str),
    /// Building one fixture template (by name).
    Template(&'a str),
    /// Creating the fixture's bookkeeping tables on a server.
    FixtureSetup,
    /// Sweeping dead processes' test databases on a server.
    FixtureSweep,
}

impl Key<'_> {
    /// The `bigint` key.
    pub fn id(&self) -> i64 {
        let (space, name) = match self {
            Key::Rebuild(n) => ("rebuild", *n),
            Key::ReadyCopy(n) => ("ready", *n),
            Key::Template(n) => ("template", *n),
            Key::FixtureSetup => ("fixture-setup", ""),
            Key::FixtureSweep => ("fixture-sweep", ""),
        };
        let digest = Sha256::digest(format!("devenv:{space}:{name}").as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(bytes)
    }

    fn what(&self) -> &'static str {
        match self {
            Key::Rebuild(_) => "taking the rebuild lock of",
            Key::ReadyCopy(_) => "taking the copy lock of",
            Key::Template(_) => "taking the build lock of template",
            Key::FixtureSetup => "taking the set-up lock on",
            Key::FixtureSweep => "taking the sweep lock on",
        }
    }

    fn name(&self) -> &str {
        match self {
            Key::Rebuild(n) | Key::ReadyCopy(n) | Key::Template(n) => n,
            Key::FixtureSetup | Key::FixtureSweep => "the server",
        }
    }
}

/// A held lock. Released by [`Held::release`], or when dropped (the unlock is then sent from
/// a task of the current runtime; without a runtime the session's end releases it).
#[derive(Debug)]
#[must_use = "the lock is released when this is dropped"]
pub struct Held {
    client: Arc<Client>,
    key: i64,
    released: bool,
}

/// Waits for the lock `key` on `client`'s session.
pub async fn lock(client: &Arc<Client>, key: Key<'_>) -> Result<Held, CoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&key.id()])
        .await
        .map_err(db(key.what(), key.name()))?;
    Ok(Held {
        client: client.clone(),
        key: key.id(),
        released: false,
    })
}

/// Takes the lock `key` if nobody holds it.
pub async fn try_lock(client: &Arc<Client>, key: Key<'_>) -> Result<Option<Held>, CoreError> {
    let taken: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key.id()])
        .await
        .map_err(db(key.what(), key.name()))?
        .get(0);
    Ok(taken.then(|| Held {
        client: client.clone(),
        key: key.id(),
        released: false,
    }))
}

impl Held {
    /// Releases the lock now (an error means the session is gone, and the lock with it).
    pub async fn release(mut self) {
        self.released = true;
        let _ = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&self.key])
            .await;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (client, key) = (self.client.clone(), self.key);
            runtime.spawn(async move {
                let _ = client
                    .execute("SELECT pg_advisory_unlock($1)", &[&key])
                    .await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_spaces_never_alias() {
        let keys = [
            Key::Rebuild("x").id(),
            Key::ReadyCopy("x").id(),
            Key::Template("x").id(),
            Key::FixtureSetup.id(),
            Key::FixtureSweep.id(),
            Key::Rebuild("").id(),
            Key::Template("").id(),
        ];
        let mut unique = keys.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
        assert_eq!(Key::Rebuild("app").id(), Key::Rebuild("app").id());
    }
}
