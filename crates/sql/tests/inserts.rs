//! Seeds full of INSERTs: runs of INSERT, UPDATE and DELETE go to the server many to a
//! message, and must end exactly as psql 15 (`-v ON_ERROR_STOP=1 -f`, one statement at a
//! time) ends them: the same rows and sequence positions, the same error at the same line,
//! nothing after it, notices at their statements, in and out of transaction blocks, with
//! statements that cannot run in a block between them.

mod support;

use std::fmt::Write as _;
use std::path::Path;

use devenv_sql::ErrorKind;
use support::{loader, project, TestServer};

const SCHEMA: &str = "CREATE TABLE a (id serial PRIMARY KEY, v text UNIQUE, n int);\n\
    CREATE TABLE p (id int PRIMARY KEY);\n\
    CREATE TABLE c (id int, p int REFERENCES p DEFERRABLE INITIALLY DEFERRED);\n\
    CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
    IF NEW.v LIKE 'loud%' THEN RAISE NOTICE 'loud row %', NEW.v; END IF; RETURN NEW; END $$;\n\
    CREATE TRIGGER shout BEFORE INSERT ON a FOR EACH ROW EXECUTE FUNCTION shout();\n";

/// What a load left: rows and their digest, the sequence's position.
const STATE: &str = "SELECT format('%s rows, md5 %s, seq %s, p %s, c %s', count(*), \
    md5(coalesce(string_agg(format('%s|%s|%s', id, v, n), ',' ORDER BY id), '')), \
    (SELECT last_value FROM a_id_seq), (SELECT count(*) FROM p), (SELECT count(*) FROM c)) FROM a";

/// What a file did under one of the two: the first error (line, message) and the state.
#[derive(Debug, PartialEq, Eq)]
struct Ended {
    error: Option<(usize, String)>,
    notices: Vec<usize>,
    state: String,
}

async fn state(server: &TestServer, db: &str) -> String {
    server
        .connect(db)
        .await
        .query_one(STATE, &[])
        .await
        .unwrap()
        .get(0)
}

/// Loads `SCHEMA` then `file` with the loader and with psql 15, each into a fresh database,
/// at the same time; how each ended, and how many statements the loader sent in runs.
async fn both(dir: &Path, file: &str) -> (Ended, Ended, usize) {
    let (server, loader, events) = loader(dir).await;
    std::fs::write(dir.join("schema.sql"), SCHEMA).unwrap();
    let (ours_db, theirs_db) = (server.fresh_db("ins").await, server.fresh_db("ins").await);
    let ours = async {
        let result = loader.load_files(&ours_db, &["schema.sql", file]).await;
        let batched = result.as_ref().map_or(0, |s| s.batched);
        (
            batched,
            result.err().map(|e| {
                let message = match &e.kind {
                    ErrorKind::Server { message, .. } | ErrorKind::Psql(message) => message.clone(),
                    other => other.to_string(),
                };
                (e.location.map_or(0, |l| l.line), message)
            }),
        )
    };
    let theirs = async {
        let schema = support::psql(dir, "schema.sql", &theirs_db, &[]).await;
        assert!(schema.status.success());
        support::psql(dir, file, &theirs_db, &[]).await
    };
    let ((batched, ours_error), out) = tokio::join!(ours, theirs);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let prefix = format!("psql:{file}:");
    let mut theirs_error = None;
    let mut theirs_notices = Vec::new();
    for line in stderr.lines() {
        let Some((number, rest)) = line.strip_prefix(&prefix).and_then(|r| r.split_once(": "))
        else {
            continue;
        };
        let number: usize = number.parse().unwrap();
        if let Some(message) = rest.strip_prefix("ERROR:  ") {
            theirs_error.get_or_insert((number, message.to_owned()));
        } else if rest.starts_with("NOTICE:  loud row") {
            theirs_notices.push(number);
        }
    }
    assert_eq!(
        out.status.code() == Some(3),
        theirs_error.is_some(),
        "{stderr}"
    );
    let ours_notices = events
        .lines()
        .iter()
        .filter(|e| e.starts_with("NOTICE: ") && e.contains("loud row"))
        .map(|e| {
            let at = e.trim_start_matches("NOTICE: ").split(':').nth(1).unwrap();
            at.parse().unwrap()
        })
        .collect();
    let ended = (
        Ended {
            error: ours_error,
            notices: ours_notices,
            state: state(&server, &ours_db).await,
        },
        Ended {
            error: theirs_error,
            notices: theirs_notices,
            state: state(&server, &theirs_db).await,
        },
        batched,
    );
    let admin = server.connect("postgres").await;
    for db in [&ours_db, &theirs_db] {
        admin
            .batch_execute(&format!("DROP DATABASE \"{db}\""))
            .await
            .unwrap();
    }
    ended
}

/// `n` statements: INSERTs, with an UPDATE and a DELETE now and then, and with `loud` an
/// INSERT that raises a notice; `bad` replaces statement `i` (1-based) with a given text.
fn seed(n: usize, loud: bool, bad: Option<(usize, &str)>) -> String {
    let mut out = String::new();
    for i in 1..=n {
        if let Some((_, text)) = bad.filter(|(at, _)| *at == i) {
            let _ = writeln!(out, "{text}");
            continue;
        }
        let _ = match i % 50 {
            17 => writeln!(out, "UPDATE a SET n = n + 1 WHERE v = 'v{}';", i - 1),
            33 => writeln!(out, "DELETE FROM a WHERE v = 'v{}';", i - 3),
            40 if loud => writeln!(out, "INSERT INTO a (v, n) VALUES ('loud{i}', {i});"),
            _ => writeln!(out, "INSERT INTO a (v, n)\n  VALUES ('v{i}', {i});"),
        };
    }
    out
}

#[tokio::test]
async fn insert_runs_load_what_psql_loads() {
    // Runs of many batches, broken by a meta-command, by statements that cannot run in a
    // transaction block, by a block of the file's own, and by `\;`.
    let mut file = seed(2_500, false, None);
    file.push_str("\\echo between\nVACUUM a;\nCREATE INDEX CONCURRENTLY a_n ON a (n);\n");
    file.push_str(&seed(1_200, false, None).replace("'v", "'w"));
    file.push_str("BEGIN;\nINSERT INTO p VALUES (1);\nINSERT INTO c VALUES (1, 2);\nINSERT INTO p VALUES (2);\nCOMMIT;\n");
    file.push_str(
        "INSERT INTO p VALUES (3)\\; INSERT INTO p VALUES (4);\nINSERT INTO a (v) VALUES ('last')",
    );
    let dir = project(&[("seed.sql", &file)]);
    let (ours, theirs, batched) = both(dir.path(), "seed.sql").await;
    assert_eq!(ours, theirs);
    assert_eq!(ours.error, None);
    assert!(batched >= 3_700, "{batched} statements went in runs");
}

#[tokio::test]
async fn a_notice_in_a_run_is_reported_at_its_own_statement() {
    let dir = project(&[("seed.sql", &seed(2_500, true, None))]);
    let (ours, theirs, _) = both(dir.path(), "seed.sql").await;
    assert_eq!(ours, theirs);
    assert_eq!(ours.notices.len(), 50, "{:?}", ours.notices);
}

#[tokio::test]
async fn an_error_inside_a_run_leaves_what_psql_leaves_and_names_its_line() {
    for (at, bad, message) in [
        // A unique violation, in the middle of the second batch.
        (
            1_700,
            "INSERT INTO a (v) VALUES ('v1000');",
            "duplicate key value violates unique constraint \"a_v_key\"",
        ),
        // A syntax error: the server parses the whole message first.
        (
            1_200,
            "INSERT INTO a (v) VALUES ('x') oops;",
            "syntax error at or near \"oops\"",
        ),
        // A deferred constraint, checked at each statement's commit in psql.
        (
            900,
            "INSERT INTO c VALUES (1, 99);",
            "insert or update on table \"c\" violates foreign key constraint \"c_p_fkey\"",
        ),
        // A runtime error of the first statement of a batch.
        (
            1_001,
            "INSERT INTO a (v, n) VALUES ('z', 1/0);",
            "division by zero",
        ),
    ] {
        let file = seed(2_500, false, Some((at, bad)));
        let line = file.lines().position(|l| l == bad).unwrap() + 1;
        let dir = project(&[("seed.sql", &file)]);
        let (ours, theirs, _) = both(dir.path(), "seed.sql").await;
        assert_eq!(ours, theirs, "{bad}");
        assert_eq!(ours.error, Some((line, message.to_owned())), "{bad}");
    }
    // Inside the file's own transaction block: the block is aborted in both.
    let file = format!(
        "BEGIN;\n{}COMMIT;\n",
        seed(
            1_500,
            false,
            Some((1_300, "INSERT INTO a (v) VALUES ('v7');"))
        )
    );
    let dir = project(&[("seed.sql", &file)]);
    let (ours, theirs, _) = both(dir.path(), "seed.sql").await;
    assert_eq!(ours, theirs);
    assert!(ours.state.starts_with("0 rows"), "{ours:?}");
}

#[tokio::test]
async fn an_error_in_the_300000th_insert_of_a_seed_is_at_its_line_with_psqls_rows_before_it() {
    let file = seed(
        300_500,
        false,
        Some((
            300_000,
            "INSERT INTO a (v, n) VALUES ('bad', 'not a number');",
        )),
    );
    let line = file.lines().position(|l| l.contains("'bad'")).unwrap() + 1;
    let dir = project(&[("seed.sql", &file)]);
    let (ours, theirs, _) = both(dir.path(), "seed.sql").await;
    assert_eq!(ours, theirs);
    assert_eq!(
        ours.error,
        Some((
            line,
            "invalid input syntax for type integer: \"not a number\"".to_owned()
        ))
    );
    // The statements before it all took effect, in both: its INSERTs less its DELETEs.
    let before: Vec<&str> = file.lines().take(line - 1).collect();
    let count = |word: &str| before.iter().filter(|l| l.starts_with(word)).count();
    let rows = count("INSERT") - count("DELETE");
    assert!(
        ours.state.starts_with(&format!("{rows} rows, ")),
        "{ours:?}"
    );
}
