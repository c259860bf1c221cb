//! What a human sees on stderr: messages, warnings and errors in rustc's style (`error:` in bold
//! red, `warning:` in yellow, the SQL report's `path:line:col` and caret in colour), and a
//! spinner with the current step. Colour only on a terminal and without `NO_COLOR` (anstream
//! decides); the spinner only on a terminal and without `--quiet` (indicatif draws it).
//! Machines read stdout, which never gets any of this.
//!
//! Secrets registered with [`secret`] are replaced by `****` in every log line (the tracing
//! writer goes through [`redact`]).

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const ERROR: Style = AnsiColor::Red.on_default().bold();
const WARNING: Style = AnsiColor::Yellow.on_default().bold();
const NOTE: Style = AnsiColor::Cyan.on_default().bold();
const EMPHASIS: Style = Style::new().bold();
const GUTTER: Style = AnsiColor::Blue.on_default().bold();

/// The human side of the output.
#[derive(Debug)]
pub struct Ui {
    quiet: bool,
    /// Show server notices and debug detail.
    pub verbose: bool,
    spinner: Mutex<Option<ProgressBar>>,
    spinning: bool,
    log: Mutex<Option<std::fs::File>>,
}

impl Ui {
    /// A `Ui` for this process: spinner when stderr is a terminal and not `quiet`.
    pub fn new(quiet: bool, verbose: bool) -> Ui {
        Ui {
            quiet,
            verbose,
            spinner: Mutex::new(None),
            spinning: !quiet && std::io::stderr().is_terminal(),
            log: Mutex::new(None),
        }
    }

    /// Also writes every line (plain, redacted) to `path` (0600, started afresh), for `devenv
    /// logs`.
    pub fn tee(&self, path: &std::path::Path) {
        if let Ok(file) = devenv_server::files::create_private(path) {
            *self.log.lock().unwrap_or_else(PoisonError::into_inner) = Some(file);
        }
    }

    fn print(&self, text: &str) {
        let text = redact(text);
        let text = text.as_str();
        if let Some(file) = self
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            let _ = writeln!(file, "{}", anstream::adapter::strip_str(text));
        }
        let write = || {
            let mut err = anstream::stderr().lock();
            let _ = writeln!(err, "{text}");
        };
        match &*self.spinner.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// A line of information (`devenv: ...`); dropped with `--quiet`.
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.quiet {
            self.print(&format!("devenv: {}", text.as_ref()));
        }
    }

    /// A line that matters even with `--quiet` (the URLs, "ready", a reload's outcome).
    pub fn result(&self, text: impl AsRef<str>) {
        self.print(&format!("devenv: {}", text.as_ref()));
    }

    /// A note: something worth knowing that is not wrong.
    pub fn note(&self, text: impl AsRef<str>) {
        if !self.quiet {
            self.print(&format!("{NOTE}note{NOTE:#}: {}", text.as_ref()));
        }
    }

    /// A warning.
    pub fn warn(&self, text: impl AsRef<str>) {
        self.print(&format!("{WARNING}warning{WARNING:#}: {}", text.as_ref()));
    }

    /// An error with its causes, each once; a SQL error as the loader's report.
    pub fn error(&self, error: &anyhow::Error) {
        if let Some(load) = error
            .chain()
            .find_map(|c| c.downcast_ref::<devenv_sql::LoadError>())
        {
            self.sql_report(load);
            return;
        }
        self.print(&format!("{ERROR}error{ERROR:#}: {}", chain(error)));
    }

    /// The loader's compiler-style report, in colour where colour goes.
    pub fn sql_report(&self, e: &devenv_sql::LoadError) {
        let text = e.to_string();
        let mut out = String::new();
        for (i, line) in text.lines().enumerate() {
            if i == 0 {
                out.push_str(&style_first_line(line));
            } else if let Some((gutter, rest)) = line
                .split_once(" | ")
                .or_else(|| line.strip_suffix(" |").map(|g| (g, "")))
            {
                if gutter.trim().chars().all(|c| c.is_ascii_digit()) {
                    let caret = rest.trim_start_matches([' ', '\t']).starts_with('^');
                    if caret {
                        let _ = write!(out, "{GUTTER}{gutter} |{GUTTER:#} {ERROR}{rest}{ERROR:#}");
                    } else {
                        let _ = write!(out, "{GUTTER}{gutter} |{GUTTER:#} {rest}");
                    }
                } else {
                    out.push_str(line);
                }
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        self.print(out.trim_end());
    }

    /// Shows `name` as the current step (spinner on a terminal).
    pub fn step(&self, name: impl Into<String>) {
        if !self.spinning {
            return;
        }
        let mut spinner = self.spinner.lock().unwrap_or_else(PoisonError::into_inner);
        let bar = spinner.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(80));
            bar
        });
        bar.set_message(name.into());
    }

    /// Ends the current step.
    pub fn done(&self) {
        if let Some(bar) = self
            .spinner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            bar.finish_and_clear();
        }
    }

    /// Start-up steps of a server, as spinner steps.
    pub fn server_progress(&'static self) -> devenv_server::Progress {
        devenv_server::Progress::to(move |step| {
            self.step(match step {
                devenv_server::Step::Connecting => "connecting to the Docker engine".to_owned(),
                devenv_server::Step::Pulling {
                    image,
                    layers,
                    done,
                    total,
                } => format!(
                    "pulling {image}: {layers} layers, {} of {} MB",
                    done / 1_000_000,
                    total / 1_000_000
                ),
                devenv_server::Step::Starting => "starting the server".to_owned(),
                devenv_server::Step::WaitingReady => "waiting until it answers".to_owned(),
            });
        })
    }
}

fn style_first_line(line: &str) -> String {
    match line.split_once(": error: ") {
        Some((location, message)) => {
            format!("{EMPHASIS}{location}{EMPHASIS:#}: {ERROR}error{ERROR:#}: {EMPHASIS}{message}{EMPHASIS:#}")
        }
        None => match line.strip_prefix("error: ") {
            Some(rest) => format!("{ERROR}error{ERROR:#}: {rest}"),
            None => line.to_owned(),
        },
    }
}

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

fn secrets() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(Mutex::default)
}

/// Registers a secret (a password) that must never appear in a log line.
pub fn secret(value: &str) {
    if value.len() >= 3 {
        let mut all = secrets().lock().unwrap_or_else(PoisonError::into_inner);
        if !all.iter().any(|s| s == value) {
            all.push(value.to_owned());
            // Longest first, so a secret containing another is replaced whole.
            all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }
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

/// A time in seconds since the epoch, for people: `2026-11-22 22:40:01 UTC`.
pub fn since(secs: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}
