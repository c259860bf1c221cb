//! Arguments and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::Failure;

/// devenv: a real Postgres with your schema and seed, right now.
#[derive(Debug, Parser)]
#[command(name = "devenv", version, about)]
pub struct Cli {
    /// Project directory (where devenv.yaml and db/ live). Default: the current directory.
    #[arg(long, short = 'C', global = true, default_value = ".")]
    pub project: PathBuf,
    /// Show server notices and more detail on stderr.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start Postgres, load schema then seed, export the URLs, run until Ctrl-C.
    ///
    /// Example: `devenv up`, then in another terminal `eval "$(devenv env)"`.
    Up,
    /// Stop and remove this project's environment (also one left by a killed `devenv up`).
    Down,
    /// Print the running environment's variables on stdout.
    ///
    /// Example: `eval "$(devenv env)"` or `devenv env --format json`.
    Env {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Sh)]
        format: Format,
    },
    /// Ask the running `devenv up` of this project to reload now (it prints the outcome).
    Reload,
    /// The seed scripts' jobs: create, drop, schema-load, seed, setup, reset, connect,
    /// sessions; locally or with `--target prod` / `--url URL`.
    ///
    /// Example: `devenv db sessions --target prod`, `devenv db setup`.
    Db {
        /// Which job.
        #[command(subcommand)]
        command: crate::dbcmd::DbCommand,
    },
    /// The seeds' AWS chores around the prod database: allow this machine's IP through the
    /// RDS security group, show, create, stop and start the RDS instance (`aws` feature).
    ///
    /// Example: `devenv prod allow-ip`, `devenv prod stop --wait`.
    Prod {
        /// Which chore.
        #[command(subcommand)]
        command: crate::prod::ProdCommand,
    },
    /// Check what `devenv up` needs and say how to fix what is missing.
    Doctor,
    /// List the test fixture's databases and templates; prune leftovers; stop the shared
    /// test server.
    ///
    /// Example: `devenv test-dbs`, `devenv test-dbs --prune`.
    TestDbs {
        /// Drop test databases of dead processes (kept ones too) and old templates.
        #[arg(long)]
        prune: bool,
        /// Like --prune, and drop every template (the next test builds what it needs).
        #[arg(long, conflicts_with = "prune")]
        prune_all: bool,
        /// Stop the shared test server the fixture started.
        #[arg(long)]
        stop_server: bool,
    },
    /// Show whether an environment runs for this project.
    Status {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// `devenv env` formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// `export NAME='value'` lines.
    Sh,
    /// `NAME=value` lines.
    Dotenv,
    /// A JSON object.
    Json,
}

/// Runs the command line; prints the error and maps it to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = if cli.verbose {
        "devenv=debug,devenv_core=debug,devenv_server=debug,devenv_sql=debug"
    } else {
        // The AWS SDK's warnings (no ~/.aws file, no region from IMDS) would bury `devenv
        // prod`'s one-line errors: its crates (targets `aws_*`, a prefix) log errors only.
        "warn,aws=error"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DEVENV_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("devenv: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if failure.code == 3 {
                // A SQL report is already in `path:line:col: error:` form.
                eprintln!("{}", failure.message);
            } else {
                eprintln!("devenv: error: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let root = cli.project.clone();
    match cli.command {
        Command::Up => crate::up::up(&root, cli.verbose).await,
        Command::Down => crate::commands::down(&root).await,
        Command::Reload => crate::commands::reload(&root),
        Command::Db { command } => crate::dbcmd::run(&root, command, cli.verbose).await,
        Command::Prod { command } => crate::prod::run(&root, command).await,
        Command::Doctor => crate::doctor::doctor(&root).await,
        Command::TestDbs {
            prune,
            prune_all,
            stop_server,
        } => crate::testdbs::run(&root, prune, prune_all, stop_server).await,
        Command::Env { format } => crate::commands::env(&root, format),
        Command::Status { json } => crate::commands::status(&root, json),
    }
}
