//! Exit codes, decided in one place from what an error is, and the errors the CLI itself
//! raises. The library crates' typed errors travel inside `anyhow::Error`; [`Exit::of`] walks
//! the chain and maps the first it knows.

use devenv_core::{ConfigError, CoreError};
use devenv_server::ServerError;
use devenv_sql::LoadError;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: it worked.
    Ok = 0,
    /// 1: any other failure; `status` when nothing runs.
    Failure = 1,
    /// 2: the configuration (devenv.yaml, `DEVENV_*`, a connection string) is wrong.
    Config = 2,
    /// 3: a SQL file did not load (the report is on stderr).
    Sql = 3,
    /// 4: the environment: Docker engine, image, port, PostgreSQL binaries, another `up`
    /// running, the server died.
    Environment = 4,
    /// 5: refused by a guard (a remote target without confirmation, a database devenv did not
    /// make).
    Refused = 5,
}

impl Exit {
    /// The code for `error`.
    pub fn of(error: &anyhow::Error) -> Exit {
        for cause in error.chain() {
            if let Some(e) = cause.downcast_ref::<CliError>() {
                return e.exit();
            }
            if cause.is::<ConfigError>()
                || cause.is::<devenv_server::ConnInfoError>()
                || cause.is::<crate::commands::prod::SettingsError>()
            {
                return Exit::Config;
            }
            #[cfg(feature = "aws")]
            if let Some(e) = cause.downcast_ref::<devenv_aws::AwsError>() {
                return Exit::of_aws(e);
            }
            if cause.is::<LoadError>() {
                return Exit::Sql;
            }
            if let Some(e) = cause.downcast_ref::<ServerError>() {
                return if e.is_environment() {
                    Exit::Environment
                } else {
                    Exit::Failure
                };
            }
            if let Some(e) = cause.downcast_ref::<CoreError>() {
                match e {
                    CoreError::Config(_) | CoreError::Url { .. } => return Exit::Config,
                    CoreError::Load(_) => return Exit::Sql,
                    CoreError::Server(s) if s.is_environment() => return Exit::Environment,
                    CoreError::DiskFull { .. } => return Exit::Environment,
                    CoreError::NotOurs { .. } => return Exit::Refused,
                    _ => {}
                }
            }
        }
        Exit::Failure
    }

    /// The code for a failed AWS chore: a setting that names nothing is configuration;
    /// credentials, region, network and the what-is-my-ip service are the environment; an
    /// instance that exists already is a refusal.
    #[cfg(feature = "aws")]
    fn of_aws(error: &devenv_aws::AwsError) -> Exit {
        use devenv_aws::AwsError as E;
        match error {
            E::RuleNotFound { .. }
            | E::RuleInOtherGroup { .. }
            | E::GroupNotFound { .. }
            | E::InstanceNotFound { .. } => Exit::Config,
            E::NoCredentials { .. }
            | E::BadCredentials { .. }
            | E::NoRegion
            | E::Unreachable { .. }
            | E::IpLookup { .. } => Exit::Environment,
            E::InstanceExists { .. } => Exit::Refused,
            E::Denied { .. } | E::WrongState { .. } | E::WaitGaveUp { .. } | E::Api { .. } => {
                Exit::Failure
            }
        }
    }
}

/// Failures the CLI itself decides on.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Another supervisor holds the project's lock.
    #[error("devenv {command} already runs for this project (pid {pid}, since {since}); `devenv down` stops it")]
    AlreadyRunning {
        /// Its pid.
        pid: u32,
        /// What it runs.
        command: String,
        /// When it started.
        since: String,
    },
    /// Nothing runs for the project.
    #[error("no `devenv up` runs for this project; start one with `devenv up`")]
    NotRunning,
    /// The server died under `devenv up`.
    #[error("the server stopped under devenv up: {0}")]
    ServerDied(String),
    /// A guard refused a destructive operation.
    #[error("refusing to {what}: {why}")]
    Refused {
        /// What was refused.
        what: String,
        /// Why, and how to go ahead.
        why: String,
    },
    /// A stop signal arrived during start-up.
    #[error("stopped during start-up ({0}); nothing left running")]
    Cancelled(&'static str),
    /// A stop signal interrupted a one-shot command; the sentence says what it left.
    #[error("interrupted ({why}): {left}")]
    Interrupted {
        /// The signal.
        why: &'static str,
        /// What was left as it was.
        left: String,
    },
    /// The server's disk filled up (seen in its log: the server crashed on it).
    #[error("no space left on the server's disk ({where_}): {advice}")]
    DiskFull {
        /// Which disk: the data directory, the container's volume.
        where_: String,
        /// What was kept, and what to do.
        advice: String,
    },
    /// `status` found nothing running (exit 1, nothing printed as an error).
    #[error("not running")]
    StatusNotRunning,
    /// A tool devenv runs is missing or failed.
    #[error("{0}")]
    Tool(String),
    /// `devenv prod` in a build without the `aws` feature.
    #[error(
        "this build of devenv has no AWS support (`devenv prod`): install one with \
         `cargo install --path . --features aws`"
    )]
    NoAws,
}

impl From<devenv_core::lock::Holder> for CliError {
    fn from(holder: devenv_core::lock::Holder) -> Self {
        CliError::AlreadyRunning {
            pid: holder.pid,
            command: holder.command,
            since: crate::ui::since(holder.since),
        }
    }
}

impl CliError {
    fn exit(&self) -> Exit {
        match self {
            CliError::AlreadyRunning { .. }
            | CliError::ServerDied(_)
            | CliError::Tool(_)
            | CliError::DiskFull { .. }
            | CliError::NoAws => Exit::Environment,
            CliError::Refused { .. } => Exit::Refused,
            CliError::NotRunning
            | CliError::Cancelled(_)
            | CliError::Interrupted { .. }
            | CliError::StatusNotRunning => Exit::Failure,
        }
    }
}
