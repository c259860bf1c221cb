//! A running server of any backend ([`Handle`]), what it is made of ([`Record`], written before
//! it is created), and the one place that starts servers ([`start`], acting on
//! [`crate::plan()`]'s decision for `auto`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::conninfo::Server;
#[cfg(feature = "docker")]
use crate::docker;
use crate::error::ServerError;
use crate::plan::{plan, Facts};
use crate::spec::{Backend, Choice, Spec};
use crate::{native, ready};

/// What a server is made of, as recorded before it is created: enough to find it again and
/// remove all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Record {
    /// A container, its network and volume.
    #[cfg(feature = "docker")]
    Docker(docker::DockerRecord),
    /// A native cluster.
    Native(native::Layout),
    /// A server devenv does not own.
    External,
}

impl Record {
    /// Which backend.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "docker")]
            Record::Docker(_) => Backend::Docker,
            Record::Native(_) => Backend::Native,
            Record::External => Backend::External,
        }
    }

    /// The host its server is reached on from this machine: 127.0.0.1, or for a container
    /// the host of the engine it runs on ([`crate::engine::reach`]). An external server's
    /// host is its URL's.
    pub fn host(&self) -> String {
        match self {
            #[cfg(feature = "docker")]
            Record::Docker(r) => r.reach().host,
            Record::Native(_) | Record::External => "127.0.0.1".to_owned(),
        }
    }

    /// The last `n` lines of the server's log, when devenv can read it (the container's
    /// output, the native log file); `None` for an external server or an engine that does not
    /// answer.
    #[cfg_attr(
        not(feature = "docker"),
        expect(clippy::unused_async, reason = "only the docker backend awaits here")
    )]
    pub async fn log_tail(&self, n: usize) -> Option<String> {
        match self {
            #[cfg(feature = "docker")]
            Record::Docker(r) => {
                let engine = docker::engine_client().await.ok()?;
                Some(docker::logs_tail(&engine, r.container_id.as_deref()?, n).await)
            }
            Record::Native(layout) => Some(native::log_tail(&layout.log, n)),
            Record::External => None,
        }
    }

    /// The container's id, when the record names a created container.
    pub fn container_id(&self) -> Option<String> {
        match self {
            #[cfg(feature = "docker")]
            Record::Docker(r) => r.container_id.clone(),
            Record::Native(_) | Record::External => None,
        }
    }

    /// Where the server keeps its data, for people (a full-disk message).
    pub fn data_location(&self) -> String {
        match self {
            Record::Native(layout) => format!("the data directory {}", layout.data_dir.display()),
            #[cfg(feature = "docker")]
            Record::Docker(r) => match &r.volume {
                Some(volume) => format!("the Docker engine's disk, volume {volume}"),
                None => "the container's tmpfs".to_owned(),
            },
            Record::External => "the server's data directory".to_owned(),
        }
    }

    /// The server's log file, when it has one (native: devenv opened it).
    pub fn log_file(&self) -> Option<&std::path::Path> {
        match self {
            Record::Native(layout) => Some(&layout.log),
            #[cfg(feature = "docker")]
            Record::Docker(_) => None,
            Record::External => None,
        }
    }

    /// The container's output (the last `lines`, or all), followed while it runs with
    /// `follow`, handed to `each` chunk by chunk. Returns `false` when the record names no
    /// running container (nothing was printed).
    #[cfg_attr(
        not(feature = "docker"),
        expect(clippy::unused_async, reason = "only the docker backend awaits here")
    )]
    pub async fn follow_container_log(
        &self,
        user: &str,
        password: &str,
        follow: bool,
        lines: Option<usize>,
        each: &mut (dyn FnMut(&str) -> std::io::Result<()> + Send),
    ) -> Result<bool, ServerError> {
        match self {
            #[cfg(feature = "docker")]
            Record::Docker(r) => {
                use futures_util::StreamExt as _;
                let Some(server) = docker::DockerServer::attach(r, user, password).await? else {
                    return Ok(false);
                };
                let mut stream = Box::pin(server.logs(follow, lines));
                while let Some(chunk) = stream.next().await {
                    each(&chunk).map_err(|source| ServerError::Io {
                        what: "writing the container's log to",
                        path: "stdout".into(),
                        source,
                    })?;
                }
                Ok(true)
            }
            _ => {
                let _ = (user, password, follow, lines, each);
                Ok(false)
            }
        }
    }

    /// Whether the record keeps data across stops.
    pub fn keeps_data(&self) -> bool {
        match self {
            #[cfg(feature = "docker")]
            Record::Docker(r) => r.volume.is_some(),
            Record::Native(layout) => !layout.ephemeral,
            Record::External => false,
        }
    }
}

/// A running server of any backend. Dropping it leaves the server running.
#[derive(Debug)]
pub enum Handle {
    /// A container.
    #[cfg(feature = "docker")]
    Docker(Box<docker::DockerServer>),
    /// A native postmaster.
    Native(native::NativeServer),
    /// A server devenv did not start and never stops.
    External(Server),
}

impl Handle {
    /// How to reach it.
    pub fn server(&self) -> &Server {
        match self {
            #[cfg(feature = "docker")]
            Handle::Docker(d) => &d.server,
            Handle::Native(n) => &n.server,
            Handle::External(s) => s,
        }
    }

    /// Which backend.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "docker")]
            Handle::Docker(_) => Backend::Docker,
            Handle::Native(_) => Backend::Native,
            Handle::External(_) => Backend::External,
        }
    }

    /// What it is made of.
    pub fn record(&self) -> Record {
        match self {
            #[cfg(feature = "docker")]
            Handle::Docker(d) => Record::Docker(docker::DockerRecord {
                container: d.name.clone(),
                container_id: Some(d.id.clone()),
                network: d.network.as_ref().map(|n| n.name.clone()),
                volume: d.volume.clone(),
                engine: Some(d.engine.clone()),
                volume_new: false,
            }),
            Handle::Native(n) => Record::Native(n.layout.clone()),
            Handle::External(_) => Record::External,
        }
    }

    /// Finds the running server `record` describes, checked against the world; `port` is the
    /// one recorded for a native server.
    #[cfg_attr(
        not(feature = "docker"),
        expect(clippy::unused_async, reason = "only the docker backend awaits here")
    )]
    pub async fn attach(
        record: &Record,
        user: &str,
        password: &str,
        port: u16,
    ) -> Result<Option<Handle>, ServerError> {
        Ok(match record {
            #[cfg(feature = "docker")]
            Record::Docker(r) => docker::DockerServer::attach(r, user, password)
                .await?
                .map(|d| Handle::Docker(Box::new(d))),
            Record::Native(layout) => {
                native::NativeServer::attach(layout, user, password, port).map(Handle::Native)
            }
            Record::External => None,
        })
    }

    /// Resolves when the server stops running, with how it ended. Never resolves for an
    /// external server.
    pub async fn exited(&self) -> String {
        match self {
            #[cfg(feature = "docker")]
            Handle::Docker(d) => d.exited().await,
            Handle::Native(n) => n.exited().await,
            Handle::External(_) => std::future::pending().await,
        }
    }

    /// Stops the server; kept data stays, throw-away data goes. An external server is left
    /// alone. Returns whether what devenv ran is gone (`false`: the Docker engine did not
    /// answer, and the container stays for `devenv down` to remove once it does).
    pub async fn stop(&self) -> bool {
        match self {
            #[cfg(feature = "docker")]
            Handle::Docker(d) => d.stop().await,
            Handle::Native(n) => {
                n.stop().await;
                true
            }
            Handle::External(_) => true,
        }
    }

    /// The server's log, when devenv can read it: the last `n` lines ([`Record::log_tail`]).
    pub async fn log_tail(&self, n: usize) -> Option<String> {
        self.record().log_tail(n).await
    }
}

/// Removes what `record` names when no supervisor runs it any more: a container, a native
/// postmaster (recognised by its data directory), throw-away data, a devenv-made network that
/// nothing uses; with `forget`, kept data too. Returns whether a server was running.
pub async fn clean(record: &Record, forget: bool) -> Result<bool, ServerError> {
    match record {
        #[cfg(feature = "docker")]
        Record::Docker(r) => docker::clean(r, forget).await,
        Record::Native(layout) => Ok(layout.clean(forget).await.is_some()),
        Record::External => Ok(false),
    }
}

/// Starts the server `spec` describes with the backend `choice` names (`external` takes
/// `external`); returns it and a sentence saying which backend runs it and why. `record` is
/// called before anything is created, and again as parts get their ids.
pub async fn start(
    choice: Choice,
    spec: &Spec,
    external: Option<&Server>,
    record: &mut (dyn FnMut(&Record) -> std::io::Result<()> + Send),
) -> Result<(Handle, String), ServerError> {
    match choice {
        Choice::Docker => Ok((
            start_docker(spec, record).await?,
            "backend: docker (configured)".into(),
        )),
        Choice::Native => Ok((
            start_native(spec, record).await?,
            "backend: native (configured)".into(),
        )),
        Choice::External => {
            let server = external.cloned().ok_or(ServerError::NoUrl)?;
            record(&Record::External).map_err(|source| ServerError::Io {
                what: "recording the server in",
                path: spec.identity.state_dir.clone(),
                source,
            })?;
            check_external(&server, spec.timeout).await?;
            Ok((
                Handle::External(server),
                "backend: external (configured url)".into(),
            ))
        }
        Choice::Auto => start_auto(spec, record).await,
    }
}

async fn check_external(server: &Server, timeout: Duration) -> Result<(), ServerError> {
    match ready::wait_ready(
        &server.config("postgres"),
        server.tls(),
        timeout.min(Duration::from_secs(10)),
        || None,
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(
            ready::NotReady::Refused(source)
            | ready::NotReady::Timeout {
                last: Some(source), ..
            },
        ) => Err(ServerError::Connect {
            what: "connecting to the external server",
            server: server.masked_url("postgres"),
            source,
        }),
        Err(_) => Err(ServerError::Command {
            what: "connecting to the external server",
            stderr: format!("{} did not answer", server.masked_url("postgres")),
        }),
    }
}

#[cfg(feature = "docker")]
async fn start_docker(
    spec: &Spec,
    record: &mut (dyn FnMut(&Record) -> std::io::Result<()> + Send),
) -> Result<Handle, ServerError> {
    let server =
        docker::DockerServer::start(spec, &mut |r| record(&Record::Docker(r.clone()))).await?;
    Ok(Handle::Docker(Box::new(server)))
}

#[cfg(not(feature = "docker"))]
#[expect(
    clippy::unused_async,
    reason = "the same signature as the docker build's"
)]
async fn start_docker(
    _spec: &Spec,
    _record: &mut (dyn FnMut(&Record) -> std::io::Result<()> + Send),
) -> Result<Handle, ServerError> {
    Err(ServerError::NoDockerSupport)
}

async fn start_native(
    spec: &Spec,
    record: &mut (dyn FnMut(&Record) -> std::io::Result<()> + Send),
) -> Result<Handle, ServerError> {
    let server =
        native::NativeServer::start(spec, &mut |l| record(&Record::Native(l.clone()))).await?;
    Ok(Handle::Native(server))
}

/// `auto`, as [`crate::plan::plan`] decides it: docker when an engine answers (and the image
/// is present or can be pulled), else native when binaries are found, else one error naming
/// both ways.
async fn start_auto(
    spec: &Spec,
    record: &mut (dyn FnMut(&Record) -> std::io::Result<()> + Send),
) -> Result<(Handle, String), ServerError> {
    #[cfg(feature = "docker")]
    let (engine_error, image) = match docker::engine_client().await {
        Ok(engine) => (None, docker::image_present(&engine, &spec.image).await),
        Err(e) => (Some(e), false),
    };
    #[cfg(not(feature = "docker"))]
    let (engine_error, image) = (Some(ServerError::NoDockerSupport), false);
    let bin_dir = native::find_bin_dir().await;
    let facts = Facts {
        engine: engine_error.is_none(),
        image,
        binaries: bin_dir.is_ok(),
        // A taken port fails the start with its own message.
        port: true,
        external: false,
    };
    let planned = plan(Choice::Auto, &facts);
    let docker_error = match (planned.first, engine_error) {
        (Some(Backend::Docker), _) => match start_docker(spec, record).await {
            Ok(handle) => {
                let how = if image { "present" } else { "pulled" };
                let why = format!(
                    "backend: docker (auto: an engine answered; image {} {how})",
                    spec.image
                );
                return Ok((handle, why));
            }
            Err(e @ ServerError::ImageMissing { .. }) => e,
            Err(e) => return Err(e),
        },
        (_, Some(e)) => e,
        (_, None) => ServerError::NoDockerSupport,
    };
    match bin_dir {
        Ok(dir) => {
            let handle = start_native(spec, record).await?;
            let why = format!(
                "backend: native (auto: {}; using PostgreSQL binaries in {})",
                first_line(&docker_error),
                dir.display()
            );
            Ok((handle, why))
        }
        Err(native_error) => Err(ServerError::NoServer {
            docker: Box::new(docker_error),
            native: Box::new(native_error),
        }),
    }
}

/// An error's message with its first cause, on one line.
fn first_line(e: &ServerError) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}
