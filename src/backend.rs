//! Picks and starts the server backend the configuration asks for.
//!
//! `auto`: docker when an engine answers (and the image is present or can be pulled), else
//! native when PostgreSQL binaries are found, else one error naming both ways to get a server.

use std::time::Duration;

use devenv_core::project::{container_name, project_id};
use devenv_core::{Backend, Config};
use devenv_server::docker::{self, DockerOptions, DockerServer, PROJECT_LABEL};
use devenv_server::native::{self, NativeOptions, NativeServer};
use devenv_server::Server;

use crate::Failure;

/// How long a server may take to answer `SELECT 1`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A started server of any backend.
#[derive(Debug)]
pub enum Running {
    /// A container.
    Docker(Box<DockerServer>),
    /// Local binaries.
    Native(NativeServer),
    /// An existing server; never started or stopped by devenv.
    External(Server),
}

impl Running {
    /// How to reach the server.
    pub fn server(&self) -> &Server {
        match self {
            Running::Docker(d) => &d.server,
            Running::Native(n) => &n.server,
            Running::External(s) => s,
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Running::Docker(_) => Backend::Docker,
            Running::Native(_) => Backend::Native,
            Running::External(_) => Backend::External,
        }
    }

    /// Stops what devenv started.
    pub async fn stop(self) {
        match self {
            Running::Docker(mut d) => d.remove().await,
            Running::Native(mut n) => n.stop(),
            Running::External(_) => {}
        }
    }
}

/// Docker container options for a project.
pub fn docker_options(config: &Config) -> DockerOptions {
    DockerOptions {
        image: config.image.clone(),
        container_name: container_name(config),
        labels: vec![
            (PROJECT_LABEL.to_owned(), project_id(&config.root)),
            (
                "dev.devenv.root".to_owned(),
                std::fs::canonicalize(&config.root)
                    .unwrap_or_else(|_| config.root.clone())
                    .display()
                    .to_string(),
            ),
            ("dev.devenv.database".to_owned(), config.database.clone()),
        ],
        port: config.port,
        user: config.user.clone(),
        password: config.password.clone(),
        database: config.database.clone(),
        network: Some(config.network.clone()),
        timeout: READY_TIMEOUT,
    }
}

async fn start_native(config: &Config) -> Result<Running, Failure> {
    if config.port != 0 && devenv_server::port_in_use(config.port) {
        return Err(docker::DockerError::PortTaken { port: config.port }.into());
    }
    let mut options = NativeOptions {
        dir: config.root.join(devenv_core::project::STATE_DIR),
        port: config.port,
        user: config.user.clone(),
        password: config.password.clone(),
        cache_dir: None,
        timeout: READY_TIMEOUT,
    };
    match NativeServer::start(&options).await {
        Ok(native) => Ok(Running::Native(native)),
        // Run as root in a private home (/root is 0700), the account postgres runs as cannot
        // reach .devenv/; a directory of devenv's own under the temp dir can be.
        Err(native::NativeError::Unreachable { user, dir }) => {
            let fallback =
                std::env::temp_dir().join(format!("devenv-{}", project_id(&config.root)));
            std::fs::create_dir_all(&fallback)?;
            std::fs::set_permissions(
                &fallback,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )?;
            eprintln!(
                "devenv: note: user {user} cannot reach {}; keeping the server's files in {}",
                dir.display(),
                fallback.display()
            );
            options.dir = fallback;
            Ok(Running::Native(NativeServer::start(&options).await?))
        }
        Err(e) => Err(e.into()),
    }
}

/// Starts the configured backend; returns it with a sentence saying why it was chosen.
pub async fn start(config: &Config) -> Result<(Running, String), Failure> {
    match config.backend {
        Backend::Docker => {
            let d = DockerServer::start(&docker_options(config)).await?;
            Ok((Running::Docker(Box::new(d)), "backend: docker (configured)".into()))
        }
        Backend::Native => Ok((start_native(config).await?, "backend: native (configured)".into())),
        Backend::External => {
            let url = config.url.clone().unwrap_or_default();
            let parsed: tokio_postgres::Config = url
                .parse()
                .map_err(|e| Failure { code: 2, message: format!("`url` is not a PostgreSQL URL: {e}") })?;
            let host = match parsed.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                _ => "127.0.0.1".into(),
            };
            let server = Server {
                host,
                port: parsed.get_ports().first().copied().unwrap_or(5432),
                user: parsed.get_user().unwrap_or("postgres").to_owned(),
                password: String::from_utf8_lossy(parsed.get_password().unwrap_or_default()).into_owned(),
            };
            Ok((Running::External(server), "backend: external (configured url)".into()))
        }
        Backend::Auto => match docker::engine_client().await {
            Ok(engine) => {
                let present = docker::image_present(&engine, &config.image).await;
                match DockerServer::start(&docker_options(config)).await {
                    Ok(d) => Ok((
                        Running::Docker(Box::new(d)),
                        format!(
                            "backend: docker (auto: an engine answered; image {} {})",
                            config.image,
                            if present { "present" } else { "pulled" }
                        ),
                    )),
                    Err(docker::DockerError::ImageMissing { image, message })
                        if native::find_bin_dir().is_ok() =>
                    {
                        let running = start_native(config).await?;
                        Ok((
                            running,
                            format!("backend: native (auto: image {image} could not be had: {message})"),
                        ))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(docker_error) => match native::find_bin_dir() {
                Ok(dir) => Ok((
                    start_native(config).await?,
                    format!(
                        "backend: native (auto: {docker_error}; using PostgreSQL binaries in {})",
                        dir.display()
                    ),
                )),
                Err(native_error) => Err(Failure {
                    code: 4,
                    message: format!(
                        "no way to get a PostgreSQL server:\n  docker: {docker_error}\n  native: {native_error}"
                    ),
                }),
            },
        },
    }
}
