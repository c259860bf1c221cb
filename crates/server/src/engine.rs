//! Which Docker-compatible engine devenv talks to (cargo feature `docker`), and where what it
//! publishes is reached from this machine.
//!
//! - The engine's address is the one testcontainers connects to: `DOCKER_HOST`, else the
//!   local socket (`unix:///var/run/docker.sock`, or a rootless one). Docker Engine, Podman's
//!   Docker-compatible service (`podman system service`) and Docker Desktop all answer there.
//! - [`Reach`]: a local engine (a Unix socket, or TCP on a loopback address) publishes the
//!   server's port on that loopback address only, and clients connect there; an engine on
//!   another host (`tcp://build-box:2375`) publishes on all of that host's interfaces (its
//!   loopback is not this machine's), and clients connect to that host.
//! - [`EngineInfo`]: which engine answered (Docker Engine, Podman Engine), its version and the
//!   range of API versions it accepts, for `doctor` and for errors.

use std::net::{IpAddr, Ipv4Addr};

use testcontainers::bollard::Docker;

/// The engine's address when `DOCKER_HOST` is unset (what testcontainers tries first).
pub const DEFAULT_ADDRESS: &str = "unix:///var/run/docker.sock";

/// The engine's address as `DOCKER_HOST` names it (else [`DEFAULT_ADDRESS`]).
pub fn address() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned())
}

/// Where a server an engine runs is reached: the address its port is published on (on the
/// engine's host), and the host clients on this machine connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The host IP the engine binds the published port to.
    pub bind: IpAddr,
    /// The host (name or address) in `CONNECTION_URL`.
    pub host: String,
}

impl Reach {
    /// Whether the engine runs on this machine (its published ports are on loopback).
    pub fn is_local(&self) -> bool {
        self.bind.is_loopback()
    }
}

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Where the servers of the engine at `address` (a `DOCKER_HOST` value) are reached: a Unix
/// socket or `localhost` is this machine's 127.0.0.1; TCP to a loopback address is that
/// address; TCP to any other host is that host, published on all its interfaces.
pub fn reach(address: &str) -> Reach {
    let local = Reach {
        bind: LOOPBACK,
        host: LOOPBACK.to_string(),
    };
    let Ok(url) = url::Url::parse(address) else {
        return local;
    };
    if !matches!(url.scheme(), "tcp" | "http" | "https") {
        return local;
    }
    // `tcp://` is not a special scheme to the URL parser: its host comes back as text.
    let Some(host) = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
    else {
        return local;
    };
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Reach {
            bind: ip,
            host: ip.to_string(),
        },
        _ if host.eq_ignore_ascii_case("localhost") => local,
        _ => Reach {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            host: host.to_owned(),
        },
    }
}

/// Which engine answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// `Docker Engine`, `Podman Engine`, ...
    pub name: String,
    /// Its version (`20.10.24+dfsg1`, `4.3.1`).
    pub version: String,
    /// The newest API version it speaks (`1.41`).
    pub api_version: String,
    /// The oldest API version it accepts (`1.12`).
    pub min_api_version: String,
}

impl std::fmt::Display for EngineInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (API {} to {})",
            self.name, self.version, self.min_api_version, self.api_version
        )
    }
}

/// Asks the engine which it is (`GET /version`).
pub async fn info(docker: &Docker) -> Option<EngineInfo> {
    let version = docker.version().await.ok()?;
    // Docker names its server component `Engine`; Podman's compatible service `Podman Engine`.
    let name = match version
        .components
        .as_ref()
        .and_then(|c| c.first())
        .map(|c| c.name.as_str())
    {
        Some("Engine") | None => "Docker Engine".to_owned(),
        Some(other) => other.to_owned(),
    };
    Some(EngineInfo {
        name,
        version: version.version.unwrap_or_else(|| "?".into()),
        api_version: version.api_version.unwrap_or_else(|| "?".into()),
        min_api_version: version.min_api_version.unwrap_or_else(|| "?".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_sockets_and_localhost_are_this_machines_loopback() {
        for address in [
            DEFAULT_ADDRESS,
            "unix:///run/podman/podman.sock",
            "tcp://localhost:2375",
            "not a url",
        ] {
            let reach = reach(address);
            assert_eq!(reach.host, "127.0.0.1", "{address}");
            assert_eq!(reach.bind, LOOPBACK, "{address}");
            assert!(reach.is_local(), "{address}");
        }
    }

    #[test]
    fn a_loopback_tcp_engine_publishes_on_its_own_address() {
        let reach = reach("tcp://127.0.0.2:23750");
        assert_eq!(reach.host, "127.0.0.2");
        assert_eq!(reach.bind, "127.0.0.2".parse::<IpAddr>().unwrap());
        assert!(reach.is_local());
        let reach = super::reach("tcp://[::1]:2375");
        assert_eq!((reach.host.as_str(), reach.is_local()), ("::1", true));
    }

    #[test]
    fn an_engine_on_another_host_publishes_on_all_its_interfaces() {
        for (address, host) in [
            ("tcp://build-box.internal:2375", "build-box.internal"),
            ("https://10.1.2.3:2376", "10.1.2.3"),
            ("tcp://[2001:db8::7]:2375", "2001:db8::7"),
        ] {
            let reach = reach(address);
            assert_eq!(reach.host, host, "{address}");
            assert_eq!(reach.bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED), "{address}");
            assert!(!reach.is_local(), "{address}");
        }
    }
}
