//! What a human sees on stderr: messages, warnings and errors in rustc's style, and a
//! spinner with the step under way. Colour only on a terminal and without `NO_COLOR` (anstream
//! decides); the spinner only on a terminal and without `--quiet` (indicatif draws it).
//! Machines read stdout, which never gets any of this.
//!
//! - this module: [`Ui`] and its messages (`say`, `result`, `note`, `warn`, `error`, the SQL
//!   report, a replayed log), each line also teed to `up.log`;
//! - [`style`]: the colours, and styling of lines replayed from a log;
//! - [`progress`]: the spinner, and the file a load runs while it is slow;
//! - [`sql`]: the loader's events, as every command shows them;
//! - [`redact`]: secrets kept out of every line and of the tracing log;
//! - [`text`]: an error chain on one line, a time for people.

mod progress;
pub mod redact;
mod sql;
pub mod style;
pub mod text;

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex, PoisonError};

use indicatif::ProgressBar;

use progress::Loading;
pub use progress::SLOW_FILE;
pub use redact::{redact, secret, RedactingStderr};
pub use style::style_line;
use style::{ERROR, NOTE, WARNING};
pub use text::{chain, since};

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
}
