//! What machines read: stdout, written once per command. A closed stdout (`devenv env | head
//! -1`) is not an error: the command stops quietly (ripgrep's rule), see [`BrokenPipe`].
//!
//! `--json` documents (README, "JSON output") follow one set of rules: `snake_case` names, the
//! same keys whether or not something runs (`null` when unknown), times as RFC 3339 UTC strings
//! named `*_at` ([`timestamp`]), sizes in bytes named `size_bytes`, passwords masked (only
//! `devenv env` prints them).

use std::io::Write as _;

/// Stdout was closed by its reader; the process exits 0 without a word.
#[derive(Debug, thiserror::Error)]
#[error("stdout closed")]
pub struct BrokenPipe;

/// Writes `text` to stdout.
pub fn stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(BrokenPipe.into()),
        Err(e) => Err(e.into()),
    }
}

/// Writes `value` as one pretty JSON document (and a newline) to stdout.
pub fn json(value: &serde_json::Value) -> anyhow::Result<()> {
    stdout(&format!("{value:#}\n"))
}

/// A time in seconds since the epoch as JSON shows it: RFC 3339 in UTC, to the second
/// (`2026-11-22T22:40:01Z`).
pub fn timestamp(secs: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(super::timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::timestamp(1_795_387_201), "2026-11-22T22:40:01Z");
    }
}
