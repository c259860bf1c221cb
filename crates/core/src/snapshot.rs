//! Snapshots: copies of a project's live database kept in the same cluster, so they survive
//! restarts with the data. A snapshot is a database of its own (`<live>__snap_<id>`), closed to
//! connections and marked ([`crate::db::marks`]) with its name, kind (manual, or automatic:
//! the database a reload, a rebuild or a restore replaced), the full name of the live database
//! it belongs to and when it was made. What a snapshot is, is read from its marks only; its
//! name (cut to 63 bytes for long database names) is never parsed back.
//!
//! Saving copies the live database with `CREATE DATABASE ... TEMPLATE` (`FILE_COPY`), which
//! needs the live database to have no sessions: it is closed to connections for the moment of
//! the copy, under its rebuild lock. Closing is stored in the catalog and would outlive a
//! `save` killed half-way, but the lock does not: whoever finds the live database closed with
//! its lock free opens it again ([`crate::db::reopen_if_abandoned`]; the supervisor checks
//! every second, `up` at start). A copy is marked last, so an interrupted one is an unmarked
//! database under a snapshot's name: [`remove_half_made`] drops those, and a snapshot either
//! exists whole or not at all.
//!
//! Restoring swaps a copy of the snapshot in through the same swap as a reload
//! ([`crate::rebuild::Rebuilder::restore`]). What `CREATE DATABASE` does not copy (settings,
//! comment, owner, privileges) is copied by hand ([`crate::db::copy_attributes`]).

use crate::db::lock::{self, Key};
use crate::db::{self, with_suffix, Admin, Marks, Role};
use crate::error::CoreError;

pub use crate::db::Kind;

/// How many automatic snapshots are kept per database (newest first).
pub const KEEP_AUTOMATIC: usize = 3;

/// The tags of the databases that copies of `live` are made under.
const SNAPSHOT_TAG: &str = "__snap";
const READY_TAG: &str = "__rdy";
const MAKING_TAG: &str = "__mk";

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
            database: copy_database(live, SNAPSHOT_TAG, &id),
        }
    }

    /// An automatic snapshot of `live`, named by the time (to the millisecond).
    pub fn automatic(live: &str) -> Snapshot {
        Snapshot::named(live, &timestamp())
    }

    /// Marks its database as this snapshot of `live`.
    pub(crate) async fn mark(
        &self,
        admin: &Admin,
        project: &str,
        live: &str,
        kind: Kind,
        seeded: Option<u64>,
    ) -> Result<(), CoreError> {
        Marks {
            snapshot: Some(self.name.clone()),
            kind: Some(kind),
            of: Some(live.to_owned()),
            at: Some(crate::state::now()),
            seeded,
            ..Marks::new(project, Role::Snapshot)
        }
        .write(admin, &self.database)
        .await
    }
}

/// The database of the copy of `live` tagged `tag` with id `id`: `<stem><tag>_<id>`, where
/// the stem is `live`, or for a long name its cut and hash ([`with_suffix`]) made to fit the
/// longest tag, so every copy of one snapshot shares it.
fn copy_database(live: &str, tag: &str, id: &str) -> String {
    format!("{}{tag}_{id}", stem(live))
}

/// The stem of the names of `live`'s copies.
fn stem(live: &str) -> String {
    let longest = format!("{SNAPSHOT_TAG}_{}", "0".repeat(12));
    let mut name = with_suffix(live, &longest);
    name.truncate(name.len() - longest.len());
    name
}

/// The id of a database named as a copy of `live` tagged `tag`, if it is named so.
fn copy_id<'a>(live: &str, tag: &str, database: &'a str) -> Option<&'a str> {
    database
        .strip_prefix(&format!("{}{tag}_", stem(live)))
        .filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
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
    /// Its size in bytes; `None` when unknown (it was dropped while being listed).
    pub size_bytes: Option<i64>,
}

fn listed(database: &str, marks: &Marks, live: &str) -> Option<Listed> {
    let is_snapshot = marks.role == Some(Role::Snapshot) && marks.of.as_deref() == Some(live);
    is_snapshot.then(|| Listed {
        name: marks.snapshot.clone().unwrap_or_default(),
        database: database.to_owned(),
        kind: marks.kind.unwrap_or(Kind::Automatic),
        created: marks.at.unwrap_or(0),
        size_bytes: None,
    })
}

/// The snapshots of `live`, newest first (ties by name: automatic names are times).
async fn all_of(admin: &Admin, live: &str) -> Result<Vec<Listed>, CoreError> {
    let mut found: Vec<Listed> = Marks::read_all(admin)
        .await?
        .iter()
        .filter_map(|(name, marks)| listed(name, marks, live))
        .collect();
    found.sort_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));
    Ok(found)
}

/// The snapshots of `live`, newest first, with their sizes.
pub async fn list(admin: &Admin, live: &str) -> Result<Vec<Listed>, CoreError> {
    let mut found = all_of(admin, live).await?;
    for snap in &mut found {
        snap.size_bytes = db::size(admin, &snap.database).await;
    }
    Ok(found)
}

/// The snapshot of `live` called `name`, or an error listing those that exist.
pub async fn find(admin: &Admin, live: &str, name: &str) -> Result<Listed, CoreError> {
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
/// moment of the copy. On any failure the live database is opened again (if the connection
/// itself is lost, whoever finds it closed next does: see the module docs) and no snapshot is
/// left.
pub async fn save(
    admin: &Admin,
    project: &str,
    live: &str,
    name: &str,
) -> Result<Listed, CoreError> {
    let held = lock::lock(admin, Key::Rebuild(live)).await?;
    if all_of(admin, live).await?.iter().any(|s| s.name == name) {
        held.release().await;
        return Err(CoreError::SnapshotExists {
            name: name.to_owned(),
        });
    }
    let snap = Snapshot::named(live, name);
    let copied = async {
        // What an interrupted save of the same name left goes first.
        drop_unless_others(admin, project, &snap.database).await?;
        let seeded = Marks::read(admin, live).await?.and_then(|m| m.seeded);
        db::close(admin, live).await?;
        let copy = async {
            db::terminate_sessions(admin, live).await?;
            db::create_from(admin, &snap.database, Some(live)).await?;
            db::copy_attributes(admin, live, &snap.database).await
        }
        .await;
        let opened = db::open(admin, live).await;
        copy?;
        opened?;
        db::close(admin, &snap.database).await?;
        snap.mark(admin, project, live, Kind::Manual, seeded).await
    }
    .await;
    if let Err(e) = copied {
        if !admin.is_closed() {
            let _ = db::open(admin, live).await;
            let _ = db::drop_if_exists(admin, &snap.database).await;
        }
        return Err(e);
    }
    held.release().await;
    find(admin, live, name).await
}

/// Drops `database` unless it is marked as another project's (an unmarked database under a
/// devenv name is a half-made copy).
async fn drop_unless_others(admin: &Admin, project: &str, database: &str) -> Result<(), CoreError> {
    match Marks::read(admin, database).await? {
        Some(marks) if marks.project.is_some() && !marks.is_of(project) => Ok(()),
        Some(_) => db::drop_if_exists(admin, database).await,
        None => Ok(()),
    }
}

/// Removes the snapshot of `live` called `name`, with its ready copy.
pub async fn remove(admin: &Admin, live: &str, name: &str) -> Result<Listed, CoreError> {
    let snap = find(admin, live, name).await?;
    drop_with_copies(admin, &snap.database).await?;
    Ok(snap)
}

async fn drop_with_copies(admin: &Admin, snapshot: &str) -> Result<(), CoreError> {
    db::drop_if_exists(admin, &making_name(snapshot)).await?;
    db::drop_if_exists(admin, &ready_name(snapshot)).await?;
    db::drop_if_exists(admin, snapshot).await
}

/// Drops automatic snapshots of `live` beyond the newest [`KEEP_AUTOMATIC`].
pub async fn prune(admin: &Admin, live: &str) -> Result<Vec<String>, CoreError> {
    let autos: Vec<Listed> = all_of(admin, live)
        .await?
        .into_iter()
        .filter(|s| s.kind == Kind::Automatic)
        .collect();
    let mut dropped = Vec::new();
    for snap in autos.into_iter().skip(KEEP_AUTOMATIC) {
        drop_with_copies(admin, &snap.database).await?;
        dropped.push(snap.name);
    }
    Ok(dropped)
}

/// Drops what interrupted saves and copies of `live` left: unmarked databases under the name
/// of a snapshot or a ready copy of it (a copy is marked last). Takes the rebuild lock (saves
/// make their copies under it; with `wait` false, nothing is done while someone holds it) and
/// each copy lock in turn (ready copies are made under those); returns the databases dropped.
pub async fn remove_half_made(
    admin: &Admin,
    live: &str,
    wait: bool,
) -> Result<Vec<String>, CoreError> {
    let held = if wait {
        lock::lock(admin, Key::Rebuild(live)).await?
    } else {
        match lock::try_lock(admin, Key::Rebuild(live)).await? {
            Some(held) => held,
            None => return Ok(Vec::new()),
        }
    };
    let mut dropped = Vec::new();
    let result = async {
        for (name, marks) in Marks::read_all(admin).await? {
            if marks.any() {
                continue;
            }
            if copy_id(live, SNAPSHOT_TAG, &name).is_some() {
                db::drop_if_exists(admin, &name).await?;
                dropped.push(name);
            } else if let Some(id) = copy_id(live, MAKING_TAG, &name) {
                let snapshot = copy_database(live, SNAPSHOT_TAG, id);
                if let Some(copying) = lock::try_lock(admin, Key::ReadyCopy(&snapshot)).await? {
                    db::drop_if_exists(admin, &name).await?;
                    dropped.push(name);
                    copying.release().await;
                }
            }
        }
        Ok::<_, CoreError>(())
    }
    .await;
    held.release().await;
    result.map(|()| dropped)
}

/// The name of the ready copy of the snapshot database `snapshot`: a second copy made ahead,
/// so that a restore only renames.
pub fn ready_name(snapshot: &str) -> String {
    copy_name(snapshot, READY_TAG)
}

/// The name a ready copy is made under before it is renamed to [`ready_name`].
fn making_name(snapshot: &str) -> String {
    copy_name(snapshot, MAKING_TAG)
}

/// A snapshot database's name with its tag replaced (the same length or shorter, so it
/// fits wherever the snapshot's name does).
fn copy_name(snapshot: &str, tag: &str) -> String {
    match snapshot.rsplit_once(&format!("{SNAPSHOT_TAG}_")) {
        Some((stem, id)) => format!("{stem}{tag}_{id}"),
        None => with_suffix(snapshot, tag),
    }
}

/// Whether `ready` is a complete ready copy (its mark is set last).
pub async fn is_ready(admin: &Admin, ready: &str) -> Result<bool, CoreError> {
    Ok(Marks::read(admin, ready)
        .await?
        .is_some_and(|m| m.role == Some(Role::Ready)))
}

/// Makes the ready copy of `snap` (a snapshot of `live`) when missing: copied from the
/// snapshot, which has no sessions, so the live database and its clients are not disturbed.
/// The copy is made under another name and renamed in last, under the rebuild lock, so a
/// ready copy is never seen half-made, and a restore holding the lock keeps the one it took.
pub async fn prepare_ready(
    admin: &Admin,
    project: &str,
    live: &str,
    snap: &Listed,
) -> Result<(), CoreError> {
    // Two copiers of one snapshot take turns; the second finds the copy made.
    let held = lock::lock(admin, Key::ReadyCopy(&snap.database)).await?;
    let made = make_ready(admin, project, live, snap).await;
    held.release().await;
    made
}

async fn make_ready(
    admin: &Admin,
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
        Marks {
            of: Some(snap.database.clone()),
            ..Marks::new(project, Role::Ready)
        }
        .write(admin, &making)
        .await?;
        let held = lock::lock(admin, Key::Rebuild(live)).await?;
        let renamed = async {
            if db::exists(admin, &ready).await? {
                // Another copier was first.
                db::drop_if_exists(admin, &making).await
            } else {
                db::rename(admin, &making, &ready).await
            }
        }
        .await;
        held.release().await;
        renamed
    }
    .await;
    if made.is_err() && !admin.is_closed() {
        let _ = db::drop_if_exists(admin, &making).await;
    }
    made
}

/// Keeps ready copies of the manual snapshots of `live` and of its newest automatic one, and
/// drops ready copies whose snapshot is gone or no longer wanted.
pub async fn tidy(admin: &Admin, project: &str, live: &str) -> Result<(), CoreError> {
    // Under the rebuild lock: a restore holding it keeps the ready copy it took.
    let held = lock::lock(admin, Key::Rebuild(live)).await?;
    let wanted = drop_unwanted_copies(admin, project, live).await;
    held.release().await;
    for snap in wanted? {
        prepare_ready(admin, project, live, &snap).await?;
    }
    Ok(())
}

/// Drops the ready copies of `live`'s snapshots that are gone or no longer wanted; returns the
/// snapshots whose ready copies are wanted.
async fn drop_unwanted_copies(
    admin: &Admin,
    project: &str,
    live: &str,
) -> Result<Vec<Listed>, CoreError> {
    let snaps = all_of(admin, live).await?;
    let newest_auto = snaps
        .iter()
        .find(|s| s.kind == Kind::Automatic)
        .map(|s| s.database.clone());
    let wanted: Vec<Listed> = snaps
        .into_iter()
        .filter(|s| s.kind == Kind::Manual || Some(&s.database) == newest_auto.as_ref())
        .collect();
    for (name, marks) in Marks::read_all(admin).await? {
        let of_ours = marks.is(project, Role::Ready) && copy_id(live, READY_TAG, &name).is_some();
        if of_ours
            && !wanted
                .iter()
                .any(|s| Some(&s.database) == marks.of.as_ref())
        {
            db::drop_if_exists(admin, &name).await?;
        }
    }
    Ok(wanted)
}

/// The snapshots of `live` and their copies, every one of `project`'s databases on the server
/// that is not `live` itself: what `down --volumes` removes from a server devenv does not own.
pub async fn remove_all_copies(
    admin: &Admin,
    project: &str,
    live: &str,
) -> Result<Vec<String>, CoreError> {
    let held = lock::lock(admin, Key::Rebuild(live)).await?;
    let mut dropped = Vec::new();
    let result = async {
        for (name, marks) in Marks::read_all(admin).await? {
            let copy = [SNAPSHOT_TAG, READY_TAG, MAKING_TAG]
                .iter()
                .any(|tag| copy_id(live, tag, &name).is_some());
            let temp = name == crate::rebuild::next_name(live);
            if (copy || temp) && (marks.is_of(project) || !marks.any()) {
                db::drop_if_exists(admin, &name).await?;
                dropped.push(name);
            }
        }
        Ok::<_, CoreError>(())
    }
    .await;
    held.release().await;
    result.map(|()| dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_of_long_names_are_recognised_by_their_full_name() {
        let live = "a".repeat(50);
        let other = format!("{}b", "a".repeat(49));
        let snap = Snapshot::named(&live, "x");
        assert!(snap.database.len() <= 63, "{}", snap.database);
        assert!(copy_id(&live, SNAPSHOT_TAG, &snap.database).is_some());
        assert!(copy_id(&other, SNAPSHOT_TAG, &snap.database).is_none());
        let ready = ready_name(&snap.database);
        assert!(ready.len() <= 63 && copy_id(&live, READY_TAG, &ready).is_some());
        let short = Snapshot::named("cruddur", "x");
        assert!(short.database.starts_with("cruddur__snap_"));
        assert!(copy_id("cruddur", SNAPSHOT_TAG, &short.database).is_some());
        assert!(copy_id("crud", SNAPSHOT_TAG, &short.database).is_none());
    }
}
