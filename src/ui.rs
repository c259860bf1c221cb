//! What a human sees on stderr: messages, warnings and errors in rustc's style (`error:` in bold
//! red, `warning:` in yellow, the SQL report's `path:line:col` and caret in colour), and a
//! spinner with the current step. Colour only on a terminal and without `NO_COLOR` (anstream
//! decides); the spinner only on a terminal and without `--quiet` (indicatif draws it).
//! Machines read stdout, which never gets any of this.
//!
//! While `devenv up` loads its files ([`Ui::loading`]), the spinner also names a file once it
//! has taken over [`SLOW_FILE`], with its bytes done, from the loader's
//! [`devenv_sql::Event::Progress`] ([`Ui::sql_events`]).
//!
//! Secrets registered with [`secret`] are replaced by `****` in every log line (the tracing
//! writer goes through [`redact`]).

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Style};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

const ERROR: Style = AnsiColor::Red.on_default().bold();
const WARNING: Style = AnsiColor::Yellow.on_default().bold();
const NOTE: Style = AnsiColor::Cyan.on_default().bold();
const EMPHASIS: Style = Style::new().bold();
const GUTTER: Style = AnsiColor::Blue.on_default().bold();

/// How long a file loads before the spinner names it.
pub const SLOW_FILE: Duration = Duration::from_millis(300);

/// The file a load runs now, for the spinner.
#[derive(Debug, Default)]
struct Loading {
    /// Whether files are shown (between [`Ui::loading`] and [`Ui::done`]).
    on: bool,
    /// The file running now: its name, bytes done, size.
    file: Option<(String, u64, u64)>,
    /// When each file of the load started.
    started: HashMap<String, Instant>,
}

impl Loading {
    /// What the spinner adds: the file, once it has run for [`SLOW_FILE`].
    fn shown(&self) -> Option<String> {
        let (name, done, total) = self.file.as_ref()?;
        let slow = self.started.get(name)?.elapsed() >= SLOW_FILE;
        (self.on && slow)
            .then(|| format!(" — {name}: {} of {}", HumanBytes(*done), HumanBytes(*total)))
    }
}

/// The human side of the output.
#[derive(Debug)]
pub struct Ui {
    quiet: bool,
    /// Show server notices and debug detail.
    pub verbose: bool,
    spinner: Mutex<Option<ProgressBar>>,
    spinning: bool,
    log: Mutex<Option<std::fs::File>>,
    loading: Arc<Mutex<Loading>>,
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
            loading: Arc::default(),
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
        // `CoreError::Load` is transparent: the chain shows its report, not the `LoadError`.
        let load = error.chain().find_map(|c| {
            c.downcast_ref::<devenv_sql::LoadError>().or_else(|| {
                match c.downcast_ref::<devenv_core::CoreError>() {
                    Some(devenv_core::CoreError::Load(load)) => Some(&**load),
                    _ => None,
                }
            })
        });
        if let Some(load) = load {
            self.sql_report(load);
            return;
        }
        self.print(&format!("{ERROR}error{ERROR:#}: {}", chain(error)));
    }

    /// The loader's compiler-style report, in colour where colour goes.
    pub fn sql_report(&self, e: &devenv_sql::LoadError) {
        self.replay(&e.to_string());
    }

    /// Prints `text`, devenv's own stderr saved elsewhere (the background supervisor's log),
    /// styled line by line as it was when it was written ([`style_line`]).
    pub fn replay(&self, text: &str) {
        let styled: Vec<String> = text.lines().map(style_line).collect();
        if !styled.is_empty() {
            self.print(&styled.join("\n"));
        }
    }

    /// The loader's events as devenv shows them: `\echo` and `\warn` text as is, the files'
    /// warnings and the server's `WARNING`s in rustc's style (notices and ignored display
    /// commands only with `--verbose`), and progress in the spinner while [`Ui::loading`].
    /// Through this `Ui`, so the spinner is cleared first and `devenv logs` gets them too.
    pub fn sql_events(&'static self) -> devenv_sql::EventHandler {
        Arc::new(move |event| match event {
            devenv_sql::Event::Echo(text) | devenv_sql::Event::Warn(text) => self.print(text),
            devenv_sql::Event::Warning { location, message } => self.print(&format!(
                "{EMPHASIS}{}{EMPHASIS:#}: {WARNING}warning{WARNING:#}: {message}",
                location.short()
            )),
            devenv_sql::Event::Ignored { location, command } => {
                if self.verbose {
                    self.print(&format!(
                        "{EMPHASIS}{}{EMPHASIS:#}: {NOTE}note{NOTE:#}: \\{command} ignored (it only changes psql's display)",
                        location.short()
                    ));
                }
            }
            devenv_sql::Event::Notice {
                location,
                severity,
                message,
            } => {
                if devenv_sql::load::notice_shown(severity, self.verbose) {
                    let style = match *severity {
                        "WARNING" => WARNING,
                        _ => NOTE,
                    };
                    let severity = severity.to_ascii_lowercase();
                    self.print(&format!(
                        "{EMPHASIS}{}{EMPHASIS:#}: {style}{severity}{style:#}: {message}",
                        location.short()
                    ));
                }
            }
            devenv_sql::Event::Progress { path, done, total } => {
                let mut loading = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
                if loading.on {
                    let name = path.display().to_string();
                    if *done == 0 {
                        loading.started.insert(name.clone(), Instant::now());
                    } else {
                        loading
                            .started
                            .entry(name.clone())
                            .or_insert_with(Instant::now);
                    }
                    loading.file = Some((name, *done, *total));
                }
            }
        })
    }

    /// Shows `name` as the current step, and from now until [`Ui::done`] the file being
    /// loaded once it has taken over [`SLOW_FILE`] (from [`Ui::sql_events`]).
    pub fn loading(&self, name: impl Into<String>) {
        self.step(name);
        if self.spinning {
            self.loading
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .on = true;
        }
    }

    /// Shows `name` as the current step (spinner on a terminal).
    pub fn step(&self, name: impl Into<String>) {
        if !self.spinning {
            return;
        }
        let mut spinner = self.spinner.lock().unwrap_or_else(PoisonError::into_inner);
        let loading = self.loading.clone();
        let bar = spinner.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let file = move |_: &ProgressState, out: &mut dyn std::fmt::Write| {
                let loading = loading.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(text) = loading.shown() {
                    let _ = out.write_str(&text);
                }
            };
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}{file} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner())
                    .with_key("file", file),
            );
            bar.enable_steady_tick(Duration::from_millis(80));
            bar
        });
        bar.set_message(name.into());
    }

    /// Ends the current step (and the file progress of [`Ui::loading`]).
    pub fn done(&self) {
        *self.loading.lock().unwrap_or_else(PoisonError::into_inner) = Loading::default();
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

/// One line of devenv's stderr (or of its log) styled as rustc styles its own: `error:` in bold
/// red, `warning:` in yellow, `note:` in cyan, a `path:line[:col]:` before them in bold (and an
/// error's message), the report's gutter in blue and its caret in bold red. Other lines are
/// returned as they are.
pub fn style_line(line: &str) -> String {
    if let Some(styled) = style_gutter(line) {
        return styled;
    }
    for (label, style) in [("error", ERROR), ("warning", WARNING), ("note", NOTE)] {
        let tag = format!("{label}: ");
        if let Some(rest) = line.strip_prefix(&tag) {
            return format!("{style}{label}{style:#}: {rest}");
        }
        if let Some((location, message)) = line.split_once(&format!(": {tag}")) {
            let is_location = location
                .rsplit(':')
                .next()
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            if is_location {
                let message = if label == "error" {
                    format!("{EMPHASIS}{message}{EMPHASIS:#}")
                } else {
                    message.to_owned()
                };
                return format!(
                    "{EMPHASIS}{location}{EMPHASIS:#}: {style}{label}{style:#}: {message}"
                );
            }
        }
    }
    line.to_owned()
}

/// A line of the report's source display: `  |`, `12 | text`, `   |    ^`.
fn style_gutter(line: &str) -> Option<String> {
    let (gutter, rest) = line
        .split_once(" | ")
        .or_else(|| line.strip_suffix(" |").map(|g| (g, "")))?;
    if !gutter.trim().chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let caret = rest.trim_start_matches([' ', '\t']);
    Some(if caret.starts_with('^') {
        let pad = &rest[..rest.len() - caret.len()];
        format!("{GUTTER}{gutter} |{GUTTER:#} {pad}{ERROR}{caret}{ERROR:#}")
    } else if rest.is_empty() {
        format!("{GUTTER}{gutter} |{GUTTER:#}")
    } else {
        format!("{GUTTER}{gutter} |{GUTTER:#} {rest}")
    })
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

/// A time in seconds since the epoch, for people: `2026-11-22 22:40:01 UTC`.
pub fn since(secs: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

#[cfg(test)]
mod tests {
    use super::style_line;

    const RED: &str = "\u{1b}[1m\u{1b}[31m";
    const YELLOW: &str = "\u{1b}[1m\u{1b}[33m";
    const BLUE: &str = "\u{1b}[1m\u{1b}[34m";
    const BOLD: &str = "\u{1b}[1m";
    const RESET: &str = "\u{1b}[0m";

    #[test]
    fn report_lines_are_styled_as_rustc_styles_them() {
        assert_eq!(
            style_line("db/seed.sql:1:13: error: relation \"nope\" does not exist"),
            format!("{BOLD}db/seed.sql:1:13{RESET}: {RED}error{RESET}: {BOLD}relation \"nope\" does not exist{RESET}")
        );
        assert_eq!(
            style_line("db/schema.sql:2: warning: \\quit stops loading"),
            format!("{BOLD}db/schema.sql:2{RESET}: {YELLOW}warning{RESET}: \\quit stops loading")
        );
        assert_eq!(
            style_line("error: no `devenv up` runs"),
            format!("{RED}error{RESET}: no `devenv up` runs")
        );
        assert_eq!(style_line("  |"), format!("{BLUE}  |{RESET}"));
        assert_eq!(
            style_line("12 | SELECT x FROM t;"),
            format!("{BLUE}12 |{RESET} SELECT x FROM t;")
        );
        assert_eq!(
            style_line("   |        ^"),
            format!("{BLUE}   |{RESET}        {RED}^{RESET}")
        );
    }

    #[test]
    fn other_lines_are_left_alone() {
        for line in [
            "devenv: reload [db/a.sql | db/b.sql]: ok",
            "DETAIL: Key (id)=(1) already exists.",
            "a message: error: without a location",
            "",
        ] {
            assert_eq!(style_line(line), line);
        }
    }
}
