//! Build-then-swap, marks and snapshots against a real PostgreSQL server (native backend in a
//! temp directory).

use devenv_core::rebuild::{next_name, Rebuilder, Target};
use devenv_core::{db, snapshot, CoreError};
use devenv_server::native::TempServer;
use devenv_sql::Loader;

async fn count(server: &devenv_server::Server, db: &str, sql: &str) -> Result<i64, String> {
    let client = db::connect(server, db).await.map_err(|e| e.to_string())?;
    client
        .query_one(sql, &[])
        .await
        .map(|r| r.get(0))
        .map_err(|e| e.to_string())
}

fn target(hash: &str) -> Target<'_> {
    Target {
        live: "app",
        project: "p1",
        files_hash: hash,
        replace_unmarked: true,
        keep_replaced: true,
        carry: false,
    }
}

#[tokio::test]
async fn builds_swaps_keeps_the_old_on_error_and_never_waits_for_idle_clients() {
    let temp = TempServer::start("pw").await.expect("PostgreSQL binaries");
    let server = temp.server().clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("schema.sql");
    let files = [devenv_sql::Step::file("schema.sql")];
    let loader = Loader::new(server.config("postgres"), dir.path());
    let mut rebuilder = Rebuilder::new(server.clone());

    // First build: the database did not exist, so nothing is kept.
    std::fs::write(&file, "CREATE TABLE t (a int); INSERT INTO t VALUES (1);").unwrap();
    let first = rebuilder
        .rebuild(&loader, &target("h1"), &files)
        .await
        .unwrap();
    assert_eq!(first.kept, None);
    assert_eq!(count(&server, "app", "SELECT count(*) FROM t").await, Ok(1));
    let admin = db::admin(&server).await.unwrap();
    let marks = db::Marks::read(&admin, "app").await.unwrap().unwrap();
    assert_eq!(marks.project.as_deref(), Some("p1"));
    assert_eq!(marks.files.as_deref(), Some("h1"));

    // An idle client on the live database does not block the swap; it is disconnected. The
    // replaced database is kept as an automatic snapshot holding the old rows.
    let idle = db::connect(&server, "app").await.unwrap();
    std::fs::write(
        &file,
        "CREATE TABLE t (a int, b int); INSERT INTO t VALUES (1, 2), (3, 4);",
    )
    .unwrap();
    let second = rebuilder
        .rebuild(&loader, &target("h2"), &files)
        .await
        .unwrap();
    assert!(second.swap < second.total);
    assert!(
        idle.simple_query("SELECT 1").await.is_err(),
        "idle session was ended"
    );
    assert_eq!(count(&server, "app", "SELECT count(b) FROM t").await, Ok(2));
    let kept = second.kept.expect("the replaced database is kept");
    let snaps = snapshot::list(&admin, "app").await.unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].name, kept);
    assert_eq!(snaps[0].kind, snapshot::Kind::Automatic);

    // A broken file: an error with its location, the live database untouched, nothing left.
    std::fs::write(
        &file,
        "CREATE TABLE t (a int);\nCREATE TABLE u (x nosuchtype);\n",
    )
    .unwrap();
    let Err(CoreError::Load(e)) = rebuilder.rebuild(&loader, &target("h3"), &files).await else {
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
    let next = db::Marks::read(&admin, &next_name("app"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.role, Some(db::Role::Spare));

    // A half-built leftover under the temporary name (a crash mid-load) is never reused.
    db::Marks::new("p1", db::Role::Building)
        .write(&admin, &next_name("app"))
        .await
        .unwrap();
    let junk = db::connect(&server, &next_name("app")).await.unwrap();
    junk.batch_execute("CREATE TABLE junk ()").await.unwrap();
    drop(junk);
    std::fs::write(&file, "CREATE TABLE t (c int);").unwrap();
    rebuilder
        .rebuild(&loader, &target("h4"), &files)
        .await
        .unwrap();
    assert_eq!(
        count(
            &server,
            "app",
            "SELECT count(*) FROM pg_class WHERE relname = 'junk'"
        )
        .await,
        Ok(0)
    );

    // Reloads keep the newest three automatic snapshots.
    for round in 5..9 {
        std::fs::write(&file, format!("CREATE TABLE t{round} ();")).unwrap();
        rebuilder
            .rebuild(&loader, &target(&format!("h{round}")), &files)
            .await
            .unwrap();
    }
    rebuilder.settle().await;
    let snaps = snapshot::list(&admin, "app").await.unwrap();
    assert_eq!(snaps.len(), snapshot::KEEP_AUTOMATIC, "{snaps:?}");
    // The newest holds what the last reload replaced.
    let newest = db::connect(&server, &snaps[0].database).await;
    assert!(newest.is_err(), "snapshots are closed to connections");
    temp.stop().await;
}

#[tokio::test]
async fn a_database_devenv_did_not_make_is_never_replaced_unless_asked() {
    let temp = TempServer::start("pw").await.expect("PostgreSQL binaries");
    let server = temp.server().clone();
    let admin = db::admin(&server).await.unwrap();
    admin.batch_execute("CREATE DATABASE app").await.unwrap();
    let theirs = db::connect(&server, "app").await.unwrap();
    theirs
        .batch_execute("CREATE TABLE precious (x int); INSERT INTO precious VALUES (42)")
        .await
        .unwrap();
    drop(theirs);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.sql"), "CREATE TABLE t ();").unwrap();
    let loader = Loader::new(server.config("postgres"), dir.path());
    let mut rebuilder = Rebuilder::new(server.clone());
    let guarded = Target {
        replace_unmarked: false,
        ..target("h1")
    };
    let refused = rebuilder
        .rebuild(&loader, &guarded, &[devenv_sql::Step::file("schema.sql")])
        .await;
    assert!(
        matches!(refused, Err(CoreError::NotOurs { .. })),
        "{refused:?}"
    );
    rebuilder.settle().await;
    assert_eq!(
        count(&server, "app", "SELECT x::bigint FROM precious").await,
        Ok(42)
    );
    // Nothing of devenv's was left on that server but its spare, which it drops.
    rebuilder.drop_spare("app").await;
    assert_eq!(
        count(
            &server,
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'app\\_\\_%'"
        )
        .await,
        Ok(0)
    );
    temp.stop().await;
}

#[tokio::test]
async fn snapshots_save_restore_and_keep_database_attributes() {
    let temp = TempServer::start("pw").await.expect("PostgreSQL binaries");
    let server = temp.server().clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.sql"),
        "CREATE TABLE t (a int); INSERT INTO t VALUES (1);",
    )
    .unwrap();
    let loader = Loader::new(server.config("postgres"), dir.path());
    let mut rebuilder = Rebuilder::new(server.clone());
    rebuilder
        .rebuild(
            &loader,
            &target("h1"),
            &[devenv_sql::Step::file("schema.sql")],
        )
        .await
        .unwrap();
    let admin = db::admin(&server).await.unwrap();
    admin
        .batch_execute(
            "ALTER DATABASE app SET search_path = public, \"$user\"; \
             ALTER DATABASE app SET work_mem = '7MB'; \
             COMMENT ON DATABASE app IS 'the app'; \
             CREATE ROLE reader; GRANT CONNECT ON DATABASE app TO reader;",
        )
        .await
        .unwrap();
    let saved = snapshot::save(&admin, "p1", "app", "before").await.unwrap();
    assert_eq!(saved.kind, snapshot::Kind::Manual);
    assert!(matches!(
        snapshot::save(&admin, "p1", "app", "before").await,
        Err(CoreError::SnapshotExists { .. })
    ));
    // Work typed through the app after the snapshot...
    let app = db::connect(&server, "app").await.unwrap();
    app.batch_execute("INSERT INTO t VALUES (2), (3)")
        .await
        .unwrap();
    drop(app);
    // ...is undone by a restore, which keeps the replaced database as an automatic snapshot.
    // With a ready copy at hand the restore only renames: the copy is used up, the snapshot
    // stays, and tidying makes the next copy.
    snapshot::prepare_ready(&admin, "p1", "app", &saved)
        .await
        .unwrap();
    let ready = snapshot::ready_name(&saved.database);
    assert!(snapshot::is_ready(&admin, &ready).await.unwrap());
    let restored = rebuilder
        .restore(&saved.database, &target("h1"))
        .await
        .unwrap();
    rebuilder.settle_all().await;
    assert!(db::exists(&admin, &saved.database).await.unwrap());
    assert!(
        snapshot::is_ready(&admin, &ready).await.unwrap(),
        "tidying after the restore made the next ready copy"
    );
    assert_eq!(count(&server, "app", "SELECT count(*) FROM t").await, Ok(1));
    let kept = restored.kept.expect("the replaced one is kept");
    let snaps = snapshot::list(&admin, "app").await.unwrap();
    assert!(snaps
        .iter()
        .any(|s| s.name == kept && s.kind == snapshot::Kind::Automatic));
    // What CREATE DATABASE ... TEMPLATE does not copy came along.
    let row = admin
        .query_one(
            "SELECT shobj_description(d.oid, 'pg_database'), \
                    has_database_privilege('reader', 'app', 'CONNECT'), \
                    array_to_string(s.setconfig, ';') \
             FROM pg_database d JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0 \
             WHERE d.datname = 'app'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("the app"));
    assert!(row.get::<_, bool>(1));
    let settings: String = row.get(2);
    assert!(
        settings.contains("search_path=public, \"$user\""),
        "{settings}"
    );
    assert!(settings.contains("work_mem=7MB"), "{settings}");
    // A name that does not exist lists the ones that do.
    let missing = snapshot::find(&admin, "app", "nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("there are: ") && missing.contains("before"),
        "{missing}"
    );
    snapshot::remove(&admin, "app", "before").await.unwrap();
    assert!(snapshot::find(&admin, "app", "before").await.is_err());
    temp.stop().await;
}
