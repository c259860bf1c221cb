//! `devenv doctor`: checks what `devenv up` needs (configuration, Docker engine and image,
//! PostgreSQL binaries, an unprivileged account when root, the port) and says how to fix each
//! failure. The report goes to stdout; the exit code is 0 when the configured backend can run.

use std::path::Path;

use devenv_core::project::StateFiles;
use devenv_core::{Backend, Config};
use devenv_server::{docker, native};

use crate::Failure;

struct Report {
    failed_docker: bool,
    failed_native: bool,
    failed_common: bool,
}

fn line(ok: bool, what: &str, detail: &str) {
    println!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
}

/// Runs the checks.
pub async fn doctor(root: &Path) -> Result<(), Failure> {
    let mut report = Report {
        failed_docker: false,
        failed_native: false,
        failed_common: false,
    };
    let config = match Config::load(root).and_then(|c| c.check_files().map(|()| c)) {
        Ok(c) => {
            line(
                true,
                "config",
                &format!(
                    "database {}, backend {}, port {}",
                    c.database, c.backend, c.port
                ),
            );
            Some(c)
        }
        Err(e) => {
            line(false, "config", &format!("{e}"));
            report.failed_common = true;
            None
        }
    };
    let image = config
        .as_ref()
        .map_or("postgres:13-alpine".to_owned(), |c| c.image.clone());
    match docker::engine_client().await {
        Ok(engine) => {
            let version = engine
                .version()
                .await
                .ok()
                .and_then(|v| v.version)
                .unwrap_or_else(|| "?".into());
            line(
                true,
                "docker engine",
                &format!("Docker {version} answered ({})", docker::tried_hosts()),
            );
            if docker::image_present(&engine, &image).await {
                line(true, "docker image", &format!("{image} is present"));
            } else {
                line(
                    false,
                    "docker image",
                    &format!("{image} is not present: `docker pull {image}` (it is pulled on first `up` when a registry answers), or set `image:` in devenv.yaml"),
                );
                report.failed_docker = true;
            }
        }
        Err(e) => {
            line(false, "docker engine", &e.to_string());
            report.failed_docker = true;
        }
    }
    match native::find_bin_dir() {
        Ok(dir) => {
            let version = native::major_version(&dir).map_or("?".into(), |v| v.to_string());
            line(
                true,
                "postgres binaries",
                &format!("PostgreSQL {version} in {}", dir.display()),
            );
        }
        Err(e) => {
            line(false, "postgres binaries", &e.to_string());
            report.failed_native = true;
        }
    }
    match native::run_as() {
        Ok(Some(user)) => line(
            true,
            "run as",
            &format!("root: postgres will run as `{}`", user.name),
        ),
        Ok(None) => line(true, "run as", "not root: postgres runs as you"),
        Err(e) => {
            line(false, "run as", &e.to_string());
            report.failed_native = true;
        }
    }
    if let Some(config) = &config {
        let ours = StateFiles::new(root)
            .read()
            .ok()
            .flatten()
            .is_some_and(|s| s.host_port == config.port);
        if config.port == 0 {
            line(true, "port", "0: a free port is picked at start");
        } else if ours {
            line(
                true,
                "port",
                &format!("{} is used by this project's own `devenv up`", config.port),
            );
        } else if devenv_server::port_in_use(config.port) {
            line(
                false,
                "port",
                &format!("{} on 127.0.0.1 is in use: stop what uses it, or set `port:` (0 = any free port) in devenv.yaml or DEVENV_PORT", config.port),
            );
            report.failed_common = true;
        } else {
            line(true, "port", &format!("{} is free", config.port));
        }
    }
    let backend = config.as_ref().map_or(Backend::Auto, |c| c.backend);
    let usable = !report.failed_common
        && match backend {
            Backend::Docker => !report.failed_docker,
            Backend::Native => !report.failed_native,
            Backend::Auto => !report.failed_docker || !report.failed_native,
            Backend::External => true,
        };
    let pick = match backend {
        Backend::Auto if !report.failed_docker => "docker",
        Backend::Auto if !report.failed_native => "native",
        Backend::Auto => "none",
        Backend::Docker => "docker",
        Backend::Native => "native",
        Backend::External => "external",
    };
    println!("backend {backend}: `devenv up` would use {pick}");
    if usable {
        Ok(())
    } else {
        Err(Failure {
            code: 4,
            message: "some checks failed; see the fixes above".into(),
        })
    }
}
