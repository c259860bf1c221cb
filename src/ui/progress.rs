//! The spinner (a terminal only, not `--quiet`): the step under way, the server's start-up
//! steps, and while files load the one taking over [`SLOW_FILE`], with its bytes done and the
//! statements run; a carry-over past a second, with its table and rows.

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::Ui;

/// How long a file loads before the spinner names it.
pub const SLOW_FILE: Duration = Duration::from_millis(300);

/// The file a load runs now, for the spinner.
#[derive(Debug, Default)]
pub(super) struct Loading {
    /// Whether files are shown (between [`Ui::loading`] and [`Ui::done`]).
    pub(super) on: bool,
    /// The file running now: its name, bytes done, size; statements the load has run.
    pub(super) file: Option<(String, u64, u64, usize)>,
    /// When each file of the load started.
    pub(super) started: HashMap<String, Instant>,
}

impl Loading {
    /// What the spinner adds: the file, once it has run for [`SLOW_FILE`].
    fn shown(&self) -> Option<String> {
        let (name, done, total, statements) = self.file.as_ref()?;
        let slow = self.started.get(name)?.elapsed() >= SLOW_FILE;
        (self.on && slow).then(|| {
            format!(
                " — {name}: {} of {}, {statements} statements",
                HumanBytes(*done),
                HumanBytes(*total)
            )
        })
    }
}

impl Ui {
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

    /// A carry-over's progress, as a spinner step once it has run for a second.
    pub fn carry_progress(&'static self) -> devenv_core::carry::OnProgress {
        devenv_core::carry::OnProgress(std::sync::Arc::new(
            move |p: &devenv_core::carry::Progress<'_>| {
                if p.elapsed >= Duration::from_secs(1) {
                    self.step(format!("carrying rows over: {} ({} rows)", p.table, p.rows));
                }
            },
        ))
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
