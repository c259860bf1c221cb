//! Loads pagila (schema + 50k rows of COPY data) into fresh databases on one native server,
//! alternating devenv's loader and psql (`psql -X -q -v ON_ERROR_STOP=1 -1 -f`), and prints
//! the medians and their ratio. Run: `cargo bench -p devenv-sql --bench load_pagila`.
//! `BENCH_RUNS` sets the runs per contender (default 7).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use devenv_server::native::{find_bin_dir, TempServer};
use devenv_sql::{Durability, Loader};

const FILES: [&str; 2] = ["pagila/pagila-schema.sql", "pagila/pagila-data.sql"];

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let corpora = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpora"));
    let temp = TempServer::start("bench")
        .await
        .expect("start a native server");
    let native = &temp.native;
    let server = native.server.clone();
    // The real psql binary, not Debian's Perl wrapper (which adds ~40 ms a call).
    let psql = find_bin_dir().await.unwrap().join("psql");
    let (admin, conn) = server
        .config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let relaxed = Loader::new(server.config("postgres"), &corpora);
    let full = relaxed.clone().durability(Durability::Full);

    let contenders = ["loader (relaxed)", "loader (full durability)", "psql -1"];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
    for run in 0..=runs {
        for (i, name) in contenders.iter().enumerate() {
            let db = format!("bench_{run}_{i}");
            admin
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .unwrap();
            let started = Instant::now();
            match i {
                0 => drop(relaxed.load_files(&db, &FILES).await.unwrap()),
                1 => drop(full.load_files(&db, &FILES).await.unwrap()),
                _ => run_psql(&psql, &server, &db, &corpora),
            }
            let took = started.elapsed();
            let rentals: i64 = {
                let (c, conn) = server
                    .config(&db)
                    .connect(tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                c.query_one("SELECT count(*) FROM rental", &[])
                    .await
                    .unwrap()
                    .get(0)
            };
            assert_eq!(rentals, 16_044, "{name} loaded everything");
            admin
                .batch_execute(&format!("DROP DATABASE {db}"))
                .await
                .unwrap();
            // Run 0 warms caches and is not counted.
            if run > 0 {
                times[i].push(took);
            }
        }
    }
    println!(
        "pagila schema + data, {runs} runs each, alternating, same server (PG{}):",
        native.version
    );
    let psql_median = median(&mut times[2].clone());
    for (name, t) in contenders.iter().zip(times.iter_mut()) {
        let m = median(t);
        println!(
            "  {name:<26} median {:>8.1} ms   ratio to psql -1: {:.2}",
            ms(m),
            m.as_secs_f64() / psql_median.as_secs_f64()
        );
    }
}

fn run_psql(psql: &Path, server: &devenv_server::Server, db: &str, corpora: &Path) {
    let status = Command::new(psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1"])
        .args([
            "-h",
            &server.host(),
            "-p",
            &server.port().to_string(),
            "-U",
            server.user(),
            "-d",
            db,
        ])
        .args(
            FILES
                .iter()
                .flat_map(|f| ["-f".to_owned(), corpora.join(f).display().to_string()]),
        )
        .env("PGPASSWORD", server.password())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("run {}: {e}", psql.display()));
    assert!(status.success(), "psql failed");
}
