//! `devenv test-dbs`: lists and prunes the databases the test fixture made on the server the
//! project's tests use, and stops the shared test server ([`devenv_testdbs`]). `--json` prints
//! `{"server": {...}, "templates": [...], "test_dbs": [...]}`.

use std::fmt::Write as _;
use std::path::Path;

use clap::Args;
use devenv_core::Project;
use devenv_testdbs::inventory::{self, Prune};
use devenv_testdbs::Source;
use serde_json::json;

use crate::ui::Ui;

/// `devenv test-dbs` arguments.
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent yes/no flags; an enum per flag would only rename them"
)]
#[derive(Debug, Clone, Args)]
pub struct TestDbsArgs {
    /// Drop test databases of dead processes (kept ones too) and old templates.
    #[arg(long)]
    pub prune: bool,
    /// Like --prune, and drop every template (the next test builds what it needs).
    #[arg(long, conflicts_with = "prune")]
    pub prune_all: bool,
    /// Stop the shared test server the fixture started.
    #[arg(long)]
    pub stop_server: bool,
    /// Print one JSON document on stdout (when listing).
    #[arg(long)]
    pub json: bool,
}

/// Runs `devenv test-dbs`.
pub async fn run(root: &Path, args: &TestDbsArgs, ui: &Ui) -> anyhow::Result<()> {
    let project = Project::open(root)?;
    if args.prune || args.prune_all {
        let what = if args.prune_all {
            Prune::All
        } else {
            Prune::Leftovers
        };
        match inventory::prune(&project.root, what).await? {
            Some(pruned) => ui.result(format!(
                "dropped {} test database(s) and {} template(s)",
                pruned.test_dbs.len(),
                pruned.templates.len()
            )),
            None => ui.result("no server runs for this project's tests; nothing to prune"),
        }
    } else if !args.stop_server {
        list(&project.root, args.json, ui).await?;
    }
    if args.stop_server {
        match devenv_testdbs::stop_shared_server(&project).await? {
            Some(server) => ui.result(format!(
                "stopped the shared test server ({} on 127.0.0.1:{})",
                server.backend(),
                server.port
            )),
            None => ui.result("no shared test server runs for this project"),
        }
    }
    Ok(())
}

fn source_text(source: &Source) -> String {
    match source {
        Source::DevenvUp { pid } => format!("the running devenv up (pid {pid})"),
        Source::External => "the external server".to_owned(),
        Source::Shared(s) => format!(
            "the shared test server ({}, started by pid {})",
            s.backend(),
            s.started_by
        ),
    }
}

async fn list(root: &Path, as_json: bool, ui: &Ui) -> anyhow::Result<()> {
    let Some(inv) = inventory::list(root).await? else {
        if as_json {
            return crate::output::json(&json!({"server": null, "templates": [], "test_dbs": []}));
        }
        ui.result("no server runs for this project's tests");
        return Ok(());
    };
    if as_json {
        return crate::output::json(&json!({
            "server": {
                "source": source_text(&inv.source),
                "host": inv.server.host(),
                "port": inv.server.port(),
            },
            "templates": inv.templates.iter().map(|t| json!({
                "name": t.name,
                "size_bytes": t.size_bytes,
                "built_at": t.built_at,
                "strategy": t.strategy,
                "files": t.files,
            })).collect::<Vec<_>>(),
            "test_dbs": inv.test_dbs.iter().map(|d| json!({
                "name": d.name,
                "template": d.template,
                "test": d.test,
                "pid": d.pid,
                "host": d.host,
                "created_at": d.created_at,
                "kept": d.kept,
                "pooled": d.pooled,
                "owner_alive": d.owner_alive,
            })).collect::<Vec<_>>(),
        }));
    }
    let mut text = format!(
        "server: {} on {}:{}\ntemplates ({}):\n",
        source_text(&inv.source),
        inv.server.host(),
        inv.server.port(),
        inv.templates.len()
    );
    for t in &inv.templates {
        let _ = writeln!(
            text,
            "  {:<28} {:>8} kB  built {}  {}",
            t.name,
            t.size_bytes / 1024,
            t.built_at.as_deref().unwrap_or("?"),
            t.strategy.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(text, "test databases ({}):", inv.test_dbs.len());
    for d in &inv.test_dbs {
        let owner = match d.owner_alive {
            Some(true) => "owner running",
            Some(false) => "owner gone",
            None => "owner on another host",
        };
        let state = if d.pooled {
            "pooled"
        } else if d.kept {
            "kept (failed test)"
        } else {
            "in use"
        };
        let _ = writeln!(
            text,
            "  {:<36} {:<20} pid {:<7} {owner:<22} {}  {}",
            d.name,
            state,
            d.pid,
            d.created_at,
            d.test.as_deref().unwrap_or("")
        );
    }
    crate::output::stdout(&text)
}
