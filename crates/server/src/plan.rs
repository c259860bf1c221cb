//! The one decision of which backend runs a server: [`plan`], a pure function of the
//! configured [`Choice`] and what was found ([`Facts`]). `up` ([`crate::start`]) acts on it;
//! `devenv doctor` prints it. Neither decides anything itself.

use crate::spec::{Backend, Choice};

/// What was found on this machine.
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent yes/no findings; an enum per finding would only rename them"
)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// A Docker engine answers.
    pub engine: bool,
    /// The image is present in it.
    pub image: bool,
    /// PostgreSQL binaries are found, and an account to run them as.
    pub binaries: bool,
    /// The port is free (or any port will do).
    pub port: bool,
    /// The external server answers (for `backend: external`).
    pub external: bool,
}

/// What would run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The backend tried first; `None` when nothing can run.
    pub first: Option<Backend>,
    /// The one tried when the first cannot get its image (`auto` only).
    pub then: Option<Backend>,
    /// Why, in a few words.
    pub reason: &'static str,
}

/// The plan for `choice` given `facts`.
pub fn plan(choice: Choice, facts: &Facts) -> Plan {
    let f = facts;
    let native = f.binaries && f.port;
    let (first, then, reason) = match choice {
        Choice::External if f.external => (
            Some(Backend::External),
            None,
            "configured; the server answers",
        ),
        Choice::External => (None, None, "configured, and the server does not answer"),
        Choice::Docker if f.engine && f.port && f.image => (
            Some(Backend::Docker),
            None,
            "configured; engine and image ready",
        ),
        Choice::Docker if f.engine && f.port => (
            Some(Backend::Docker),
            None,
            "configured; the image would be pulled first",
        ),
        Choice::Docker => (
            None,
            None,
            "configured, and the engine or port check failed",
        ),
        Choice::Native if native => (Some(Backend::Native), None, "configured; binaries found"),
        Choice::Native => (
            None,
            None,
            "configured, and the binaries, account or port check failed",
        ),
        Choice::Auto if f.engine && f.port && f.image => (
            Some(Backend::Docker),
            None,
            "auto: an engine answers and the image is present",
        ),
        Choice::Auto if f.engine && f.port && native => (
            Some(Backend::Docker),
            Some(Backend::Native),
            "auto: an engine answers; the image would be pulled, and if that fails, native",
        ),
        Choice::Auto if f.engine && f.port => (
            Some(Backend::Docker),
            None,
            "auto: an engine answers; the image would be pulled",
        ),
        Choice::Auto if native => (
            Some(Backend::Native),
            None,
            "auto: no Docker engine answers; PostgreSQL binaries are found",
        ),
        Choice::Auto => (
            None,
            None,
            "auto: neither a Docker engine nor PostgreSQL binaries",
        ),
    };
    Plan {
        first,
        then,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_docker_and_falls_back_to_native_only_when_it_can() {
        let all = Facts {
            engine: true,
            image: false,
            binaries: true,
            port: true,
            external: false,
        };
        let p = plan(Choice::Auto, &all);
        assert_eq!(
            (p.first, p.then),
            (Some(Backend::Docker), Some(Backend::Native))
        );
        let no_engine = Facts {
            engine: false,
            ..all
        };
        assert_eq!(plan(Choice::Auto, &no_engine).first, Some(Backend::Native));
        let nothing = Facts::default();
        assert_eq!(plan(Choice::Auto, &nothing).first, None);
        assert_eq!(plan(Choice::Native, &nothing).first, None);
    }
}
