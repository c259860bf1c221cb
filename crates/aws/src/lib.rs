//! devenv's AWS chores around the seeds' prod database, through the official AWS SDK for Rust:
//!
//! - [`Aws`]: EC2 and RDS clients from the standard chain (environment variables, `~/.aws`,
//!   profiles, SSO; `AWS_ENDPOINT_URL` honoured), TLS through rustls with ring.
//! - [`rule`]: the security group's inbound rule for this machine's IP (the seeds'
//!   `db-update-sg-rule`), and whether a group lets an IP in.
//! - [`instance`]: the RDS instance: describe, create, stop, start, wait for a state.
//! - [`myip`]: this machine's public IPv4 address from a what-is-my-ip service.
//! - [`error`]: one-line errors that say the fix.
//!
//! The SDK crates are re-exported ([`ec2`], [`rds`]) for callers that set things up the
//! chores then work on (the end-to-end tests create a VPC, group and rule with them).

pub mod error;
pub mod instance;
pub mod myip;
pub mod rule;

pub use aws_sdk_ec2 as ec2;
pub use aws_sdk_rds as rds;
pub use error::AwsError;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// Clients for one region.
#[derive(Debug, Clone)]
pub struct Aws {
    ec2: ec2::Client,
    rds: rds::Client,
    region: String,
}

/// Choices made over the standard chain's.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The region (devenv.yaml's `region:`), over `AWS_REGION`, `AWS_DEFAULT_REGION` and the
    /// profile's.
    pub region: Option<String>,
    /// An endpoint for every service, over `AWS_ENDPOINT_URL` (an emulator).
    pub endpoint_url: Option<String>,
    /// An access key id and secret, over the credential chain.
    pub credentials: Option<(String, String)>,
}

impl Aws {
    /// Loads the standard configuration, with devenv.yaml's `region` (if any) over the chain's.
    /// Credentials are looked up at the first call.
    pub async fn connect(region: Option<&str>) -> Result<Aws, AwsError> {
        Self::connect_with(&Settings {
            region: region.map(str::to_owned),
            ..Settings::default()
        })
        .await
    }

    /// Loads the standard configuration with `settings` over it.
    pub async fn connect_with(settings: &Settings) -> Result<Aws, AwsError> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((key, secret)) = &settings.credentials {
            loader = loader.credentials_provider(Credentials::new(
                key.as_str(),
                secret.as_str(),
                None,
                None,
                "devenv-settings",
            ));
        }
        let config = loader.load().await;
        let region = config.region().ok_or(AwsError::NoRegion)?.to_string();
        Ok(Aws {
            ec2: ec2::Client::new(&config),
            rds: rds::Client::new(&config),
            region,
        })
    }

    /// The EC2 client.
    pub fn ec2(&self) -> &ec2::Client {
        &self.ec2
    }

    /// The RDS client.
    pub fn rds(&self) -> &rds::Client {
        &self.rds
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }
}
