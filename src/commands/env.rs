//! `devenv env`: the running environment's variables on stdout, for `eval "$(devenv env)"`,
//! a dotenv file or JSON. The only command that prints the password: that is its purpose.

use std::path::Path;

use clap::{Args, ValueEnum};
use devenv_core::env::{format_env, EnvFormat};

/// `devenv env` arguments.
#[derive(Debug, Clone, Args)]
pub struct EnvArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Sh)]
    pub format: Format,
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

/// Runs `devenv env`.
pub fn run(root: &Path, args: &EnvArgs) -> anyhow::Result<()> {
    let environment = devenv_core::Environment::open(root)?;
    let state = &environment.ready()?.state;
    let format = match args.format {
        Format::Sh => EnvFormat::Sh,
        Format::Dotenv => EnvFormat::Dotenv,
        Format::Json => EnvFormat::Json,
    };
    crate::output::stdout(&format_env(&state.env, format))
}
