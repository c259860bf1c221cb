//! What this machine offers for running a server: the Docker engine (and whether it has the
//! image), PostgreSQL binaries, the account postgres would run as. `devenv doctor` reports
//! these; [`crate::plan`] decides from them.

use std::path::PathBuf;

use crate::error::ServerError;
use crate::native;

/// A Docker engine that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// Its version (`20.10.24`), `?` when it did not say.
    pub version: String,
    /// Where it was reached (`DOCKER_HOST=...`, or the default socket).
    pub host: String,
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
        use crate::docker;
        let client = docker::engine_client().await?;
        Ok(Engine {
            version: docker::engine_version(&client)
                .await
                .unwrap_or_else(|| "?".into()),
            host: docker::tried_hosts(),
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
