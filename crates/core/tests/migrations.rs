//! `migrations:` against a real PostgreSQL (native backend in a temp directory): devenv's
//! records of a sqlx directory equal those sqlx's own migrator writes, and that migrator then
//! finds nothing to do; diesel's and plain directories' records; a broken migration's error;
//! the content hash follows the directory.

use std::path::Path;

use devenv_core::files::{self, Part, Sources};
use devenv_core::{db, Config};
use devenv_server::native::TempServer;

fn write(root: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// A project whose devenv.yaml has no schema or seed and `migrations: migrations`, holding
/// `files` besides.
fn migrations_project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[(
            "devenv.yaml",
            "schema: []\nseed: []\nmigrations: migrations\n",
        )],
    );
    write(dir.path(), files);
    dir
}

fn config_of(root: &Path) -> Config {
    Config::load_with_env(root, |_| None).unwrap()
}

/// Thirty-odd lines of a real project's history: a reversible pair, a `-- no-transaction`
/// index, an enum value added in one migration and used in the next, a table `LIKE` sqlx's.
const SQLX_PROJECT: &[(&str, &str)] = &[
    (
        "devenv.yaml",
        "schema: [db/schema.sql]\nmigrations: migrations\nseed: [db/seed.sql]\n",
    ),
    ("db/schema.sql", "CREATE EXTENSION IF NOT EXISTS pgcrypto;\n"),
    (
        "migrations/20240101000000_create_users.sql",
        "CREATE TYPE kind AS ENUM ('person');\n\
         CREATE TABLE users (id bigserial PRIMARY KEY, handle text UNIQUE NOT NULL, kind kind NOT NULL);\n",
    ),
    (
        "migrations/20240102000000_add_bio.up.sql",
        "ALTER TABLE users ADD COLUMN bio text;\n",
    ),
    (
        "migrations/20240102000000_add_bio.down.sql",
        "ALTER TABLE users DROP COLUMN bio;\n",
    ),
    (
        "migrations/20240103000000_index_handles.sql",
        "-- no-transaction\nCREATE INDEX CONCURRENTLY users_bio ON users (bio);\n",
    ),
    (
        "migrations/20240104000000_add_kind_bot.sql",
        "ALTER TYPE kind ADD VALUE 'bot';\n",
    ),
    (
        "migrations/20240105000000_default_bots.sql",
        "INSERT INTO users (handle, kind) VALUES ('robot', 'bot');\n",
    ),
    (
        "migrations/20240106000000_audit.sql",
        "CREATE TABLE migration_audit (LIKE _sqlx_migrations);\n",
    ),
    (
        "db/seed.sql",
        "INSERT INTO users (handle, kind, bio) VALUES ('andrewbrown', 'person', 'seeded');\n",
    ),
];

async fn records(server: &devenv_server::Server, database: &str, sql: &str) -> Vec<String> {
    let client = db::connect(server, database).await.unwrap();
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_owned())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

const SQLX_ROWS: &str = "SELECT version, description, success, encode(checksum, 'hex'), \
     execution_time >= 0, installed_on <= now() FROM _sqlx_migrations ORDER BY version";

#[tokio::test]
async fn sqlx_records_equal_sqlx_s_own_and_its_migrator_does_nothing() {
    let temp = TempServer::start("pw").await.expect("PostgreSQL binaries");
    let server = temp.server().clone();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), SQLX_PROJECT);
    let config = config_of(dir.path());
    let admin = db::admin(&server).await.unwrap();
    for name in ["ours", "theirs"] {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    }

    // devenv: schema, migrations, seed.
    let steps = files::steps(&config, Part::All).unwrap();
    let loaded = files::loader(&config, &server)
        .load_steps("ours", &steps)
        .await;
    loaded.unwrap();
    // The seed ran after the migrations (its column came from one).
    assert_eq!(
        records(
            &server,
            "ours",
            "SELECT handle, kind, bio FROM users ORDER BY id"
        )
        .await,
        ["robot|bot|NULL", "andrewbrown|person|seeded"]
    );

    // sqlx: the schema file, then its migrator on the same directory.
    files::loader(&config, &server)
        .load_files("theirs", &["db/schema.sql"])
        .await
        .unwrap();
    let migrator = sqlx::migrate::Migrator::new(dir.path().join("migrations"))
        .await
        .unwrap();
    let theirs = sqlx::PgPool::connect(&server.url("theirs")).await.unwrap();
    migrator.run(&theirs).await.unwrap();
    theirs.close().await;

    let ours_rows = records(&server, "ours", SQLX_ROWS).await;
    assert_eq!(ours_rows.len(), 6, "{ours_rows:?}");
    assert_eq!(ours_rows, records(&server, "theirs", SQLX_ROWS).await);
    assert!(
        ours_rows[1].starts_with("20240102000000|add bio|t|"),
        "{ours_rows:?}"
    );

    // The app's own migrator on devenv's database: everything applied, no checksum mismatch,
    // nothing run again.
    let before = records(
        &server,
        "ours",
        "SELECT version, installed_on FROM _sqlx_migrations",
    )
    .await;
    let ours = sqlx::PgPool::connect(&server.url("ours")).await.unwrap();
    migrator.run(&ours).await.unwrap();
    ours.close().await;
    assert_eq!(
        before,
        records(
            &server,
            "ours",
            "SELECT version, installed_on FROM _sqlx_migrations"
        )
        .await
    );
    assert_eq!(
        records(&server, "ours", "SELECT count(*) FROM users").await,
        ["2"]
    );

    // A changed migration changes the content hash; so does a new one.
    let first = Sources::read(&config).unwrap().digest;
    write(
        dir.path(),
        &[("migrations/20240105000000_default_bots.sql", "SELECT 1;\n")],
    );
    let second = Sources::read(&config).unwrap().digest;
    assert_ne!(first, second);
    write(
        dir.path(),
        &[("migrations/20240107000000_more.sql", "SELECT 2;\n")],
    );
    assert_ne!(second, Sources::read(&config).unwrap().digest);
}

#[tokio::test]
async fn diesel_and_plain_directories_are_recorded_their_way() {
    let temp = TempServer::start("pw").await.expect("PostgreSQL binaries");
    let server = temp.server().clone();
    let admin = db::admin(&server).await.unwrap();

    let diesel = migrations_project(&[
        (
            "migrations/00000000000000_diesel_initial_setup/up.sql",
            "CREATE FUNCTION diesel_ok() RETURNS int AS 'SELECT 1' LANGUAGE sql;\n",
        ),
        (
            "migrations/00000000000000_diesel_initial_setup/down.sql",
            "DROP FUNCTION diesel_ok();\n",
        ),
        (
            "migrations/2024-01-02-000000_create_posts/up.sql",
            "CREATE TABLE posts (id int);\n",
        ),
        (
            "migrations/2024-01-02-000000_create_posts/down.sql",
            "DROP TABLE posts;\n",
        ),
        (
            "migrations/2024-01-03-000000_index/up.sql",
            "CREATE INDEX CONCURRENTLY posts_id ON posts (id);\n",
        ),
        (
            "migrations/2024-01-03-000000_index/metadata.toml",
            "run_in_transaction = false\n",
        ),
    ]);
    admin.batch_execute("CREATE DATABASE d").await.unwrap();
    let config = config_of(diesel.path());
    files::loader(&config, &server)
        .load_steps("d", &files::steps(&config, Part::All).unwrap())
        .await
        .unwrap();
    assert_eq!(
        records(
            &server,
            "d",
            "SELECT version, run_on <= now()::timestamp FROM __diesel_schema_migrations ORDER BY version"
        )
        .await,
        ["00000000000000|t", "20240102000000|t", "20240103000000|t"]
    );

    let plain = tempfile::tempdir().unwrap();
    write(
        plain.path(),
        &[
            (
                "devenv.yaml",
                "schema: []\nseed: []\nmigrations: db/changes\n",
            ),
            ("db/changes/10-last.sql", "INSERT INTO log VALUES ('10');\n"),
            ("db/changes/2-second.sql", "INSERT INTO log VALUES ('2');\n"),
            ("db/changes/1-first.sql", "CREATE TABLE log (step text);\n"),
        ],
    );
    admin.batch_execute("CREATE DATABASE p").await.unwrap();
    let config = config_of(plain.path());
    files::loader(&config, &server)
        .load_steps("p", &files::steps(&config, Part::All).unwrap())
        .await
        .unwrap();
    assert_eq!(
        records(&server, "p", "SELECT string_agg(step, ',') FROM log").await,
        ["2,10"]
    );
    assert_eq!(
        records(
            &server,
            "p",
            "SELECT name FROM _devenv_migrations ORDER BY applied_on, name"
        )
        .await
        .len(),
        3
    );
}

#[tokio::test]
async fn a_broken_migration_points_at_its_file_line_and_column_and_is_not_recorded() {
    let temp = TempServer::start("pw").await.expect("PostgreSQL binaries");
    let server = temp.server().clone();
    let dir = migrations_project(&[
        ("migrations/1_ok.sql", "CREATE TABLE a (x int);\n"),
        (
            "migrations/2_broken.sql",
            "CREATE TABLE b (y int);\nSELECT nope FROM a;\n",
        ),
    ]);
    let admin = db::admin(&server).await.unwrap();
    admin.batch_execute("CREATE DATABASE m").await.unwrap();
    let config = config_of(dir.path());
    let e = files::loader(&config, &server)
        .load_steps("m", &files::steps(&config, Part::All).unwrap())
        .await
        .unwrap_err();
    let location = e.location.as_ref().expect("a location");
    assert_eq!(location.path, Path::new("migrations/2_broken.sql"));
    assert_eq!((location.line, location.col), (2, 8));
    assert!(
        e.to_string().contains("column \"nope\" does not exist"),
        "{e}"
    );
    // The first committed and is recorded; the broken one rolled back whole.
    assert_eq!(
        records(&server, "m", "SELECT version FROM _sqlx_migrations").await,
        ["1"]
    );
    assert_eq!(
        records(
            &server,
            "m",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'b'"
        )
        .await,
        ["0"]
    );
}

#[tokio::test]
async fn onto_an_existing_database_only_unrecorded_migrations_run_and_a_changed_one_is_refused() {
    let temp = TempServer::start("pw").await.expect("PostgreSQL binaries");
    let server = temp.server().clone();
    let dir = migrations_project(&[("migrations/1_a.sql", "CREATE TABLE a (x int);\n")]);
    let admin = db::admin(&server).await.unwrap();
    admin.batch_execute("CREATE DATABASE e").await.unwrap();
    let config = config_of(dir.path());
    let client = db::connect(&server, "e").await.unwrap();
    let onto = |client| files::steps_onto(&config, Part::Schema, client, "e");
    // A database without the table gets them all.
    assert_eq!(onto(&client).await.unwrap().len(), 1);
    files::loader(&config, &server)
        .load_steps("e", &onto(&client).await.unwrap())
        .await
        .unwrap();
    assert!(onto(&client).await.unwrap().is_empty(), "all recorded");
    write(
        dir.path(),
        &[("migrations/2_b.sql", "CREATE TABLE b (y int);\n")],
    );
    let pending = onto(&client).await.unwrap();
    let paths: Vec<_> = pending.iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, [Path::new("migrations/2_b.sql")]);
    files::loader(&config, &server)
        .load_steps("e", &pending)
        .await
        .unwrap();
    assert_eq!(
        records(
            &server,
            "e",
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM _sqlx_migrations"
        )
        .await,
        ["1,2"]
    );
    // An applied migration edited since: refused, as sqlx's migrator refuses it.
    write(
        dir.path(),
        &[("migrations/1_a.sql", "CREATE TABLE a (x bigint);\n")],
    );
    let e = onto(&client).await.unwrap_err().to_string();
    assert!(
        e.contains("migration 1 (a) was applied to \"e\" but migrations/1_a.sql has changed since"),
        "{e}"
    );
}
