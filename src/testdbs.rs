//! `devenv test-dbs`: lists and prunes the databases the test fixture (`devenv-fixture`) made
//! on the server the project's tests use, and stops the shared test server.

use std::path::Path;

use devenv_fixture::inventory::{self, Prune};
use devenv_fixture::shared::Source;

use crate::Failure;

fn fixture_failure(e: devenv_fixture::FixtureError) -> Failure {
    Failure::other(e)
}

/// Runs `devenv test-dbs`.
pub async fn run(root: &Path, prune: bool, all: bool, stop_server: bool) -> Result<(), Failure> {
    if prune || all {
        let what = if all { Prune::All } else { Prune::Leftovers };
        match inventory::prune(root, what)
            .await
            .map_err(fixture_failure)?
        {
            Some(pruned) => eprintln!(
                "devenv: dropped {} test database(s) and {} template(s)",
                pruned.test_dbs.len(),
                pruned.templates.len()
            ),
            None => eprintln!("devenv: no server runs for this project's tests; nothing to prune"),
        }
    } else if !stop_server {
        list(root).await?;
    }
    if stop_server {
        match devenv_fixture::stop_shared_server(root)
            .await
            .map_err(fixture_failure)?
        {
            Some(server) => eprintln!(
                "devenv: stopped the shared test server ({:?} on 127.0.0.1:{})",
                server.backend, server.port
            ),
            None => eprintln!("devenv: no shared test server runs for this project"),
        }
    }
    Ok(())
}

async fn list(root: &Path) -> Result<(), Failure> {
    let Some(inv) = inventory::list(root).await.map_err(fixture_failure)? else {
        eprintln!("devenv: no server runs for this project's tests");
        return Ok(());
    };
    let source = match &inv.source {
        Source::DevenvUp { pid } => format!("the running devenv up (pid {pid})"),
        Source::External => "the external server".to_owned(),
        Source::Shared(s) => format!(
            "the shared test server ({:?}, started by pid {})",
            s.backend, s.started_by
        ),
    };
    println!(
        "server: {source} on {}:{}",
        inv.server.host, inv.server.port
    );
    println!("templates ({}):", inv.templates.len());
    for t in &inv.templates {
        println!(
            "  {:<28} {:>8} kB  built {}  {}",
            t.name,
            t.size_bytes / 1024,
            t.built_at.as_deref().unwrap_or("?"),
            t.strategy.as_deref().unwrap_or("")
        );
    }
    println!("test databases ({}):", inv.test_dbs.len());
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
        println!(
            "  {:<36} {:<20} pid {:<7} {owner:<22} {}  {}",
            d.name,
            state,
            d.pid,
            d.created_at,
            d.test.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
