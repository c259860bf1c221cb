//! A seed of single-row INSERTs (491k statements, about 50 MB, generated here) loaded into
//! fresh databases on one native server by devenv's loader and by
//! `psql -X -q -v ON_ERROR_STOP=1 -f` (autocommit, one statement at a time), one run each;
//! prints both times and their ratio (target: the loader at least 3x faster), and checks
//! that both databases hold the same rows. Run: `cargo bench -p devenv-sql --bench
//! load_inserts`. `BENCH_STATEMENTS` sets the number of INSERTs (default 491000).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use devenv_server::native::{find_bin_dir, TempServer};
use devenv_sql::Loader;

const SCHEMA: &str = "CREATE TABLE users (\n  id bigserial PRIMARY KEY,\n  handle text NOT NULL UNIQUE,\n  email text NOT NULL,\n  score integer NOT NULL,\n  joined date NOT NULL\n);\n";

/// The seed: `n` INSERTs of about 100 bytes (491k make about 50 MB), the ids from the
/// sequence, as hand-written seeds and `pg_dump --inserts` output look.
fn seed(n: usize) -> String {
    let mut out = String::with_capacity(n * 110);
    for i in 0..n {
        let _ = writeln!(
            out,
            "INSERT INTO users (handle, email, score, joined) VALUES ('user_{i}', 'u{i}@ex.com', {}, '2024-{:02}-{:02}');",
            i % 1000,
            i % 12 + 1,
            i % 28 + 1
        );
    }
    out
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_STATEMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(491_000);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.sql"), SCHEMA).unwrap();
    let started = Instant::now();
    let text = seed(n);
    std::fs::write(dir.path().join("seed.sql"), &text).unwrap();
    println!(
        "generated seed.sql: {n} INSERTs, {:.1} MB, in {:.1} s",
        f64::from(u32::try_from(text.len()).unwrap_or(u32::MAX)) / 1e6,
        started.elapsed().as_secs_f64()
    );
    drop(text);
    let temp = TempServer::start("bench")
        .await
        .expect("start a native server");
    let server = temp.native.server.clone();
    let psql = find_bin_dir().await.unwrap().join("psql");
    let (admin, conn) = server
        .config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for db in ["ins_loader", "ins_psql"] {
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
    }
    let loader = Loader::new(server.config("postgres"), dir.path());
    loader
        .load_files("ins_loader", &["schema.sql"])
        .await
        .unwrap();
    run_psql(&psql, &server, "ins_psql", &dir.path().join("schema.sql"));

    let started = Instant::now();
    let summary = loader
        .load_files("ins_loader", &["seed.sql"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ours = started.elapsed();
    let started = Instant::now();
    run_psql(&psql, &server, "ins_psql", &dir.path().join("seed.sql"));
    let theirs = started.elapsed();

    let digest = |db: &'static str| {
        let server = server.clone();
        async move {
            let (c, conn) = server
                .config(db)
                .connect(tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let row = c
                .query_one(
                    "SELECT count(*), md5(string_agg(format('%s|%s|%s|%s|%s', id, handle, email, score, joined), ',' ORDER BY id)) FROM users",
                    &[],
                )
                .await
                .unwrap();
            (row.get::<_, i64>(0), row.get::<_, String>(1))
        }
    };
    let (a, b) = (digest("ins_loader").await, digest("ins_psql").await);
    assert_eq!(a, b, "the loader and psql loaded the same rows");
    assert_eq!(a.0, i64::try_from(n).unwrap());
    assert_eq!(summary.statements, n);
    println!(
        "{n} single-row INSERTs, one run each, same native server (PG{}), same rows (md5 {}):",
        temp.native.version, a.1
    );
    println!(
        "  devenv loader                      {:>8.2} s",
        ours.as_secs_f64()
    );
    println!(
        "  psql -X -v ON_ERROR_STOP=1 -f      {:>8.2} s",
        theirs.as_secs_f64()
    );
    println!(
        "  ratio (psql / loader)              {:>8.2}x  (target >= 3x)",
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
}

fn run_psql(psql: &Path, server: &devenv_server::Server, db: &str, file: &Path) {
    let status = Command::new(psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", &server.host(), "-p", &server.port().to_string()])
        .args(["-U", server.user(), "-d", db, "-f"])
        .arg(file)
        .env("PGPASSWORD", server.password())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("run {}: {e}", psql.display()));
    assert!(status.success(), "psql failed");
}
