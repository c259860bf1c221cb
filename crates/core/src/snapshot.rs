//! Snapshots: copies of a project's live database kept in the same cluster, so they survive
//! restarts with the data. A snapshot is a database of its own (`<live>__snap_<id>`), closed to
//! connections and marked with its name, kind (manual, or automatic: the database a reload, a
//! rebuild or a restore replaced), the live database it belongs to and when it was made.
//!
//! Saving copies the live database with `CREATE DATABASE ... TEMPLATE` (`FILE_COPY`), which
//! needs the live database to have no sessions: its clients are disconnected for the moment of
//! the copy. Restoring swaps a copy of the snapshot in through the same swap as a reload
//! ([`crate::rebuild::Rebuilder::restore`]). What `CREATE DATABASE` does not copy (settings,
//! comment, owner, privileges) is copied by hand ([`crate::db::copy_attributes`]).

use tokio_postgres::Client;

use crate::db::{self, Marks};
use crate::db::{with_suffix, ROLE_MARK};
use crate::error::CoreError;

/// How many automatic snapshots are kept per database (newest first).
pub const KEEP_AUTOMATIC: usize = 3;

const SNAPSHOT_ROLE: &str = "snapshot";
const READY_ROLE: &str = "ready";
const NAME_MARK: &str = "snapshot";
const KIND_MARK: &str = "kind";
const OF_MARK: &str = "of";
const AT_MARK: &str = "at";

/// Who made a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `devenv snapshot save`.
    Manual,
    /// A reload, rebuild or restore replaced the database.
    Automatic,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Manual => "manual",
            Kind::Automatic => "automatic",
        }
    }
}

/// A snapshot about to be made: its name and its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// What the user calls it.
    pub name: String,
    /// The database holding it.
    pub database: String,
}

impl Snapshot {
    /// A snapshot of `live` called `name`.
    pub fn named(live: &str, name: &str) -> Snapshot {
        let id = devenv_server::files::short_id(&[live.as_bytes(), name.as_bytes()]);
        Snapshot {
            name: name.to_owned(),
            database: with_suffix(live, &format!("__snap_{id}")),
        }
    }

    /// An automatic snapshot of `live`, named by the time (to the millisecond).
    pub fn automatic(live: &str) -> Snapshot {
        Snapshot::named(live, &timestamp())
    }

    /// Marks its database as this snapshot of `live`.
    pub(crate) async fn mark(
        &self,
        admin: &Client,
        project: &str,
        kind: Kind,
    ) -> Result<(), CoreError> {
        let live = self
            .database
            .rsplit_once("__snap_")
            .map_or(self.database.as_str(), |(l, _)| l);
        let at = crate::state::now().to_string();
        db::set_marks(
            admin,
            &self.database,
            &[
                (db::PROJECT_MARK, project),
                (ROLE_MARK, SNAPSHOT_ROLE),
                (NAME_MARK, &self.name),
                (KIND_MARK, kind.as_str()),
                (OF_MARK, live),
                (AT_MARK, &at),
                // A snapshot is not a build: it must not be taken for the live database.
                (db::FILES_MARK, ""),
            ],
        )
        .await
    }
}

/// The current time as a snapshot name: `2026-11-22T22:40:01.123Z`.
pub fn timestamp() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A snapshot as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    /// Its name.
    pub name: String,
    /// Its database.
    pub database: String,
    /// Manual or automatic.
    pub kind: Kind,
    /// When it was made, seconds since the epoch.
    pub created: u64,
    /// Its size in bytes.
    pub size_bytes: i64,
}

fn listed(database: &str, marks: &Marks, of: &str) -> Option<Listed> {
    let is_ours = marks.get(ROLE_MARK).map(String::as_str) == Some(SNAPSHOT_ROLE)
        && marks.get(OF_MARK).map(String::as_str) == Some(of);
    is_ours.then(|| Listed {
        name: marks.get(NAME_MARK).cloned().unwrap_or_default(),
        database: database.to_owned(),
        kind: if marks.get(KIND_MARK).map(String::as_str) == Some("manual") {
            Kind::Manual
        } else {
            Kind::Automatic
        },
        created: marks.get(AT_MARK).and_then(|a| a.parse().ok()).unwrap_or(0),
        size_bytes: 0,
    })
}

/// The snapshots of `live`, newest first, with their sizes.
pub async fn list(admin: &Client, live: &str) -> Result<Vec<Listed>, CoreError> {
    let mut found: Vec<Listed> = db::all_marks(admin)
        .await?
        .iter()
        .filter_map(|(name, marks)| listed(name, marks, live))
        .collect();
    for snap in &mut found {
        snap.size_bytes = admin
            .query_one("SELECT pg_database_size($1::text)", &[&snap.database])
            .await
            .map_or(0, |r| r.get(0));
    }
    found.sort_by(|a, b| (b.created, &b.database).cmp(&(a.created, &a.database)));
    Ok(found)
}

/// The snapshot of `live` called `name`, or an error listing those that exist.
pub async fn find(admin: &Client, live: &str, name: &str) -> Result<Listed, CoreError> {
    let all = list(admin, live).await?;
    all.iter()
        .find(|s| s.name == name)
        .cloned()
        .ok_or_else(|| CoreError::SnapshotNotFound {
            name: name.to_owned(),
            existing: all.into_iter().map(|s| s.name).collect(),
        })
}

/// Saves `live` as a manual snapshot called `name`; its clients are disconnected for the
/// moment of the copy.
pub async fn save(
    admin: &Client,
    project: &str,
    live: &str,
    name: &str,
) -> Result<Listed, CoreError> {
    if list(admin, live).await?.iter().any(|s| s.name == name) {
        return Err(CoreError::SnapshotExists {
            name: name.to_owned(),
        });
    }
    let snap = Snapshot::named(live, name);
    db::rebuild_lock(admin, live).await?;
    let copied = async {
        db::close(admin, live).await?;
        let result = async {
            db::terminate_sessions(admin, live).await?;
            db::create_from(admin, &snap.database, Some(live)).await?;
            db::copy_attributes(admin, live, &snap.database).await
        }
        .await;
        db::open(admin, live).await?;
        result?;
        db::close(admin, &snap.database).await?;
        snap.mark(admin, project, Kind::Manual).await
    }
    .await;
    db::rebuild_unlock(admin, live).await;
    if let Err(e) = copied {
        let _ = db::drop_if_exists(admin, &snap.database).await;
        return Err(e);
    }
    find(admin, live, name).await
}

/// Removes the snapshot of `live` called `name`, with its ready copy.
pub async fn remove(admin: &Client, live: &str, name: &str) -> Result<Listed, CoreError> {
    let snap = find(admin, live, name).await?;
    db::drop_if_exists(admin, &making_name(&snap.database)).await?;
    db::drop_if_exists(admin, &ready_name(&snap.database)).await?;
    db::drop_if_exists(admin, &snap.database).await?;
    Ok(snap)
}

/// Drops automatic snapshots of `live` beyond the newest [`KEEP_AUTOMATIC`].
pub async fn prune(admin: &Client, live: &str) -> Result<Vec<String>, CoreError> {
    let mut autos: Vec<Listed> = db::all_marks(admin)
        .await?
        .iter()
        .filter_map(|(name, marks)| listed(name, marks, live))
        .filter(|s| s.kind == Kind::Automatic)
        .collect();
    // Newest first; names are RFC 3339 times, so they break ties within a second.
    autos.sort_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));
    let mut dropped = Vec::new();
    for snap in autos.into_iter().skip(KEEP_AUTOMATIC) {
        db::drop_if_exists(admin, &making_name(&snap.database)).await?;
        db::drop_if_exists(admin, &ready_name(&snap.database)).await?;
        db::drop_if_exists(admin, &snap.database).await?;
        dropped.push(snap.name);
    }
    Ok(dropped)
}

/// The name of the ready copy of the snapshot database `snapshot`: a second copy made ahead,
/// so that a restore only renames.
pub fn ready_name(snapshot: &str) -> String {
    copy_name(snapshot, "__rdy")
}

/// The name a ready copy is made under before it is renamed to [`ready_name`].
fn making_name(snapshot: &str) -> String {
    copy_name(snapshot, "__mk")
}

fn copy_name(snapshot: &str, tag: &str) -> String {
    match snapshot.rsplit_once("__snap_") {
        Some((live, id)) => format!("{live}{tag}_{id}"),
        None => with_suffix(snapshot, tag),
    }
}

/// Whether `ready` is a complete ready copy (its mark is set last).
pub async fn is_ready(admin: &Client, ready: &str) -> Result<bool, CoreError> {
    Ok(db::marks(admin, ready)
        .await?
        .is_some_and(|m| m.get(ROLE_MARK).map(String::as_str) == Some(READY_ROLE)))
}

/// Makes the ready copy of `snap` (a snapshot of `live`) when missing: copied from the
/// snapshot, which has no sessions, so the live database and its clients are not disturbed.
/// The copy is made under another name and renamed in last, under the rebuild lock, so a
/// ready copy is never seen half-made, and a restore holding the lock keeps the one it took.
pub async fn prepare_ready(
    admin: &Client,
    project: &str,
    live: &str,
    snap: &Listed,
) -> Result<(), CoreError> {
    // Two copiers of one snapshot take turns; the second finds the copy made.
    db::copy_lock(admin, &snap.database).await?;
    let made = make_ready(admin, project, live, snap).await;
    db::copy_unlock(admin, &snap.database).await;
    made
}

async fn make_ready(
    admin: &Client,
    project: &str,
    live: &str,
    snap: &Listed,
) -> Result<(), CoreError> {
    let ready = ready_name(&snap.database);
    if db::exists(admin, &ready).await? {
        // Complete, or being swapped in by a restore.
        return Ok(());
    }
    let making = making_name(&snap.database);
    // A copy interrupted half-way is made again.
    db::drop_if_exists(admin, &making).await?;
    let made = async {
        db::create_from(admin, &making, Some(&snap.database)).await?;
        db::copy_attributes(admin, &snap.database, &making).await?;
        db::close(admin, &making).await?;
        db::set_marks(
            admin,
            &making,
            &[
                (db::PROJECT_MARK, project),
                (ROLE_MARK, READY_ROLE),
                (OF_MARK, &snap.database),
            ],
        )
        .await?;
        db::rebuild_lock(admin, live).await?;
        let renamed = async {
            if db::exists(admin, &ready).await? {
                // Another copier was first.
                db::drop_if_exists(admin, &making).await
            } else {
                db::rename(admin, &making, &ready).await
            }
        }
        .await;
        db::rebuild_unlock(admin, live).await;
        renamed
    }
    .await;
    if made.is_err() {
        let _ = db::drop_if_exists(admin, &making).await;
    }
    made
}

/// Keeps ready copies of the manual snapshots of `live` and of its newest automatic one, and
/// drops ready copies whose snapshot is gone or no longer wanted.
pub async fn tidy(admin: &Client, project: &str, live: &str) -> Result<(), CoreError> {
    // Under the rebuild lock: a restore holding it keeps the ready copy it took.
    db::rebuild_lock(admin, live).await?;
    let wanted = drop_unwanted_copies(admin, live).await;
    db::rebuild_unlock(admin, live).await;
    for snap in wanted? {
        prepare_ready(admin, project, live, &snap).await?;
    }
    Ok(())
}

/// Drops the ready copies of `live`'s snapshots that are gone or no longer wanted; returns the
/// snapshots whose ready copies are wanted.
async fn drop_unwanted_copies(admin: &Client, live: &str) -> Result<Vec<Listed>, CoreError> {
    let all = db::all_marks(admin).await?;
    let mut snaps: Vec<Listed> = all
        .iter()
        .filter_map(|(name, marks)| listed(name, marks, live))
        .collect();
    snaps.sort_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));
    let newest_auto = snaps
        .iter()
        .find(|s| s.kind == Kind::Automatic)
        .map(|s| s.database.clone());
    let wanted: Vec<Listed> = snaps
        .into_iter()
        .filter(|s| s.kind == Kind::Manual || Some(&s.database) == newest_auto.as_ref())
        .collect();
    let ours = ready_name(&Snapshot::named(live, "").database);
    let prefix = ours.rsplit_once("__rdy_").map_or(ours.as_str(), |(l, _)| l);
    let prefix = format!("{prefix}__rdy_");
    for (name, marks) in &all {
        let is_ready = marks.get(ROLE_MARK).map(String::as_str) == Some(READY_ROLE);
        let of = marks.get(OF_MARK);
        if is_ready && name.starts_with(&prefix) && !wanted.iter().any(|s| Some(&s.database) == of)
        {
            db::drop_if_exists(admin, name).await?;
        }
    }
    Ok(wanted)
}
