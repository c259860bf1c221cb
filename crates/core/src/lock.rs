//! The supervisor lock: a project has exactly one live supervisor, the process holding an
//! exclusive `flock` on `.devenv/lock` for its lifetime. The lock goes with its process, even
//! on `kill -9`, so it cannot go stale. Its holder is found in the world: on Linux the
//! kernel's lock table (`/proc/locks`) names the pid holding a lock on the file's inode, and
//! that process must have the file open; `down`, `reload` and `status` act on that pid and
//! on no other. The file's text (pid, command, start time) only describes the holder.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{io, CoreError};

/// The lock file's name in `.devenv/`.
pub const LOCK_FILE: &str = "lock";

/// The live holder of a project's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its pid, as the kernel's lock table says.
    pub pid: u32,
    /// What it runs (`up`, `up -d`, `down`), as it wrote.
    pub command: String,
    /// When it took the lock, seconds since the epoch, as it wrote.
    pub since: u64,
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: Flock<File>,
    /// The lock file.
    pub path: PathBuf,
}

fn open(dir: &Path) -> Result<(File, PathBuf), CoreError> {
    devenv_server::files::private_dir(dir).map_err(io("creating", dir))?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io("opening", &path))?;
    Ok((file, path))
}

/// Takes the lock of the state directory `dir` for `command`, or says who holds it.
pub fn try_acquire(dir: &Path, command: &str) -> Result<Result<Lock, Holder>, CoreError> {
    let (file, path) = open(dir)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            let text = format!(
                "{}\n{command}\n{}\n",
                std::process::id(),
                crate::state::now()
            );
            locked
                .set_len(0)
                .and_then(|()| locked.rewind())
                .and_then(|()| locked.write_all(text.as_bytes()))
                .map_err(io("writing", &path))?;
            Ok(Ok(Lock {
                _file: locked,
                path,
            }))
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(Err(holder(dir).unwrap_or(Holder {
            pid: 0,
            command: "another devenv".into(),
            since: 0,
        }))),
        Err((_, errno)) => Err(io("locking", &path)(std::io::Error::from(errno))),
    }
}

/// Waits until nobody holds the lock of `dir` (an exact wait: a shared `flock` is granted the
/// moment the holder's exclusive one goes), at most `timeout`; returns whether it went. The
/// waiting thread stays blocked after a timeout until the lock goes or this process ends.
pub async fn wait_released(dir: &Path, timeout: std::time::Duration) -> Result<bool, CoreError> {
    let path = dir.join(LOCK_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(io("opening", &path)(e)),
    };
    let waited = tokio::task::spawn_blocking(move || {
        let mut file = file;
        loop {
            match Flock::lock(file, FlockArg::LockShared) {
                Ok(shared) => return shared.unlock().map(drop).map_err(|(_, e)| e),
                Err((f, nix::errno::Errno::EINTR)) => file = f,
                Err((_, errno)) => return Err(errno),
            }
        }
    });
    match tokio::time::timeout(timeout, waited).await {
        Err(_) => Ok(false),
        Ok(Ok(Ok(()))) => Ok(true),
        Ok(Ok(Err(errno))) => Err(io("waiting for the lock", &path)(errno.into())),
        Ok(Err(e)) => Err(io("waiting for the lock", &path)(std::io::Error::other(
            e.to_string(),
        ))),
    }
}

/// The live holder of the lock of `dir`, if any.
pub fn holder(dir: &Path) -> Option<Holder> {
    let path = dir.join(LOCK_FILE);
    let meta = std::fs::metadata(&path).ok()?;
    let pid = match kernel_holder(&path, meta.ino()) {
        Table::Holder(pid) => pid,
        Table::Free => return None,
        Table::Unreadable => held_by_someone(&path)?,
    };
    let mut text = String::new();
    File::open(&path).ok()?.read_to_string(&mut text).ok()?;
    let mut lines = text.lines();
    let _written_pid = lines.next();
    Some(Holder {
        pid,
        command: lines.next().unwrap_or("devenv").to_owned(),
        since: lines.next().and_then(|s| s.parse().ok()).unwrap_or(0),
    })
}

/// What the kernel's lock table says about a lock file.
enum Table {
    /// This process holds it.
    Holder(u32),
    /// Nobody does.
    Free,
    /// The table cannot be read (not Linux).
    Unreadable,
}

/// From `/proc/locks`: the process holding a `flock` on inode `ino` that has `path` open.
fn kernel_holder(path: &Path, ino: u64) -> Table {
    let (Ok(table), Ok(canonical)) = (
        std::fs::read_to_string("/proc/locks"),
        std::fs::canonicalize(path),
    ) else {
        return Table::Unreadable;
    };
    let found = table.lines().find_map(|line| {
        // `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, pid, dev_ino) = (fields.get(1)?, fields.get(4)?, fields.get(5)?);
        let lock_ino: u64 = dev_ino.rsplit(':').next()?.parse().ok()?;
        if *kind != "FLOCK" || lock_ino != ino {
            return None;
        }
        let pid: u32 = pid.parse().ok()?;
        has_open(pid, &canonical).then_some(pid)
    });
    found.map_or(Table::Free, Table::Holder)
}

fn has_open(pid: u32, path: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
}

/// Without a kernel lock table: whether some process holds the lock (a shared lock cannot be
/// had), and the pid it wrote.
fn held_by_someone(path: &Path) -> Option<u32> {
    let file = File::open(path).ok()?;
    if Flock::lock(file, FlockArg::LockSharedNonblock).is_ok() {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_found_in_the_world_and_gone_with_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".devenv");
        assert_eq!(holder(&state), None);
        let lock = try_acquire(&state, "up").unwrap().expect("free");
        let found = holder(&state).expect("held");
        assert_eq!(found.pid, std::process::id());
        assert_eq!(found.command, "up");
        // flock locks belong to open file descriptions: a second open in this process is a
        // second contender.
        let second = try_acquire(&state, "up").unwrap();
        assert_eq!(second.unwrap_err().pid, std::process::id());
        drop(lock);
        assert_eq!(holder(&state), None);
        // A pid written into the file by someone who does not hold the lock counts for nothing.
        std::fs::write(state.join(LOCK_FILE), "1\nup\n0\n").unwrap();
        assert_eq!(holder(&state), None);
    }
}
