//! The `devenv` command line: a thin shell over the engine crates.
//!
//! - [`cli`]: arguments (clap derive) and dispatch; exit codes.
//! - [`backend`]: picks and starts the server backend (docker, native, external).
//! - [`up`]: `devenv up`, the supervisor: start, load schema + seed, export, wait, clean up.
//! - [`reload`]: the watcher and the build-then-swap reload loop of `up`.
//! - [`commands`]: `down`, `env`, `status`, `reload`.
//! - [`dbcmd`]: `devenv db ...`, the seed scripts' jobs, with guards for remote targets.
//! - [`prod`]: `devenv prod ...`, the seeds' AWS chores (security-group rule, RDS instance);
//!   the SDK only with the `aws` feature.
//! - [`guard`]: the confirmation of destructive commands, shared by `db` and `prod`.
//! - [`doctor`]: `devenv doctor`.
//! - [`testdbs`]: `devenv test-dbs`, over the test fixture's inventory.
//!
//! Humans read stderr, machines read stdout: only `devenv env` and `--json` output go to
//! stdout, so `eval "$(devenv env)"` stays clean.

pub mod backend;
pub mod cli;
pub mod commands;
pub mod dbcmd;
pub mod doctor;
pub mod guard;
pub mod prod;
pub mod reload;
pub mod testdbs;
pub mod up;

pub use cli::main;

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    /// Exit code: 1 other, 2 configuration, 3 SQL load error, 4 environment (Docker, port,
    /// binaries), 5 refused by a guard.
    pub code: u8,
    /// The message (may span lines, e.g. a SQL report).
    pub message: String,
}

impl Failure {
    /// A failure of another kind (exit code 1).
    pub fn other(message: impl std::fmt::Display) -> Self {
        Failure {
            code: 1,
            message: message.to_string(),
        }
    }
}

impl From<devenv_core::ConfigError> for Failure {
    fn from(e: devenv_core::ConfigError) -> Self {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }
}

impl From<devenv_sql::LoadError> for Failure {
    fn from(e: devenv_sql::LoadError) -> Self {
        Failure {
            code: 3,
            message: e.to_string(),
        }
    }
}

impl From<devenv_server::docker::DockerError> for Failure {
    fn from(e: devenv_server::docker::DockerError) -> Self {
        Failure {
            code: 4,
            message: e.to_string(),
        }
    }
}

impl From<devenv_server::native::NativeError> for Failure {
    fn from(e: devenv_server::native::NativeError) -> Self {
        Failure {
            code: 4,
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::other(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::other(devenv_sql::error::client_error_text(&e))
    }
}

#[cfg(feature = "aws")]
impl From<devenv_aws::AwsError> for Failure {
    fn from(e: devenv_aws::AwsError) -> Self {
        use devenv_aws::AwsError as E;
        let code = match &e {
            E::RuleNotFound { .. }
            | E::RuleInOtherGroup { .. }
            | E::GroupNotFound { .. }
            | E::InstanceNotFound { .. } => 2,
            E::NoCredentials { .. }
            | E::BadCredentials { .. }
            | E::NoRegion
            | E::Unreachable { .. }
            | E::IpLookup { .. } => 4,
            E::InstanceExists { .. } => 5,
            E::Denied { .. } | E::WrongState { .. } | E::WaitGaveUp { .. } | E::Api { .. } => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}
