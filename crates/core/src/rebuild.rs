//! Build-then-swap: a database is (re)built from scratch under a temporary name and swapped in
//! only when every file loaded, so a broken file never costs the working database.
//!
//! The swap: forbid new connections to the live database, end its sessions (terminate, then
//! poll until they are gone), then in one transaction rename it away and rename the new one
//! in. The replaced database is kept as an automatic snapshot ([`crate::snapshot`]; the
//! newest [`crate::snapshot::KEEP_AUTOMATIC`] are kept), so data typed through the app is one
//! command away after a schema edit. Pruning old snapshots and creating an empty spare for
//! the next rebuild happen in the background, off the critical path. The name and the URLs
//! never change; a client that reconnects sees the new content.
//!
//! Every database built here is marked ([`crate::db`]): the project, the content hash of the
//! files it was built from, and when. A database without the project's mark is never replaced.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devenv_server::Server;
use devenv_sql::{LoadSummary, Loader};

use crate::branch;
use crate::carry;
use crate::db::lock::{self, Key};
use crate::db::{self, Admin, Marks, Role};
use crate::error::CoreError;
use crate::snapshot::{self, Kind};
use devenv_server::quote_ident;

/// A successful rebuild.
#[derive(Debug)]
pub struct Rebuilt {
    /// What the loader did.
    pub summary: LoadSummary,
    /// How long the live database was unavailable.
    pub swap: Duration,
    /// From the start of the build to the end of the swap.
    pub total: Duration,
    /// The automatic snapshot holding the replaced database, if there was one.
    pub kept: Option<String>,
    /// What came across from the replaced database ([`Target::carry`]; `None` when not
    /// asked for or there was no database to replace).
    pub carried: Option<carry::Report>,
}

/// What [`Rebuilder::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Whether the live database was found closed with nobody at work on it, and opened.
    pub reopened: bool,
    /// The half-made copies dropped.
    pub dropped: Vec<String>,
}

/// The temporary name a database is built under.
pub fn next_name(live: &str) -> String {
    db::with_suffix(live, "__devenv_next")
}

/// What the rebuilt database is and where it comes from.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The live database's name.
    pub live: &'a str,
    /// The project id it is marked with.
    pub project: &'a str,
    /// The content hash of its files, marked on it.
    pub files_hash: &'a str,
    /// Whether a live database without the project's mark may be replaced: on devenv's own
    /// servers (it is kept as a snapshot), never on an external one.
    pub replace_unmarked: bool,
    /// Whether the replaced database is kept as an automatic snapshot (devenv's own servers)
    /// or dropped once the new one is in (a server devenv does not own).
    pub keep_replaced: bool,
    /// Whether the rows of the replaced database that the new one lacks are carried in
    /// ([`crate::carry`]) during the swap, while the live database is closed.
    pub carry: bool,
}

/// Rebuilds one server's databases, keeping an admin connection and, between rebuilds, an
/// empty spare database ready so that `CREATE DATABASE` (a checkpoint and a copy of
/// `template1`, about 15-20 ms) is off the critical path.
#[derive(Debug)]
pub struct Rebuilder {
    server: Server,
    admin: Option<Admin>,
    background: Option<tokio::task::JoinHandle<()>>,
    /// Copies made ahead (ready copies of snapshots): never waited for by a rebuild.
    copies: Option<tokio::task::JoinHandle<()>>,
    /// Whether background work runs after each rebuild (not in a one-shot command, which
    /// leaves it to the supervisor: [`Rebuilder::tidy`]).
    background_work: bool,
    /// Told about a carry-over's progress.
    progress: Option<carry::OnProgress>,
    /// Set from the start of a swap to its end ([`Rebuilder::swapping`]).
    swapping: Arc<AtomicBool>,
}

/// Sets a rebuilder's swap flag while it lives (a dropped rebuild clears it too).
struct Swapping(Arc<AtomicBool>);

impl Swapping {
    fn start(flag: &Arc<AtomicBool>) -> Swapping {
        flag.store(true, Ordering::SeqCst);
        Swapping(flag.clone())
    }
}

impl Drop for Swapping {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Rebuilder {
    /// A rebuilder for `server`.
    pub fn new(server: Server) -> Self {
        Rebuilder {
            server,
            admin: None,
            background: None,
            copies: None,
            background_work: true,
            progress: None,
            swapping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// True from the moment a rebuild starts its swap (the live database about to close, the
    /// carry, the renames, the replaced database's removal where it is not kept) until it ends:
    /// a stop then waits for the rebuild, milliseconds, rather than cancel it half-way, which
    /// would leave the live database closed, or on a server devenv does not own the replaced
    /// database behind.
    pub fn swapping(&self) -> Arc<AtomicBool> {
        self.swapping.clone()
    }

    /// Calls `progress` while a carry-over streams a table.
    #[must_use]
    pub fn carry_progress(mut self, progress: carry::OnProgress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// A rebuilder for one command that exits after its swap: no spare, no pruning, no ready
    /// copies behind it (the running supervisor does them when asked: [`Rebuilder::tidy`]).
    #[must_use]
    pub fn one_shot(mut self) -> Self {
        self.background_work = false;
        self
    }

    /// The admin connection, opened again when it closed.
    pub async fn admin(&mut self) -> Result<Admin, CoreError> {
        match &self.admin {
            Some(admin) if !admin.is_closed() => Ok(admin.clone()),
            _ => {
                let admin = db::admin(&self.server).await?;
                self.admin = Some(admin.clone());
                Ok(admin)
            }
        }
    }

    /// Waits for background work (pruning snapshots, creating the spare).
    pub async fn settle(&mut self) {
        if let Some(task) = self.background.take() {
            let _ = task.await;
        }
    }

    /// Waits for the copies made ahead too (for tests and a clean stop).
    pub async fn settle_all(&mut self) {
        self.settle().await;
        if let Some(task) = self.copies.take() {
            let _ = task.await;
        }
    }

    /// Builds `target.live` anew from `steps` ([`crate::files::steps`]) and swaps it in,
    /// keeping the replaced database as an automatic snapshot.
    pub async fn rebuild(
        &mut self,
        loader: &Loader,
        target: &Target<'_>,
        steps: &[devenv_sql::Step],
    ) -> Result<Rebuilt, CoreError> {
        let next = next_name(target.live);
        let project = target.project;
        self.run(target, next, |admin, next| async move {
            prepare_next(&admin, &next, project).await?;
            match loader.load_steps(&next, steps).await {
                // Every row there now was made by the build: the boundary of its seed rows.
                Ok(summary) => Ok((summary, Some(db::current_txid(&admin, &next).await?))),
                Err(e) => {
                    let _ = db::drop_if_exists(&admin, &next).await;
                    Err(e.into())
                }
            }
        })
        .await
    }

    /// Swaps a copy of the snapshot database `source` in as `target.live` (the replaced one
    /// kept as an automatic snapshot). With a ready copy of the snapshot at hand
    /// ([`snapshot::prepare_ready`]) that copy is swapped in: renames only, milliseconds;
    /// without one, the copy is made now.
    pub async fn restore(
        &mut self,
        source: &str,
        target: &Target<'_>,
    ) -> Result<Rebuilt, CoreError> {
        let source = source.to_owned();
        let ready = snapshot::ready_name(&source);
        self.settle().await;
        let admin = self.admin().await?;
        // Held from the check to the swap (`run` takes it again: advisory locks stack within a
        // session), so the ready copy found cannot be dropped or replaced meanwhile.
        let held = lock::lock(&admin, Key::Rebuild(target.live)).await?;
        let result = match snapshot::is_ready(&admin, &ready).await {
            Ok(true) => {
                let seeded = Marks::read(&admin, &source).await?.and_then(|m| m.seeded);
                self.run(target, ready, |admin, staging| async move {
                    db::open(&admin, &staging).await?;
                    Ok((LoadSummary::default(), seeded))
                })
                .await
            }
            Ok(false) => {
                self.run(target, next_name(target.live), |admin, next| async move {
                    let seeded = Marks::read(&admin, &source).await?.and_then(|m| m.seeded);
                    db::drop_if_exists(&admin, &next).await?;
                    db::create_from(&admin, &next, Some(&source)).await?;
                    db::copy_attributes(&admin, &source, &next).await?;
                    Ok((LoadSummary::default(), seeded))
                })
                .await
            }
            Err(e) => Err(e),
        };
        held.release().await;
        result
    }

    /// Prepares the database `next` with `fill` under the rebuild lock, marks it, swaps it in.
    async fn run<F, Fut>(
        &mut self,
        target: &Target<'_>,
        next: String,
        fill: F,
    ) -> Result<Rebuilt, CoreError>
    where
        F: FnOnce(Admin, String) -> Fut,
        Fut: std::future::Future<Output = Result<(LoadSummary, Option<u64>), CoreError>>,
    {
        self.settle().await;
        let started = Instant::now();
        let live = target.live;
        let admin = self.admin().await?;
        // Another process (`devenv db setup` beside `devenv up`) may rebuild the same database.
        let held = lock::lock(&admin, Key::Rebuild(live)).await?;
        let result = async {
            check_ownership(&admin, &self.server, target).await?;
            // A carry's session on the live database is opened while the files load (the
            // live database takes connections until the swap closes it).
            let (filled, source) = tokio::join!(fill(admin.clone(), next.clone()), async {
                if target.carry {
                    source_session(&self.server, live).await
                } else {
                    None
                }
            });
            let (summary, seeded) = filled?;
            tracing::debug!(elapsed = ?started.elapsed(), "filled {next}");
            Marks {
                files: Some(target.files_hash.to_owned()),
                built: Some(crate::state::now()),
                seeded,
                ..Marks::new(target.project, Role::Live)
            }
            .write(&admin, &next)
            .await?;
            let swap_started = Instant::now();
            let carry = match seeded {
                Some(seeded) if target.carry => Some(Carry {
                    server: &self.server,
                    seeded,
                    progress: self.progress.as_ref(),
                    source,
                }),
                _ => None,
            };
            let swapping = Swapping::start(&self.swapping);
            let (kept, carried) = swap(&admin, live, &next, target.project, carry).await?;
            Ok::<_, CoreError>((summary, swap_started.elapsed(), kept, carried, swapping))
        }
        .await;
        held.release().await;
        let (summary, swap, kept, carried, swapping) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = db::drop_if_exists(&admin, &next).await;
                self.background_work(live, target.project);
                return Err(e);
            }
        };
        let total = started.elapsed();
        tracing::debug!(?swap, ?total, "swapped {next} in as {live}");
        let kept = match kept {
            Some(name) if !target.keep_replaced => {
                // Dropped before anything else runs on this connection.
                snapshot::remove(&admin, live, &name).await?;
                None
            }
            other => other,
        };
        drop(swapping);
        self.background_work(live, target.project);
        Ok(Rebuilt {
            summary,
            swap,
            total,
            kept,
            carried,
        })
    }

    /// Puts right what a holder that died left on `live`: opens the live database again when
    /// a save, swap or restore killed half-way (or a server crash under one) left it closed to
    /// connections, and drops the half-made copies such a holder leaves
    /// ([`snapshot::remove_half_made`]). With `wait`, waits for work under way on `live` to
    /// end first (at start-up); without, leaves what is locked for the next call (the
    /// supervisor's once-a-second look).
    pub async fn recover(
        &mut self,
        live: &str,
        project: &str,
        wait: bool,
    ) -> Result<Recovered, CoreError> {
        let admin = self.admin().await?;
        let reopened = db::reopen_if_abandoned(&admin, live, project).await?;
        let dropped = snapshot::remove_half_made(&admin, live, wait).await?;
        Ok(Recovered { reopened, dropped })
    }

    /// After a rebuild was cancelled (a stop signal during a reload): drops the half-built
    /// database, which also ends its loader's session (a long statement stops now, not at
    /// its end). The live database is as it was, or, if the cancel came during the swap,
    /// closed with its lock released, which [`Rebuilder::recover`] puts right.
    pub async fn abandon(&mut self, live: &str) {
        let Ok(admin) = self.admin().await else {
            return;
        };
        let next = next_name(live);
        // Unmarked too: a cancel between its `CREATE DATABASE` and its marks leaves one
        // (the statement ends on the server before this session's next one runs).
        match Marks::read(&admin, &next).await {
            Ok(Some(marks)) if marks.role == Some(Role::Spare) => {}
            _ => {
                let _ = db::drop_if_exists(&admin, &next).await;
            }
        }
    }

    /// Makes the spare for the next rebuild in the background (after a reuse).
    pub fn prepare_spare(&mut self, live: &str, project: &str) {
        self.background_work(live, project);
    }

    /// Drops the spare (on a server devenv does not own, nothing of devenv's stays behind).
    pub async fn drop_spare(&mut self, live: &str) {
        self.settle().await;
        if let Ok(admin) = self.admin().await {
            // Under the rebuild lock, whatever `next` is once no rebuild holds it: the spare,
            // or what a rebuild that was cancelled or died left (another process's rebuild
            // under way keeps its own until it ends).
            if let Ok(held) = lock::lock(&admin, Key::Rebuild(live)).await {
                let _ = db::drop_if_exists(&admin, &next_name(live)).await;
                held.release().await;
            }
        }
    }

    /// Tidies up in the background: prunes old automatic snapshots, makes the spare for the
    /// next rebuild, and ready copies of the snapshots (see [`snapshot::tidy`]). The supervisor
    /// calls it after a one-shot command changed the database (`devenv snapshot restore`).
    pub fn tidy(&mut self, live: &str, project: &str) {
        self.spawn_background(live, project);
    }

    /// Background work after a rebuild, unless one-shot.
    fn background_work(&mut self, live: &str, project: &str) {
        if self.background_work {
            self.spawn_background(live, project);
        }
    }

    /// Prunes old automatic snapshots and makes a spare (waited for before the next rebuild),
    /// then ready copies of snapshots on a connection of their own (never waited for: a
    /// reload must not wait on a copy made ahead).
    fn spawn_background(&mut self, live: &str, project: &str) {
        let Some(admin) = self.admin.clone() else {
            return;
        };
        let (live, project) = (live.to_owned(), project.to_owned());
        let server = self.server.clone();
        let copies_running = self.copies.as_ref().is_some_and(|t| !t.is_finished());
        let (copy_live, copy_project) = (live.clone(), project.clone());
        self.background = Some(tokio::spawn(async move {
            if let Ok(held) = lock::lock(&admin, Key::Rebuild(&live)).await {
                let _ = snapshot::prune(&admin, &live).await;
                create_spare(&admin, &next_name(&live), &project).await;
                held.release().await;
            }
        }));
        if !copies_running {
            self.copies = Some(tokio::spawn(async move {
                if let Ok(copier) = db::admin(&server).await {
                    let _ = snapshot::tidy(&copier, &copy_project, &copy_live).await;
                }
            }));
        }
    }
}

/// Refuses to replace a live database that is not the project's (unless allowed).
async fn check_ownership(
    admin: &Admin,
    server: &Server,
    target: &Target<'_>,
) -> Result<(), CoreError> {
    if target.replace_unmarked {
        return Ok(());
    }
    match Marks::read(admin, target.live).await? {
        Some(marks) if !marks.is_of(target.project) => Err(CoreError::NotOurs {
            database: target.live.to_owned(),
            server: server.masked_url(target.live),
        }),
        _ => Ok(()),
    }
}

/// Makes `next` an empty database to load into, marked `Building` for `project` (so that a
/// cancelled or dead rebuild's leftover is known for what it is and dropped): the spare when
/// there is one, else a new one (after removing a leftover of an interrupted run).
async fn prepare_next(admin: &Admin, next: &str, project: &str) -> Result<(), CoreError> {
    match Marks::read(admin, next).await? {
        Some(marks) if marks.role == Some(Role::Spare) => {
            Marks {
                role: Some(Role::Building),
                ..marks
            }
            .write(admin, next)
            .await
        }
        Some(_) => {
            db::drop_if_exists(admin, next).await?;
            create_building(admin, next, project).await
        }
        None => create_building(admin, next, project).await,
    }
}

async fn create_building(admin: &Admin, next: &str, project: &str) -> Result<(), CoreError> {
    db::create(admin, next).await?;
    Marks::new(project, Role::Building).write(admin, next).await
}

async fn create_spare(admin: &Admin, next: &str, project: &str) {
    if db::exists(admin, next).await.unwrap_or(true) {
        return;
    }
    if db::create(admin, next).await.is_ok() {
        let _ = Marks::new(project, Role::Spare).write(admin, next).await;
    }
}

/// A carry-over to run during a swap.
struct Carry<'a> {
    server: &'a Server,
    /// The new database's build boundary.
    seeded: u64,
    progress: Option<&'a carry::OnProgress>,
    /// A session on the live database, and its process id (none when it has none).
    source: Option<(tokio_postgres::Client, i32)>,
}

/// Swaps `next` in as `live`; the replaced database becomes an automatic snapshot. With
/// `carry`, its hand rows are carried into `next` first, once it is closed and its sessions
/// ended (nothing typed meanwhile is missed). On failure puts things back as they were.
/// Returns the snapshot's name and the carry's report.
async fn swap(
    admin: &Admin,
    live: &str,
    next: &str,
    project: &str,
    carry: Option<Carry<'_>>,
) -> Result<(Option<String>, Option<carry::Report>), CoreError> {
    // The loader's sessions may not have ended on the server yet.
    db::terminate_sessions(admin, next).await?;
    let mut carry = carry;
    // The carry's session on `next`, connected while the marks are read.
    let (old, dest) = tokio::join!(Marks::read(admin, live), async {
        match &carry {
            Some(c) if c.source.is_some() => db::connect(c.server, next).await.ok(),
            _ => None,
        }
    });
    let old = old?;
    let had_live = old.is_some();
    let old_seeded = old.and_then(|m| m.seeded);
    let mut carried = None;
    let kept = if had_live {
        // Connected before the close, which refuses new connections, superusers' too.
        let sessions = match (carry.as_mut().and_then(|c| c.source.take()), dest) {
            (Some((source, pid)), Some(dest)) => Some((source, dest, pid)),
            _ => None,
        };
        let keep = sessions.as_ref().map_or(0, |s| s.2);
        let close = async {
            db::close(admin, live).await?;
            if let Err(e) = db::terminate_sessions_but(admin, live, keep).await {
                let _ = db::open(admin, live).await;
                return Err(e);
            }
            Ok(())
        };
        // The new database's side of the carry is read meanwhile: nothing else writes there.
        let prepare = async {
            match &sessions {
                Some((_, dest, _)) => Some(carry::prepare(dest).await),
                None => None,
            }
        };
        let (closed, prepared) = tokio::join!(close, prepare);
        closed?;
        if let Some(c) = &carry {
            carried = Some(match (sessions, prepared) {
                (Some((source, dest, _)), Some(prepared)) => {
                    let report =
                        carry::carry(&source, &dest, prepared, old_seeded, c.seeded, c.progress)
                            .await;
                    drop((source, dest));
                    report
                }
                _ => carry::Report {
                    failed: Some("could not connect to both databases".into()),
                    ..carry::Report::default()
                },
            });
            // The renames need both databases free of sessions, the carry's too.
            for name in [live, next] {
                if let Err(e) = db::terminate_sessions(admin, name).await {
                    let _ = db::open(admin, live).await;
                    return Err(e);
                }
            }
        }
        Some(snapshot::Snapshot::automatic(live))
    } else {
        None
    };
    // Both renames in one transaction: the name is never missing, and a failure changes
    // nothing. Marks travel with the databases (they are keyed by oid).
    let mut sql = String::from("BEGIN;");
    if let Some(snap) = &kept {
        let _ = write!(
            sql,
            "ALTER DATABASE {} RENAME TO {};",
            quote_ident(live),
            quote_ident(&snap.database)
        );
    }
    let _ = write!(
        sql,
        "ALTER DATABASE {} RENAME TO {}; COMMIT;",
        quote_ident(next),
        quote_ident(live)
    );
    if let Err(e) = admin.batch_execute(&sql).await {
        let _ = admin.batch_execute("ROLLBACK").await;
        if had_live {
            let _ = db::open(admin, live).await;
        }
        return Err(crate::error::db("swapping in the new", live)(e));
    }
    match kept {
        Some(snap) => {
            snap.mark(admin, project, live, Kind::Automatic, old_seeded)
                .await?;
            Ok((Some(snap.name), carried))
        }
        None => Ok((None, carried)),
    }
}

/// A session on `live` for a carry-over, and its process id (none when `live` is missing).
async fn source_session(server: &Server, live: &str) -> Option<(tokio_postgres::Client, i32)> {
    let source = db::connect(server, live).await.ok()?;
    let pid: i32 = source
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .ok()?
        .get(0);
    carry::warm_up(&source).await;
    Some((source, pid))
}

/// How a branch switch ([`Rebuilder::switch_branch`]) brought the new branch's database in.
#[derive(Debug)]
pub enum Switched {
    /// Its own database, kept when it was last left and built from the same files, was
    /// renamed in: no copy, no load.
    SwappedIn,
    /// It had no database matching its files: built from them ([`Rebuilder::rebuild`]).
    Built(Rebuilt),
}

/// A branch switch.
#[derive(Debug)]
pub struct Switch {
    /// How the new branch's database came in.
    pub how: Switched,
    /// From the start to the end of the switch.
    pub took: Duration,
    /// Whether the replaced live database was kept as the old branch's (false when there was
    /// no live database).
    pub kept: bool,
    /// The new branch's database, which no longer matched its files: kept as this automatic
    /// snapshot.
    pub stale: Option<String>,
    /// A database of the old branch that was in the way of the live one (a restore copies a
    /// branch database and leaves it): kept as this automatic snapshot.
    pub displaced: Option<String>,
}

impl Rebuilder {
    /// Switches `target.live` from the git branch `leaving` to `arriving` ([`crate::branch`]):
    /// the live database becomes `leaving`'s branch database, and `arriving`'s is renamed in
    /// when its files hash is `target.files_hash` (in one transaction with the marks), else
    /// the live database is built from `steps` as a reload builds it, and the database it
    /// replaced is renamed to `leaving`'s. Under the rebuild lock throughout.
    pub async fn switch_branch(
        &mut self,
        loader: &Loader,
        target: &Target<'_>,
        steps: &[devenv_sql::Step],
        leaving: &str,
        arriving: &str,
    ) -> Result<Switch, CoreError> {
        self.settle().await;
        let started = Instant::now();
        let admin = self.admin().await?;
        let held = lock::lock(&admin, Key::Rebuild(target.live)).await?;
        let result = self
            .switch_locked(&admin, loader, target, steps, leaving, arriving)
            .await;
        held.release().await;
        self.background_work(target.live, target.project);
        let mut switch = result?;
        switch.took = started.elapsed();
        tracing::debug!(took = ?switch.took, "switched {leaving} -> {arriving}");
        Ok(switch)
    }

    async fn switch_locked(
        &mut self,
        admin: &Admin,
        loader: &Loader,
        target: &Target<'_>,
        steps: &[devenv_sql::Step],
        leaving: &str,
        arriving: &str,
    ) -> Result<Switch, CoreError> {
        let live = target.live;
        check_ownership(admin, &self.server, target).await?;
        let current = Marks::read(admin, live).await?;
        let (leaving_db, arriving_db) = (
            branch::database(live, leaving),
            branch::database(live, arriving),
        );
        let found = branch::find(admin, target.project, live, arriving).await?;
        let matching = found
            .clone()
            .filter(|m| m.files.as_deref() == Some(target.files_hash));
        let stale = if matching.is_none() && db::exists(admin, &arriving_db).await? {
            Some(branch::demote(admin, live, &arriving_db).await?)
        } else {
            None
        };
        let displaced = if current.is_some() && db::exists(admin, &leaving_db).await? {
            Some(branch::demote(admin, live, &leaving_db).await?)
        } else {
            None
        };
        let mut switch = Switch {
            how: Switched::SwappedIn,
            took: Duration::ZERO,
            kept: current.is_some() && target.keep_replaced,
            stale,
            displaced,
        };
        if let Some(arrived) = matching {
            if current.is_some() {
                db::close(admin, live).await?;
                if let Err(e) = db::terminate_sessions(admin, live).await {
                    let _ = db::open(admin, live).await;
                    return Err(e);
                }
            }
            let renamed = branch::in_transaction(admin, live, async {
                if let Some(current) = current.clone() {
                    db::rename(admin, live, &leaving_db).await?;
                    branch::branch_marks(current, live, leaving)
                        .write(admin, &leaving_db)
                        .await?;
                }
                db::rename(admin, &arriving_db, live).await?;
                branch::live_marks(arrived).write(admin, live).await?;
                db::open(admin, live).await
            })
            .await;
            if let Err(e) = renamed {
                if current.is_some() {
                    let _ = db::open(admin, live).await;
                }
                return Err(e);
            }
            return Ok(switch);
        }
        // No background work between the swap and the renaming of the replaced database:
        // a ready copy of it would be made for nothing.
        let background = std::mem::replace(&mut self.background_work, false);
        let rebuilt = Box::pin(self.rebuild(loader, target, steps)).await;
        self.background_work = background;
        let rebuilt = rebuilt?;
        if let (Some(current), Some(kept)) = (current, &rebuilt.kept) {
            let kept = snapshot::find(admin, live, kept).await?.database;
            branch::in_transaction(admin, live, async {
                db::rename(admin, &kept, &leaving_db).await?;
                branch::branch_marks(current, live, leaving)
                    .write(admin, &leaving_db)
                    .await
            })
            .await?;
        }
        switch.how = Switched::Built(rebuilt);
        Ok(switch)
    }
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
