//! The signals `devenv up` answers, installed before anything starts: Ctrl-C, SIGTERM (`devenv
//! down`) and SIGHUP stop it, in order, at any moment; SIGUSR1 (`devenv reload`) reloads and
//! SIGUSR2 (sent by `devenv snapshot restore`) tidies up, where their default action would end
//! the process.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The installed handlers.
pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

/// What a signal asks of a ready supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// Stop (its name).
    Stop(&'static str),
    /// `devenv reload` (SIGUSR1).
    Reload,
    /// A one-shot command changed the database (SIGUSR2): prune, spare, ready copies.
    Tidy,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
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

    /// Resolves on the next signal.
    pub async fn next(&mut self) -> Asked {
        tokio::select! {
            _ = self.int.recv() => Asked::Stop("interrupted"),
            _ = self.term.recv() => Asked::Stop("asked to stop (SIGTERM)"),
            _ = self.hup.recv() => Asked::Stop("hung up (SIGHUP)"),
            _ = self.usr1.recv() => Asked::Reload,
            _ = self.usr2.recv() => Asked::Tidy,
        }
    }
}
