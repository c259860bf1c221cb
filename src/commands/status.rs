//! `devenv status`: whether a supervisor runs for the project (the holder of its lock), since
//! when, detached or not, on which backend and port, and the data it keeps. Exit code 0 when it
//! runs, 1 when it does not. `--json` prints one document, the same keys either way (`null`
//! when not running; passwords masked):
//!
//! `{"running", "pid", "detached", "started_at", "ready", "backend", "database", "port", "urls",
//!   "data": {"kept", "size_bytes"}, "stale_pid"}`

use std::path::Path;

use clap::Args;
use devenv_core::environment::Supervisor;
use devenv_core::Environment;
use devenv_server::{Record, Server};
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
    let environment = Environment::open(root)?;
    if let Some(e) = environment.corrupt_record() {
        ui.warn(e.to_string());
    }
    let running = environment.supervisor();
    let left_by = environment.stale().map(|s| s.pid);
    let server = environment.server()?;
    let data = data_kept(&environment, server.as_ref()).await;
    let state = running.map(|s| &s.state);
    if args.json {
        crate::output::json(&json!({
            "running": running.is_some(),
            "pid": running.map(Supervisor::pid),
            "detached": state.map(|s| s.detached),
            "started_at": state.map(|s| crate::output::timestamp(s.started_at)),
            "ready": state.map(|s| s.ready),
            "backend": running.and_then(Supervisor::backend).map(|b| b.to_string()),
            "database": state.map(|s| s.database.clone()),
            "port": server.as_ref().map(Server::port).or_else(|| state.and_then(|s| s.port)),
            "urls": state.map(|s| s.env.iter()
                .map(|(k, v)| (k.clone(), json!(devenv_server::mask(v))))
                .collect::<serde_json::Map<_, _>>()),
            "data": data,
            "stale_pid": left_by,
        }))?;
    } else if let Some(supervisor) = running {
        let state = &supervisor.state;
        ui.result(format!(
            "running (pid {}, {} since {}), backend {}, database {} on {}{}; {}",
            supervisor.pid(),
            if state.detached {
                "detached"
            } else {
                "in a terminal"
            },
            crate::ui::since(state.started_at),
            supervisor
                .backend()
                .map_or_else(|| "?".into(), |b| b.to_string()),
            state.database,
            server
                .as_ref()
                .map_or_else(|| "?".into(), |s| format!("{}:{}", s.host(), s.port())),
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

/// Whether data is kept, and how big it is: the databases' size when the server runs, the kept
/// data's as the server crate finds it when it does not.
async fn data_kept(environment: &Environment, server: Option<&Server>) -> serde_json::Value {
    if let Some(supervisor) = environment.supervisor() {
        let kept = supervisor.record().is_some_and(Record::keeps_data);
        let bytes = match server {
            Some(server) => databases_size(server).await,
            None => None,
        };
        return json!({"kept": kept, "size_bytes": bytes});
    }
    let project = environment.project();
    let kept = devenv_server::find_kept(&project.up_identity(), project.config.backend).await;
    match (kept.found.first(), kept.unknown) {
        (Some(data), _) => json!({"kept": true, "size_bytes": data.size()}),
        // Unknown: the engine that would hold a volume does not answer.
        (None, Some(_)) => json!({"kept": null, "size_bytes": null}),
        (None, None) => json!({"kept": false, "size_bytes": null}),
    }
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
