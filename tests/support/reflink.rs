//! The XFS reflink filesystem of the PostgreSQL 18 clone tests and the `engines` bench
//! (`scripts/ensure-reflink-fs.sh`, `DEVENV_REFLINK_DIR`), and Docker volumes bound to a
//! directory on it. Shared by `tests/engines.rs` and `crates/fixture/benches/engines.rs`
//! (std only, included by path).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The reflink filesystem's directory; fails unless it is on XFS.
pub fn reflink_dir() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("DEVENV_REFLINK_DIR").unwrap_or_else(|_| "/mnt/devenv-reflink".into()),
    );
    let fs = Command::new("findmnt")
        .args(["-n", "-o", "FSTYPE", "--target"])
        .arg(&dir)
        .output()
        .expect("findmnt");
    assert_eq!(
        String::from_utf8_lossy(&fs.stdout).trim(),
        "xfs",
        "{} is not on XFS: run scripts/ensure-reflink-fs.sh",
        dir.display()
    );
    dir
}

/// Creates the volume `name` with `labels`, bound to `dir` (the engine's `local` driver
/// with `o=bind`), through `docker` (a `docker` command aimed at the engine).
pub fn create_bound_volume(
    mut docker: Command,
    name: &str,
    dir: &Path,
    labels: &[(String, String)],
) {
    docker.args(["volume", "create", "--driver", "local"]);
    docker.args(["--opt", "type=none", "--opt", "o=bind", "--opt"]);
    docker.arg(format!("device={}", dir.display()));
    for (k, v) in labels {
        docker.args(["--label", &format!("{k}={v}")]);
    }
    let out = docker.arg(name).output().expect("docker volume create");
    assert!(
        out.status.success(),
        "docker volume create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
