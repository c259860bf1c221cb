//! `devenv status`: whether a supervisor runs for the project (the holder of its lock), since
//! when, detached or not, on which backend and port, and the data it keeps. Exit code 0 when it
//! runs, 1 when it does not. `--json` prints one document, the same keys either way (`null`
//! when not running; passwords masked):
//!
//! `{"running", "pid", "detached", "started_at", "ready", "backend", "database", "port", "urls",
//!   "data": {"kept", "size_bytes"}, "stale_pid"}`

use std::path::Path;

use clap::Args;
use devenv_core::Project;
use devenv_server::{Record, Role, Server, Storage};
use serde_json::json;

use crate::exit::CliError;
use crate::ui::Ui;

/// `devenv status` arguments.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `devenv status`.
pub async fn run(root: &Path, args: &StatusArgs, ui: &Ui) -> anyhow::Result<()> {
    let project = Project::open(root)?;
    let dir = crate::running::state_dir(&project.root)?;
    let running = crate::running::running(&dir)?;
    let left_by = match &running {
        Some(_) => None,
        None => match dir.read() {
            Ok(state) => state.map(|s| s.pid),
            Err(e) => {
                ui.warn(crate::ui::chain(&e.into()));
                None
            }
        },
    };
    let data = data_kept(&project, running.as_ref().map(|(_, s)| s)).await;
    if args.json {
        let state = running.as_ref().map(|(_, s)| s);
        crate::output::json(&json!({
            "running": running.is_some(),
            "pid": running.as_ref().map(|(holder, _)| holder.pid),
            "detached": state.map(|s| s.detached),
            "started_at": state.map(|s| crate::output::timestamp(s.started_at)),
            "ready": state.map(|s| s.ready),
            "backend": state.and_then(devenv_core::state::State::backend).map(|b| b.to_string()),
            "database": state.map(|s| s.database.clone()),
            "port": state.and_then(|s| s.port),
            "urls": state.map(|s| s.env.iter()
                .map(|(k, v)| (k.clone(), json!(devenv_server::mask(v))))
                .collect::<serde_json::Map<_, _>>()),
            "data": data,
            "stale_pid": left_by,
        }))?;
    } else if let Some((holder, state)) = &running {
        ui.result(format!(
            "running (pid {}, {} since {}), backend {}, database {} on {}:{}{}; {}",
            holder.pid,
            if state.detached {
                "detached"
            } else {
                "in a terminal"
            },
            crate::ui::since(state.started_at),
            state
                .backend()
                .map_or_else(|| "?".into(), |b| b.to_string()),
            state.database,
            state.host(),
            state.port.map_or_else(|| "?".into(), |p| p.to_string()),
            if state.ready { "" } else { " (starting)" },
            describe(&data)
        ));
    } else {
        ui.result(format!("not running; {}", describe(&data)));
        if let Some(pid) = left_by {
            ui.note(format!(
                        "a record of a devenv up (pid {pid}) that is gone is left; `devenv down` or the next `devenv up` cleans it up"
                    ));
        }
    }
    if running.is_some() {
        Ok(())
    } else {
        Err(CliError::StatusNotRunning.into())
    }
}

fn describe(data: &serde_json::Value) -> String {
    match (data["kept"].as_bool(), data["size_bytes"].as_u64()) {
        (Some(true), Some(bytes)) => format!("data kept ({} MB)", bytes / 1_000_000),
        (Some(true), None) => "data kept".into(),
        (None, _) => "kept data unknown (the Docker engine does not answer)".into(),
        _ => "no data kept".into(),
    }
}

/// Whether data is kept, and how big it is: the databases' size when the server runs, the data
/// directory's when it does not (native).
async fn data_kept(
    project: &Project,
    state: Option<&devenv_core::state::State>,
) -> serde_json::Value {
    if let Some(state) = state {
        let kept = state.server.as_ref().is_some_and(Record::keeps_data);
        let bytes = match state.port {
            Some(port) if state.ready => {
                let server = Server::on(
                    &state.host(),
                    port,
                    &project.config.user,
                    &project.config.password,
                );
                databases_size(&server).await
            }
            _ => None,
        };
        return json!({"kept": kept, "size_bytes": bytes});
    }
    let identity = project.identity(Role::Up, &project.state_dir());
    let run_as = devenv_server::native::run_as().ok().flatten();
    let layout =
        devenv_server::native::Layout::new(&identity, Storage::Persistent, run_as.as_ref());
    if layout.has_cluster() {
        return json!({"kept": true, "size_bytes": layout.data_size()});
    }
    #[cfg(feature = "docker")]
    if project.config.backend != devenv_server::Choice::Native {
        match devenv_server::docker::engine_client().await {
            Ok(engine) => {
                if engine.inspect_volume(&identity.volume_name()).await.is_ok() {
                    return json!({"kept": true, "size_bytes": null});
                }
            }
            // Unknown: a volume may be there.
            Err(_) => return json!({"kept": null, "size_bytes": null}),
        }
    }
    json!({"kept": false, "size_bytes": null})
}

async fn databases_size(server: &Server) -> Option<u64> {
    let client = devenv_core::db::admin(server).await.ok()?;
    let row = client
        .query_one(
            "SELECT sum(pg_database_size(oid))::bigint FROM pg_database",
            &[],
        )
        .await
        .ok()?;
    u64::try_from(row.get::<_, i64>(0)).ok()
}
