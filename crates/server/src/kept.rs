//! Kept data and leftovers of a project's server, whatever the backend: found, described,
//! sized and forgotten here, so callers never rebuild a native layout or a volume name.
//!
//! - [`find_kept`]: the data a project keeps across stops (a native data directory, a Docker
//!   volume), for the backends its configuration may use.
//! - [`remove_leftover_containers`]: devenv's containers of a project and role, whatever any
//!   record says (found by label).
//! - [`forget_network`]: a devenv-made network that nothing uses any more.

use crate::error::ServerError;
use crate::native::{self, Layout};
use crate::spec::{Choice, Identity, Storage};

/// Data a project keeps across stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// A native cluster on disk.
    Native(Layout),
    /// A Docker volume.
    #[cfg(feature = "docker")]
    Docker {
        /// The volume's name.
        volume: String,
    },
}

/// What [`find_kept`] found.
#[derive(Debug, Default)]
pub struct KeptData {
    /// The kept data found (both kinds when both exist).
    pub found: Vec<Kept>,
    /// Why a kind could not be looked for (the Docker engine does not answer), if one could
    /// not: then "no data kept" is not known.
    pub unknown: Option<ServerError>,
}

impl Kept {
    /// Where it is, for people.
    pub fn describe(&self) -> String {
        match self {
            Kept::Native(layout) => layout
                .data_root
                .as_ref()
                .unwrap_or(&layout.data_dir)
                .display()
                .to_string(),
            #[cfg(feature = "docker")]
            Kept::Docker { volume } => format!("the volume {volume}"),
        }
    }

    /// Its size in bytes, when devenv can measure it (a volume's size is the engine's).
    pub fn size(&self) -> Option<u64> {
        match self {
            Kept::Native(layout) => Some(layout.data_size()),
            #[cfg(feature = "docker")]
            Kept::Docker { .. } => None,
        }
    }

    /// Removes it.
    #[cfg_attr(
        not(feature = "docker"),
        expect(clippy::unused_async, reason = "only the docker backend awaits here")
    )]
    pub async fn forget(&self) -> Result<(), ServerError> {
        match self {
            Kept::Native(layout) => {
                layout.remove_data();
                Ok(())
            }
            #[cfg(feature = "docker")]
            Kept::Docker { volume } => {
                let engine = crate::docker::engine_client().await?;
                crate::docker::forget_volume(&engine, volume)
                    .await
                    .map(drop)
            }
        }
    }
}

/// The data `identity`'s server keeps across stops, for the backends `choice` may use
/// (native and docker for `auto`; nothing for `external`, whose data is on its server).
pub async fn find_kept(identity: &Identity, choice: Choice) -> KeptData {
    let mut data = KeptData::default();
    if matches!(choice, Choice::Auto | Choice::Native) {
        let run_as = native::run_as().ok().flatten();
        let layout = Layout::new(identity, Storage::Persistent, run_as.as_ref());
        if layout.has_cluster() || layout.data_root.as_ref().is_some_and(|r| r.exists()) {
            data.found.push(Kept::Native(layout));
        }
    }
    #[cfg(feature = "docker")]
    if matches!(choice, Choice::Auto | Choice::Docker) {
        match crate::docker::engine_client().await {
            Ok(engine) => {
                let volume = identity.volume_name();
                if engine.inspect_volume(&volume).await.is_ok() {
                    data.found.push(Kept::Docker { volume });
                }
            }
            Err(e) => data.unknown = Some(e),
        }
    }
    data
}

/// Removes devenv's containers of `identity`'s project and role, whatever any record says;
/// returns their names, or `None` when `choice` may use Docker and no engine answers (they
/// could not be looked for).
pub async fn remove_leftover_containers(
    identity: &Identity,
    choice: Choice,
) -> Result<Option<Vec<String>>, ServerError> {
    if matches!(choice, Choice::Native | Choice::External) {
        return Ok(Some(Vec::new()));
    }
    #[cfg(feature = "docker")]
    {
        use crate::docker;
        let Ok(engine) = docker::engine_client().await else {
            return Ok(None);
        };
        let labels = [
            (crate::PROJECT_LABEL, identity.project_id.as_str()),
            (crate::ROLE_LABEL, identity.role.as_str()),
        ];
        let found = docker::find(&engine, &labels).await?;
        let names = found.iter().flat_map(|f| f.names.clone()).collect();
        docker::remove(&engine, &found).await?;
        Ok(Some(names))
    }
    #[cfg(not(feature = "docker"))]
    {
        let _ = identity;
        Ok(Some(Vec::new()))
    }
}

/// Removes every devenv-made network named `name` that no container uses (kept with the data
/// until `down --volumes`). Nothing to do without an engine.
pub async fn forget_network(name: &str) {
    #[cfg(feature = "docker")]
    if let Ok(engine) = crate::docker::engine_client().await {
        crate::docker::forget_network(&engine, name).await;
    }
    #[cfg(not(feature = "docker"))]
    let _ = name;
}
