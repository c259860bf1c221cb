//! Secrets kept out of every line devenv writes: registered once ([`secret`]), replaced by
//! `****` in messages and in the tracing log ([`RedactingStderr`]).

use std::sync::{Mutex, OnceLock, PoisonError};

fn secrets() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(Mutex::default)
}

/// Registers a secret (a password) that must never appear in a log line, in every form a log
/// line may hold it: as is, quoted in SQL (`'` doubled, and `\` doubled as in `E'...'`), and
/// percent-encoded as in a URL.
pub fn secret(value: &str) {
    if value.len() < 3 {
        return;
    }
    let quoted = value.replace('\'', "''");
    let forms = [
        value.to_owned(),
        quoted.clone(),
        quoted.replace('\\', "\\\\"),
        value.replace('\\', "\\\\"),
        devenv_server::conninfo::url_escaped(value),
    ];
    let mut all = secrets().lock().unwrap_or_else(PoisonError::into_inner);
    for form in forms {
        if !all.contains(&form) {
            all.push(form);
        }
    }
    // Longest first, so a secret containing another is replaced whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by `****`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    for secret in secrets()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), devenv_server::conninfo::MASK);
        }
    }
    out
}

/// The tracing writer: stderr, each line redacted.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}
