//! The psql-isms real setup scripts use (`\if`, `\gset`, `\gexec`, `\copy`, automatic
//! variables, `\restrict`, display-only commands), each run by the loader and by psql 15 on
//! the same files against the same server, and the outcomes compared: what `\echo` printed,
//! the error (psql's `path:line` and message), and what landed in the database.

mod support;

use std::path::Path;

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
    let (outcome, stderr) = psql_in(dir, file, &db, &[]).await;
    (outcome, stderr, db)
}

/// [`psql`] in an existing database `db`, with more arguments: its outcome and its stderr.
async fn psql_in(dir: &Path, file: &str, db: &str, args: &[&str]) -> (Outcome, String) {
    let out = support::psql(dir, file, db, args).await;
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
    (Outcome { echoes, error }, stderr)
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
    let listed: Vec<_> = devenv_sql::files_read(
        dir.path(),
        &["seed.sql"],
        &devenv_sql::scan::Variables::new(),
    )
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
async fn relative_paths_are_looked_up_from_the_root_as_psql_then_beside_the_file() {
    let server = support::server().await;
    let dir = project(&[
        // A seed in db/ that reads its CSV by a path from the repository root, where psql
        // runs.
        (
            "db/users.sql",
            &format!("{USERS}\\copy users from './db/users.csv' csv\n"),
        ),
        ("db/users.csv", "1,ann,10\n"),
        // An install script in db/ that includes its parts from beside itself, as psql run
        // from db/ finds them.
        ("db/install.sql", "\\i src/schema.sql\n\\i src/data.sql\n"),
        ("db/src/schema.sql", "CREATE TABLE parts (n int);\n"),
        (
            "db/src/data.sql",
            "\\copy parts from 'src/parts.csv'\n\\ir more.sql\n",
        ),
        ("db/src/parts.csv", "1\n2\n"),
        ("db/src/more.sql", "INSERT INTO parts VALUES (3);\n"),
        // `\ir` is relative to its file only: this one is not read.
        ("more.sql", "SELECT 1/0;\n"),
        // Where both exist, psql's place wins.
        ("db/pick.sql", "\\i which.sql\n"),
        ("which.sql", "\\echo root\n"),
        ("db/which.sql", "\\echo beside\n"),
        ("db/bad.sql", "SELECT 1;\n\\i src/nope.sql\n"),
    ]);
    let loaded = same_as_psql(dir.path(), "db/users.sql", SUM).await;
    loaded.result.unwrap_or_else(|e| panic!("{e}"));
    let loaded = same_as_psql(dir.path(), "db/pick.sql", TABLES).await;
    assert_eq!(loaded.outcome.echoes, ["root"]);
    let parts = "SELECT string_agg(n::text, ',' ORDER BY n) FROM parts";
    let (loaded, db) = load(dir.path(), "db/install.sql").await;
    let summary = loaded.result.unwrap_or_else(|e| panic!("{e}"));
    assert!(summary.files.contains(&dir.path().join("db/src/parts.csv")));
    assert_eq!(text(&server, &db, parts).await.as_deref(), Some("1,2,3"));
    let psql_db = server.fresh_db("ps").await;
    let (theirs, stderr) = psql_in(&dir.path().join("db"), "install.sql", &psql_db, &[]).await;
    assert_eq!(theirs.error, None, "{stderr}");
    assert_eq!(
        text(&server, &psql_db, parts).await.as_deref(),
        Some("1,2,3")
    );
    // The static listing finds the same files.
    let listed: Vec<_> = devenv_sql::files_read(
        dir.path(),
        &["db/install.sql"],
        &devenv_sql::scan::Variables::new(),
    )
    .into_iter()
    .map(|input| input.path)
    .collect();
    assert_eq!(listed, summary.files);
    // Nowhere: the error names every place looked.
    let (loaded, _) = load(dir.path(), "db/bad.sql").await;
    assert_eq!(
        loaded
            .result
            .unwrap_err()
            .to_string()
            .lines()
            .next()
            .unwrap(),
        "db/bad.sql:2:4: error: could not read included file \"src/nope.sql\": not found; \
         looked for src/nope.sql (from the project root, as psql from its working directory), \
         then db/src/nope.sql (beside the file holding the command)"
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

/// What a script printed under one of the two: `\echo` lines, `\warn` lines, psql's warnings
/// (`line: message`) and the first error (`line`, message).
#[derive(Debug, Default, PartialEq, Eq)]
struct Printed {
    out: Vec<String>,
    err: Vec<String>,
    warnings: Vec<String>,
    error: Option<(usize, String)>,
}

/// Runs `file` of `dir` in `db` with the loader (`vars` set first).
async fn loader_printed(dir: &Path, file: &str, db: &str, vars: &[(&str, &str)]) -> Printed {
    let (_server, loader, events) = loader(dir).await;
    let vars = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let result = loader.vars(vars).load_files(db, &[file]).await;
    let mut printed = Printed::default();
    for event in events.lines() {
        if let Some(text) = event.strip_prefix("echo: ") {
            printed.out.extend(text.split('\n').map(str::to_owned));
        } else if let Some(text) = event.strip_prefix("warn: ") {
            printed.err.extend(text.split('\n').map(str::to_owned));
        } else if let Some(rest) = event.strip_prefix("warning: ") {
            let (_, rest) = rest.split_once(':').unwrap();
            printed.warnings.push(rest.to_owned());
        }
    }
    printed.error = result.err().map(|e| {
        let line = e.location.as_ref().map_or(0, |l| l.line);
        let message = match &e.kind {
            ErrorKind::Server { message, .. } | ErrorKind::Psql(message) => message.clone(),
            ErrorKind::InvalidMeta { name, .. } => format!("invalid command \\{name}"),
            other => other.to_string(),
        };
        (line, message)
    });
    printed
}

/// Runs `file` of `dir` in `db` with psql 15 (`args` before `-f`).
async fn psql_printed(dir: &Path, file: &str, db: &str, args: &[&str]) -> Printed {
    let out = support::psql(dir, file, db, args).await;
    let mut printed = Printed {
        out: String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        ..Printed::default()
    };
    let prefix = format!("psql:{file}:");
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            if printed.error.is_none() {
                printed.err.push(line.to_owned());
            }
            continue;
        };
        let (number, rest) = rest.split_once(": ").unwrap();
        let number: usize = number.parse().unwrap();
        if let Some(message) = rest.strip_prefix("warning: ") {
            printed.warnings.push(format!("{number}: {message}"));
        } else if let Some(message) = rest
            .strip_prefix("error: ")
            .or_else(|| rest.strip_prefix("ERROR:  "))
        {
            printed
                .error
                .get_or_insert_with(|| (number, message.to_owned()));
        }
    }
    printed
}

#[tokio::test]
async fn meta_command_arguments_are_lexed_as_psql_lexes_them() {
    let _server = support::server().await;
    let dir = project(&[
        ("inc.sql", "\\echo in inc\n"),
        ("sub/inc.sql", "\\echo in sub\n"),
        ("data.csv", "1,a\n2,b\n"),
    ]);
    // Each script runs in the database `postgres` under both; what they print must match,
    // and is pinned here too.
    let cases: &[(&str, &[&str])] = &[
        // `\set`: the `;` is part of the value, quoted or not.
        ("\\set x 'a';\n\\echo [:x]\n", &["[a;]"]),
        ("\\set x a;\n\\echo [:x]\n", &["[a;]"]),
        ("\\set x 'a' 'b' c;\n\\echo [:x]\n", &["[abc;]"]),
        ("\\set x a'b c'd\n\\echo [:x]\n", &["[ab cd]"]),
        ("\\set x 'it''s\\t\\101\\x42\\q'\n\\echo [:x]\n", &["[it's\tABq]"]),
        ("\\set x\n\\echo [:x]\n", &["[]"]),
        ("\\set v 'a\\\\b'\n\\echo [:'v'] [:\"v\"]\n", &["[ E'a\\\\b'] [\"a\\b\"]"]),
        // `\echo`: `;` kept, quotes, variables and their tests, `\\` between commands.
        ("\\echo hi ;\n\\echo 'q' ;x\n\\echo ab;;\n", &["hi ;", "q ;x", "ab;;"]),
        (
            "\\set v 'it''s'\n\\echo :v :'v' :\"v\" :nope :'nope' :\"nope\" :{?v} :{?nope} x:{?v}\n",
            &["it's 'it''s' \"it's\" :nope :'nope' :\"nope\" TRUE FALSE xTRUE"],
        ),
        ("\\echo \"dq  x\" 'a  b' '' end\n", &["\"dq  x\" a  b  end"]),
        ("\\echo one \\\\ \\echo two\n\\echo three \\echo four\n", &["one", "two", "three", "four"]),
        ("\\echo -n a\n\\echo '-n' b\n\\echo -n\n", &["a-n b"]),
        // `\warn` prints on stderr.
        ("\\warn w1 ;\n\\warn 'w 2'\n\\echo done\n", &["done"]),
        // `\i`: a trailing `;` goes, quotes and variables work, extra arguments are ignored
        // with a warning.
        ("\\i inc.sql;\n\\i 'inc.sql'\n\\set f inc.sql\n\\i :f\n", &["in inc", "in inc", "in inc"]),
        ("\\i inc.sql extra;\n", &["in inc"]),
        ("\\ir sub/inc.sql\n", &["in sub"]),
        // `\copy`: the rest of the line as written, in any case.
        (
            "CREATE TEMP TABLE t (a int, b text);\n\\copy t from 'data.csv' csv;\n\\COPY t FROM data.csv WITH (FORMAT csv)\n\
             SELECT count(*) AS n, string_agg(b, '' ORDER BY a, b) AS s FROM t \\gset\n\\echo :n :s\n",
            &["4 aabb"],
        ),
        // `\c`: SQL identifiers, `-` for the same, `-reuse-previous`, variables.
        (
            "\\c postgres\n\\echo :DBNAME\n\\c \"postgres\";\n\\echo :DBNAME\n\\c 'postgres' -\n\\echo :DBNAME\n\
             \\c -reuse-previous=on postgres\n\\set db postgres\n\\c :db\n\\echo :DBNAME\n",
            &["postgres", "postgres", "postgres", "postgres"],
        ),
        // `\gset`: a prefix, taken with its `;`.
        (
            "SELECT 1 AS a, 'x y' AS b \\gset p_\n\\echo :p_a :p_b\nSELECT 2 AS a \\gset\n\\echo :a\n",
            &["1 x y", "2"],
        ),
        ("SELECT 1 AS a \\gset p_;\n", &[]),
        // A name runs to whitespace or a backslash; unknown names stop psql even in a branch
        // that does not run.
        ("\\echo;\n", &[]),
        ("\\echo x\n\\if false\n\\bogus\n\\endif\n\\echo after\n", &["x"]),
    ];
    for (script, expected) in cases {
        std::fs::write(dir.path().join("case.sql"), script).unwrap();
        let ours = loader_printed(dir.path(), "case.sql", "postgres", &[]).await;
        let theirs = psql_printed(dir.path(), "case.sql", "postgres", &[]).await;
        assert_eq!(ours, theirs, "loader vs psql 15 on:\n{script}");
        assert_eq!(&ours.out, expected, "{script}");
    }
    // The cases psql stopped at, and what it said.
    let stops = [
        (
            "SELECT 1 AS a \\gset p_;\n",
            (1, "invalid variable name: \"p_;a\""),
        ),
        ("\\echo;\n", (1, "invalid command \\echo;")),
        (
            "\\echo x\n\\if false\n\\bogus\n\\endif\n",
            (3, "invalid command \\bogus"),
        ),
    ];
    for (script, (line, message)) in stops {
        std::fs::write(dir.path().join("case.sql"), script).unwrap();
        let ours = loader_printed(dir.path(), "case.sql", "postgres", &[]).await;
        assert_eq!(ours.error, Some((line, message.to_owned())), "{script}");
    }
    std::fs::write(
        dir.path().join("case.sql"),
        "\\warn w1 ;\n\\i inc.sql extra;\n",
    )
    .unwrap();
    let ours = loader_printed(dir.path(), "case.sql", "postgres", &[]).await;
    assert_eq!(ours.err, ["w1 ;"]);
    assert_eq!(ours.warnings, ["2: \\i: extra argument \"extra;\" ignored"]);
}

#[tokio::test]
async fn where_psql_reports_a_bad_argument_and_goes_on_the_loader_stops() {
    let _server = support::server().await;
    let dir = project(&[]);
    // An unterminated quote: psql prints the error, runs `\echo` without the argument, and
    // carries on; the loader stops at the quote, as for any other error.
    std::fs::write(dir.path().join("case.sql"), "\\echo 'abc\n\\echo after\n").unwrap();
    let theirs = psql_printed(dir.path(), "case.sql", "postgres", &[]).await;
    assert_eq!(theirs.out, ["", "after"]);
    assert_eq!(theirs.error, Some((1, "unterminated quoted string".into())));
    let (loaded, _) = load(dir.path(), "case.sql").await;
    let e = loaded.result.unwrap_err();
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        "case.sql:1:7: error: unterminated quoted string"
    );
    // A backquoted shell command: psql runs it; the loader runs no commands and says so.
    std::fs::write(
        dir.path().join("case.sql"),
        "\\set x `echo hi`\n\\echo :x\n",
    )
    .unwrap();
    let theirs = psql_printed(dir.path(), "case.sql", "postgres", &[]).await;
    assert_eq!(theirs.out, ["hi"]);
    let (loaded, _) = load(dir.path(), "case.sql").await;
    let e = loaded.result.unwrap_err().to_string();
    assert!(
        e.starts_with("case.sql:1:8: error: \\set: backquoted shell commands (`...`) are not run"),
        "{e}"
    );
    // Not in a branch that does not run, nor in extra arguments, which psql does not run
    // either.
    std::fs::write(
        dir.path().join("case.sql"),
        "\\if false\n\\set x `exit 1`\n\\endif\n\\unset y `exit 1`\n\\echo ok\n",
    )
    .unwrap();
    let ours = loader_printed(dir.path(), "case.sql", "postgres", &[]).await;
    let theirs = psql_printed(dir.path(), "case.sql", "postgres", &[]).await;
    assert_eq!(ours, theirs);
    assert_eq!(ours.out, ["ok"]);
}

#[tokio::test]
async fn copy_in_capitals_loads_and_every_other_name_is_matched_in_exact_case() {
    let server = support::server().await;
    // A real seed loader's lines, as psql 15 runs them.
    let dir = project(&[
        (
            "seed.sql",
            &format!("{USERS}\\COPY users FROM 'users.csv' CSV\n\\Copy users (id, name) from 'more.csv' with (format csv)\n"),
        ),
        ("users.csv", "1,ann,10\n2,bob,20\n"),
        ("more.csv", "3,cy\n"),
    ]);
    let loaded = same_as_psql(dir.path(), "seed.sql", SUM).await;
    assert_eq!(loaded.result.unwrap().copy_rows, 3);
    // psql 15's `exec_command` compares every other name with strcmp (`\copy` alone with
    // pg_strcasecmp): each of these is an unknown command to both, and `\C` is the title
    // command, not `\c`.
    for name in [
        "ECHO", "Echo", "I", "IR", "SET", "IF", "GSET", "CONNECT", "C2", "Q", "COPY2",
    ] {
        let script = format!("\\{name} x\n");
        std::fs::write(dir.path().join("case.sql"), &script).unwrap();
        let ours = loader_printed(dir.path(), "case.sql", "postgres", &[]).await;
        let theirs = psql_printed(dir.path(), "case.sql", "postgres", &[]).await;
        assert_eq!(ours, theirs, "{script}");
        assert_eq!(ours.error, Some((1, format!("invalid command \\{name}"))));
    }
    std::fs::write(dir.path().join("case.sql"), "\\C title\n\\echo :DBNAME\n").unwrap();
    let ours = loader_printed(dir.path(), "case.sql", "postgres", &[]).await;
    assert_eq!(
        ours,
        psql_printed(dir.path(), "case.sql", "postgres", &[]).await
    );
    assert_eq!(ours.out, ["postgres"]);
    // The loader's report says what to write instead.
    let (_dir, loaded, _) = load_one("e.sql", "\\ECHO hi\n").await;
    assert_eq!(
        loaded.result.unwrap_err().to_string().lines().next().unwrap(),
        "e.sql:1:1: error: invalid command \\ECHO (psql matches meta-command names in exact case, only \\copy in any case: \\echo?)"
    );
    drop(server);
}

#[tokio::test]
async fn variables_given_from_outside_are_set_before_the_first_file_as_psql_v_sets_them() {
    let server = support::server().await;
    // A setup script written for `psql -v USER_NAME=... -v USER_PASSWORD=... -f setup.sql`.
    let script = "\\if :{?DB_VERSION}\n\\else\n\\echo DB_VERSION not set\n\\quit\n\\endif\n\
                  CREATE USER :USER_NAME PASSWORD :'USER_PASSWORD';\n\
                  CREATE SCHEMA :\"SCHEMA\" AUTHORIZATION :USER_NAME;\n\
                  CREATE TABLE :\"SCHEMA\".versions (v text);\n\
                  INSERT INTO :\"SCHEMA\".versions VALUES (:'DB_VERSION');\n\
                  \\echo :USER_NAME :DB_VERSION :DBNAME\n";
    let dir = project(&[("setup.sql", script)]);
    let pid = std::process::id();
    let (ours_user, theirs_user) = (format!("app_l{pid}"), format!("app_p{pid}"));
    let ours_db = server.fresh_db("vars").await;
    let theirs_db = server.fresh_db("vars").await;
    let vars = |user: &str| {
        vec![
            ("USER_NAME".to_owned(), user.to_owned()),
            ("USER_PASSWORD".to_owned(), "it's s3cret".to_owned()),
            ("SCHEMA".to_owned(), "App Data".to_owned()),
            ("DB_VERSION".to_owned(), "1.2".to_owned()),
            // psql sets DBNAME after connecting, over a given one.
            ("DBNAME".to_owned(), "ignored".to_owned()),
        ]
    };
    let ours_vars = vars(&ours_user);
    let refs: Vec<(&str, &str)> = ours_vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let ours = loader_printed(dir.path(), "setup.sql", &ours_db, &refs).await;
    let args: Vec<String> = vars(&theirs_user)
        .iter()
        .flat_map(|(k, v)| ["-v".to_owned(), format!("{k}={v}")])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let theirs = psql_printed(dir.path(), "setup.sql", &theirs_db, &args).await;
    assert_eq!(ours.error, None, "{ours:?}");
    assert_eq!(
        ours.out,
        [format!("{ours_user} 1.2 {ours_db}")],
        "psql printed {:?}",
        theirs.out
    );
    assert_eq!(theirs.out, [format!("{theirs_user} 1.2 {theirs_db}")]);
    let state = "SELECT string_agg(v, ',') || ' ' || (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'App Data') FROM \"App Data\".versions";
    let ours_state = text(&server, &ours_db, state).await.unwrap();
    assert_eq!(ours_state, format!("1.2 {ours_user}"));
    assert_eq!(
        text(&server, &theirs_db, state).await.unwrap(),
        format!("1.2 {theirs_user}")
    );
    let admin = server.connect("postgres").await;
    for user in [&ours_user, &theirs_user] {
        let ok: bool = admin
            .query_one(
                "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = $1",
                &[user],
            )
            .await
            .unwrap()
            .get(0);
        assert!(ok, "{user} has the password");
    }
    for db in [&ours_db, &theirs_db] {
        admin
            .batch_execute(&format!("DROP DATABASE \"{db}\""))
            .await
            .unwrap();
    }
    for user in [&ours_user, &theirs_user] {
        admin
            .batch_execute(&format!("DROP USER {user}"))
            .await
            .unwrap();
    }
    // Without the variable, the script says so and stops, in both (the loader warns that
    // `\quit` left lines unloaded; psql says nothing).
    let ours = loader_printed(dir.path(), "setup.sql", "postgres", &[]).await;
    let theirs = psql_printed(dir.path(), "setup.sql", "postgres", &[]).await;
    assert_eq!((&ours.out, &ours.error), (&theirs.out, &theirs.error));
    assert_eq!(ours.out, ["DB_VERSION not set"]);
    // The static listing follows them too.
    let dir = project(&[("main.sql", "\\i :dir/x.sql\n"), ("parts/x.sql", "")]);
    let vars = [("dir".to_owned(), "parts".to_owned())]
        .into_iter()
        .collect();
    let listed = devenv_sql::files_read(dir.path(), &["main.sql"], &vars);
    assert_eq!(listed.len(), 2, "{listed:?}");
}
