//! The command line: global flags, the subcommands (each module in [`crate::commands`] owns
//! its arguments), and dispatch.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::{db, doctor, down, env, logs, prod, snapshot, status, testdbs, up};
use crate::ui::Ui;

const AFTER_HELP: &str = "\
Examples:
  devenv up                      start Postgres, load db/schema.sql then db/seed.sql, watch
  devenv up -d && eval \"$(devenv env)\"   the same in the background, then use it
  devenv db setup --target prod  rebuild prod from the files (asks first)
  devenv snapshot save before    keep a copy of the dev database

This devenv is the PostgreSQL dev-environment supervisor, not cachix's devenv (devenv.sh,
also a `devenv` binary with a `devenv up`); `devenv --version` says which one runs.";

/// devenv: a real Postgres with your schema and seed, right now, that keeps your data.
#[derive(Debug, Parser)]
#[command(
    name = "devenv",
    version = concat!(env!("CARGO_PKG_VERSION"), " (the PostgreSQL dev-environment supervisor, not cachix's devenv.sh)"),
    about,
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Project directory (where devenv.yaml and db/ live). Default: the current directory.
    #[arg(long, short = 'C', global = true, default_value = ".")]
    pub project: PathBuf,
    /// Show server notices and more detail on stderr. (`-v` is `down --volumes`, as in
    /// docker compose.)
    #[arg(long, global = true)]
    pub verbose: bool,
    /// No progress and no informational lines on stderr (errors, warnings and results stay).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start Postgres, build or reuse the database, export the URLs, reload on save.
    ///
    /// In the foreground until Ctrl-C; with `-d` in the background once the database is
    /// ready.
    ///
    /// Example: `devenv up`, or `devenv up -d && eval "$(devenv env)"`.
    Up(up::UpArgs),
    /// Stop this project's environment, also one a killed `devenv up` left; data is kept.
    ///
    /// Example: `devenv down`, `devenv down --volumes` (also forget the data).
    Down(down::DownArgs),
    /// Print the running environment's variables on stdout.
    ///
    /// Example: `eval "$(devenv env)"` or `devenv env --format json`.
    Env(env::EnvArgs),
    /// Ask the running `devenv up` of this project to reload now.
    ///
    /// Example: `devenv reload`, `devenv reload --set VERSION=2`.
    Reload(crate::commands::reload::ReloadArgs),
    /// Show whether an environment runs for this project (exit 1 when not).
    ///
    /// Example: `devenv status --json`.
    Status(status::StatusArgs),
    /// Show the supervisor's output, or the server's with `--server`.
    ///
    /// Example: `devenv logs -f`, `devenv logs --server -n 50`.
    Logs(logs::LogsArgs),
    /// Save, restore, list and remove snapshots of the dev database.
    ///
    /// Example: `devenv snapshot save before-migration`.
    Snapshot(snapshot::SnapshotArgs),
    /// Database jobs (create, drop, schema-load, seed, setup, connect, ...) on any server.
    ///
    /// On the running `devenv up`, else the `backend: external` server of devenv.yaml, or
    /// `--target prod` (PROD_CONNECTION_URL) or `--url URL`.
    ///
    /// Example: `devenv db setup`, `devenv db sessions --target prod`.
    Db {
        /// Which job.
        #[command(subcommand)]
        command: db::DbCommand,
    },
    /// AWS chores around the prod RDS database: allow this IP, status, create, stop, start.
    ///
    /// Let this machine's IP through the RDS security group, show, create, stop and start the
    /// RDS instance (the seeds' scripts; cargo feature `aws`).
    ///
    /// Example: `devenv prod allow-ip`, `devenv prod stop --wait`.
    Prod {
        /// Which chore.
        #[command(subcommand)]
        command: prod::ProdCommand,
    },
    /// Check what `devenv up` needs and say how to fix what is missing.
    ///
    /// Example: `devenv doctor --json`.
    Doctor(doctor::DoctorArgs),
    /// List, prune or stop the test fixture's databases, templates and shared server.
    ///
    /// Example: `devenv test-dbs`, `devenv test-dbs --prune`.
    TestDbs(testdbs::TestDbsArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    ///
    /// Example: `source <(devenv completions bash)`.
    Completions(CompletionsArgs),
}

/// `devenv completions` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// `devenv completions SHELL`: a completion script for bash, zsh, fish, PowerShell or elvish
/// (clap_complete), on stdout.
fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    let mut out = Vec::new();
    // The name this binary was run as: a copy installed under another name (to keep it apart
    // from cachix's `devenv`) completes too.
    let name = std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "devenv".to_owned());
    clap_complete::generate(args.shell, &mut Cli::command(), name, &mut out);
    crate::output::stdout(&String::from_utf8_lossy(&out))
}

/// Runs a parsed command line.
pub async fn run(cli: Cli, ui: &'static Ui) -> anyhow::Result<()> {
    let root = cli.project;
    match cli.command {
        Command::Up(args) => up::run(&root, args, ui).await,
        Command::Down(args) => down::run(&root, args, ui).await,
        Command::Env(args) => env::run(&root, &args),
        Command::Reload(args) => crate::commands::reload::run(&root, &args, ui),
        Command::Status(args) => status::run(&root, &args, ui).await,
        Command::Logs(args) => logs::run(&root, &args).await,
        Command::Snapshot(args) => snapshot::run(&root, args, ui).await,
        Command::Db { command } => db::run(&root, command, ui).await,
        Command::Prod { command } => prod::run(&root, command, ui).await,
        Command::Doctor(args) => doctor::run(&root, &args).await,
        Command::TestDbs(args) => testdbs::run(&root, &args, ui).await,
        Command::Completions(args) => completions(&args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
