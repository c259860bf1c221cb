//! The docker backend (cargo feature `docker`): PostgreSQL in a container started through
//! testcontainers, with testcontainers-modules' Postgres image type naming the configured
//! image and tag and setting `POSTGRES_USER`/`POSTGRES_PASSWORD`/`POSTGRES_DB`.
//!
//! - Readiness is `SELECT 1` through the published port ([`crate::ready`]), not the module's
//!   log-line conditions: the official image prints its ready line twice on first init and
//!   once on a kept volume.
//! - The port is published on 127.0.0.1 only (a host-config modifier sets the binding).
//! - Data: kept data lives in a named volume per project, labelled like the container and
//!   mounted at the image's `PGDATA`; throw-away data on a tmpfs. Durability is off
//!   (`fsync=off`): a crash of postgres alone is recovered by postgres, and a dev database
//!   accepts losing the last moments of a machine crash.
//! - Networks: the container joins a user-defined network, where it answers to the alias
//!   `db`, so compose services reach it at `db:5432`. Networks are found by exact name and
//!   used by id; a duplicate made by two starts racing is removed (the oldest wins), so an
//!   "ambiguous name" never blocks a start. A devenv-made network is removed when no container
//!   uses it any more.
//! - What devenv creates carries labels ([`MANAGED_LABEL`], [`PROJECT_LABEL`], [`ROLE_LABEL`]);
//!   nothing without them is ever removed. Containers are created with testcontainers' reuse
//!   directive, so dropping a handle never removes one behind devenv's back: stopping is
//!   explicit ([`DockerServer::stop`]), keeping is the default.
//!
//! What testcontainers does here, and why the rest is bollard: testcontainers finds the engine
//! as every testcontainers user's tools do (`DOCKER_HOST`, `~/.testcontainers.properties`, the
//! default socket; [`engine_client`] is its client), and creates and starts the container from
//! testcontainers-modules' Postgres image type (image name and tag, `POSTGRES_*` variables,
//! labels, the reuse directive, the command, mounts, a host-config modifier for the port
//! binding, network and tmpfs). Everything a dev supervisor needs after that is outside what
//! testcontainers offers, which is made for a container per test that goes with the test:
//! user-defined networks found by name and shared between projects, named volumes that outlive
//! the container, a container found again after a `kill -9` (inspect, labels), the engine's
//! event stream to notice a death, logs followed, `docker exec` to repair a kept volume's
//! password, and a clean stop with data kept. Those are bollard calls, through the client
//! testcontainers re-exports (`testcontainers::bollard`), so both speak to one engine with one
//! pinned bollard version (testcontainers 0.27 with bollard 0.20, which sends no API version:
//! Docker 20.10 and newer engines accept it).

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use testcontainers::bollard::models::{NetworkCreateRequest, PortBinding, VolumeCreateRequest};
use testcontainers::bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StopContainerOptionsBuilder,
};
use testcontainers::bollard::Docker;
use testcontainers::core::client::docker_client_instance;
use testcontainers::core::Mount;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ImageExt, ReuseDirective};
use testcontainers_modules::postgres::Postgres;

use crate::conninfo::Server;
use crate::error::{Cause, ServerError};
use crate::ready::{wait_ready, NotReady};
use crate::spec::{PasswordAuth, Progress, Spec, Step, Storage};

pub use crate::spec::{MANAGED_LABEL, PROJECT_LABEL, ROLE_LABEL, ROOT_LABEL};

/// The official images' data directory, when the image does not say.
const DEFAULT_PGDATA: &str = "/var/lib/postgresql/data";

fn engine(
    what: &'static str,
) -> impl FnOnce(testcontainers::bollard::errors::Error) -> ServerError {
    move |e| ServerError::Engine {
        what,
        source: Box::new(e),
    }
}

/// What the engine address resolves from, for error messages.
pub fn tried_hosts() -> String {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.trim().is_empty() => format!("DOCKER_HOST={host}"),
        _ => format!("DOCKER_HOST unset, {}", crate::engine::DEFAULT_ADDRESS),
    }
}

/// Connects to the engine testcontainers uses and checks that it answers.
pub async fn engine_client() -> Result<Docker, ServerError> {
    let no_engine = |source: Cause| ServerError::NoEngine {
        tried: tried_hosts(),
        source,
    };
    let docker = docker_client_instance()
        .await
        .map_err(|e| no_engine(Box::new(e)))?;
    match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(no_engine(Box::new(e))),
        Err(_) => Err(no_engine("no answer within 5 s".into())),
    }
}

/// Whether an image is present locally.
pub async fn image_present(docker: &Docker, image: &str) -> bool {
    docker.inspect_image(image).await.is_ok()
}

/// The image's `PGDATA`, where a kept volume is mounted.
async fn image_pgdata(docker: &Docker, image: &str) -> String {
    docker
        .inspect_image(image)
        .await
        .ok()
        .and_then(|i| i.config?.env)
        .and_then(|env| {
            env.iter()
                .find_map(|e| e.strip_prefix("PGDATA=").map(str::to_owned))
        })
        .unwrap_or_else(|| DEFAULT_PGDATA.to_owned())
}

/// Pulls `image`, reporting layer progress.
async fn pull(docker: &Docker, image: &str, progress: &Progress) -> Result<(), ServerError> {
    let (name, tag) = split_image(image);
    let options = testcontainers::bollard::query_parameters::CreateImageOptionsBuilder::default()
        .from_image(name)
        .tag(tag)
        .build();
    let mut stream = docker.create_image(Some(options), None, None);
    let mut layers: HashMap<String, (i64, i64)> = HashMap::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| ServerError::ImageMissing {
            image: image.to_owned(),
            source: Box::new(e),
        })?;
        if let (Some(id), Some(detail)) = (info.id, info.progress_detail) {
            layers.insert(id, (detail.current.unwrap_or(0), detail.total.unwrap_or(0)));
            let (done, total) = layers
                .values()
                .fold((0, 0), |(d, t), (c, n)| (d + c, t + n));
            progress.report(Step::Pulling {
                image: image.to_owned(),
                layers: layers.len(),
                done: u64::try_from(done).unwrap_or(0),
                total: u64::try_from(total).unwrap_or(0),
            });
        }
    }
    Ok(())
}

fn split_image(image: &str) -> (&str, &str) {
    // A colon after the last slash separates the tag (a registry port comes before a slash).
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    }
}

/// What a docker server is made of, recorded before each part is created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerRecord {
    /// Container name (deterministic per project and role).
    pub container: String,
    /// Container id, once created.
    pub container_id: Option<String>,
    /// Network name.
    pub network: Option<String>,
    /// Volume name (kept data).
    pub volume: Option<String>,
    /// The engine it was created on (`DOCKER_HOST`'s value, else the default socket): where
    /// its published port is reached ([`crate::engine::reach`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Whether the volume was created by this start and its server has not answered yet: it
    /// holds at most half an `initdb` and nothing of the user's, so cleaning up after a start
    /// killed at that moment removes it (the next start initialises a new one).
    #[serde(default)]
    pub volume_new: bool,
}

impl DockerRecord {
    /// Where its published port is reached from this machine.
    pub fn reach(&self) -> crate::engine::Reach {
        crate::engine::reach(
            self.engine
                .as_deref()
                .unwrap_or(crate::engine::DEFAULT_ADDRESS),
        )
    }
}

/// A network, found by exact name and used by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRef {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// Networks named exactly `name`, oldest first (ties by id): every racer picks the same one.
async fn networks_named(
    docker: &Docker,
    name: &str,
) -> Result<Vec<testcontainers::bollard::models::Network>, ServerError> {
    let filters = HashMap::from([("name".to_owned(), vec![name.to_owned()])]);
    let mut found: Vec<_> = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(engine("listing networks"))?
        .into_iter()
        // The engine's filter matches substrings.
        .filter(|n| n.name.as_deref() == Some(name))
        .collect();
    found.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
    Ok(found)
}

fn is_managed(labels: Option<&HashMap<String, String>>) -> bool {
    labels.is_some_and(|l| l.get(MANAGED_LABEL).is_some_and(|v| v == "true"))
}

/// Finds or creates the network `name`; removes duplicates a race made.
pub async fn ensure_network(docker: &Docker, name: &str) -> Result<NetworkRef, ServerError> {
    if networks_named(docker, name).await?.is_empty() {
        let created = docker
            .create_network(NetworkCreateRequest {
                name: name.to_owned(),
                labels: Some(HashMap::from([(
                    MANAGED_LABEL.to_owned(),
                    "true".to_owned(),
                )])),
                ..Default::default()
            })
            .await;
        if let Err(e) = created {
            if networks_named(docker, name).await?.is_empty() {
                return Err(engine("creating the network")(e));
            }
        }
    }
    let found = networks_named(docker, name).await?;
    let Some(keep) = found.first() else {
        return Err(ServerError::Engine {
            what: "creating the network",
            source: format!("network {name} vanished right after it was created").into(),
        });
    };
    for extra in &found[1..] {
        if let Some(id) = extra
            .id
            .as_deref()
            .filter(|_| is_managed(extra.labels.as_ref()))
        {
            remove_network_if_unused(docker, id).await;
        }
    }
    Ok(NetworkRef {
        id: keep.id.clone().unwrap_or_default(),
        name: name.to_owned(),
    })
}

/// Removes a devenv-made network (by id or name) when no container uses it.
pub async fn remove_network_if_unused(docker: &Docker, id_or_name: &str) {
    let Ok(network) = docker.inspect_network(id_or_name, None).await else {
        return;
    };
    let in_use = network.containers.as_ref().is_some_and(|c| !c.is_empty());
    if is_managed(network.labels.as_ref()) && !in_use {
        let _ = docker
            .remove_network(network.id.as_deref().unwrap_or(id_or_name))
            .await;
    }
}

/// Removes every devenv-made network named `name` that no container uses (`down --volumes`,
/// throw-away data).
pub async fn forget_network(docker: &Docker, name: &str) {
    for network in networks_named(docker, name).await.unwrap_or_default() {
        if let Some(id) = network.id {
            remove_network_if_unused(docker, &id).await;
        }
    }
}

/// A running container.
#[derive(Debug)]
pub struct DockerServer {
    docker: Docker,
    /// How to reach it from this machine.
    pub server: Server,
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// The network it joined.
    pub network: Option<NetworkRef>,
    /// The volume holding its data (kept data).
    pub volume: Option<String>,
    /// The engine it runs on (see [`DockerRecord::engine`]).
    pub engine: String,
}

impl DockerServer {
    /// Starts the container of `spec` (creating network and volume as needed), joins the
    /// network and waits for `SELECT 1`. `record` is called before each part is created.
    pub async fn start(
        spec: &Spec,
        record: &mut (dyn FnMut(&DockerRecord) -> std::io::Result<()> + Send),
    ) -> Result<Self, ServerError> {
        spec.progress.report(Step::Connecting);
        let docker = engine_client().await?;
        let engine = crate::engine::address();
        let reach = crate::engine::reach(&engine);
        // A port on another host's engine cannot be checked from here: the engine says.
        if spec.port != 0 && reach.is_local() && crate::ports::port_in_use(spec.port) {
            return Err(ServerError::PortTaken { port: spec.port });
        }
        let mut rec = DockerRecord {
            container: spec.identity.name.clone(),
            container_id: None,
            network: spec.network.clone(),
            volume: (spec.storage == Storage::Persistent).then(|| spec.identity.volume_name()),
            engine: Some(engine.clone()),
            volume_new: false,
        };
        let recorded =
            |r: &DockerRecord, f: &mut (dyn FnMut(&DockerRecord) -> std::io::Result<()> + Send)| {
                f(r).map_err(|source| ServerError::Io {
                    what: "recording what is about to be created in",
                    path: spec.identity.state_dir.clone(),
                    source,
                })
            };
        recorded(&rec, record)?;
        if !image_present(&docker, &spec.image).await {
            pull(&docker, &spec.image, &spec.progress).await?;
        }
        let network = match &spec.network {
            Some(name) => Some(ensure_network(&docker, name).await?),
            None => None,
        };
        if let Some(volume) = rec.volume.clone() {
            if docker.inspect_volume(&volume).await.is_err() {
                rec.volume_new = true;
                recorded(&rec, record)?;
            }
            ensure_volume(&docker, &volume, spec).await?;
        }
        if let Some(net) = &network {
            if let Some(other) = answering_as_db(&docker, net, spec, None).await? {
                return Err(db_name_taken(net, &other, spec));
            }
        }
        spec.progress.report(Step::Starting);
        let (id, network) =
            create_on_network(&docker, spec, &reach, rec.volume.as_deref(), network).await?;
        rec.container_id = Some(id.clone());
        recorded(&rec, record)?;
        if let Some(net) = &network {
            // Two starts that checked at the same moment: the one created later gives way.
            if let Some(other) = answering_as_db(&docker, net, spec, Some(&id)).await? {
                remove_named(&docker, &spec.identity.name).await;
                if rec.volume_new {
                    if let Some(volume) = &rec.volume {
                        let _ = forget_volume(&docker, volume).await;
                    }
                }
                remove_network_if_unused(&docker, &net.id).await;
                return Err(db_name_taken(net, &other, spec));
            }
        }
        let mut this = DockerServer {
            docker,
            server: Server::on(&reach.host, 0, &spec.user, &spec.password),
            id,
            name: rec.container.clone(),
            network,
            volume: rec.volume.clone(),
            engine,
        };
        if let Err(e) = this.finish_start(spec).await {
            this.stop().await;
            if rec.volume_new {
                if let Some(volume) = &rec.volume {
                    let _ = forget_volume(&this.docker, volume).await;
                }
            }
            return Err(e);
        }
        if rec.volume_new {
            // Initialised: from now on the volume holds the user's data.
            rec.volume_new = false;
            recorded(&rec, record)?;
        }
        Ok(this)
    }

    async fn finish_start(&mut self, spec: &Spec) -> Result<(), ServerError> {
        if let Some(network) = &self.network {
            answer_as_db(&self.docker, &self.id, network).await?;
        }
        let port = self
            .published_port()
            .await
            .ok_or_else(|| ServerError::Engine {
                what: "reading the published port",
                source: "the container publishes no port for 5432/tcp".into(),
            })?;
        self.server = Server::on(&self.server.host(), port, &spec.user, &spec.password);
        spec.progress.report(Step::WaitingReady);
        // The container's death during the wait comes from the engine's events.
        let state = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let watcher = {
            let (docker, id, state) = (self.docker.clone(), self.id.clone(), state.clone());
            tokio::spawn(async move {
                let gone = container_exited(&docker, &id).await;
                *state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(gone);
            })
        };
        let config = self.server.config("postgres");
        let ready = wait_ready(&config, self.server.tls(), spec.timeout, || {
            state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        })
        .await;
        watcher.abort();
        match ready {
            Ok(_) => self.quicken_password(spec).await,
            Err(NotReady::Refused(e)) if self.volume.is_some() => {
                self.repair_password(spec, e).await?;
                self.quicken_password(spec).await
            }
            Err(NotReady::Refused(source)) => Err(ServerError::Connect {
                what: "logging in",
                server: self.server.masked_url("postgres"),
                source,
            }),
            Err(NotReady::Exited(status)) => Err(ServerError::Exited {
                status,
                log_name: "the container's log".into(),
                tail: self.logs_tail(30).await,
            }),
            Err(NotReady::Timeout { waited, last }) => Err(ServerError::NotReady {
                waited,
                log_name: "the container's log".into(),
                tail: self.logs_tail(30).await,
                source: last,
            }),
        }
    }

    /// For [`PasswordAuth::QuickScram`], gives the superuser a quick verifier of its password
    /// ([`crate::scram`]); this one login pays the image's 4096 rounds, the later ones do not.
    async fn quicken_password(&self, spec: &Spec) -> Result<(), ServerError> {
        if spec.password_auth != PasswordAuth::QuickScram {
            return Ok(());
        }
        let failed = |source| ServerError::Db {
            what: "giving the superuser a quick SCRAM verifier",
            server: self.server.masked_url("postgres"),
            source,
        };
        let config = self.server.config("postgres");
        let (client, connection) =
            self.server
                .tls()
                .connect(&config)
                .await
                .map_err(|source| ServerError::Connect {
                    what: "logging in",
                    server: self.server.masked_url("postgres"),
                    source,
                })?;
        let task = tokio::spawn(connection);
        let result = client
            .batch_execute(&crate::scram::alter_role_sql(&spec.user, &spec.password))
            .await
            .map_err(failed);
        drop(client);
        let _ = task.await;
        result
    }

    /// Kept data made with another password: the image trusts local connections inside the
    /// container, so the role gets the configured password there (or the user is told that
    /// the kept data belongs to another user).
    async fn repair_password(
        &self,
        spec: &Spec,
        refused: crate::tls::ConnectError,
    ) -> Result<(), ServerError> {
        let script = "printf '%s' \"$DEVENV_SQL\" | psql -v ON_ERROR_STOP=1 -qX -U \"$DEVENV_ROLE\" -d postgres";
        let sql = format!(
            "ALTER ROLE {} PASSWORD {}",
            crate::sql::quote_ident(&spec.user),
            crate::sql::quote_literal(&spec.password)
        );
        let (code, output) = self
            .exec(
                &["sh", "-c", script],
                vec![
                    format!("DEVENV_SQL={sql}"),
                    format!("DEVENV_ROLE={}", spec.user),
                ],
            )
            .await?;
        if code != 0 {
            if output.contains("does not exist") {
                return Err(ServerError::UserChanged {
                    found: "another user".into(),
                    wanted: spec.user.clone(),
                });
            }
            return Err(ServerError::Connect {
                what: "logging in (and resetting the password inside the container failed)",
                server: self.server.masked_url("postgres"),
                source: refused,
            });
        }
        let config = self.server.config("postgres");
        wait_ready(&config, self.server.tls(), Duration::from_secs(10), || None)
            .await
            .map(drop)
            .map_err(|_| ServerError::Connect {
                what: "logging in after resetting the password",
                server: self.server.masked_url("postgres"),
                source: refused,
            })
    }

    /// Runs a command in the container; returns its exit code and output.
    async fn exec(&self, cmd: &[&str], env: Vec<String>) -> Result<(i64, String), ServerError> {
        use testcontainers::bollard::exec::{CreateExecOptions, StartExecResults};
        let created = self
            .docker
            .create_exec(
                &self.id,
                CreateExecOptions {
                    cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
                    env: Some(env),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(engine("running a command in the container"))?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(engine("running a command in the container"))?
        {
            while let Some(Ok(chunk)) = output.next().await {
                text.push_str(&chunk.to_string());
            }
        }
        let code = self
            .docker
            .inspect_exec(&created.id)
            .await
            .ok()
            .and_then(|i| i.exit_code)
            .unwrap_or(-1);
        Ok((code, text))
    }

    async fn published_port(&self) -> Option<u16> {
        let info = self.docker.inspect_container(&self.id, None).await.ok()?;
        info.network_settings?
            .ports?
            .get("5432/tcp")?
            .as_ref()?
            .iter()
            .find_map(|b| b.host_port.as_deref()?.parse().ok())
    }

    /// Finds the running container a record names, when it is still there and devenv's.
    pub async fn attach(
        record: &DockerRecord,
        user: &str,
        password: &str,
    ) -> Result<Option<Self>, ServerError> {
        let docker = engine_client().await?;
        let key = record.container_id.as_deref().unwrap_or(&record.container);
        let Ok(info) = docker.inspect_container(key, None).await else {
            return Ok(None);
        };
        let ours = info
            .config
            .as_ref()
            .is_some_and(|c| is_managed(c.labels.as_ref()));
        let running = info.state.as_ref().and_then(|s| s.running) == Some(true);
        if !ours || !running {
            return Ok(None);
        }
        let mut this = DockerServer {
            docker: docker.clone(),
            server: Server::on(&record.reach().host, 0, user, password),
            id: info.id.clone().unwrap_or_default(),
            name: record.container.clone(),
            network: None,
            volume: record.volume.clone(),
            engine: record.engine.clone().unwrap_or_else(crate::engine::address),
        };
        let Some(port) = this.published_port().await else {
            return Ok(None);
        };
        this.server = Server::on(&this.server.host(), port, user, password);
        if let Some(name) = &record.network {
            this.network = networks_named(&docker, name)
                .await?
                .first()
                .map(|n| NetworkRef {
                    id: n.id.clone().unwrap_or_default(),
                    name: name.clone(),
                });
        }
        Ok(Some(this))
    }

    /// Resolves when the container stops running, with how it ended. Every event of the
    /// container is a cue to look: an `event` filter would be exact on Docker, but Podman
    /// (4.3) matches it against its own names (`died`) and never sends a `die`.
    pub async fn exited(&self) -> String {
        container_exited(&self.docker, &self.id).await
    }

    /// Stops the container (a clean shutdown when its data is kept) and removes it. Kept data
    /// keeps its network too, as compose keeps both until `down --volumes`: compose services
    /// declare it external, and the next `up` joins it at once. Throw-away data takes the
    /// network along when nothing else uses it. [`forget_volume`] and [`forget_network`]
    /// remove what stays. Returns whether the container is gone (`false`: the engine did not
    /// answer, so it stays until `devenv down` finds the engine back).
    pub async fn stop(&self) -> bool {
        if self.volume.is_some() {
            let _ = self
                .docker
                .stop_container(
                    &self.id,
                    Some(StopContainerOptionsBuilder::default().t(10).build()),
                )
                .await;
        }
        let removed = self
            .docker
            .remove_container(
                &self.id,
                Some(
                    RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await;
        if let Some(network) = self.network.as_ref().filter(|_| self.volume.is_none()) {
            remove_network_if_unused(&self.docker, &network.id).await;
        }
        match removed {
            Ok(())
            | Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            }) => true,
            Err(_) => {
                self.docker.inspect_container(&self.id, None).await.is_err()
                    && self.docker.ping().await.is_ok()
            }
        }
    }

    /// The last `n` lines of the container's output.
    pub async fn logs_tail(&self, n: usize) -> String {
        logs_tail(&self.docker, &self.id, n).await
    }

    /// The container's output, from the start, followed when `follow`.
    pub fn logs(
        &self,
        follow: bool,
        tail: Option<usize>,
    ) -> impl futures_util::Stream<Item = String> + '_ {
        let tail = tail.map_or_else(|| "all".to_owned(), |n| n.to_string());
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail)
            .build();
        self.docker
            .logs(&self.id, Some(options))
            .take_while(|item| std::future::ready(item.is_ok()))
            .filter_map(|item| std::future::ready(item.ok().map(|c| c.to_string())))
    }
}

/// How a container ended when the engine itself went away.
const ENGINE_GONE: &str = "the Docker engine stopped (it does not answer); the container stays until `devenv down` finds the engine back";

/// Resolves when the container `id` stops running, with how it ended: on the engine's event
/// stream (any event of the container, or the stream ending with the engine).
async fn container_exited(docker: &Docker, id: &str) -> String {
    // Every event of the container is a cue to look: an `event` filter would be exact on
    // Docker, but Podman (4.3) matches it against its own names (`died`) and never sends a
    // `die`.
    let filters = HashMap::from([
        ("container".to_owned(), vec![id.to_owned()]),
        ("type".to_owned(), vec!["container".to_owned()]),
    ]);
    let mut events = docker.events(Some(
        EventsOptionsBuilder::default().filters(&filters).build(),
    ));
    if let Some(gone) = not_running(docker, id).await {
        return gone;
    }
    loop {
        if let Some(Ok(_)) = events.next().await {
            if let Some(gone) = not_running(docker, id).await {
                return gone;
            }
            continue;
        }
        // The engine dropped the stream: it stopped or restarted. Without live-restore its
        // containers stop with it.
        if let Some(gone) = not_running(docker, id).await {
            return if gone == ENGINE_GONE {
                gone
            } else {
                format!("the Docker engine restarted ({gone})")
            };
        }
        // Still running (live-restore): listen again.
        tokio::time::sleep(Duration::from_secs(1)).await;
        events = docker.events(Some(
            EventsOptionsBuilder::default().filters(&filters).build(),
        ));
    }
}

/// `Some(how it ended)` when the container is not running (or gone).
async fn not_running(docker: &Docker, id: &str) -> Option<String> {
    match docker.inspect_container(id, None).await {
        Ok(info) => {
            let state = info.state?;
            if state.running == Some(true) {
                return None;
            }
            Some(format!(
                "the container stopped (exit code {}{})",
                state.exit_code.unwrap_or(-1),
                if state.oom_killed == Some(true) {
                    ", killed for lack of memory"
                } else {
                    ""
                }
            ))
        }
        Err(_) if docker.ping().await.is_err() => Some(ENGINE_GONE.into()),
        Err(_) => Some("the container was removed".into()),
    }
}

async fn ensure_volume(docker: &Docker, name: &str, spec: &Spec) -> Result<(), ServerError> {
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(spec.identity.labels().into_iter().collect()),
            ..Default::default()
        })
        .await
        .map(drop)
        .map_err(engine("creating the data volume"))
}

/// Removes a devenv-made volume; returns whether one was removed.
pub async fn forget_volume(docker: &Docker, name: &str) -> Result<bool, ServerError> {
    let Ok(volume) = docker.inspect_volume(name).await else {
        return Ok(false);
    };
    if !is_managed(Some(&volume.labels)) {
        return Ok(false);
    }
    docker
        .remove_volume(
            name,
            Some(RemoveVolumeOptionsBuilder::default().force(true).build()),
        )
        .await
        .map_err(engine("removing the data volume"))?;
    Ok(true)
}

/// Another container answering as `db` on `network` than this project's own (found by its
/// labels): its description. With `ours` (our container, just created), only one created
/// before it counts, so of two starts racing, the later one gives way.
async fn answering_as_db(
    docker: &Docker,
    network: &NetworkRef,
    spec: &Spec,
    ours: Option<&str>,
) -> Result<Option<String>, ServerError> {
    let info = docker
        .inspect_network(&network.id, None)
        .await
        .map_err(engine("inspecting the network"))?;
    let created_of = |c: &testcontainers::bollard::models::ContainerInspectResponse| {
        (c.created, c.id.clone().unwrap_or_default())
    };
    let ours = match ours {
        Some(id) => docker
            .inspect_container(id, None)
            .await
            .ok()
            .map(|c| created_of(&c)),
        None => None,
    };
    for id in info.containers.unwrap_or_default().into_keys() {
        let Ok(other) = docker.inspect_container(&id, None).await else {
            continue;
        };
        let config = other.config.clone().unwrap_or_default();
        let labels = config.labels.clone().unwrap_or_default();
        let is_ours = labels.get(PROJECT_LABEL) == Some(&spec.identity.project_id)
            && labels.get(ROLE_LABEL).map(String::as_str) == Some(spec.identity.role.as_str());
        if is_ours {
            continue;
        }
        let aliases = other
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .and_then(|n| n.get(&network.name))
            .and_then(|e| e.aliases.clone())
            .unwrap_or_default();
        let as_db =
            config.hostname.as_deref() == Some(DB_ALIAS) || aliases.iter().any(|a| a == DB_ALIAS);
        if !as_db || ours.as_ref().is_some_and(|o| created_of(&other) > *o) {
            continue;
        }
        let name = other
            .name
            .clone()
            .unwrap_or(id)
            .trim_start_matches('/')
            .to_owned();
        return Ok(Some(match labels.get(ROOT_LABEL) {
            Some(root) if is_managed(Some(&labels)) => {
                format!("the database of the devenv project in {root} (container {name})")
            }
            _ => format!("the container {name}"),
        }));
    }
    Ok(None)
}

fn db_name_taken(network: &NetworkRef, other: &str, spec: &Spec) -> ServerError {
    ServerError::DbNameTaken {
        network: network.name.clone(),
        other: other.to_owned(),
        suggested: format!("{}-{}", network.name, spec.identity.project_id),
    }
}

/// Whether an error (any of its causes) is the engine's about a network.
fn about_the_network(e: &ServerError) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cause {
        if c.to_string().contains("network") {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Creates and starts the container. On a network it is created there and nowhere else (one
/// endpoint: the engine's teardown per endpoint is most of a stop's time), with the host name
/// `db`, which the engine makes the container's name on that network (compose services reach
/// it as `db:5432`).
async fn create_container(
    docker: &Docker,
    spec: &Spec,
    reach: &crate::engine::Reach,
    volume: Option<&str>,
    network: Option<&NetworkRef>,
) -> Result<String, ServerError> {
    let (name, tag) = split_image(&spec.image);
    let host_port = if spec.port == 0 {
        String::new()
    } else {
        spec.port.to_string()
    };
    let pgdata = image_pgdata(docker, &spec.image).await;
    let ephemeral = volume.is_none();
    let tmpfs_at = pgdata.clone();
    let network_id = network.map(|n| n.id.clone());
    let bind = reach.bind.to_string();
    let mut request = Postgres::default()
        .with_user(&spec.user)
        .with_password(&spec.password)
        .with_db_name(&spec.database)
        .with_name(name)
        .with_tag(tag)
        .with_container_name(&spec.identity.name)
        .with_labels(spec.identity.labels())
        .with_cmd(
            std::iter::once("postgres".to_owned())
                .chain(crate::spec::dev_settings_args(spec.storage)),
        )
        .with_ready_conditions(Vec::new())
        .with_reuse(ReuseDirective::Always)
        .with_startup_timeout(spec.timeout)
        .with_host_config_modifier(move |host| {
            host.port_bindings = Some(HashMap::from([(
                "5432/tcp".to_owned(),
                Some(vec![PortBinding {
                    host_ip: Some(bind.clone()),
                    host_port: Some(host_port.clone()),
                }]),
            )]));
            host.publish_all_ports = Some(false);
            if let Some(id) = &network_id {
                host.network_mode = Some(id.clone());
            }
            if ephemeral {
                host.tmpfs = Some(HashMap::from([(
                    tmpfs_at.clone(),
                    "rw,mode=0700".to_owned(),
                )]));
            }
        });
    if let Some(volume) = volume {
        request = request.with_mount(Mount::volume_mount(volume, pgdata));
    }
    if network.is_some() {
        request = request.with_hostname(DB_ALIAS);
    }
    match request.start().await {
        Ok(container) => Ok(container.id().to_owned()),
        Err(e) if spec.port != 0 && reach.is_local() && crate::ports::port_in_use(spec.port) => {
            remove_named(docker, &spec.identity.name).await;
            drop(e);
            Err(ServerError::PortTaken { port: spec.port })
        }
        Err(e) => {
            remove_named(docker, &spec.identity.name).await;
            Err(ServerError::Engine {
                what: "starting the container",
                source: Box::new(e),
            })
        }
    }
}

/// Creates and starts the container on `network`, settling the network's name again and
/// retrying when a race made it ambiguous or removed it; returns the id and the network used.
async fn create_on_network(
    docker: &Docker,
    spec: &Spec,
    reach: &crate::engine::Reach,
    volume: Option<&str>,
    network: Option<NetworkRef>,
) -> Result<(String, Option<NetworkRef>), ServerError> {
    let mut network = network;
    let mut attempts = 0;
    let id = loop {
        let created = create_container(docker, spec, reach, volume, network.as_ref()).await;
        let Some(net) = network
            .as_ref()
            .filter(|_| created.is_err() && attempts < 5)
        else {
            break created?;
        };
        // The engine resolves the network by name at start: another `up` creating the
        // same name at this moment makes it ambiguous, and another project's
        // `down --volumes` may have removed it. Settle the name again and retry.
        let names = networks_named(docker, &net.name).await?;
        let settled = names.len() == 1 && names[0].id.as_deref() == Some(net.id.as_str());
        if settled && !created.as_ref().is_err_and(about_the_network) {
            break created?;
        }
        attempts += 1;
        tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
        network = Some(ensure_network(docker, &net.name).await?);
    };
    Ok((id, network))
}

/// Makes sure the container answers as `db` on `network`. Docker makes the host name an alias
/// on the network the container is created on; Podman (4.3) does not, and testcontainers
/// passes no endpoint settings at creation, so there the container is connected again with
/// the alias (its published port stays).
async fn answer_as_db(docker: &Docker, id: &str, network: &NetworkRef) -> Result<(), ServerError> {
    use testcontainers::bollard::models::{
        EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest,
    };
    let info = docker
        .inspect_container(id, None)
        .await
        .map_err(engine("inspecting the container"))?;
    let has_alias = info
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|mut n| n.remove(&network.name))
        .and_then(|endpoint| endpoint.aliases)
        .is_some_and(|aliases| aliases.iter().any(|a| a == DB_ALIAS));
    if has_alias {
        return Ok(());
    }
    docker
        .disconnect_network(
            &network.id,
            NetworkDisconnectRequest {
                container: id.to_owned(),
                force: Some(true),
            },
        )
        .await
        .map_err(engine("joining the network as `db`"))?;
    docker
        .connect_network(
            &network.id,
            NetworkConnectRequest {
                container: id.to_owned(),
                endpoint_config: Some(EndpointSettings {
                    aliases: Some(vec![DB_ALIAS.to_owned()]),
                    ..Default::default()
                }),
            },
        )
        .await
        .map_err(engine("joining the network as `db`"))
}

/// The name the container answers to on its network (`COMPOSE_CONNECTION_URL`'s host).
pub const DB_ALIAS: &str = "db";

/// Removes a devenv-made container by name (a half-started one).
async fn remove_named(docker: &Docker, name: &str) {
    if let Ok(info) = docker.inspect_container(name, None).await {
        let ours = info.config.is_some_and(|c| is_managed(c.labels.as_ref()));
        if ours {
            let _ = docker
                .remove_container(
                    name,
                    Some(RemoveContainerOptionsBuilder::default().force(true).build()),
                )
                .await;
        }
    }
}

/// A container found by label.
#[derive(Debug, Clone)]
pub struct Found {
    /// Container id.
    pub id: String,
    /// Its names.
    pub names: Vec<String>,
    /// Networks it is attached to.
    pub networks: Vec<String>,
    /// Whether its data is kept (a named volume): stopped cleanly, and its network stays.
    pub kept: bool,
}

/// devenv's containers carrying `labels` (all of them), running or not.
pub async fn find(docker: &Docker, labels: &[(&str, &str)]) -> Result<Vec<Found>, ServerError> {
    let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    wanted.push(format!("{MANAGED_LABEL}=true"));
    let filters = HashMap::from([("label".to_owned(), wanted)]);
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
        .map(|c| {
            let names: Vec<String> = c
                .names
                .unwrap_or_default()
                .into_iter()
                .map(|n| n.trim_start_matches('/').to_owned())
                .collect();
            // Its own data volume (`Identity::volume_name`), not an image's anonymous one.
            let kept = c.mounts.unwrap_or_default().iter().any(|m| {
                m.typ == Some(testcontainers::bollard::models::MountPointTypeEnum::VOLUME)
                    && m.name.as_deref().is_some_and(|volume| {
                        names
                            .iter()
                            .any(|n| volume.strip_suffix("-data") == Some(n.as_str()))
                    })
            });
            Found {
                id: c.id.unwrap_or_default(),
                names,
                networks: c
                    .network_settings
                    .and_then(|n| n.networks)
                    .map(|n| n.into_keys().collect())
                    .unwrap_or_default(),
                kept,
            }
        })
        .collect())
}

/// Removes found containers (those with kept data stopped cleanly first; they keep their
/// networks, as [`DockerServer::stop`] does), then the devenv-made networks the others used
/// once nothing else does. Returns how many containers went.
pub async fn remove(docker: &Docker, found: &[Found]) -> Result<usize, ServerError> {
    for c in found {
        if c.kept {
            let _ = docker
                .stop_container(
                    &c.id,
                    Some(StopContainerOptionsBuilder::default().t(10).build()),
                )
                .await;
        }
        match docker
            .remove_container(
                &c.id,
                Some(
                    RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await
        {
            // Removed, or gone meanwhile (its own `up` removed it).
            Ok(())
            | Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            }) => {}
            Err(e) => return Err(engine("removing a container")(e)),
        }
    }
    for network in found.iter().filter(|c| !c.kept).flat_map(|c| &c.networks) {
        remove_network_if_unused(docker, network).await;
    }
    Ok(found.len())
}

/// Removes what a record names (a start that was killed, or a server whose supervisor is
/// gone): the container if it is devenv's; the network when unused and the data is not kept
/// (or is forgotten); with `forget` the volume. Returns whether a container was removed.
pub async fn clean(record: &DockerRecord, forget: bool) -> Result<bool, ServerError> {
    let docker = engine_client().await?;
    let mut removed = false;
    let key = record.container_id.as_deref().unwrap_or(&record.container);
    if let Ok(info) = docker.inspect_container(key, None).await {
        if info.config.is_some_and(|c| is_managed(c.labels.as_ref())) {
            let found = Found {
                id: info.id.unwrap_or_default(),
                names: vec![record.container.clone()],
                networks: Vec::new(),
                kept: record.volume.is_some(),
            };
            removed = remove(&docker, &[found]).await? > 0;
        }
    }
    if let Some(network) = record
        .network
        .as_ref()
        .filter(|_| forget || record.volume.is_none() || record.volume_new)
    {
        if record.container_id.is_none() {
            // It died before its container existed: the network create it sent may still be
            // in the engine's hands. Give it a moment to land, so that it goes too.
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while networks_named(&docker, network)
                .await
                .is_ok_and(|n| n.is_empty())
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        forget_network(&docker, network).await;
    }
    if forget || record.volume_new {
        if let Some(volume) = &record.volume {
            forget_volume(&docker, volume).await?;
        }
    }
    Ok(removed)
}

/// The last `n` lines of a container's output.
pub async fn logs_tail(docker: &Docker, id: &str, n: usize) -> String {
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
