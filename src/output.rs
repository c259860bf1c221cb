//! What machines read: stdout, written once per command. A closed stdout (`devenv env | head
//! -1`) is not an error: the command stops quietly (ripgrep's rule), see [`BrokenPipe`].

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
