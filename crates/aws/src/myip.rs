//! This machine's public IPv4 address, from a what-is-my-ip service (the seeds'
//! `GITPOD_IP=$(curl ifconfig.me)`). Asked over IPv4 only: the rule takes an IPv4 range, and a
//! dual-stack machine would otherwise be told its IPv6 address.

use std::net::Ipv4Addr;
use std::time::Duration;

use ureq::config::IpFamily;

use crate::AwsError;

/// The default service: `ifconfig.me` as in the seeds, over HTTPS (a forged answer would open
/// the database to someone else's address), at `/ip`, which answers the bare address whatever
/// the client (the bare host answers HTML to anything that is not curl).
pub const DEFAULT_SERVICE: &str = "https://ifconfig.me/ip";

/// How long the service may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Asks `url` for this machine's IPv4 address.
pub async fn my_ip(url: &str) -> Result<Ipv4Addr, AwsError> {
    let owned = url.to_owned();
    tokio::task::spawn_blocking(move || ask(&owned))
        .await
        .map_err(|e| lookup_error(url, &e.to_string()))?
}

fn ask(url: &str) -> Result<Ipv4Addr, AwsError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .ip_family(IpFamily::Ipv4Only)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| lookup_error(url, &e.to_string()))?;
    let body = response
        .body_mut()
        .with_config()
        .limit(1024)
        .read_to_string()
        .map_err(|e| lookup_error(url, &e.to_string()))?;
    parse_answer(&body).ok_or_else(|| {
        let shown: String = body.trim().chars().take(40).collect();
        lookup_error(url, &format!("it answered `{shown}`, not an IPv4 address"))
    })
}

/// The address in a service's answer (`203.0.113.7\n`).
fn parse_answer(body: &str) -> Option<Ipv4Addr> {
    body.trim().parse().ok()
}

fn lookup_error(url: &str, message: &str) -> AwsError {
    AwsError::IpLookup {
        url: url.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_bare_ipv4_addresses() {
        assert_eq!(
            parse_answer("203.0.113.7\n"),
            Some(Ipv4Addr::new(203, 0, 113, 7))
        );
        assert_eq!(parse_answer("2001:db8::1"), None);
        assert_eq!(parse_answer("<html>"), None);
    }

    #[tokio::test]
    async fn an_unreachable_service_says_to_pass_the_ip() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/");
        let e = my_ip(&url).await.unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot learn this machine's IP from {url}")),
            "{e}"
        );
        assert!(
            e.ends_with("pass --ip IP, or set `ip_service:` under `prod:` in devenv.yaml"),
            "{e}"
        );
    }
}
