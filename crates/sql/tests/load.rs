//! Loader tests against a real PostgreSQL server: real-world files load with the right row
//! counts, and errors are reported at an exact `path:line:col`.

mod support;

use std::path::{Path, PathBuf};

use devenv_sql::{ErrorKind, LoadError};
use support::{loader, project};

const CORPORA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpora");

async fn load_err(files: &[(&str, &str)], load: &[&str]) -> LoadError {
    let dir = project(files);
    let (server, loader, _) = loader(dir.path()).await;
    let db = server.fresh_db("err").await;
    loader
        .load_files(&db, load)
        .await
        .expect_err("the load should fail")
}

fn first_line(e: &LoadError) -> String {
    e.to_string().lines().next().unwrap().to_owned()
}

#[tokio::test]
async fn pagila_schema_and_data_load_with_all_rows() {
    let (server, loader, _) = loader(Path::new(CORPORA)).await;
    let db = server.fresh_db("pagila").await;
    let summary = loader
        .load_files(&db, &["pagila/pagila-schema.sql", "pagila/pagila-data.sql"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        server
            .count(&db, "SELECT count(*) FROM public.rental")
            .await,
        16_044
    );
    assert_eq!(
        server
            .count(&db, "SELECT count(*) FROM public.payment")
            .await,
        16_049
    );
    assert_eq!(summary.statements, 233 + 44);
    assert!(summary.copy_rows > 45_000, "{summary:?}");
}

#[tokio::test]
async fn chinook_switches_database_with_backslash_c() {
    let (server, loader, _) = loader(Path::new(CORPORA)).await;
    let db = server.fresh_db("chinook_start").await;
    loader
        .load_files(&db, &["chinook/Chinook_PostgreSql.sql"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        server.count("chinook", "SELECT count(*) FROM track").await,
        3_503
    );
    // Nothing landed in the database the load started in.
    assert_eq!(
        server
            .count(
                &db,
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            )
            .await,
        0
    );
}

#[tokio::test]
async fn audit_trigger_and_every_flyway_fixture_load() {
    let (server, loader, _) = loader(Path::new(CORPORA)).await;
    let db = server.fresh_db("audit").await;
    loader
        .load_files(&db, &["tricky-audit-trigger/audit.sql"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        server
            .count(
                &db,
                "SELECT count(*) FROM pg_proc WHERE proname = 'audit_table'"
            )
            .await,
        3
    );
    let flyway = "tricky-flyway-pg-parser";
    for files in [
        &[
            "copy/V002__create_copy_test_table.sql",
            "copy/V003__fill_copy_test_table_with_copy.sql",
        ][..],
        &["dollar/V1__Dollar.sql", "dollar/V2__Even_more_dollars.sql"],
        &["function/V1__Function.sql"],
        &["multiline/V1__MultiLine.sql"],
        &["procedure/V1__Procedure.sql"],
        &["trigger/V1__Trigger.sql"],
    ] {
        let db = server.fresh_db("flyway").await;
        let paths: Vec<PathBuf> = files.iter().map(|f| Path::new(flyway).join(f)).collect();
        loader
            .load_files(&db, &paths)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if files[0].starts_with("copy/") {
            assert_eq!(server.count(&db, "SELECT count(*) FROM copy_test").await, 6);
            // Non-ASCII data went through COPY unchanged.
            assert_eq!(
                server
                    .count(
                        &db,
                        "SELECT count(*) FROM copy_test WHERE c2 = 'utf8: ümlaute: äüß'"
                    )
                    .await,
                2
            );
        }
        if files[0].starts_with("dollar/") {
            assert_eq!(server.count(&db, "SELECT count(*) FROM dollar").await, 9);
        }
    }
}

#[tokio::test]
async fn pgjwt_loads_nothing_and_warns_about_quit() {
    let (server, loader, events) = loader(Path::new(CORPORA)).await;
    let db = server.fresh_db("pgjwt").await;
    let summary = loader
        .load_files(&db, &["tricky-pgjwt/pgjwt--0.2.0.sql"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.statements, 0);
    assert_eq!(
        server
            .count(
                &db,
                "SELECT count(*) FROM pg_proc WHERE proname = 'url_encode'"
            )
            .await,
        0
    );
    let lines = events.lines();
    assert_eq!(
        lines[0],
        "echo: Use \"CREATE EXTENSION pgjwt\" to load this file."
    );
    assert!(
        lines[1].starts_with(
            "warning: tricky-pgjwt/pgjwt--0.2.0.sql:1: \\quit stops loading this file"
        ),
        "{lines:?}"
    );
}

#[tokio::test]
async fn syntax_error_on_line_n_of_a_multi_statement_file() {
    let e = load_err(
        &[(
            "db/schema.sql",
            "CREATE TABLE a (x int);\n\nINSERT INTO a VALUES (1);\nCREATE TABLE b (\n  y int,\n  z intt\n);\n",
        )],
        &["db/schema.sql"],
    )
    .await;
    assert_eq!(
        first_line(&e),
        "db/schema.sql:6:5: error: type \"intt\" does not exist [42704]"
    );
    let report = e.to_string();
    assert!(report.contains("6 |   z intt\n  |     ^"), "{report}");
}

#[tokio::test]
async fn syntax_error_is_reported_with_caret() {
    let e = load_err(&[("s.sql", "select 1;\nselect 2;\nselec 3;\n")], &["s.sql"]).await;
    assert_eq!(e.sqlstate(), Some("42601"));
    assert_eq!(
        e.to_string(),
        "s.sql:3:1: error: syntax error at or near \"selec\" [42601]\n  |\n3 | selec 3;\n  | ^"
    );
}

#[tokio::test]
async fn error_inside_a_function_body_points_into_the_body() {
    let sql = "-- functions\nCREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$\nBEGIN\n  RETURN 1;\n  SELEC 2;\nEND\n$fn$;\n";
    let e = load_err(&[("fn.sql", sql)], &["fn.sql"]).await;
    assert_eq!(
        first_line(&e),
        "fn.sql:5:3: error: syntax error at or near \"SELEC\" [42601]"
    );
}

#[tokio::test]
async fn bad_copy_row_points_at_the_data_line() {
    let sql = "CREATE TABLE t (a int, b text);\nCOPY t (a, b) FROM stdin;\n1\tone\n2\ttwo\nthree\t3\n\\.\n";
    let e = load_err(&[("seed.sql", sql)], &["seed.sql"]).await;
    assert_eq!(
        first_line(&e),
        "seed.sql:5:1: error: invalid input syntax for type integer: \"three\" [22P02]"
    );
    assert!(e.to_string().contains("CONTEXT: COPY t, line 3"), "{e}");
}

#[tokio::test]
async fn missing_include_is_reported_at_the_include() {
    let e = load_err(
        &[("db/main.sql", "select 1;\n\\i db/nope.sql\n")],
        &["db/main.sql"],
    )
    .await;
    assert_eq!(
        first_line(&e),
        "db/main.sql:2:4: error: could not read included file \"db/nope.sql\": not found; \
         looked for db/nope.sql (from the project root, as psql from its working directory), \
         then db/db/nope.sql (beside the file holding the command)"
    );
}

#[tokio::test]
async fn unsupported_meta_command_is_an_error() {
    let e = load_err(&[("m.sql", "select 1;\n  \\dt\n")], &["m.sql"]).await;
    assert!(matches!(e.kind, ErrorKind::UnsupportedMeta(ref m) if m == "dt"));
    assert!(
        first_line(&e).starts_with("m.sql:2:3: error: meta-command \\dt is not supported"),
        "{e}"
    );
}

#[tokio::test]
async fn error_in_an_included_file_names_that_file() {
    let e = load_err(
        &[
            ("db/main.sql", "\\ir parts/a.sql\n"),
            ("db/parts/a.sql", "select 1;\nselect nope;\n"),
        ],
        &["db/main.sql"],
    )
    .await;
    assert_eq!(
        first_line(&e),
        "db/parts/a.sql:2:8: error: column \"nope\" does not exist [42703]"
    );
}

#[tokio::test]
async fn includes_variables_and_echo() {
    let dir = project(&[
        (
            "db/main.sql",
            "\\set tbl people\n\\set who 'O''Brien'\n\\i db/create.sql\n\\ir parts/insert.sql\n\\echo done :tbl\n",
        ),
        ("db/create.sql", "CREATE TABLE :\"tbl\" (name text);\n"),
        ("db/parts/insert.sql", "INSERT INTO :tbl VALUES (:'who');\n"),
    ]);
    let (server, loader, events) = loader(dir.path()).await;
    let db = server.fresh_db("vars").await;
    let summary = loader
        .load_files(&db, &["db/main.sql"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        server
            .count(&db, "SELECT count(*) FROM people WHERE name = 'O''Brien'")
            .await,
        1
    );
    assert_eq!(events.lines(), ["echo: done people"]);
    assert_eq!(summary.files.len(), 3);
}

#[tokio::test]
async fn each_file_starts_with_a_clean_session() {
    let dir = project(&[
        (
            "a.sql",
            "SELECT pg_catalog.set_config('search_path', '', false);\nCREATE TEMP TABLE scratch (x int);\n",
        ),
        ("b.sql", "CREATE TABLE t (x int);\nCREATE TEMP TABLE scratch (x int);\n"),
    ]);
    let (server, loader, _) = loader(dir.path()).await;
    let db = server.fresh_db("clean").await;
    loader
        .load_files(&db, &["a.sql", "b.sql"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        server
            .count(&db, "SELECT count(*) FROM pg_tables WHERE tablename = 't'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_file_ending_inside_a_transaction_is_an_error() {
    let e = load_err(
        &[("tx.sql", "BEGIN;\nCREATE TABLE t (x int);\n")],
        &["tx.sql"],
    )
    .await;
    assert!(
        e.to_string()
            .contains("tx.sql: the file ends inside a transaction block"),
        "{e}"
    );
}

#[tokio::test]
async fn notices_reach_the_event_handler_with_their_statement() {
    let dir = project(&[("n.sql", "select 1;\nDROP TABLE IF EXISTS nope;\n")]);
    let (server, loader, events) = loader(dir.path()).await;
    let db = server.fresh_db("notice").await;
    loader.load_files(&db, &["n.sql"]).await.unwrap();
    assert_eq!(
        events.lines(),
        ["NOTICE: n.sql:2: table \"nope\" does not exist, skipping"]
    );
}

#[tokio::test]
async fn crlf_bom_and_a_last_statement_without_semicolon() {
    let dir = project(&[(
        "w.sql",
        "\u{feff}CREATE TABLE w (x int);\r\nINSERT INTO w VALUES (1);\r\nINSERT INTO w VALUES (2)",
    )]);
    let (server, loader, _) = loader(dir.path()).await;
    let db = server.fresh_db("crlf").await;
    loader
        .load_files(&db, &["w.sql"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(server.count(&db, "SELECT count(*) FROM w").await, 2);
}

#[tokio::test]
async fn missing_top_level_file_names_it() {
    let dir = project(&[]);
    let (server, loader, _) = loader(dir.path()).await;
    let db = server.fresh_db("missing").await;
    let e = loader.load_files(&db, &["db/seed.sql"]).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("error: could not read file \"db/seed.sql\": No such file"),
        "{e}"
    );
}

#[tokio::test]
async fn progress_names_each_file_and_counts_its_bytes_while_it_runs() {
    use std::sync::{Arc, Mutex};
    let slow = "SELECT pg_sleep(0.25);\nSELECT 1;\nSELECT pg_sleep(0.25);\nSELECT 2;\n";
    let dir = project(&[("a.sql", "\\i b.sql\nSELECT 3;\n"), ("b.sql", slow)]);
    let (server, loader, _) = loader(dir.path()).await;
    let seen: Arc<Mutex<Vec<(PathBuf, u64, u64)>>> = Arc::default();
    let log = seen.clone();
    let loader = loader.events(Arc::new(move |event| {
        if let devenv_sql::Event::Progress {
            path, done, total, ..
        } = event
        {
            log.lock()
                .unwrap()
                .push((path.to_path_buf(), *done, *total));
        }
    }));
    // Off by default.
    let db = server.fresh_db("progress").await;
    loader
        .load_files(&db, &["b.sql"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(seen.lock().unwrap().is_empty());
    let db = server.fresh_db("progress").await;
    loader
        .progress(true)
        .load_files(&db, &["a.sql"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = seen.lock().unwrap().clone();
    let of = |name: &str| -> Vec<(u64, u64)> {
        seen.iter()
            .filter(|(p, _, _)| p.file_name().is_some_and(|f| f == name))
            .map(|(_, d, t)| (*d, *t))
            .collect()
    };
    // Each file is announced when it starts, with its size.
    assert_eq!(of("a.sql").first(), Some(&(0, 19)), "{seen:?}");
    let b = of("b.sql");
    assert_eq!(b.first(), Some(&(0, slow.len() as u64)), "{seen:?}");
    // The slow file reports bytes done between statements: after each pg_sleep, at most every
    // PROGRESS_EVERY, growing, never past its size.
    let during: Vec<u64> = b.iter().skip(1).map(|(d, _)| *d).collect();
    assert!(
        during.len() >= 2 && during.len() <= 5,
        "one or two per sleep, not one per statement: {seen:?}"
    );
    assert!(during.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(
        during.iter().all(|d| *d > 0 && *d <= slow.len() as u64),
        "{seen:?}"
    );
    assert!(
        (22..=23).contains(&during[0]),
        "after the first sleep (23 bytes with its newline): {seen:?}"
    );
}
