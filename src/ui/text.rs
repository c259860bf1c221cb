//! Text for people: an error chain on one line, a time.

use super::redact::redact;

/// An error and its causes on one line (`a: b: c`), each cause once: tokio-postgres repeats
/// its cause in its own message.
pub fn chain(error: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !out.is_empty() && last.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        last = text;
    }
    redact(&out)
}

/// A time in seconds since the epoch, for people: `2026-11-22 22:40:01 UTC`.
pub fn since(secs: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}
