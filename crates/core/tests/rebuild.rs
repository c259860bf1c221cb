//! Build-then-swap against a real PostgreSQL server (native backend in a temp directory).

use std::path::PathBuf;

use devenv_core::rebuild::{next_name, old_name, RebuildError, Rebuilder};
use devenv_server::native::TempServer;
use devenv_sql::Loader;

async fn count(server: &devenv_server::Server, db: &str, sql: &str) -> Result<i64, String> {
    let client = devenv_core::db::connect(server, db)
        .await
        .map_err(|e| e.to_string())?;
    client
        .query_one(sql, &[])
        .await
        .map(|r| r.get(0))
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn builds_swaps_keeps_the_old_on_error_and_never_waits_for_idle_clients() {
    let temp = TempServer::start("pw").await.expect("PostgreSQL binaries");
    let server = temp.server().clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("schema.sql");
    let files = [PathBuf::from("schema.sql")];
    let loader = Loader::new(server.config("postgres"), dir.path());
    let mut rebuilder = Rebuilder::new(server.clone());

    // First build: the database did not exist.
    std::fs::write(&file, "CREATE TABLE t (a int); INSERT INTO t VALUES (1);").unwrap();
    rebuilder.rebuild(&loader, "app", &files).await.unwrap();
    assert_eq!(count(&server, "app", "SELECT count(*) FROM t").await, Ok(1));

    // An idle client on the live database does not block the swap; it is disconnected.
    let idle = devenv_core::db::connect(&server, "app").await.unwrap();
    std::fs::write(
        &file,
        "CREATE TABLE t (a int, b int); INSERT INTO t VALUES (1, 2), (3, 4);",
    )
    .unwrap();
    let second = rebuilder.rebuild(&loader, "app", &files).await.unwrap();
    assert!(second.swap < second.total);
    assert!(
        idle.simple_query("SELECT 1").await.is_err(),
        "idle session was ended"
    );
    assert_eq!(count(&server, "app", "SELECT count(b) FROM t").await, Ok(2));

    // A broken file: an error with its location, the live database untouched, nothing left.
    std::fs::write(
        &file,
        "CREATE TABLE t (a int);\nCREATE TABLE u (x nosuchtype);\n",
    )
    .unwrap();
    let Err(RebuildError::Load(e)) = rebuilder.rebuild(&loader, "app", &files).await else {
        panic!("a broken file must fail to load");
    };
    assert!(
        e.to_string()
            .starts_with("schema.sql:2:19: error: type \"nosuchtype\" does not exist"),
        "{e}"
    );
    assert_eq!(count(&server, "app", "SELECT count(b) FROM t").await, Ok(2));
    // Afterwards only the empty spare remains beside it, marked as such.
    rebuilder.settle().await;
    let leftovers = count(
        &server,
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname IN ('{}', '{}') \
             AND shobj_description(oid, 'pg_database') IS DISTINCT FROM 'devenv: empty spare'",
            next_name("app"),
            old_name("app")
        ),
    )
    .await;
    assert_eq!(leftovers, Ok(0));

    // A half-built leftover under the temporary name (a crash mid-load) is never reused.
    let admin = devenv_core::db::admin(&server).await.unwrap();
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE \"{}\" IS NULL",
            next_name("app")
        ))
        .await
        .unwrap();
    let junk = devenv_core::db::connect(&server, &next_name("app"))
        .await
        .unwrap();
    junk.batch_execute("CREATE TABLE junk ()").await.unwrap();
    drop(junk);
    std::fs::write(&file, "CREATE TABLE t (c int);").unwrap();
    rebuilder.rebuild(&loader, "app", &files).await.unwrap();
    assert_eq!(
        count(
            &server,
            "app",
            "SELECT count(*) FROM pg_class WHERE relname = 'junk'"
        )
        .await,
        Ok(0)
    );
}
