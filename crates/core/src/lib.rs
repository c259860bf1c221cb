//! devenv's engine: what a project is and what its supervisor does, on top of the server
//! crate (where PostgreSQL comes from) and the loader (how SQL files run).
//!
//! - [`config`]: `devenv.yaml` and `DEVENV_*` variables, validated once (with the `prod:`
//!   section of `devenv prod`).
//! - [`project`]: a project's id, and every name and server description derived from it.
//! - [`environment`]: the running environment of a project, the one owner of what runs:
//!   who, whether ready, how to reach its server, what a supervisor that died left.
//! - [`state`]: `.devenv/`, what a supervisor recorded (before creating it).
//! - [`lock`]: the supervisor lock; who runs, found in the world.
//! - [`mod@env`]: the exported variables and their formats.
//! - [`db`]: database operations and devenv's marks on the databases it made.
//! - [`clone`]: copy-on-write copies of databases (PostgreSQL 18's `file_copy_method`).
//! - [`rebuild`]: build a database under a temporary name, swap it in on success.
//! - [`carry`]: the rows a rebuild's replaced database had that the new one lacks, carried in.
//! - [`branch`]: a database per git branch: HEAD, branch databases, pruning.
//! - [`snapshot`]: copies of the live database kept in the cluster; save, list, restore, prune.
//! - [`files`]: the content hash of a project's SQL files.
//! - [`error`]: the crate's error type.

pub mod branch;
pub mod carry;
pub mod clone;
pub mod config;
pub mod db;
pub mod env;
pub mod environment;
pub mod error;
pub mod files;
pub mod lock;
pub mod migrations;
pub mod project;
pub mod rebuild;
pub mod snapshot;
pub mod state;

pub use config::{Config, ConfigError, ProdConfig, PASSWORD_VAR};
pub use environment::Environment;
pub use error::CoreError;
pub use project::Project;
