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

/// Loads `files` (in a project of `fixtures`) with a deadline: a read that blocks fails the
/// test instead of hanging it.
async fn load_err_within(
    dir: &Path,
    loader: &devenv_sql::Loader,
    db: &str,
    files: &[&str],
) -> LoadError {
    let deadline = std::time::Duration::from_secs(30);
    match tokio::time::timeout(deadline, loader.load_files(db, files)).await {
        Ok(result) => result.expect_err("the load should fail"),
        Err(elapsed) => panic!(
            "loading {files:?} blocked (in {}): {elapsed}",
            dir.display()
        ),
    }
}

#[tokio::test]
async fn a_fifo_pulled_in_by_backslash_i_is_refused_up_front_with_its_path() {
    let dir = project(&[("main.sql", "SELECT 1;\n\\i pipe.sql\n")]);
    // No writer ever opens it: reading it would block for good.
    nix::unistd::mkfifo(&dir.path().join("pipe.sql"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (server, loader, _) = loader(dir.path()).await;
    let db = server.fresh_db("fifo").await;
    let e = load_err_within(dir.path(), &loader, &db, &["main.sql"]).await;
    assert_eq!(
        first_line(&e),
        "main.sql:2:4: error: could not read included file \"pipe.sql\": it is a FIFO (named pipe), not a regular file; devenv reads SQL and data from regular files only"
    );
    // Listed as a file itself, or read by `\copy`: the same.
    let e = load_err_within(dir.path(), &loader, &db, &["pipe.sql"]).await;
    assert!(
        first_line(&e).starts_with("error: could not read file \"pipe.sql\": it is a FIFO"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("copy.sql"),
        "CREATE TABLE t (a int);\n\\copy t from 'pipe.sql'\n",
    )
    .unwrap();
    let e = load_err_within(dir.path(), &loader, &db, &["copy.sql"]).await;
    assert!(
        first_line(&e).starts_with(
            "copy.sql:2:7: error: could not read data file \"pipe.sql\": it is a FIFO"
        ),
        "{e}"
    );
    // The static listing (the content hash) leaves it out instead of blocking on it.
    let listed = devenv_sql::files_read(
        dir.path(),
        &["main.sql", "copy.sql"],
        &devenv_sql::scan::Variables::new(),
    );
    assert_eq!(listed.len(), 2, "{listed:?}");
}

#[tokio::test]
async fn backslash_i_of_dev_zero_is_refused_instead_of_read_until_memory_runs_out() {
    let dir = project(&[("main.sql", "\\i /dev/zero\n")]);
    let (server, loader, _) = loader(dir.path()).await;
    let db = server.fresh_db("zero").await;
    let e = load_err_within(dir.path(), &loader, &db, &["main.sql"]).await;
    assert!(
        first_line(&e).starts_with(
            "main.sql:1:4: error: could not read included file \"/dev/zero\": it is a character device, not a regular file"
        ),
        "{e}"
    );
}

/// The process's peak resident memory so far, in bytes.
fn peak_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn a_statement_over_the_1gb_message_limit_is_refused_at_its_line_without_sending_it() {
    use std::io::Write as _;
    // On a tmpfs when there is one: 1 GB of disk is not to be taken for granted.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let path = dir.path().join("big.sql");
    // A statement one byte over the limit PostgreSQL puts on a message.
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    out.write_all(b"CREATE TABLE before_it ();\nINSERT INTO t VALUES ('")
        .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let body = devenv_sql::scan::MAX_INPUT + 1 - "INSERT INTO t VALUES ('');".len();
    let mut left = body;
    while left > 0 {
        let n = left.min(chunk.len());
        out.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    out.write_all(b"');\nCREATE TABLE after_it ();\n").unwrap();
    drop(out);
    let size = std::fs::metadata(&path).unwrap().len();
    let (server, loader, _) = loader(dir.path()).await;
    let db = server.fresh_db("big").await;
    let e = load_err_within(dir.path(), &loader, &db, &["big.sql"]).await;
    assert_eq!(
        first_line(&e),
        format!(
            "big.sql:2:1: error: this statement is {} bytes, over the {}-byte limit of one message to PostgreSQL (1 GB); it is not sent",
            devenv_sql::scan::MAX_INPUT + 1,
            devenv_sql::scan::MAX_INPUT
        )
    );
    let tables = "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'";
    let found: Option<String> = server
        .connect(&db)
        .await
        .query_one(tables, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(found.as_deref(), Some("before_it"));
    // Bounded: the file once, not copies of it (the issue saw 5.25 GB for a 1 GB line).
    let peak = peak_memory();
    assert!(
        peak < size + (512 << 20),
        "peak {peak} bytes for a {size}-byte file"
    );
}

#[tokio::test]
async fn a_copy_row_or_meta_command_line_over_the_limit_is_refused_at_its_line() {
    let long = "y".repeat(2_000);
    let dir = project(&[
        (
            "copy.sql",
            &format!("CREATE TABLE t (s text);\nCOPY t FROM stdin;\nshort\n{long}\n\\.\n"),
        ),
        (
            "slash.sql",
            "CREATE TABLE t (s text);\n\\copy t from 'rows.txt'\n",
        ),
        ("rows.txt", &format!("a\nb\n{long}\n")),
        ("set.sql", &format!("SELECT 1;\n\\set v '{long}'\n")),
        ("stmt.sql", &format!("SELECT 1;\n  SELECT '{long}';\n")),
    ]);
    let (server, loader, _) = loader(dir.path()).await;
    let loader = loader.input_limit(1_000);
    for (file, at, what, len) in [
        ("copy.sql", "copy.sql:4:1", "COPY data row", 2_000),
        ("slash.sql", "rows.txt:3:1", "COPY data row", 2_000),
        ("set.sql", "set.sql:2:1", "meta-command line", 2_009),
        ("stmt.sql", "stmt.sql:2:3", "statement", 2_010),
    ] {
        let db = server.fresh_db("limit").await;
        let e = load_err_within(dir.path(), &loader, &db, &[file]).await;
        assert_eq!(
            first_line(&e),
            format!("{at}: error: this {what} is {len} bytes, over the 1000-byte limit of one message to PostgreSQL (1 GB); it is not sent")
        );
    }
}
