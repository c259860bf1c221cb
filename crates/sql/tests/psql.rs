//! The psql-isms real setup scripts use (`\if`, `\gset`, `\gexec`, `\copy`, automatic
//! variables, `\restrict`, display-only commands), each run by the loader and by psql 15 on
//! the same files against the same server, and the outcomes compared: what `\echo` printed,
//! the error (psql's `path:line` and message), and what landed in the database.

mod support;

use std::path::Path;
use std::process::Command;

use devenv_sql::{ErrorKind, LoadError, LoadSummary};
use support::{loader, project};

/// What running a file printed with `\echo` and where it stopped.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    echoes: Vec<String>,
    /// The first error: file, line and message (psql's own, or the server's primary message).
    error: Option<(String, usize, String)>,
}

/// A loader run: its outcome, the raw result and the events it reported.
struct Loaded {
    outcome: Outcome,
    result: Result<LoadSummary, LoadError>,
    events: Vec<String>,
}

/// Runs `file` (relative to `dir`) with the loader into a fresh database.
async fn load(dir: &Path, file: &str) -> (Loaded, String) {
    // The caller holds the shared server, so this is the same one.
    let (server, loader, events) = loader(dir).await;
    let db = server.fresh_db("ld").await;
    let result = loader.load_files(&db, &[file]).await;
    let events = events.lines();
    let echoes = events
        .iter()
        .filter_map(|e| e.strip_prefix("echo: ").map(str::to_owned))
        .collect();
    let error = result.as_ref().err().map(|e| {
        let loc = e.location.as_ref().expect("errors here have a location");
        let message = match &e.kind {
            ErrorKind::Server { message, .. } | ErrorKind::Psql(message) => message.clone(),
            other => other.to_string(),
        };
        (loc.path.display().to_string(), loc.line, message)
    });
    let outcome = Outcome { echoes, error };
    (
        Loaded {
            outcome,
            result,
            events,
        },
        db,
    )
}

/// Writes `sql` as `name` in a new project and loads it; the project stays while it is held.
async fn load_one(name: &str, sql: &str) -> (tempfile::TempDir, Loaded, String) {
    let dir = project(&[(name, sql)]);
    let (loaded, db) = load(dir.path(), name).await;
    (dir, loaded, db)
}

/// Runs `file` with psql 15 (`-X -q -v ON_ERROR_STOP=1`, query results discarded) from `dir`
/// into a fresh database; its outcome and its stderr.
async fn psql(dir: &Path, file: &str) -> (Outcome, String, String) {
    // The caller holds the shared server, so this is the same one.
    let server = support::server().await;
    let db = server.fresh_db("ps").await;
    let s = server.server();
    let bin = devenv_server::native::find_bin_dir()
        .await
        .expect("PostgreSQL binaries")
        .join("psql");
    let out = Command::new(&bin)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null"])
        .args(["-h", &s.host(), "-p", &s.port().to_string(), "-U", s.user()])
        .args(["-d", &db, "-f", file])
        .env("PGPASSWORD", s.password())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("these tests compare with psql; run {}: {e}", bin.display()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let echoes = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let error = stderr.lines().find_map(|line| {
        let rest = line.strip_prefix("psql:")?;
        let (file, rest) = rest.split_once(':')?;
        let (number, rest) = rest.split_once(": ")?;
        let message = rest
            .strip_prefix("error: ")
            .or_else(|| rest.strip_prefix("ERROR:  "))?;
        Some((file.to_owned(), number.parse().ok()?, message.to_owned()))
    });
    // psql stops (3) only on errors; some errors (`\\if` not a boolean) do not stop it.
    assert!(
        out.status.code() == Some(0) || (out.status.code() == Some(3) && error.is_some()),
        "psql: {stderr}"
    );
    (Outcome { echoes, error }, stderr, db)
}

/// Runs `file` both ways; asserts the same outcome and the same answer to `state` (a query
/// that sums up what the file did to the database).
async fn same_as_psql(dir: &Path, file: &str, state: &str) -> Loaded {
    let (loaded, db) = load(dir, file).await;
    let (theirs, stderr, psql_db) = psql(dir, file).await;
    assert_eq!(
        loaded.outcome, theirs,
        "loader vs psql; psql said: {stderr}"
    );
    let server = support::server().await;
    let ours = text(&server, &db, state).await;
    assert_eq!(ours, text(&server, &psql_db, state).await, "{state}");
    loaded
}

async fn text(server: &support::TestServer, db: &str, sql: &str) -> Option<String> {
    server
        .connect(db)
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

const TABLES: &str = "SELECT string_agg(tablename, ',' ORDER BY tablename)::text \
                      FROM pg_tables WHERE schemaname = 'public'";

#[tokio::test]
async fn true_false_and_nested_branches() {
    let server = support::server().await;
    let dir = project(&[(
        "branches.sql",
        "\\set yes on\n\
         \\if :yes\n  CREATE TABLE a1 ();\n  \\if false\n    CREATE TABLE no1 ();\n    \\echo no1\n  \\elif :yes\n    CREATE TABLE a2 ();\n  \\else\n    CREATE TABLE no2 ();\n  \\endif\n\
         \\elif true\n  CREATE TABLE no3 ();\n\
         \\else\n  CREATE TABLE no4 ();\n\\endif\n\
         \\if OFF\n  \\if true\n    CREATE TABLE no5 ();\n  \\else\n    CREATE TABLE no6 ();\n  \\endif\n\
         \\elif n\n  CREATE TABLE no7 ();\n\
         \\else\n  CREATE TABLE a3 ();\n  \\echo else :yes\n\\endif\n\
         \\if Y\nCREATE TABLE\n\\else\n\\echo dropped\nbogus text\n\\endif\n  a4 ();\n\
         \\if 0\n  CREATE TABLE no8 ();\n\\endif\n\\echo done\n",
    )]);
    let loaded = same_as_psql(dir.path(), "branches.sql", TABLES).await;
    assert_eq!(loaded.outcome.echoes, ["else on", "done"]);
    let (_, db) = load(dir.path(), "branches.sql").await;
    assert_eq!(text(&server, &db, TABLES).await.unwrap(), "a1,a2,a3,a4");
}

#[tokio::test]
async fn a_false_branch_opens_no_include_and_interpolates_nothing() {
    let _server = support::server().await;
    let dir = project(&[
        (
            "main.sql",
            "\\if false\n\\i missing.sql\n\\ir :undefined/x.sql\nSELECT :'nope' \\gset\n\\copy t from 'missing.csv'\n\\endif\n\\if true\n\\ir part.sql\n\\endif\n",
        ),
        ("part.sql", "CREATE TABLE included ();\n"),
    ]);
    let loaded = same_as_psql(dir.path(), "main.sql", TABLES).await;
    let files = loaded.result.unwrap().files;
    assert_eq!(files.len(), 2, "{files:?}");
}

#[tokio::test]
async fn an_unterminated_if_is_an_error_at_the_if() {
    let _server = support::server().await;
    let dir = project(&[
        ("main.sql", "SELECT 1;\n\\ir inner.sql\n\\endif\n"),
        ("inner.sql", "\\echo in\n\\if true\nSELECT 2;\n"),
    ]);
    let (loaded, _) = load(dir.path(), "main.sql").await;
    // psql 15 names the file's last line ("psql:inner.sql:3: error: reached EOF without
    // finding closing \endif(s)"); the loader names the `\if` left open instead.
    let (psql_outcome, _, _) = psql(dir.path(), "main.sql").await;
    assert_eq!(
        psql_outcome.error,
        Some((
            "inner.sql".into(),
            3,
            "reached EOF without finding closing \\endif(s)".into()
        ))
    );
    assert_eq!(
        loaded.outcome.error,
        Some((
            "inner.sql".into(),
            2,
            "reached EOF without finding closing \\endif(s)".into()
        ))
    );
}

#[tokio::test]
async fn an_if_that_is_not_a_boolean_stops_the_load() {
    let server = support::server().await;
    let (dir, loaded, _) = load_one(
        "bad.sql",
        "\\set v maybe\n\\if :v\n\\endif\nCREATE TABLE t ();\n",
    )
    .await;
    // psql prints the same error but carries on with the block as false even under
    // ON_ERROR_STOP (checked with psql 15.18): the loader stops, as for any other error.
    assert_eq!(
        loaded.outcome.error,
        Some((
            "bad.sql".into(),
            2,
            "unrecognized value \"maybe\" for \"\\if expression\": Boolean expected".into()
        ))
    );
    let (theirs, _, psql_db) = psql(dir.path(), "bad.sql").await;
    assert_eq!(theirs.error, loaded.outcome.error);
    assert_eq!(text(&server, &psql_db, TABLES).await.as_deref(), Some("t"));
}

#[tokio::test]
async fn gset_sets_one_row_unsets_nulls_and_takes_a_prefix() {
    let _server = support::server().await;
    let dir = project(&[(
        "gset.sql",
        "\\set b was_set\nSELECT 1 AS a, NULL AS b, 'x y' AS \"C\" \\gset\n\\echo :a :b :C\n\
         SELECT 2 AS a\n\\gset p_\n\\echo :p_a :a\n\
         SELECT 3 AS again;\n\\gset\n\\echo :again\n\
         SELECT count(*) > 0 AS has_plpgsql FROM pg_language WHERE lanname = 'plpgsql' \\gset\n\
         \\if :has_plpgsql\nCREATE TABLE yes_plpgsql ();\n\\endif\n\
         CREATE TABLE made () \\gset\n",
    )]);
    let loaded = same_as_psql(dir.path(), "gset.sql", TABLES).await;
    assert_eq!(loaded.outcome.echoes, ["1 :b x y", "2 1", "3"]);
}

#[tokio::test]
async fn gset_with_no_row_or_two_rows_is_an_error_at_the_gset() {
    let _server = support::server().await;
    for (sql, message) in [
        (
            "SELECT 1 WHERE false \\gset\n",
            "no rows returned for \\gset",
        ),
        (
            "SELECT 1 AS a UNION ALL SELECT 2\n  \\gset\n",
            "more than one row returned for \\gset",
        ),
        ("SELECT 1 \\gset\n", "invalid variable name: \"?column?\""),
    ] {
        let dir = project(&[("g.sql", &format!("CREATE TABLE t ();\n{sql}"))]);
        let loaded = same_as_psql(dir.path(), "g.sql", TABLES).await;
        let e = loaded.result.unwrap_err();
        let line = if sql.contains("\n  ") { 3 } else { 2 };
        let col = if line == 3 {
            3
        } else {
            sql.find('\\').unwrap() + 1
        };
        assert_eq!(
            e.to_string().lines().next().unwrap(),
            format!("g.sql:{line}:{col}: error: {message}")
        );
    }
}

#[tokio::test]
async fn automatic_variables_are_psqls() {
    let server = support::server().await;
    let (dir, loaded, db) = load_one(
        "auto.sql",
        "\\echo :DBNAME :USER :HOST :PORT :ENCODING :SERVER_VERSION_NUM :SERVER_VERSION_NAME\n\
         ALTER DATABASE :\"DBNAME\" SET work_mem = '7MB';\n\
         COMMENT ON DATABASE :DBNAME IS :'DBNAME';\n\
         \\c postgres\n\\echo :DBNAME\n",
    )
    .await;
    let (theirs, stderr, psql_db) = psql(dir.path(), "auto.sql").await;
    assert_eq!(theirs.error, None, "{stderr}");
    let ours = &loaded.outcome.echoes;
    // The database names differ (one fresh database each); the rest is the same.
    let strip = |line: &str, db: &str| line.replacen(db, "DB", 1);
    assert_eq!(strip(&ours[0], &db), strip(&theirs.echoes[0], &psql_db));
    assert_eq!(ours[1], "postgres");
    assert!(ours[0].starts_with(&format!("{db} postgres ")), "{ours:?}");
    let comment = format!(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{db}'"
    );
    assert_eq!(text(&server, &db, &comment).await.unwrap(), db);
    let setting = format!(
        "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE datname = '{db}'"
    );
    assert_eq!(text(&server, &db, &setting).await.unwrap(), "work_mem=7MB");
}

#[tokio::test]
async fn the_loader_sets_on_error_stop_and_the_server_version() {
    let _server = support::server().await;
    let (_dir, loaded, _) = load_one("v.sql", "SELECT current_setting('server_version_num') = :'SERVER_VERSION_NUM' AS same \\gset\n\\echo :same :ON_ERROR_STOP :VERSION_NUM\n",).await;
    let echo = &loaded.outcome.echoes[0];
    assert!(echo.starts_with("t on 1"), "{echo}");
}

#[tokio::test]
async fn gexec_runs_each_cell_and_an_error_quotes_the_generated_statement() {
    let _server = support::server().await;
    let dir = project(&[(
        "gexec.sql",
        "SELECT 'CREATE TABLE g1 ()' UNION ALL SELECT NULL UNION ALL SELECT 'CREATE TABLE g2 (); CREATE TABLE g3 ()' \\gexec\n\
         SELECT 'CREATE TABLE g1 ()' WHERE NOT EXISTS (SELECT FROM pg_tables WHERE tablename = 'g1')\\gexec\n\
         SELECT 'CREATE TABLE g4 ()', 'CREATE TABLE g1 ()'\n\\gexec\nCREATE TABLE never ();\n",
    )]);
    let loaded = same_as_psql(dir.path(), "gexec.sql", TABLES).await;
    let e = loaded.result.unwrap_err();
    let report = e.to_string();
    assert!(
        report.starts_with("gexec.sql:4:1: error: relation \"g1\" already exists [42P07]"),
        "{report}"
    );
    assert!(
        report.contains("CONTEXT: statement generated by \\gexec: CREATE TABLE g1 ()"),
        "{report}"
    );
}

#[tokio::test]
async fn gexec_creates_a_database_only_if_missing() {
    let server = support::server().await;
    let name = format!("gexec_db_{}", std::process::id());
    let file = format!(
        "SELECT 'CREATE DATABASE {name}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{name}')\\gexec\n"
    );
    let dir = project(&[("init.sql", &file)]);
    for _ in 0..2 {
        let (loaded, _) = load(dir.path(), "init.sql").await;
        loaded.result.unwrap_or_else(|e| panic!("{e}"));
    }
    let exists = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
    assert_eq!(server.count("postgres", &exists).await, 1);
    server
        .connect("postgres")
        .await
        .batch_execute(&format!("DROP DATABASE {name}"))
        .await
        .unwrap();
}

const USERS: &str = "CREATE TABLE users (id int PRIMARY KEY, name text, n int);\n";
const SUM: &str = "SELECT string_agg(id || ':' || coalesce(name, '-') || ':' || coalesce(n::text, '-'), '|' ORDER BY id) FROM users";

#[tokio::test]
async fn copy_a_csv_with_header_and_quoted_commas() {
    let _server = support::server().await;
    let csv = "id,name,n\n1,\"Doe, Jane\",10\n2,\"multi\nline\",\n3,plain,30\n";
    let sql = format!(
        "{USERS}\\copy users FROM 'users.csv' WITH (FORMAT csv, HEADER true);\n\
         \\copy users (id, name) from 'more.csv' csv header\n\
         \\copy users (n, id) FROM stdin\n7\t8\n\\.\n"
    );
    let dir = project(&[
        ("seed.sql", &sql),
        ("users.csv", csv),
        ("more.csv", "id,name\n4,\"quote \"\"q\"\"\"\n"),
    ]);
    let loaded = same_as_psql(dir.path(), "seed.sql", SUM).await;
    let summary = loaded.result.unwrap();
    assert_eq!(summary.copy_rows, 5);
    let names: Vec<_> = summary
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(names, ["seed.sql", "users.csv", "more.csv"]);
    // The static listing (the fixture's template key) finds the same files.
    let listed: Vec<_> = devenv_sql::files_read(dir.path(), &["seed.sql"], &Default::default())
        .into_iter()
        .map(|input| input.path)
        .collect();
    assert_eq!(listed, summary.files);
}

#[tokio::test]
async fn copy_from_pstdin_reads_the_lines_that_follow() {
    let server = support::server().await;
    // psql reads `pstdin` from its own standard input, which is the file only for
    // `psql < file`; the loader has no other input, so it reads the lines that follow, as
    // `psql < file` would (checked by hand with psql 15.18).
    let sql = format!("{USERS}\\copy users (id) from pstdin with (format csv)\n9\n\\.\nINSERT INTO users (id) VALUES (10);\n");
    let (_dir, loaded, db) = load_one("p.sql", &sql).await;
    loaded.result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(&server, &db, SUM).await.unwrap(), "9:-:-|10:-:-");
}

#[tokio::test]
async fn a_bad_csv_row_is_reported_at_its_own_line_and_field() {
    let _server = support::server().await;
    let csv = "id,name,n\n1,\"a, b\",2\n2,\"multi\nline\",3\n3,x,notanint\n";
    let dir = project(&[
        (
            "seed.sql",
            &format!("{USERS}\\copy users FROM 'users.csv' CSV HEADER\n"),
        ),
        ("users.csv", csv),
    ]);
    let (loaded, _) = load(dir.path(), "seed.sql").await;
    let (theirs, stderr, _) = psql(dir.path(), "seed.sql").await;
    // psql reports the `\copy` line and names the data line in CONTEXT; the loader points
    // into the CSV at that line, at the field.
    let message = "invalid input syntax for type integer: \"notanint\"";
    assert_eq!(theirs.error, Some(("seed.sql".into(), 2, message.into())));
    assert!(
        stderr.contains("CONTEXT:  COPY users, line 5, column n"),
        "{stderr}"
    );
    let e = loaded.result.unwrap_err();
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        format!("users.csv:5:5: error: {message} [22P02]")
    );
    assert!(e.to_string().contains("5 | 3,x,notanint\n  |     ^"), "{e}");
}

#[tokio::test]
async fn copy_paths_are_relative_to_the_file_that_holds_them() {
    let server = support::server().await;
    // psql reads `\copy` files from its working directory; the loader, like `\ir`, from the
    // directory of the file holding the command, so a seed works from any directory.
    let dir = project(&[
        ("db/seed.sql", &format!("{USERS}\\ir data/more.sql\n")),
        ("db/data/more.sql", "\\copy users (id) from 'ids.csv'\n"),
        ("db/data/ids.csv", "1\n2\n"),
        ("db/data/missing.sql", "\\copy users (id) from 'nope.csv'\n"),
    ]);
    let (loaded, db) = load(dir.path(), "db/seed.sql").await;
    let summary = loaded.result.unwrap_or_else(|e| panic!("{e}"));
    assert!(summary.files.contains(&dir.path().join("db/data/ids.csv")));
    assert_eq!(server.count(&db, "SELECT count(*) FROM users").await, 2);
    let (loaded, _) = load(dir.path(), "db/data/missing.sql").await;
    let e = loaded.result.unwrap_err();
    assert!(
        e.to_string().starts_with(
            "db/data/missing.sql:1:7: error: could not read data file \"db/data/nope.csv\""
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_copy_data_error_points_at_the_field() {
    let _server = support::server().await;
    let sql = "CREATE TABLE t (a int, b text, c int);\n\
               COPY t (c, a) FROM stdin;\n1\t2\n3\tfour\n\\.\n";
    let (dir, loaded, _) = load_one("c.sql", sql).await;
    let (theirs, stderr, _) = psql(dir.path(), "c.sql").await;
    // psql: "ERROR: invalid input syntax for type integer: "four"" with
    // "CONTEXT: COPY t, line 2, column a: "four"": line 2 of the data is line 4 of the file,
    // and column a is the second field of the COPY's column list.
    assert!(stderr.contains("COPY t, line 2, column a"), "{stderr}");
    let message = theirs.error.unwrap().2;
    let e = loaded.result.unwrap_err();
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        format!("c.sql:4:3: error: {message} [22P02]")
    );
    // Without a column list, the table's column order places it; a short row points at its end.
    for (data, at) in [("1\tx\tbad\n", "3:5"), ("1\tx\n", "3:4")] {
        let sql =
            format!("CREATE TABLE t (a int, b text, c int);\nCOPY t FROM stdin;\n{data}\\.\n");
        let (_dir, loaded, _) = load_one("c.sql", &sql).await;
        let e = loaded.result.unwrap_err().to_string();
        assert!(e.starts_with(&format!("c.sql:{at}: error: ")), "{e}");
    }
}

#[tokio::test]
async fn restrict_refuses_other_meta_commands_until_unrestrict() {
    let _server = support::server().await;
    let dir = project(&[(
        "dump.sql",
        "\\restrict k3y\nCREATE TABLE a ();\n\\unrestrict k3y\n\\echo between\n\\restrict k3y\nCREATE TABLE b ();\n  \\echo hostile\nCREATE TABLE c ();\n",
    )]);
    let loaded = same_as_psql(dir.path(), "dump.sql", TABLES).await;
    assert_eq!(
        loaded
            .result
            .unwrap_err()
            .to_string()
            .lines()
            .next()
            .unwrap(),
        "dump.sql:7:3: error: backslash commands are restricted; only \\unrestrict is allowed"
    );
    for (sql, message) in [
        ("\\restrict a\n\\unrestrict b\n", "\\unrestrict: wrong key"),
        (
            "\\unrestrict a\n",
            "\\unrestrict: not currently in restricted mode",
        ),
    ] {
        let dir = project(&[("r.sql", sql)]);
        let loaded = same_as_psql(dir.path(), "r.sql", TABLES).await;
        assert_eq!(loaded.outcome.error.unwrap().2, message);
    }
}

#[tokio::test]
async fn display_only_commands_are_ignored_and_shown_as_such() {
    let _server = support::server().await;
    let dir = project(&[(
        "pasted.sql",
        "\\timing on\n\\timing off\n\\pset format unaligned\n\\x\n\\a\n\\t\n\\f ','\n\\C title\n\\H\n\\o\nCREATE TABLE t ();\n",
    )]);
    let loaded = same_as_psql(dir.path(), "pasted.sql", TABLES).await;
    let ignored: Vec<_> = loaded
        .events
        .iter()
        .filter(|e| e.starts_with("ignored: "))
        .collect();
    assert_eq!(ignored.len(), 10, "{ignored:?}");
    assert_eq!(ignored[2], "ignored: pasted.sql:3: \\pset");
    let (_dir, loaded, _) = load_one("o.sql", "\\o out.txt\n").await;
    assert!(loaded.result.is_err(), "\\o with a file is refused");
}

#[tokio::test]
async fn encoding_getenv_and_setenv() {
    let server = support::server().await;
    std::env::set_var("DEVENV_SQL_TEST_GETENV", "from-env");
    let dir = project(&[
        (
            "enc.sql",
            "\\encoding LATIN1\n\\echo :ENCODING\nCREATE TABLE t (s text);\n\\copy t from 'latin1.txt'\n\\encoding UTF8\n\
             \\getenv v DEVENV_SQL_TEST_GETENV\n\\echo :v\n\
             \\setenv DEVENV_SQL_TEST_SET one\n\\getenv w DEVENV_SQL_TEST_SET\n\\echo :w\n\
             \\setenv DEVENV_SQL_TEST_SET\n\\getenv w DEVENV_SQL_TEST_SET\n\\echo :w\n",
        ),
        ("latin1.txt", ""),
    ]);
    // "é" in Latin-1 is one byte, 0xE9.
    std::fs::write(dir.path().join("latin1.txt"), b"caf\xe9\n").unwrap();
    let loaded = same_as_psql(dir.path(), "enc.sql", "SELECT s FROM t").await;
    assert_eq!(loaded.outcome.echoes, ["LATIN1", "from-env", "one", "one"]);
    let (_, db) = load(dir.path(), "enc.sql").await;
    assert_eq!(text(&server, &db, "SELECT s FROM t").await.unwrap(), "café");
    // The process's own environment is untouched.
    assert!(std::env::var("DEVENV_SQL_TEST_SET").is_err());
}

#[tokio::test]
async fn other_meta_commands_stay_errors_naming_them() {
    let _server = support::server().await;
    let (_dir, loaded, _) = load_one("m.sql", "\\gdesc\n").await;
    let e = loaded.result.unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::UnsupportedMeta(ref m) if m == "gdesc"),
        "{e}"
    );
}
