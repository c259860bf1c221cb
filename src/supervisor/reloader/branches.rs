//! A database per git branch in `devenv up` (`branches: true`; the databases and their marks:
//! [`devenv_core::branch`]).
//!
//! - At start: the repository is found once; the databases of branches deleted from it and
//!   last left `branch_prune_after` ago or more are dropped; when the branch checked out is
//!   not the one the live database was left on (`.devenv/branch`: a checkout while `up` was
//!   down), it is a switch.
//! - The repository's `HEAD` is watched with the files (and looked at every second). After
//!   every burst of file events git is waited for (it writes the files, then the index, then
//!   `HEAD`: until no lock is held and the index is [`GIT_QUIET`] old), then `HEAD` is read:
//!   a branch other than the one followed is a switch
//!   ([`devenv_core::rebuild::Rebuilder::switch_branch`]), which reads the files as the
//!   checkout left them, so the burst that came with the checkout is the switch's, not a
//!   reload. Events that arrive after it (up to [`ABSORB`]) reload only when the files' content
//!   hash is no longer the one the switch brought in. A detached HEAD and a rebase in progress
//!   are no switch: their file changes reload the live database as any edit does.
//! - A failed switch (the new branch's files do not load) keeps the old branch's database
//!   live and followed; a change of the new branch's files tries the switch again (the same
//!   files are neither switched to nor reloaded again).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use devenv_core::branch::{self, Head, Repo};
use devenv_core::files::{self, Sources};
use devenv_core::rebuild::Switched;

use super::Reloader;

/// How long after a switch the file events of its checkout are absorbed.
const ABSORB: Duration = Duration::from_secs(2);
/// How long git may hold its locks before `HEAD` is read anyway.
const GIT_WAIT: Duration = Duration::from_secs(10);
/// How long after git wrote the index `HEAD` is read (a checkout writes it right after).
const GIT_QUIET: Duration = Duration::from_millis(50);

/// The branch `up` follows.
#[derive(Debug)]
pub(super) struct Branches {
    repo: Repo,
    /// The branch the live database belongs to (`None` until one is checked out).
    current: Option<String>,
    /// A switch's content hash, and until when events that find it are absorbed.
    absorbing: Option<(Instant, String)>,
    /// The branch a switch to failed, with the content hash of its files then.
    failed: Option<(String, String)>,
}

impl Branches {
    /// The repository's `HEAD` file, watched with the project's files.
    pub(super) fn head_file(&self) -> PathBuf {
        self.repo.head_file()
    }
}

impl Reloader {
    /// At start, before the live database is looked at: follows the git branch when
    /// `branches: true` (says why not when it cannot), prunes deleted branches' databases,
    /// and switches when the branch checked out is not the one the live database was left on.
    pub async fn start_branches(&mut self) {
        if !self.config().branches {
            return;
        }
        if !self.replace_unmarked {
            self.ui.note(
                "branches: true applies to devenv's own servers: on an external server there is one database for every branch",
            );
            return;
        }
        let repo = match Repo::discover(&self.project.root) {
            Ok(repo) => repo,
            Err(e) => {
                self.ui.warn(format!(
                    "branches: true, but {}: one database for every branch",
                    crate::ui::chain(&e.into())
                ));
                return;
            }
        };
        let left_on = self.read_branch_file();
        let head = repo.head();
        self.branches = Some(Branches {
            repo,
            current: left_on.clone().or_else(|| head.branch().map(str::to_owned)),
            absorbing: None,
            failed: None,
        });
        self.prune_branches().await;
        if let (Some(from), Some(to)) = (left_on, head.branch()) {
            if from != to {
                self.switch(from, to.to_owned()).await;
            }
        }
        self.write_branch_file();
        let on = match (
            &head,
            self.branches.as_ref().and_then(|b| b.current.as_deref()),
        ) {
            (Head::Branch(b), _) => format!("on {b}"),
            (Head::Rebasing, _) => "a rebase is in progress".to_owned(),
            (Head::Detached, Some(b)) => format!("HEAD is detached; the database is {b}'s"),
            (Head::Detached, None) => "HEAD is detached".to_owned(),
        };
        self.ui.say(format!(
            "following git branches ({on}): a checkout of another branch swaps in its database"
        ));
    }

    /// After a burst of file events, or once a second: when a branch other than the one
    /// followed is checked out, switches to it (with devenv.yaml as the checkout left it when
    /// `config_changed`); returns whether it did or tried (the burst is the checkout's).
    pub(super) async fn follow_branch(&mut self, config_changed: bool) -> bool {
        let Some(branches) = self.branches.as_ref() else {
            return false;
        };
        let repo = branches.repo.clone();
        let waited = Instant::now();
        while !repo.settled(GIT_QUIET) && waited.elapsed() < GIT_WAIT {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let to = repo.head().branch().map(str::to_owned);
        let Some(to) = to else {
            return false;
        };
        match branches.current.clone() {
            Some(from) if from == to => false,
            // The switch failed with these very files: said already, and a reload of them
            // would fail the same way.
            Some(_)
                if branches.failed.as_ref().is_some_and(|(branch, digest)| {
                    *branch == to
                        && Sources::read(&self.project.config).is_ok_and(|s| s.digest == *digest)
                }) =>
            {
                true
            }
            Some(from) => {
                if config_changed {
                    // Its `schema`, `seed` and `vars` are the new branch's; other keys say
                    // "restart needed" as in a reload.
                    self.apply_config_change();
                }
                self.switch(from, to).await;
                true
            }
            None => {
                if let Some(b) = self.branches.as_mut() {
                    b.current = Some(to);
                }
                self.write_branch_file();
                false
            }
        }
    }

    /// Takes the repository's `HEAD` out of the changed paths (it is no file of the database).
    pub(super) fn not_files(&self, changed: &mut BTreeSet<PathBuf>) {
        if let Some(b) = &self.branches {
            let head = b.head_file();
            let head = std::fs::canonicalize(&head).unwrap_or(head);
            changed.retain(|p| *p != head && *p != b.head_file());
        }
    }

    /// Whether file events are a switch's checkout: within [`ABSORB`] of it, with the files'
    /// content hash still the one it brought in.
    pub(super) fn absorbed(&mut self) -> bool {
        let Some(b) = self.branches.as_mut() else {
            return false;
        };
        let Some((until, digest)) = b.absorbing.take() else {
            return false;
        };
        if Instant::now() > until {
            return false;
        }
        let same = Sources::read(&self.project.config).is_ok_and(|s| s.digest == digest);
        if same {
            if let Some(b) = self.branches.as_mut() {
                b.absorbing = Some((until, digest));
            }
        }
        same
    }

    /// Switches the live database from branch `from` to `to` and says how it went.
    async fn switch(&mut self, from: String, to: String) {
        let started = Instant::now();
        let failed = |reloader: &mut Self, e: anyhow::Error| {
            reloader.ui.error(&e);
            reloader.ui.result(format!(
                "branch {from} -> {to}: failed after {} ms; kept {from}'s database (the next change tries again)",
                started.elapsed().as_millis()
            ));
            let digest = Sources::read(&reloader.project.config).map(|s| s.digest);
            if let (Some(b), Ok(digest)) = (reloader.branches.as_mut(), digest) {
                b.failed = Some((to.clone(), digest));
            }
        };
        let sources = match Sources::read(self.config()) {
            Ok(s) => s,
            Err(e) => return failed(self, e.into()),
        };
        let steps = match files::steps(self.config(), files::Part::All) {
            Ok(s) => s,
            Err(e) => return failed(self, e.into()),
        };
        let loader = self.loader();
        // Built from its files, the new branch's database takes the rows of the one just left,
        // as a reload does (unless `reload: fresh`).
        let target =
            super::build_target(&self.project, &sources.digest, self.replace_unmarked, false);
        let switched = Box::pin(
            self.rebuilder
                .switch_branch(&loader, &target, &steps, &from, &to),
        )
        .await;
        let switch = match switched {
            Ok(s) => s,
            Err(e) => return failed(self, e.into()),
        };
        let ms = switch.took.as_millis();
        let mut line = match &switch.how {
            Switched::SwappedIn => {
                format!("branch {from} -> {to}: swapped in {to}'s database in {ms} ms")
            }
            Switched::Built(rebuilt) => format!(
                "branch {from} -> {to}: built from its files in {ms} ms, {} statements{}",
                rebuilt.summary.statements,
                rebuilt
                    .carried
                    .as_ref()
                    .map(|c| format!("; {c}"))
                    .unwrap_or_default()
            ),
        };
        if switch.kept {
            let _ = write!(line, " ({from}'s kept)");
        } else {
            line.push_str(" (there was no database to keep)");
        }
        if let Some(stale) = &switch.stale {
            let _ = write!(
                line,
                "; {to}'s database was built from other files: kept as snapshot {stale}"
            );
        }
        if let Some(displaced) = &switch.displaced {
            let _ = write!(
                line,
                "; a copy of {from}'s database in the way is snapshot {displaced}"
            );
        }
        self.ui.result(line);
        self.included = match switch.how {
            Switched::Built(rebuilt) => rebuilt.summary.files,
            Switched::SwappedIn => sources.inputs.iter().map(|i| i.path.clone()).collect(),
        };
        if let Some(b) = self.branches.as_mut() {
            b.current = Some(to);
            b.failed = None;
            b.absorbing = Some((Instant::now() + ABSORB, sources.digest.clone()));
        }
        self.write_branch_file();
        // The checkout may have replaced directories and changed what the files include.
        self.watch(None);
        self.prune_branches().await;
    }

    /// Drops the databases of deleted branches last left `branch_prune_after` ago or more.
    async fn prune_branches(&mut self) {
        let Some(b) = self.branches.as_ref() else {
            return;
        };
        let existing = match b.repo.branches() {
            Ok(existing) => existing,
            Err(e) => {
                self.ui.warn(format!(
                    "{}; no branch database pruned",
                    crate::ui::chain(&e.into())
                ));
                return;
            }
        };
        self.rebuilder.settle().await;
        let after = self.config().branch_prune_after;
        let live = self.project.config.database.clone();
        let pruned = match self.rebuilder.admin().await {
            Ok(admin) => branch::prune(&admin, &live, &existing, after).await,
            Err(e) => Err(e),
        };
        match pruned {
            Ok(pruned) => {
                for p in pruned {
                    self.ui.note(format!(
                        "removed the database of deleted branch {} (last left {})",
                        p.branch,
                        crate::ui::since(p.left)
                    ));
                }
            }
            Err(e) => self.ui.warn(format!(
                "{}; no branch database pruned",
                crate::ui::chain(&e.into())
            )),
        }
    }

    /// `.devenv/branch`: the branch the live database was left on by the last `up`.
    fn branch_file(&self) -> PathBuf {
        self.project.state_dir().dir.join("branch")
    }

    fn read_branch_file(&self) -> Option<String> {
        std::fs::read_to_string(self.branch_file())
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|b| !b.is_empty())
    }

    fn write_branch_file(&self) {
        let current = self.branches.as_ref().and_then(|b| b.current.as_deref());
        if let Some(current) = current {
            let text = format!("{current}\n");
            // 0600, as every file in .devenv/.
            if let Err(e) =
                devenv_server::files::write_private(&self.branch_file(), text.as_bytes())
            {
                self.ui.warn(format!(
                    "cannot write {}: {e}; a checkout while devenv is down will not be followed",
                    self.branch_file().display()
                ));
            }
        }
    }
}
