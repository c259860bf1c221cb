//! `devenv doctor`: checks what `devenv up` needs (configuration first, then the Docker engine
//! and image, PostgreSQL binaries, the account postgres runs as, the port, an external server)
//! and says how to fix each failure, then what `up` would really do, decided as `up` decides.
//! The report goes to stdout (`--json`: `{"checks": [{"name", "ok", "detail"}], "backend",
//! "would_use", "reason"}`); exit 0 when `up` can run, 2 for a broken configuration, 4 else.

use std::fmt::Write as _;
use std::path::Path;

use clap::Args;
use devenv_core::{Backend, Config, ConfigError, Project};
use serde_json::json;

use crate::exit::CliError;

/// `devenv doctor` arguments.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

#[expect(
    clippy::struct_excessive_bools,
    reason = "independent yes/no flags; an enum per flag would only rename them"
)]
#[derive(Default)]
struct Found {
    engine: bool,
    image: bool,
    binaries: bool,
    run_as: bool,
    port: bool,
    external: bool,
}

/// Runs `devenv doctor`.
pub async fn run(root: &Path, args: &DoctorArgs) -> anyhow::Result<()> {
    let mut checks = Vec::new();
    let mut broken = None;
    let config = match Config::load(root).and_then(|c| c.check_files().map(|()| c)) {
        Ok(c) => {
            checks.push(Check {
                name: "config",
                ok: true,
                detail: format!(
                    "database {}, backend {}, port {}, image {}, data {}",
                    c.database,
                    c.backend,
                    c.port,
                    c.image,
                    if c.persist {
                        "kept"
                    } else {
                        "thrown away at stop"
                    }
                ),
            });
            Some(c)
        }
        Err(e) => {
            checks.push(Check {
                name: "config",
                ok: false,
                detail: e.to_string(),
            });
            broken = Some(e);
            None
        }
    };
    let mut found = Found::default();
    if let Some(config) = &config {
        check_docker(config, &mut checks, &mut found).await;
        check_native(&mut checks, &mut found).await;
        check_port(config, &mut checks, &mut found);
        if config.backend == Backend::External {
            check_external(config, &mut checks, &mut found).await;
        }
    }
    let (would_use, reason) = match &config {
        Some(config) => decide(config, &found),
        None => (None, "the configuration is broken: fix it first".to_owned()),
    };
    if args.json {
        crate::output::json(&json!({
            "checks": checks.iter().map(|c| json!({"name": c.name, "ok": c.ok, "detail": c.detail})).collect::<Vec<_>>(),
            "backend": config.as_ref().map(|c| c.backend.to_string()),
            "would_use": would_use,
            "reason": reason,
        }))?;
    } else {
        let mut text = String::new();
        for c in &checks {
            let _ = writeln!(
                text,
                "{} {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        let _ = writeln!(
            text,
            "`devenv up` would use: {} ({reason})",
            would_use.unwrap_or("nothing")
        );
        crate::output::stdout(&text)?;
    }
    match (broken, would_use) {
        (Some(e), _) => Err(e.into()),
        (None, None) => {
            Err(CliError::Tool("some checks failed; see the fixes above".into()).into())
        }
        (None, Some(_)) => Ok(()),
    }
}

#[cfg_attr(
    not(feature = "docker"),
    expect(clippy::unused_async, reason = "only the docker backend awaits here")
)]
async fn check_docker(config: &Config, checks: &mut Vec<Check>, found: &mut Found) {
    #[cfg(feature = "docker")]
    {
        use devenv_server::{docker, engine};
        match docker::engine_client().await {
            Ok(client) => {
                let which = engine::info(&client)
                    .await
                    .map_or_else(|| "an engine".to_owned(), |i| i.to_string());
                let address = engine::address();
                let reach = engine::reach(&address);
                checks.push(Check {
                    name: "docker engine",
                    ok: true,
                    detail: format!(
                        "{which} answered at {address}; ports are published on {}{}",
                        reach.bind,
                        if reach.is_local() {
                            String::new()
                        } else {
                            format!(" of that host, reached as {}", reach.host)
                        }
                    ),
                });
                found.engine = true;
                found.image = docker::image_present(&client, &config.image).await;
                checks.push(Check {
                    name: "docker image",
                    ok: found.image,
                    detail: if found.image {
                        format!("{} is present", config.image)
                    } else {
                        format!("{} is not present: `up` pulls it (that needs a registry), or build it, or set `image:` in devenv.yaml", config.image)
                    },
                });
            }
            Err(e) => checks.push(Check {
                name: "docker engine",
                ok: false,
                detail: crate::ui::chain(&e.into()),
            }),
        }
    }
    #[cfg(not(feature = "docker"))]
    {
        let _ = (config, &found);
        checks.push(Check {
            name: "docker engine",
            ok: false,
            detail: devenv_server::ServerError::NoDockerSupport.to_string(),
        });
    }
}

async fn check_native(checks: &mut Vec<Check>, found: &mut Found) {
    use devenv_server::native;
    match native::find_bin_dir().await {
        Ok(dir) => {
            let version = native::major_version(&dir)
                .await
                .map_or("?".into(), |v| v.to_string());
            checks.push(Check {
                name: "postgres binaries",
                ok: true,
                detail: format!("PostgreSQL {version} in {}", dir.display()),
            });
            found.binaries = true;
        }
        Err(e) => checks.push(Check {
            name: "postgres binaries",
            ok: false,
            detail: e.to_string(),
        }),
    }
    match native::run_as() {
        Ok(Some(user)) => {
            found.run_as = true;
            checks.push(Check {
                name: "run as",
                ok: true,
                detail: format!("root: postgres runs as `{}`", user.name),
            });
        }
        Ok(None) => {
            found.run_as = true;
            checks.push(Check {
                name: "run as",
                ok: true,
                detail: "not root: postgres runs as you".into(),
            });
        }
        Err(e) => checks.push(Check {
            name: "run as",
            ok: false,
            detail: e.to_string(),
        }),
    }
}

fn check_port(config: &Config, checks: &mut Vec<Check>, found: &mut Found) {
    let project = Project::with_config(config.clone());
    let ours = crate::running::running(&devenv_core::state::StateDir::new(&project.state_dir()))
        .ok()
        .flatten()
        .is_some_and(|(_, s)| s.port == Some(config.port));
    let (ok, detail) = if config.backend == Backend::External {
        (true, "backend external: no local port".to_owned())
    } else if config.port == 0 {
        (true, "0: a free port is picked at start".to_owned())
    } else if ours {
        (
            true,
            format!("{} is used by this project's own `devenv up`", config.port),
        )
    } else if devenv_server::port_in_use(config.port) {
        (false, format!("{} on 127.0.0.1 is in use: stop what uses it, or set `port:` (0 = any free port) in devenv.yaml or DEVENV_PORT", config.port))
    } else {
        (true, format!("{} is free", config.port))
    };
    found.port = ok;
    checks.push(Check {
        name: "port",
        ok,
        detail,
    });
}

async fn check_external(config: &Config, checks: &mut Vec<Check>, found: &mut Found) {
    let project = Project::with_config(config.clone());
    let detail = match project.external_server() {
        Ok(Some(server)) => {
            let answered = devenv_server::ready::wait_ready(
                &server.config("postgres"),
                std::time::Duration::from_secs(5),
                || None,
            )
            .await;
            match answered {
                Ok(_) => {
                    found.external = true;
                    format!("{} answers", server.masked_url("postgres"))
                }
                Err(_) => format!(
                    "{} does not answer `SELECT 1` within 5 s",
                    server.masked_url("postgres")
                ),
            }
        }
        Ok(None) => ConfigError::NoUrl.to_string(),
        Err(e) => crate::ui::chain(&e.into()),
    };
    checks.push(Check {
        name: "external server",
        ok: found.external,
        detail,
    });
}

/// What `up` would use and why, decided as `up` decides.
fn decide(config: &Config, f: &Found) -> (Option<&'static str>, String) {
    let native_ok = f.binaries && f.run_as && f.port;
    match config.backend {
        Backend::External if f.external => {
            (Some("external"), "configured; the server answers".into())
        }
        Backend::External => (None, "configured, and the server does not answer".into()),
        Backend::Docker if f.engine && f.port && f.image => {
            (Some("docker"), "configured; engine and image ready".into())
        }
        Backend::Docker if f.engine && f.port => (
            Some("docker"),
            "configured; the image would be pulled first".into(),
        ),
        Backend::Docker => (
            None,
            "configured, and the engine or port check failed".into(),
        ),
        Backend::Native if native_ok => (Some("native"), "configured; binaries found".into()),
        Backend::Native => (
            None,
            "configured, and the binaries, account or port check failed".into(),
        ),
        Backend::Auto if f.engine && f.port && f.image => (
            Some("docker"),
            "auto: an engine answers and the image is present".into(),
        ),
        Backend::Auto if f.engine && f.port && native_ok => (
            Some("docker"),
            "auto: an engine answers; the image would be pulled, and if that fails, native".into(),
        ),
        Backend::Auto if f.engine && f.port => (
            Some("docker"),
            "auto: an engine answers; the image would be pulled".into(),
        ),
        Backend::Auto if native_ok => (
            Some("native"),
            "auto: no Docker engine answers; PostgreSQL binaries are found".into(),
        ),
        Backend::Auto => (
            None,
            "auto: neither a Docker engine nor PostgreSQL binaries".into(),
        ),
    }
}
