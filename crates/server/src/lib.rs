//! Where devenv's PostgreSQL comes from: the one server abstraction every part of devenv uses
//! to start, find, watch and stop servers. Callers use this front door and never a backend
//! module's internals.
//!
//! - [`Spec`] says what to run (identity, credentials, port, image, network, [`Storage`]);
//!   [`start`] starts it with the backend [`plan()`] picks for the configured [`Choice`], and
//!   returns a [`Handle`]. Before creating anything, `start` hands the caller a [`Record`] of
//!   what it is about to create, so a `down` after a SIGKILL at any moment finds all of it.
//! - A [`Handle`] is a running server of any backend: [`Handle::server`] says how to reach it,
//!   [`Handle::exited`] resolves when it dies, [`Handle::stop`] stops it (kept data stays), and
//!   dropping a handle leaves the server running (the explicit keep switch: nothing is stopped
//!   behind the caller's back).
//! - [`Handle::attach`] finds the running server a record describes, checked against the
//!   world (container id and labels, `postmaster.pid` and data directory); [`clean`] removes
//!   what a record names when nothing runs it any more; [`Record::log_tail`],
//!   [`Record::log_file`] and [`Record::follow_container_log`] read the server's own log.
//! - [`kept`]: the data a project keeps (find, describe, size, forget), its leftover
//!   containers, its network.
//! - [`mod@plan`]: the one decision of which backend runs, used by `up` and `devenv doctor`;
//!   [`probe`]: what the machine offers (engine and image, binaries, account).
//! - Backends: [`docker`] (cargo feature `docker`, on by default; [`engine`] says which
//!   engine answers and where its servers are reached), [`native`], and external servers,
//!   which are never started or stopped.
//! - [`conninfo`]: how to reach a server, connection strings parsed and masked, local or not.
//! - [`tls`]: libpq's `sslmode`/`sslrootcert`/`sslcert`/`PGSSL*` on every connection, over
//!   rustls, with Amazon's RDS CA bundle for RDS hosts.
//! - [`ready`]: readiness is "a connection authenticates and `SELECT 1` answers".
//! - [`process`], [`ports`], [`files`], [`sql`]: pids checked against the world, ports on
//!   127.0.0.1, private files and ids, quoted SQL text.

pub mod conninfo;
#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "docker")]
pub mod engine;
pub mod error;
pub mod files;
pub mod handle;
pub mod kept;
pub mod native;
pub mod plan;
pub mod ports;
pub mod probe;
pub mod process;
pub mod ready;
pub mod scram;
pub mod spec;
pub mod sql;
pub mod tls;

pub use conninfo::{mask, ConnInfoError, Server, APPLICATION_NAME};
pub use error::ServerError;
pub use handle::{clean, start, Handle, Record};
pub use kept::{find_kept, forget_network, remove_leftover_containers, Kept, KeptData};
pub use plan::{plan, Facts, Plan};
pub use spec::{
    Backend, Choice, Identity, PasswordAuth, Progress, Role, Spec, Step, Storage, MANAGED_LABEL,
    PROJECT_LABEL, ROLE_LABEL, ROOT_LABEL,
};
pub use tls::{ConnectError, SslMode, Tls};

pub use ports::{free_port, port_in_use};
pub use spec::dev_settings_args;
pub use sql::{quote_ident, quote_literal};
