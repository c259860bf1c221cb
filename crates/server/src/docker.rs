//! The docker backend: PostgreSQL in a container started through testcontainers.
//!
//! - The port is published on 127.0.0.1 only (testcontainers binds 0.0.0.0 by default, so a
//!   host-config modifier sets the binding).
//! - The data directory is a tmpfs and durability is off: a dev database is rebuilt from its
//!   files at every start, and this halves start and remove times.
//! - The container joins a user-defined network (created when missing, removed at the end if
//!   devenv created it) where it answers to the alias `db`, so compose services reach it at
//!   `db:5432`. testcontainers has no network-alias option, so the container is connected to the
//!   network with bollard (which testcontainers re-exports) once it runs.
//! - Labels name the project, so `devenv down` finds a container a `kill -9` left behind.
//! - Readiness is `SELECT 1` through the published port ([`crate::ready`]); on a timeout the
//!   error carries the container's last log lines.

use std::collections::HashMap;
use std::time::Duration;

use testcontainers::bollard::models::{
    EndpointSettings, NetworkConnectRequest, NetworkCreateRequest, PortBinding,
};
use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use testcontainers::bollard::Docker;
use testcontainers::core::client::docker_client_instance;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::ready::{wait_ready, NotReady};
use crate::Server;

/// Label holding the project's identity.
pub const PROJECT_LABEL: &str = "dev.devenv.project";
/// Label marking what devenv started.
pub const MANAGED_LABEL: &str = "dev.devenv.managed";

/// Docker backend failures, each one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// No engine answered.
    #[error("no Docker engine answered (tried {tried}): {message}; start one (`dockerd`, Docker Desktop) or use `backend: native`")]
    NoEngine {
        /// What was tried.
        tried: String,
        /// The client's error.
        message: String,
    },
    /// The image is missing and could not be pulled.
    #[error("image {image} is not present and could not be pulled ({message}); pull or build it, or set `image:` in devenv.yaml (or DEVENV_IMAGE) to an image you have")]
    ImageMissing {
        /// The image.
        image: String,
        /// The pull error.
        message: String,
    },
    /// The port is taken.
    #[error("port {port} on 127.0.0.1 is already in use; stop what uses it or set `port:` in devenv.yaml (or DEVENV_PORT; 0 picks a free port)")]
    PortTaken {
        /// The port.
        port: u16,
    },
    /// The container did not become ready.
    #[error("{source}\n--- last lines of the container's log ---\n{logs}")]
    NotReady {
        /// Why.
        #[source]
        source: NotReady,
        /// The container's last log lines.
        logs: String,
    },
    /// Anything else the engine said.
    #[error("{what}: {message}")]
    Engine {
        /// Which step.
        what: &'static str,
        /// The engine's error.
        message: String,
    },
}

fn engine(
    what: &'static str,
) -> impl FnOnce(testcontainers::bollard::errors::Error) -> DockerError {
    move |e| DockerError::Engine {
        what,
        message: e.to_string(),
    }
}

/// What the engine address resolves from, for error messages.
pub fn tried_hosts() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => format!("DOCKER_HOST={host}"),
        _ => {
            let mut tried = vec!["unix:///var/run/docker.sock".to_owned()];
            if let Some(home) = std::env::var_os("HOME") {
                tried.push(format!(
                    "{}/.docker/run/docker.sock",
                    std::path::Path::new(&home).display()
                ));
            }
            format!("DOCKER_HOST unset, {}", tried.join(", "))
        }
    }
}

/// Connects to the engine testcontainers uses and checks that it answers.
pub async fn engine_client() -> Result<Docker, DockerError> {
    let no_engine = |message: String| DockerError::NoEngine {
        tried: tried_hosts(),
        message,
    };
    let docker = docker_client_instance()
        .await
        .map_err(|e| no_engine(e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(no_engine(e.to_string())),
        Err(_) => Err(no_engine("no answer within 5 s".into())),
    }
}

/// Whether an image is present locally.
pub async fn image_present(docker: &Docker, image: &str) -> bool {
    docker.inspect_image(image).await.is_ok()
}

/// What to start.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// Image reference, `name:tag`.
    pub image: String,
    /// Container name (deterministic per project).
    pub container_name: String,
    /// Labels to put on the container (the project label among them).
    pub labels: Vec<(String, String)>,
    /// Host port on 127.0.0.1; 0 lets Docker pick one.
    pub port: u16,
    /// POSTGRES_USER.
    pub user: String,
    /// POSTGRES_PASSWORD.
    pub password: String,
    /// POSTGRES_DB.
    pub database: String,
    /// User-defined network to join with the alias `db`.
    pub network: Option<String>,
    /// How long to wait for readiness.
    pub timeout: Duration,
}

/// A running container; removed when [`DockerServer::remove`] is called or when dropped.
pub struct DockerServer {
    container: Option<ContainerAsync<GenericImage>>,
    docker: Docker,
    /// How to reach it from this machine.
    pub server: Server,
    /// Container id.
    pub id: String,
    /// The network it joined, and whether devenv created it.
    pub network: Option<(String, bool)>,
    /// Time from the start request to `SELECT 1`.
    pub ready_after: Duration,
}

impl std::fmt::Debug for DockerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerServer")
            .field("server", &self.server)
            .field("id", &self.id)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

fn split_image(image: &str) -> (&str, &str) {
    // A colon after the last slash separates the tag (a registry port comes before a slash).
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    }
}

impl DockerServer {
    /// Starts the container, joins the network, waits for `SELECT 1`.
    pub async fn start(options: &DockerOptions) -> Result<Self, DockerError> {
        let started = std::time::Instant::now();
        let docker = engine_client().await?;
        if options.port != 0 && crate::port_in_use(options.port) {
            return Err(DockerError::PortTaken { port: options.port });
        }
        let network = match &options.network {
            Some(name) => Some((name.clone(), ensure_network(&docker, name).await?)),
            None => None,
        };
        let (name, tag) = split_image(&options.image);
        let host_port = if options.port == 0 {
            String::new()
        } else {
            options.port.to_string()
        };
        let request = GenericImage::new(name, tag)
            .with_container_name(&options.container_name)
            .with_labels(options.labels.iter().cloned())
            .with_label(MANAGED_LABEL, "true")
            .with_env_var("POSTGRES_USER", &options.user)
            .with_env_var("POSTGRES_PASSWORD", &options.password)
            .with_env_var("POSTGRES_DB", &options.database)
            .with_cmd(std::iter::once("postgres".to_owned()).chain(crate::dev_settings_args()))
            .with_host_config_modifier(move |host| {
                host.port_bindings = Some(HashMap::from([(
                    "5432/tcp".to_owned(),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(host_port.clone()),
                    }]),
                )]));
                host.publish_all_ports = Some(false);
                host.tmpfs = Some(HashMap::from([(
                    "/var/lib/postgresql/data".to_owned(),
                    "rw,mode=0700".to_owned(),
                )]));
            })
            .with_startup_timeout(options.timeout);
        let present = image_present(&docker, &options.image).await;
        let container = match request.start().await {
            Ok(c) => c,
            Err(e) => {
                let message = e.to_string();
                if let Some((net, true)) = &network {
                    let _ = docker.remove_network(net).await;
                }
                return Err(if !present {
                    DockerError::ImageMissing {
                        image: options.image.clone(),
                        message,
                    }
                } else if message.contains("port is already allocated")
                    || message.contains("address already in use")
                {
                    DockerError::PortTaken { port: options.port }
                } else {
                    DockerError::Engine {
                        what: "starting the container",
                        message,
                    }
                });
            }
        };
        let id = container.id().to_owned();
        let mut this = DockerServer {
            container: Some(container),
            docker,
            server: Server {
                host: "127.0.0.1".into(),
                port: 0,
                user: options.user.clone(),
                password: options.password.clone(),
            },
            id,
            network,
            ready_after: Duration::ZERO,
        };
        if let Err(e) = this.finish_start(options).await {
            this.remove().await;
            return Err(e);
        }
        this.ready_after = started.elapsed();
        Ok(this)
    }

    async fn finish_start(&mut self, options: &DockerOptions) -> Result<(), DockerError> {
        let container = self.container.as_ref().expect("started");
        self.server.port =
            container
                .get_host_port_ipv4(5432)
                .await
                .map_err(|e| DockerError::Engine {
                    what: "reading the published port",
                    message: e.to_string(),
                })?;
        if let Some((network, _)) = &self.network {
            self.docker
                .connect_network(
                    network,
                    NetworkConnectRequest {
                        container: self.id.clone(),
                        endpoint_config: Some(EndpointSettings {
                            aliases: Some(vec!["db".into()]),
                            ..Default::default()
                        }),
                    },
                )
                .await
                .map_err(engine("joining the network"))?;
        }
        let config = self.server.config("postgres");
        let docker = self.docker.clone();
        let id = self.id.clone();
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        // Watch the container in the background so a crash fails the wait at once.
        let watcher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let alive = docker
                    .inspect_container(&id, None)
                    .await
                    .ok()
                    .and_then(|c| c.state?.running)
                    .unwrap_or(false);
                if !alive {
                    flag.store(false, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
            }
        });
        let ready = wait_ready(&config, options.timeout, || {
            if running.load(std::sync::atomic::Ordering::Relaxed) {
                Ok(())
            } else {
                Err("the container stopped".into())
            }
        })
        .await;
        watcher.abort();
        if let Err(source) = ready {
            let logs = logs_tail(&self.docker, &self.id, 30).await;
            return Err(DockerError::NotReady { source, logs });
        }
        Ok(())
    }

    /// Removes the container, and the network when devenv created it and nothing else uses it.
    pub async fn remove(&mut self) {
        if let Some(container) = self.container.take() {
            let _ = container.rm().await;
        }
        if let Some((network, true)) = self.network.take() {
            remove_network_if_unused(&self.docker, &network).await;
        }
    }
}

impl Drop for DockerServer {
    fn drop(&mut self) {
        // testcontainers removes the container itself when it is dropped; the network is ours.
        if let Some((network, true)) = self.network.take() {
            let docker = self.docker.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                drop(self.container.take());
                handle.spawn(async move { remove_network_if_unused(&docker, &network).await });
            }
        }
    }
}

/// Creates the network when it is missing; returns whether it was created.
pub async fn ensure_network(docker: &Docker, name: &str) -> Result<bool, DockerError> {
    if docker.inspect_network(name, None).await.is_ok() {
        return Ok(false);
    }
    match docker
        .create_network(NetworkCreateRequest {
            name: name.to_owned(),
            labels: Some(HashMap::from([(
                MANAGED_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            ..Default::default()
        })
        .await
    {
        Ok(_) => Ok(true),
        // Someone else created it meanwhile.
        Err(_) if docker.inspect_network(name, None).await.is_ok() => Ok(false),
        Err(e) => Err(engine("creating the network")(e)),
    }
}

/// Removes a network devenv created once no container is attached to it.
pub async fn remove_network_if_unused(docker: &Docker, name: &str) {
    let in_use = docker
        .inspect_network(name, None)
        .await
        .ok()
        .and_then(|n| n.containers)
        .is_some_and(|c| !c.is_empty());
    if !in_use {
        let _ = docker.remove_network(name).await;
    }
}

/// A container found by label.
#[derive(Debug, Clone)]
pub struct Found {
    /// Container id.
    pub id: String,
    /// Its names.
    pub names: Vec<String>,
    /// Its state (`running`, `exited`, ...).
    pub state: String,
    /// Networks it is attached to.
    pub networks: Vec<String>,
}

/// Containers whose labels match `key=value`, running or not.
pub async fn find_by_label(
    docker: &Docker,
    key: &str,
    value: &str,
) -> Result<Vec<Found>, DockerError> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("{key}={value}")])]);
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(engine("listing containers"))?;
    Ok(list
        .into_iter()
        .map(|c| Found {
            id: c.id.unwrap_or_default(),
            names: c.names.unwrap_or_default(),
            state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            networks: c
                .network_settings
                .and_then(|n| n.networks)
                .map(|n| n.into_keys().collect())
                .unwrap_or_default(),
        })
        .collect())
}

/// Force-removes containers by id, then any of `networks` that devenv created and no longer
/// uses. Returns how many containers were removed.
pub async fn remove_containers(docker: &Docker, found: &[Found]) -> Result<usize, DockerError> {
    for c in found {
        docker
            .remove_container(
                &c.id,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await
            .map_err(engine("removing a container"))?;
    }
    for network in found.iter().flat_map(|c| &c.networks) {
        let ours = docker
            .inspect_network(network, None)
            .await
            .ok()
            .and_then(|n| n.labels)
            .is_some_and(|l| l.contains_key(MANAGED_LABEL));
        if ours {
            remove_network_if_unused(docker, network).await;
        }
    }
    Ok(found.len())
}

/// The last `n` lines of a container's output.
pub async fn logs_tail(docker: &Docker, id: &str, n: usize) -> String {
    use futures_util::StreamExt as _;
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&n.to_string())
        .build();
    let mut stream = docker.logs(id, Some(options));
    let mut out = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&chunk.to_string());
    }
    out
}
