//! What this machine offers for running a server: the Docker engine (and whether it has the
//! image), PostgreSQL binaries, the account postgres would run as. `devenv doctor` reports
//! these; [`crate::plan()`] decides from them.

use std::path::PathBuf;

use crate::error::ServerError;
use crate::native;

/// A Docker engine that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// Which engine, its version and API range (`Docker Engine 20.10.24 (API 1.12 to 1.41)`).
    pub which: String,
    /// Its address (`DOCKER_HOST`, or the default socket).
    pub address: String,
    /// Where the servers it runs publish their port, and, for an engine on another host,
    /// the host they are reached at (`127.0.0.1`; `0.0.0.0 of that host, reached as box`).
    pub published: String,
    /// Whether it has the image asked about.
    pub image_present: bool,
}

/// The Docker engine devenv would use, and whether it has `image`.
#[cfg_attr(
    not(feature = "docker"),
    expect(clippy::unused_async, reason = "only the docker backend awaits here")
)]
pub async fn engine(image: &str) -> Result<Engine, ServerError> {
    #[cfg(feature = "docker")]
    {
        use crate::{docker, engine};
        let client = docker::engine_client().await?;
        let address = engine::address();
        Ok(Engine {
            which: engine::info(&client)
                .await
                .map_or_else(|| "an engine".to_owned(), |i| i.to_string()),
            published: {
                let reach = engine::reach(&address);
                if reach.is_local() {
                    reach.bind.to_string()
                } else {
                    format!("{} of that host, reached as {}", reach.bind, reach.host)
                }
            },
            address,
            image_present: docker::image_present(&client, image).await,
        })
    }
    #[cfg(not(feature = "docker"))]
    {
        let _ = image;
        Err(ServerError::NoDockerSupport)
    }
}

/// PostgreSQL binaries found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// The directory holding `initdb` and `postgres`.
    pub dir: PathBuf,
    /// Their major version, when `postgres --version` says.
    pub version: Option<u32>,
}

/// The PostgreSQL binaries the native backend would use.
pub async fn binaries() -> Result<Binaries, ServerError> {
    let dir = native::find_bin_dir().await?;
    let version = native::major_version(&dir).await.ok();
    Ok(Binaries { dir, version })
}

/// The account postgres runs as: `None` for the current user (not root), else the account's
/// name; an error when devenv is root and no account fits.
pub fn account() -> Result<Option<String>, ServerError> {
    native::run_as().map(|user| user.map(|u| u.name))
}
