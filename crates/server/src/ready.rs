//! Readiness: a server is ready when a connection authenticates and `SELECT 1` answers.
//! Log lines are never counted (the official image prints its ready line twice on first init).

use std::time::{Duration, Instant};

use devenv_sql::error::client_error_text;
use tokio_postgres::NoTls;

/// Why a server did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// The deadline passed; the last connection error is kept.
    #[error("PostgreSQL did not answer `SELECT 1` within {waited:?} (last error: {last_error})")]
    Timeout {
        /// How long we waited.
        waited: Duration,
        /// The last connection error.
        last_error: String,
    },
    /// The server process or container went away while we waited.
    #[error("PostgreSQL exited before it was ready: {0}")]
    Exited(String),
}

/// Polls until `SELECT 1` answers on `config`, `timeout` at most. `alive` is asked between
/// attempts and returns `Err(reason)` when the server is gone, to fail fast.
pub async fn wait_ready(
    config: &tokio_postgres::Config,
    timeout: Duration,
    mut alive: impl FnMut() -> Result<(), String>,
) -> Result<Duration, NotReady> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        let last_error = match try_select_one(config).await {
            Ok(()) => return Ok(started.elapsed()),
            Err(e) => e,
        };
        alive().map_err(NotReady::Exited)?;
        if started.elapsed() >= timeout {
            return Err(NotReady::Timeout {
                waited: started.elapsed(),
                last_error,
            });
        }
        // Poll briskly while a start is expected to finish, then back off.
        tokio::time::sleep(delay).await;
        if started.elapsed() > Duration::from_secs(3) {
            delay = Duration::from_millis(50);
        }
    }
}

async fn try_select_one(config: &tokio_postgres::Config) -> Result<(), String> {
    let mut config = config.clone();
    config.connect_timeout(Duration::from_secs(2));
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| client_error_text(&e))?;
    let task = tokio::spawn(connection);
    let result = client
        .simple_query("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| client_error_text(&e));
    drop(client);
    let _ = task.await;
    result
}
