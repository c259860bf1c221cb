//! The loader's events on devenv's stderr: the same lines as the loader's own renderer
//! ([`devenv_sql::Line`]), styled as rustc styles its own, through [`Ui`] (so `--quiet`,
//! the spinner and `devenv logs` treat them as every other line).

use std::sync::{Arc, PoisonError};
use std::time::Instant;

use super::style::{EMPHASIS, NOTE, WARNING};
use super::Ui;

impl Ui {
    /// The loader's events as devenv shows them: `\echo` and `\warn` text as is, the files'
    /// warnings and the server's `WARNING`s in rustc's style (notices and ignored display
    /// commands only with `--verbose`), and progress in the spinner while [`Ui::loading`].
    /// Through this `Ui`, so the spinner is cleared first and `devenv logs` gets them too.
    pub fn sql_events(&'static self) -> devenv_sql::EventHandler {
        Arc::new(move |event| match event {
            devenv_sql::Event::Progress {
                path,
                done,
                total,
                statements,
            } => {
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
                    loading.file = Some((name, *done, *total, *statements));
                }
            }
            other => {
                if let Some(line) = other.line(self.verbose) {
                    self.print(&styled(&line));
                }
            }
        })
    }
}

/// A loader line in rustc's colours: the location in bold, the label by its kind.
fn styled(line: &devenv_sql::Line) -> String {
    let location = line
        .location
        .as_ref()
        .map(|l| format!("{EMPHASIS}{l}{EMPHASIS:#}: "))
        .unwrap_or_default();
    let label = line
        .label
        .as_ref()
        .map(|label| {
            let style = if label == "warning" { WARNING } else { NOTE };
            format!("{style}{label}{style:#}: ")
        })
        .unwrap_or_default();
    format!("{location}{label}{}", line.text)
}
