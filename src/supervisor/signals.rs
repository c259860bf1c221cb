//! The signals `devenv up` answers, installed before anything starts: Ctrl-C, SIGTERM (`devenv
//! down`) and SIGHUP stop it, in order, at any moment; SIGUSR1 (`devenv reload`) reloads, where
//! its default action would end the process.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The installed handlers.
pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
    usr1: Signal,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }

    /// Resolves on a stop signal, with its name.
    pub async fn stop(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "interrupted",
            _ = self.term.recv() => "asked to stop (SIGTERM)",
            _ = self.hup.recv() => "hung up (SIGHUP)",
        }
    }

    /// Resolves on the next signal: `Some(name)` for a stop, `None` for `devenv reload`'s
    /// SIGUSR1.
    pub async fn next(&mut self) -> Option<&'static str> {
        tokio::select! {
            _ = self.int.recv() => Some("interrupted"),
            _ = self.term.recv() => Some("asked to stop (SIGTERM)"),
            _ = self.hup.recv() => Some("hung up (SIGHUP)"),
            _ = self.usr1.recv() => None,
        }
    }
}
