//! `devenv doctor`: checks what `devenv up` needs (configuration first, then the Docker engine
//! and image, PostgreSQL binaries, the account postgres runs as, the port, an external server)
//! and says how to fix each failure, then what `up` would really do, decided as `up` decides.
//! The report goes to stdout (`--json`: `{"checks": [{"name", "ok", "detail"}], "backend",
//! "would_use", "reason"}`); exit 0 when `up` can run, 2 for a broken configuration, 4 else.

use std::fmt::Write as _;
use std::path::Path;

use clap::Args;
use devenv_core::{Config, ConfigError, Environment, Project};
use devenv_server::{Choice, Facts};
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
    let mut found = Facts::default();
    if let Some(config) = &config {
        check_docker(config, &mut checks, &mut found).await;
        check_native(&mut checks, &mut found).await;
        check_port(config, &mut checks, &mut found);
        if config.backend == Choice::External {
            check_external(config, &mut checks, &mut found).await;
        }
    }
    let (would_use, reason) = match &config {
        Some(config) => {
            let plan = devenv_server::plan(config.backend, &found);
            (plan.first.map(|b| b.to_string()), plan.reason.to_owned())
        }
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
            would_use.as_deref().unwrap_or("nothing")
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

async fn check_docker(config: &Config, checks: &mut Vec<Check>, found: &mut Facts) {
    match devenv_server::probe::engine(&config.image).await {
        Ok(engine) => {
            checks.push(Check {
                name: "docker engine",
                ok: true,
                detail: format!(
                    "{} answered at {}; ports are published on {}",
                    engine.which, engine.address, engine.published
                ),
            });
            found.engine = true;
            found.image = engine.image_present;
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

async fn check_native(checks: &mut Vec<Check>, found: &mut Facts) {
    let binaries = match devenv_server::probe::binaries().await {
        Ok(found) => {
            checks.push(Check {
                name: "postgres binaries",
                ok: true,
                detail: format!(
                    "PostgreSQL {} in {}",
                    found.version.map_or("?".into(), |v| v.to_string()),
                    found.dir.display()
                ),
            });
            true
        }
        Err(e) => {
            checks.push(Check {
                name: "postgres binaries",
                ok: false,
                detail: e.to_string(),
            });
            false
        }
    };
    let account = match devenv_server::probe::account() {
        Ok(account) => {
            checks.push(Check {
                name: "run as",
                ok: true,
                detail: match account {
                    Some(name) => format!("root: postgres runs as `{name}`"),
                    None => "not root: postgres runs as you".into(),
                },
            });
            true
        }
        Err(e) => {
            checks.push(Check {
                name: "run as",
                ok: false,
                detail: e.to_string(),
            });
            false
        }
    };
    found.binaries = binaries && account;
}

fn check_port(config: &Config, checks: &mut Vec<Check>, found: &mut Facts) {
    let ours = Environment::of(Project::with_config(config.clone()))
        .ok()
        .and_then(|e| e.supervisor().map(|s| s.state.port == Some(config.port)))
        .unwrap_or(false);
    let (ok, detail) = if config.backend == Choice::External {
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

async fn check_external(config: &Config, checks: &mut Vec<Check>, found: &mut Facts) {
    let project = Project::with_config(config.clone());
    let detail = match project.external_server() {
        Ok(Some(server)) => {
            let answered = devenv_server::ready::wait_ready(
                &server.config("postgres"),
                server.tls(),
                std::time::Duration::from_secs(5),
                || None,
            )
            .await;
            match answered {
                Ok(_) => {
                    found.external = true;
                    format!("{} answers", server.masked_url("postgres"))
                }
                Err(devenv_server::ready::NotReady::Refused(e)) => {
                    format!("{}: {}", server.masked_url("postgres"), e.report())
                }
                Err(devenv_server::ready::NotReady::Timeout { last: Some(e), .. }) => format!(
                    "{} does not answer `SELECT 1` within 5 s: {}",
                    server.masked_url("postgres"),
                    e.report()
                ),
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
