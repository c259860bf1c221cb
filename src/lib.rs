//! The `devenv` command line: a thin shell over the engine crates (`devenv-core`,
//! `devenv-server`, `devenv-sql`, `devenv-testdbs`).
//!
//! - [`cli`]: arguments and dispatch; [`commands`]: one module per subcommand.
//! - [`supervisor`]: `devenv up`, the project's one live process (start, load, watch, reload,
//!   watch the server, stop).
//! - [`leftovers`]: what earlier runs left behind (the running environment itself is
//!   `devenv_core::Environment`'s).
//! - [`ui`]: what humans see on stderr (colour, progress, redaction); [`output`]: what
//!   machines read on stdout; [`exit`]: exit codes, decided in one place; [`guard`]: asking
//!   before destructive work; [`vars`]: `--set` and how its values reach a supervisor.
//!
//! Humans read stderr, machines read stdout: only `env`, `--json` output and listings go to
//! stdout, so `eval "$(devenv env)"` stays clean.

pub mod cli;
pub mod commands;
pub mod exit;
pub mod guard;
pub mod leftovers;
pub mod output;
pub mod supervisor;
pub mod ui;
pub mod vars;

use std::process::ExitCode;

use clap::Parser as _;

use exit::Exit;

/// Runs the command line; prints the error and maps it to an exit code.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let ui: &'static ui::Ui = Box::leak(Box::new(ui::Ui::new(cli.quiet, cli.verbose)));
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ui.error(&anyhow::Error::from(e).context("cannot start the async runtime"));
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(cli::run(cli, ui));
    ui.done();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<output::BrokenPipe>() => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(detached) = e.downcast_ref::<commands::up::Detached>() {
                ui.error(&e);
                return ExitCode::from(u8::try_from(detached.0).unwrap_or(1));
            }
            if !matches!(
                e.downcast_ref::<exit::CliError>(),
                Some(exit::CliError::StatusNotRunning)
            ) {
                ui.error(&e);
            }
            ExitCode::from(Exit::of(&e) as u8)
        }
    }
}

/// `DEVENV_LOG` (an `EnvFilter`), else debug for devenv's crates with `-v`, else warnings.
/// Third-party crates never log below `info` (testcontainers logs container environments,
/// passwords included, at debug), the AWS SDK's (targets `aws_*`) only errors (its warnings,
/// no ~/.aws or no region from IMDS, would bury `devenv prod`'s one-line errors), and every
/// line is redacted.
fn init_logging(verbose: bool) {
    use std::io::IsTerminal as _;
    let ours = if verbose { "debug" } else { "warn" };
    let base = format!(
        "warn,devenv={ours},devenv_core={ours},devenv_server={ours},devenv_sql={ours},devenv_testdbs={ours}"
    );
    let filter = std::env::var("DEVENV_LOG").unwrap_or(base);
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "{filter},testcontainers=info,bollard=info,hyper=info,hyper_util=info,aws=error"
    ))
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color)
        .with_writer(ui::RedactingStderr)
        .init();
}
