//! Readiness: a server is ready when a connection authenticates and `SELECT 1` answers.
//! Log lines are never counted (the official image prints its ready line twice on first init,
//! once on a kept volume). Connections go through [`crate::tls`] like every other.

use std::time::{Duration, Instant};

use crate::tls::{ConnectError, Tls};

/// Why a server did not become ready.
#[derive(Debug)]
pub enum NotReady {
    /// The deadline passed; the last connection error is kept.
    Timeout {
        /// How long we waited.
        waited: Duration,
        /// The last connection error.
        last: Option<ConnectError>,
    },
    /// The server process or container went away while we waited.
    Exited(String),
    /// The server answered and refused our credentials (SQLSTATE 28xxx), or the TLS settings
    /// or the certificate are wrong: waiting longer will not help.
    Refused(ConnectError),
}

/// Polls until `SELECT 1` answers on `config` (connected with `tls`), `timeout` at most.
/// `gone` is asked between attempts and returns `Some(reason)` when the server went away, to
/// fail fast.
pub async fn wait_ready(
    config: &tokio_postgres::Config,
    tls: &Tls,
    timeout: Duration,
    mut gone: impl FnMut() -> Option<String>,
) -> Result<Duration, NotReady> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(2);
    loop {
        let last = match try_select_one(config, tls).await {
            Ok(()) => return Ok(started.elapsed()),
            Err(e) if is_final(&e) => return Err(NotReady::Refused(e)),
            Err(e) => e,
        };
        if let Some(reason) = gone() {
            return Err(NotReady::Exited(reason));
        }
        if started.elapsed() >= timeout {
            return Err(NotReady::Timeout {
                waited: started.elapsed(),
                last: Some(last),
            });
        }
        // Nothing tells from outside when a server starts accepting connections: polled,
        // briskly while a start is expected to finish, then backing off.
        tokio::time::sleep(delay).await;
        delay = if started.elapsed() > Duration::from_secs(3) {
            Duration::from_millis(50)
        } else {
            (delay * 2).min(Duration::from_millis(10))
        };
    }
}

/// Whether the server answered and refused the login (bad password, unknown role): SQLSTATE
/// class 28, invalid authorization.
pub fn is_auth_failure(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| c.code().starts_with("28"))
}

/// A failure that waiting will not mend: the login refused, the TLS settings unusable, the
/// certificate refused.
fn is_final(e: &ConnectError) -> bool {
    e.is_settings() || e.why().is_some() || e.postgres().is_some_and(is_auth_failure)
}

async fn try_select_one(config: &tokio_postgres::Config, tls: &Tls) -> Result<(), ConnectError> {
    let mut config = config.clone();
    config.connect_timeout(Duration::from_secs(2));
    let (client, connection) = tls.connect(&config).await?;
    let task = tokio::spawn(connection);
    let result = client
        .simple_query("SELECT 1")
        .await
        .map(drop)
        .map_err(ConnectError::Postgres);
    drop(client);
    let _ = task.await;
    result
}
