//! Per-test databases on a server, below both the test fixture (`devenv-fixture`) and the CLI
//! (`devenv test-dbs`, `devenv down`):
//!
//! - [`server`]: which server the test databases live on (the project's `devenv up`, the
//!   external `url`, else the shared test server it starts once and keeps running).
//! - [`template`]: one template database per content hash of the SQL files, built once under
//!   an advisory lock.
//! - [`layers`]: what a test's database holds beyond the project's template (sqlx fixtures, a
//!   migrator of its own), each distinct set built once into a template variant.
//! - [`registry`]: the bookkeeping tables, the pool of ready clones, creating, dropping and
//!   sweeping test databases.
//! - [`mod@acquire`]: a test database for one test, from the pool or cloned.
//! - [`inventory`]: listing and pruning what is on the server.
//! - [`trace`]: `DEVENV_FIXTURE_TRACE=1`, where a test process's milliseconds go.

pub mod acquire;
pub mod error;
pub mod inventory;
pub mod layers;
pub mod registry;
pub mod server;
pub mod template;
pub mod trace;

pub use acquire::{acquire, wait_for_top_ups, Claimed};
pub use error::Error;
pub use layers::{Base, Layer, Recipe, Script};
pub use registry::unique_name;
pub use registry::TestServer;
pub use server::{shared_dir, shared_server, stop_shared_server, SharedServer, Source};

/// Prefix of every test database's name.
pub const TEST_DB_PREFIX: &str = "devenv_test_";
/// Prefix of the pool's ready databases (renamed to [`TEST_DB_PREFIX`] when claimed).
pub const POOL_PREFIX: &str = "devenv_pool_";
/// Prefix of every template's name.
pub const TEMPLATE_PREFIX: &str = "devenv_tpl_";
