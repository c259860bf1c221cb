//! One module per subcommand, each with its own arguments (clap derive) and its `run`. They
//! use the engine crates and [`crate::ui`]; none of them imports another's internals except
//! through the small helpers here.

pub mod db;
pub mod doctor;
pub mod down;
pub mod env;
pub mod logs;
pub mod prod;
pub mod reload;
pub mod snapshot;
pub mod status;
pub mod testdbs;
pub mod up;
