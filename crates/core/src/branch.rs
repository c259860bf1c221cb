//! A database per git branch (`branches: true`): the checked-out branch of the project's
//! repository, and the databases of the branches that are not checked out.
//!
//! A branch's database is a snapshot of the live database ([`crate::snapshot`]) of kind
//! [`Kind::Branch`], named `branch:<branch>`, under the database name a snapshot of that name
//! gets (one per branch). It keeps the marks it had while live (`files`, `built`, ...), so
//! whether it matches its branch's files is a comparison of content hashes. Leaving a branch
//! renames the live database to its branch database; coming back renames it in again
//! ([`crate::rebuild::Rebuilder::switch_branch`]): no copy, no load. `at` says when it was last
//! left: a branch deleted from the repository has its database dropped once that is longer
//! ago than `branch_prune_after` ([`prune`]).
//!
//! Git is asked once for the repository's directories (`git rev-parse`, which knows
//! worktrees, whose `.git` is a file pointing elsewhere), then its `HEAD` is read as a file:
//! `ref: refs/heads/<branch>` is a branch; anything else (a detached HEAD) and a rebase in
//! progress (`rebase-merge/`, `rebase-apply/` in the git directory) are not a branch change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::db::{self, Admin, Kind, Marks, Role};
use crate::error::CoreError;
use crate::snapshot::{self, Snapshot};

/// The prefix of a branch database's snapshot name.
pub const PREFIX: &str = "branch:";

/// What the repository's HEAD is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// A branch is checked out.
    Branch(String),
    /// A detached HEAD (a commit, a tag), or a HEAD that cannot be read.
    Detached,
    /// A rebase is in progress.
    Rebasing,
}

impl Head {
    /// The branch, when one is checked out.
    pub fn branch(&self) -> Option<&str> {
        match self {
            Head::Branch(b) => Some(b),
            Head::Detached | Head::Rebasing => None,
        }
    }

    /// Parses the text of a `HEAD` file.
    pub fn parse(text: &str) -> Head {
        text.trim()
            .strip_prefix("ref:")
            .map(str::trim)
            .and_then(|r| r.strip_prefix("refs/heads/"))
            .filter(|b| !b.is_empty())
            .map_or(Head::Detached, |b| Head::Branch(b.to_owned()))
    }
}

/// The git repository a project lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// The directory git runs in (the project root).
    pub root: PathBuf,
    /// The git directory of this worktree (where `HEAD` and a rebase's state are).
    pub git_dir: PathBuf,
}

/// Why the repository could not be found.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// `git` is not on PATH or did not run.
    #[error("cannot run git ({0})")]
    NoGit(std::io::Error),
    /// The project is not in a git repository.
    #[error("{} is not in a git repository ({message})", root.display())]
    NotARepo {
        /// The project root.
        root: PathBuf,
        /// What git said.
        message: String,
    },
    /// `git for-each-ref` failed.
    #[error("git for-each-ref refs/heads failed: {0}")]
    Refs(String),
}

impl Repo {
    /// The repository of `root`, asked of git once.
    pub fn discover(root: &Path) -> Result<Repo, RepoError> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["rev-parse", "--absolute-git-dir"])
            .output()
            .map_err(RepoError::NoGit)?;
        if !out.status.success() {
            return Err(RepoError::NotARepo {
                root: root.to_path_buf(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let git_dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Ok(Repo {
            root: root.to_path_buf(),
            git_dir,
        })
    }

    /// The `HEAD` file (watched for branch changes).
    pub fn head_file(&self) -> PathBuf {
        self.git_dir.join("HEAD")
    }

    /// What HEAD is now.
    pub fn head(&self) -> Head {
        if ["rebase-merge", "rebase-apply"]
            .iter()
            .any(|d| self.git_dir.join(d).is_dir())
        {
            return Head::Rebasing;
        }
        std::fs::read_to_string(self.head_file()).map_or(Head::Detached, |t| Head::parse(&t))
    }

    /// Whether git is done with the worktree for now: neither its index nor `HEAD` is locked,
    /// and the index was not written within `quiet` (a checkout writes the files, then the
    /// index, then HEAD: HEAD read sooner may still name the branch left).
    pub fn settled(&self, quiet: Duration) -> bool {
        let index_written = std::fs::metadata(self.git_dir.join("index"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        !self.locked() && index_written.is_none_or(|age| age >= quiet)
    }

    /// Whether git holds the worktree's index or `HEAD` locked (it is writing them).
    pub fn locked(&self) -> bool {
        ["index.lock", "HEAD.lock"]
            .iter()
            .any(|f| self.git_dir.join(f).exists())
    }

    /// The repository's local branches.
    pub fn branches(&self) -> Result<BTreeSet<String>, RepoError> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(["for-each-ref", "--format=%(refname:strip=2)", "refs/heads"])
            .output()
            .map_err(RepoError::NoGit)?;
        if !out.status.success() {
            return Err(RepoError::Refs(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// The snapshot name of `branch`'s database.
pub fn snapshot_name(branch: &str) -> String {
    format!("{PREFIX}{branch}")
}

/// The branch a snapshot name names, if it is a branch database's.
pub fn branch_of(snapshot_name: &str) -> Option<&str> {
    snapshot_name.strip_prefix(PREFIX)
}

/// The database `branch`'s database of `live` is kept under.
pub fn database(live: &str, branch: &str) -> String {
    Snapshot::named(live, &snapshot_name(branch)).database
}

/// The marks of `branch`'s database of `live` when it exists and is `project`'s.
pub async fn find(
    admin: &Admin,
    project: &str,
    live: &str,
    branch: &str,
) -> Result<Option<Marks>, CoreError> {
    let name = snapshot_name(branch);
    Ok(Marks::read(admin, &database(live, branch))
        .await?
        .filter(|m| {
            m.is(project, Role::Snapshot)
                && m.kind == Some(Kind::Branch)
                && m.of.as_deref() == Some(live)
                && m.snapshot.as_deref() == Some(name.as_str())
        }))
}

/// The marks that make a database with `marks` (those it had while live) `branch`'s
/// database of `live`, left now: its files, build time and the rest are kept.
pub fn branch_marks(marks: Marks, live: &str, branch: &str) -> Marks {
    Marks {
        role: Some(Role::Snapshot),
        kind: Some(Kind::Branch),
        snapshot: Some(snapshot_name(branch)),
        of: Some(live.to_owned()),
        at: Some(crate::state::now()),
        ..marks
    }
}

/// The marks of a branch database (`marks`) swapped in as the live database.
pub fn live_marks(marks: Marks) -> Marks {
    Marks {
        role: Some(Role::Live),
        kind: None,
        snapshot: None,
        of: None,
        at: None,
        ..marks
    }
}

/// Makes `database` (a branch database whose name is wanted) an automatic snapshot of
/// `live` (nothing is lost; the newest automatic snapshots are kept): renamed and marked in
/// one transaction. Returns the snapshot's name.
pub(crate) async fn demote(admin: &Admin, live: &str, database: &str) -> Result<String, CoreError> {
    let marks = Marks::read(admin, database).await?.unwrap_or_default();
    let snap = Snapshot::automatic(live);
    db::terminate_sessions(admin, database).await?;
    let marks = Marks {
        role: Some(Role::Snapshot),
        kind: Some(Kind::Automatic),
        snapshot: Some(snap.name.clone()),
        of: Some(live.to_owned()),
        at: Some(crate::state::now()),
        ..marks
    };
    in_transaction(admin, database, async {
        db::rename(admin, database, &snap.database).await?;
        marks.write(admin, &snap.database).await
    })
    .await?;
    Ok(snap.name)
}

/// Runs `work` (statements on `admin`) in one transaction: all of it or none.
pub(crate) async fn in_transaction(
    admin: &Admin,
    what: &str,
    work: impl std::future::Future<Output = Result<(), CoreError>>,
) -> Result<(), CoreError> {
    admin
        .batch_execute("BEGIN")
        .await
        .map_err(crate::error::db("starting a transaction on", what))?;
    match work.await {
        Ok(()) => admin
            .batch_execute("COMMIT")
            .await
            .map_err(crate::error::db("committing the renames of", what)),
        Err(e) => {
            let _ = admin.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// A branch database dropped by [`prune`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// The branch.
    pub branch: String,
    /// When it was last left, seconds since the epoch.
    pub left: u64,
}

/// Drops the databases of `live`'s branches that are not in `existing` and were last left
/// `after` or longer ago (with their copies), under the rebuild lock.
pub async fn prune(
    admin: &Admin,
    live: &str,
    existing: &BTreeSet<String>,
    after: Duration,
) -> Result<Vec<Pruned>, CoreError> {
    let now = crate::state::now();
    let held = db::lock::lock(admin, db::lock::Key::Rebuild(live)).await?;
    let result = async {
        let mut pruned = Vec::new();
        for snap in snapshot::list(admin, live).await? {
            let Some(branch) = branch_of(&snap.name).filter(|_| snap.kind == Kind::Branch) else {
                continue;
            };
            let old = now.saturating_sub(snap.created) >= after.as_secs();
            if old && !existing.contains(branch) {
                let branch = branch.to_owned();
                snapshot::remove(admin, live, &snap.name).await?;
                pruned.push(Pruned {
                    branch,
                    left: snap.created,
                });
            }
        }
        Ok::<_, CoreError>(pruned)
    }
    .await;
    held.release().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_branches_only_when_they_name_one() {
        assert_eq!(
            Head::parse("ref: refs/heads/feature/x\n"),
            Head::Branch("feature/x".into())
        );
        assert_eq!(Head::parse("ref: refs/heads/main").branch(), Some("main"));
        assert_eq!(
            Head::parse("3f7a0e1c9b2d4e5f60718293a4b5c6d7e8f90123\n"),
            Head::Detached
        );
        assert_eq!(Head::parse("ref: refs/remotes/origin/main"), Head::Detached);
        assert_eq!(Head::parse(""), Head::Detached);
    }

    fn git(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    #[test]
    fn a_worktree_is_followed_through_its_own_git_dir_and_a_rebase_is_no_branch() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main");
        std::fs::create_dir(&main).unwrap();
        git(&main, &["init", "-q", "-b", "main"]);
        git(
            &main,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@devenv.invalid",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "first",
            ],
        );
        git(&main, &["branch", "feature"]);
        let other = dir.path().join("other");
        git(
            &main,
            &["worktree", "add", "-q", other.to_str().unwrap(), "feature"],
        );
        assert!(other.join(".git").is_file(), "a worktree's .git is a file");
        let repo = Repo::discover(&other).unwrap();
        assert_ne!(repo.git_dir, main.join(".git"));
        assert_eq!(repo.head(), Head::Branch("feature".into()));
        assert_eq!(
            Repo::discover(&main).unwrap().head(),
            Head::Branch("main".into())
        );
        assert_eq!(
            repo.branches().unwrap().into_iter().collect::<Vec<_>>(),
            ["feature", "main"]
        );
        std::fs::create_dir(repo.git_dir.join("rebase-merge")).unwrap();
        assert_eq!(repo.head(), Head::Rebasing);
        git(&other, &["checkout", "-q", "--detach"]);
        std::fs::remove_dir(repo.git_dir.join("rebase-merge")).unwrap();
        assert_eq!(repo.head(), Head::Detached);
        let outside = tempfile::tempdir().unwrap();
        assert!(matches!(
            Repo::discover(outside.path()),
            Err(RepoError::NotARepo { .. })
        ));
    }

    #[test]
    fn branch_databases_are_named_per_branch_and_fit() {
        assert_ne!(database("cruddur", "main"), database("cruddur", "feature"));
        assert_eq!(database("cruddur", "main"), database("cruddur", "main"));
        let long = "b".repeat(200);
        assert!(database(&"a".repeat(63), &long).len() <= 63);
        assert_eq!(branch_of(&snapshot_name("feature/x")), Some("feature/x"));
        assert_eq!(branch_of("2026-11-22T22:40:01.123Z"), None);
    }

    #[test]
    fn marks_move_between_live_and_branch_and_keep_the_files_hash() {
        let live = Marks {
            files: Some("abc".into()),
            built: Some(5),
            ..Marks::new("p", Role::Live)
        };
        let kept = branch_marks(live.clone(), "cruddur", "main");
        assert!(kept.is("p", Role::Snapshot));
        assert_eq!(kept.kind, Some(Kind::Branch));
        assert_eq!(kept.files.as_deref(), Some("abc"));
        assert_eq!(kept.snapshot.as_deref(), Some("branch:main"));
        assert_eq!(live_marks(kept), live);
    }
}
