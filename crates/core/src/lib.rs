//! devenv's engine, shared by the CLI and (later) the test fixture:
//!
//! - [`config`]: `devenv.yaml` and `DEVENV_*` variables, validated once (with the `prod:`
//!   section of `devenv prod`).
//! - [`project`]: a project's identity (labels, container name), its `.devenv/` state file and
//!   the exported variables (`CONNECTION_URL`, `COMPOSE_CONNECTION_URL`, `DATABASE_URL`).
//! - [`rebuild`]: build a database from scratch under a temporary name, swap it in on success.
//! - [`db`]: database operations on a server (create, drop, rename, terminate sessions), with
//!   identifiers always quoted.

pub mod config;
pub mod db;
pub mod project;
pub mod rebuild;

pub use config::{Backend, Config, ConfigError, ProdConfig, PASSWORD_VAR};
