//! Shared by the benches: a temp copy of the example project and the statistics they print.
#![allow(dead_code, reason = "each bench uses a different part of this module")]

use std::path::Path;
use std::time::Duration;

/// A temp copy of the example project (db/ and devenv.yaml), reachable by the account a
/// native server runs as.
pub fn copy_example(prefix: &str) -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("db")).unwrap();
    for f in ["db/schema.sql", "db/seed.sql", "devenv.yaml"] {
        std::fs::copy(root.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p` quantile (0..=1) of `v`, nearest rank.
pub fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short list"
    )]
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}
