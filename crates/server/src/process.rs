//! Processes as the operating system sees them: whether a pid runs, and which postmaster serves
//! a data directory. A pid from a record is never trusted alone: a postmaster is the process
//! that `postmaster.pid` names *and* whose working directory is that data directory (postgres
//! changes into its data directory at start), so a recycled pid is never signalled.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Whether process `pid` exists and is not a zombie (exited, not yet reaped by its parent).
pub fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 || kill(Pid::from_raw(raw), None).is_err() {
        return false;
    }
    // `/proc/PID/stat` is `pid (comm) STATE ...`; comm may hold spaces, so split after `)`.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|s| s != "Z"))
        })
        .unwrap_or(true)
}

/// The working directory of a process, when it can be read.
pub fn cwd(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// The pid of the live postmaster serving `data_dir`, checked against the world.
pub fn postmaster_of(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    let dir = std::fs::canonicalize(data_dir).ok()?;
    (alive(pid) && cwd(pid).is_some_and(|c| c == dir)).then_some(pid)
}

/// Sends `signal` to `pid`; false when there is no such process.
pub fn signal(pid: u32, signal: Signal) -> bool {
    i32::try_from(pid).is_ok_and(|raw| raw > 0 && kill(Pid::from_raw(raw), signal).is_ok())
}

/// Stops a postmaster: SIGINT (fast shutdown: sessions end, a checkpoint is written), SIGKILL
/// after `grace`. Waits without blocking the async workers. For a postmaster this process
/// started, wait on its child handle instead (a zombie would count as gone here).
pub async fn stop_postmaster(pid: u32, grace: Duration) {
    if !signal(pid, Signal::SIGINT) {
        return;
    }
    let deadline = Instant::now() + grace;
    let mut delay = Duration::from_millis(2);
    while Instant::now() < deadline {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(50));
    }
    signal(pid, Signal::SIGKILL);
    for _ in 0..100 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_stranger_is_no_postmaster() {
        assert!(alive(std::process::id()));
        assert!(!alive(0));
        let dir = tempfile::tempdir().unwrap();
        // Our own pid in a postmaster.pid: alive, but not serving that directory.
        std::fs::write(
            dir.path().join("postmaster.pid"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        assert_eq!(postmaster_of(dir.path()), None);
    }
}
