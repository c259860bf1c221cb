//! `:DBNAME` under build-then-swap: a file loads into `<db>__devenv_next`, so psql's `DBNAME`
//! names that database, and what the file does to it through `:DBNAME` (database settings,
//! its comment, grants, per-role settings in it) must still hold on `<db>` after the rename,
//! rebuild after rebuild. Against a real PostgreSQL server (native backend in a temp directory).

use devenv_core::rebuild::{next_name, Rebuilder};
use devenv_server::native::TempServer;
use devenv_sql::Loader;

const SCHEMA: &str = r"
\echo loading into :DBNAME
SELECT 'CREATE ROLE swap_reader' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'swap_reader') \gexec
ALTER DATABASE :DBNAME SET app.mode = 'dev';
ALTER ROLE swap_reader IN DATABASE :DBNAME SET work_mem = '9MB';
COMMENT ON DATABASE :DBNAME IS 'built by devenv';
REVOKE CONNECT ON DATABASE :DBNAME FROM PUBLIC;
GRANT CONNECT ON DATABASE :DBNAME TO swap_reader;
CREATE TABLE built (name text);
INSERT INTO built VALUES (:'DBNAME');
";

async fn one(server: &devenv_server::Server, db: &str, sql: &str) -> String {
    let client = devenv_core::db::connect(server, db).await.unwrap();
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn what_a_file_does_through_dbname_survives_the_swap() {
    let temp = TempServer::start("pw").await.expect("PostgreSQL binaries");
    let server = temp.server().clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.sql"), SCHEMA).unwrap();
    let files = [devenv_sql::Step::file("schema.sql")];
    let echoes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = echoes.clone();
    let loader = Loader::new(server.config("postgres"), dir.path()).events(std::sync::Arc::new(
        move |event: &devenv_sql::Event<'_>| {
            if let devenv_sql::Event::Echo(text) = event {
                log.lock().unwrap().push((*text).to_owned());
            }
        },
    ));
    let mut rebuilder = Rebuilder::new(server.clone());
    // Twice: the first build creates `app`, the second replaces it (and keeps the old one as
    // a snapshot, whose settings go with it).
    let target = devenv_core::rebuild::Target {
        live: "app",
        project: "p1",
        files_hash: "h",
        replace_unmarked: true,
        keep_replaced: true,
        carry: false,
    };
    for _ in 0..2 {
        rebuilder
            .rebuild(&loader, &target, &files)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        rebuilder.settle().await;
        assert_eq!(
            one(&server, "app", "SELECT current_setting('app.mode')").await,
            "dev",
            "ALTER DATABASE :DBNAME SET holds on the swapped-in database"
        );
        assert_eq!(
            one(
                &server,
                "app",
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'app'"
            )
            .await,
            "built by devenv"
        );
        assert_eq!(
            one(
                &server,
                "app",
                "SELECT format('%s %s', has_database_privilege('swap_reader', 'app', 'CONNECT'), \
                 has_database_privilege('public', 'app', 'CONNECT'))"
            )
            .await,
            "t f"
        );
        assert_eq!(
            one(
                &server,
                "app",
                "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s \
                 JOIN pg_database d ON d.oid = s.setdatabase JOIN pg_roles r ON r.oid = s.setrole \
                 WHERE d.datname = 'app' AND r.rolname = 'swap_reader'"
            )
            .await,
            "work_mem=9MB"
        );
        // The live database has its two settings rows (the database's, with devenv's marks,
        // and the role's in it); the replaced one, kept as a snapshot, took its own along.
        assert_eq!(
            one(
                &server,
                "postgres",
                "SELECT count(*)::text FROM pg_db_role_setting s \
                 JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'app'"
            )
            .await,
            "2"
        );
    }
    assert_eq!(
        *echoes.lock().unwrap(),
        vec![format!("loading into {}", next_name("app")); 2]
    );
    // What the file stored as a value is the name it loaded under, not the live name: the
    // swap renames the database, it cannot rewrite data (see the README on `:DBNAME`).
    assert_eq!(
        one(&server, "app", "SELECT name FROM built").await,
        next_name("app")
    );
}
