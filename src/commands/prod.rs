//! `devenv prod ...`: the seeds' AWS chores around the prod database that `devenv db --target
//! prod` reaches: let this machine's IP through the RDS security group (`allow-ip`, the seeds'
//! `db-update-sg-rule`), show the instance (`status`), create it (`create`), and stop and start
//! it to stay within the free tier. Settings come from the `prod:` section of devenv.yaml (see
//! [`devenv_core::ProdConfig`]); credentials and region from the standard AWS chain.
//!
//! The AWS SDK is behind the cargo feature `aws`: without it, every subcommand parses and says
//! how to get a build that has it (exit code 4).

use std::net::Ipv4Addr;
use std::path::Path;

use clap::{Args, Subcommand};
use devenv_core::Config;

use crate::ui::Ui;

/// `devenv prod` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ProdCommand {
    /// Let this machine reach the database through the configured security-group rule.
    ///
    /// Sets the rule to IP/32 on the port of PROD_CONNECTION_URL (the seeds'
    /// db-update-sg-rule). Leaves a rule that already is exactly that alone.
    ///
    /// Example: `devenv prod allow-ip`, `devenv prod allow-ip --ip 203.0.113.7`.
    AllowIp {
        /// The IPv4 address to allow. Default: ask the what-is-my-ip service (`ip_service:`).
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        /// Do nothing, silently, when no security-group rule is configured (for .gitpod.yml).
        #[arg(long)]
        if_configured: bool,
    },
    /// Show the RDS instance and whether this machine's IP is allowed in.
    ///
    /// Identifier, engine version, class, status, endpoint, and the rule that lets this IP in.
    ///
    /// Example: `devenv prod status`, `devenv prod status --json`.
    Status {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
        /// The IPv4 address to check. Default: ask the what-is-my-ip service.
        #[arg(long)]
        ip: Option<Ipv4Addr>,
    },
    /// Create the RDS instance as the seeds do and print the PROD_CONNECTION_URL to set.
    ///
    /// Settings from `prod:`, the master password from MASTER_USER_PASSWORD; waits until it is
    /// available. Refuses when the instance exists.
    ///
    /// Example: `MASTER_USER_PASSWORD=... devenv prod create`.
    Create {
        /// How long to wait.
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Stop the RDS instance (AWS starts it again by itself after seven days).
    ///
    /// Asks for the instance's name first, or takes --yes.
    ///
    /// Example: `devenv prod stop --wait`.
    Stop {
        /// Wait until it is stopped, with a line per state change.
        #[arg(long)]
        wait: bool,
        /// Skip the confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// How long to wait.
        #[command(flatten)]
        timeout: Timeout,
    },
    /// Start the stopped RDS instance.
    ///
    /// Example: `devenv prod start --wait`.
    Start {
        /// Wait until it is available, with a line per state change.
        #[arg(long)]
        wait: bool,
        /// How long to wait.
        #[command(flatten)]
        timeout: Timeout,
    },
}

/// `--timeout`.
#[derive(Debug, Clone, Copy, Args)]
pub struct Timeout {
    /// Give up waiting after this many seconds.
    #[arg(long = "timeout", value_name = "SECONDS", default_value_t = 1800)]
    pub seconds: u64,
}

/// Runs `devenv prod ...`.
#[cfg_attr(
    not(feature = "aws"),
    expect(
        clippy::unused_async,
        unused_variables,
        reason = "`ui` and async only with the `aws` feature"
    )
)]
pub async fn run(root: &Path, command: ProdCommand, ui: &Ui) -> anyhow::Result<()> {
    let config = Config::load(root)?;
    if let ProdCommand::AllowIp {
        if_configured: true,
        ..
    } = command
    {
        if config.prod.rule()?.is_none() {
            return Ok(());
        }
    }
    #[cfg(feature = "aws")]
    return chores::run(&config, command, ui).await;
    #[cfg(not(feature = "aws"))]
    Err(crate::exit::CliError::NoAws.into())
}

#[cfg(feature = "aws")]
mod chores;
