//! devenv's SQL loader: runs SQL files with psql's semantics in-process over tokio-postgres,
//! and reports the first error the way a compiler does (`path:line:col`, the line, a caret).
//!
//! - [`scan`] splits a file into statements, `COPY ... FROM stdin` data and meta-commands.
//! - [`load`] runs them against a server: COPY through the COPY protocol, `\c`, `\i`, `\ir`,
//!   `\copy`, `\gset`, `\gexec`, `\if`, `\echo`, `\set`, `\quit`, ..., stopping at the
//!   first error.
//! - [`slash`] lexes backslash commands as psql does: names, case, arguments.
//! - [`cond`] is psql's `\if` blocks and truth rules, [`copy`] the client side of COPY.
//! - [`inputs`] lists the files a load reads without running it.
//! - [`error`] is the error and its report.
//!
//! No psql binary is needed at run time.

pub mod cond;
pub mod copy;
pub mod error;
pub mod inputs;
pub mod load;
pub mod scan;
pub mod slash;

pub use error::{ErrorKind, LoadError, Location};
pub use inputs::{files_read, Input, InputKind};
pub use load::{
    stderr_events, Connect, Connected, Durability, Event, EventHandler, Line, LoadSummary, Loader,
    Plain, Step, PROGRESS_EVERY,
};
pub use scan::{split, Item, Scanner};
