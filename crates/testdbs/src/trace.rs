//! `DEVENV_FIXTURE_TRACE=1`: a line on stderr per step of a test process's set-up and of each
//! acquisition and drop, with the milliseconds since the process's first step, to see where a
//! test's time goes (`cargo nextest run --no-capture`). Off, it costs a load of a flag.

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> Option<Instant> {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    *START.get_or_init(|| {
        std::env::var_os("DEVENV_FIXTURE_TRACE")
            .is_some_and(|v| !v.is_empty() && v != "0")
            .then(Instant::now)
    })
}

/// Notes that `step` was reached (when tracing).
pub fn mark(step: &str) {
    if let Some(start) = start() {
        eprintln!(
            "devenv-fixture trace: {:8.2} ms pid {} {step}",
            start.elapsed().as_secs_f64() * 1000.0,
            std::process::id()
        );
    }
}
