//! Reload that keeps the rows you typed, end to end: `devenv up` (real binary) on docker and on
//! native binaries, rows typed through CONNECTION_URL, then schema edits saved; the reload line
//! says what came across and what stayed behind, and `--fresh`, `db setup --keep-rows` and an
//! `up` after the files changed while it was down do what they say.

mod support;

use std::time::Duration;

use support::{docker_ready, query, var, wait_until, Project, Up};

/// Rows typed through the app: a user, an activity of a seed user and one of the new user.
const TYPED: &str = "INSERT INTO users (display_name, handle, email, cognito_user_id) \
       VALUES ('Alice', 'alice', 'a@example.com', 'MOCK'); \
     INSERT INTO activities (user_uuid, message) \
       SELECT uuid, 'typed for andrew' FROM users WHERE handle = 'andrewbrown'; \
     INSERT INTO activities (user_uuid, message) \
       SELECT uuid, 'typed for alice' FROM users WHERE handle = 'alice';";

/// The activities with their users' handles, in message order.
const ACTIVITIES: &str =
    "SELECT string_agg(u.handle || ':' || a.message, ', ' ORDER BY a.message) \
     FROM activities a JOIN users u ON u.uuid = a.user_uuid";

fn reload_lines(up: &Up) -> Vec<String> {
    up.stderr()
        .lines()
        .filter(|l| l.contains("devenv: reload ["))
        .map(str::to_owned)
        .collect()
}

/// Waits for reload number `n` (1-based) and returns its line.
fn wait_reload(up: &Up, n: usize) -> String {
    wait_until(up, &format!("reload {n}"), Duration::from_secs(30), || {
        reload_lines(up).len() >= n
    });
    reload_lines(up)[n - 1].clone()
}

fn carries_rows_across_edits(project: &Project) {
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    query(&url, TYPED).expect("rows typed");
    let schema = std::fs::read_to_string(project.path().join("db/schema.sql")).unwrap();

    // A column with a default: every typed row comes across, the seed's rows do not double,
    // and the activity typed for a seed user follows that user to its new uuid.
    let edited = schema.replace(
        "  email text NOT NULL,",
        "  email text NOT NULL,\n  bio text DEFAULT '',",
    );
    project.write("db/schema.sql", &edited);
    let line = wait_reload(&up, 1);
    assert!(
        line.contains(": ok, ") && line.contains("; carried 3 rows of 2 tables;"),
        "{line}"
    );
    assert_eq!(
        query(&url, "SELECT count(*) FROM users").as_deref(),
        Some("4")
    );
    assert_eq!(
        query(&url, ACTIVITIES).as_deref(),
        Some(
            "andrewbrown:This was imported as seed data!, alice:typed for alice, \
             andrewbrown:typed for andrew"
        )
    );

    // A NOT NULL column without a default on activities: those rows stay behind, said so.
    let edited = edited.replace(
        "  message text NOT NULL,",
        "  message text NOT NULL,\n  kind text NOT NULL,",
    );
    let seed = std::fs::read_to_string(project.path().join("db/seed.sql")).unwrap();
    project.write(
        "db/seed.sql",
        &seed
            .replace(
                "(user_uuid, message, expires_at)",
                "(user_uuid, message, expires_at, kind)",
            )
            .replace(
                "current_timestamp + interval '10 day'\n",
                "current_timestamp + interval '10 day', 'post'\n",
            ),
    );
    project.write("db/schema.sql", &edited);
    wait_until(&up, "the kind column", Duration::from_secs(30), || {
        query(&url, "SELECT count(kind) FROM activities").is_some()
    });
    let line = reload_lines(&up).last().cloned().unwrap_or_default();
    assert!(
        line.contains("carried 1 row of 1 table; left 2 rows of activities (column \"kind\": NOT NULL, no default)"),
        "{line}\n{}",
        up.stderr()
    );
    assert_eq!(
        query(&url, "SELECT count(*) FROM activities").as_deref(),
        Some("1")
    );
    assert_eq!(
        query(&url, "SELECT count(*) FROM users").as_deref(),
        Some("4")
    );

    fresh_keep_rows_and_restart(project, up, &url);
}

/// `reload --fresh`, `db setup --keep-rows`, and an `up` after the files changed while down.
fn fresh_keep_rows_and_restart(project: &Project, mut up: Up, url: &str) {
    let url = url.to_owned();
    // `devenv reload --fresh`: schema and seed only.
    let before = reload_lines(&up).len();
    let out = project.run(&["reload", "--fresh"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let line = wait_reload(&up, before + 1);
    assert!(
        line.contains("by hand (devenv reload --fresh)") && !line.contains("carried"),
        "{line}"
    );
    assert_eq!(
        query(&url, "SELECT count(*) FROM users").as_deref(),
        Some("3")
    );

    // `db setup --keep-rows` carries; while up is down, a change of the files is carried by
    // the next `up`.
    query(
        &url,
        "INSERT INTO users (display_name, handle, email, cognito_user_id) \
         VALUES ('Bob', 'bob', 'b@example.com', 'MOCK')",
    )
    .expect("a row typed");
    let out = project.run(&["db", "setup", "--keep-rows"]);
    let said = support::stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("carried 1 row of 1 table"), "{said}");
    up.stop();
    project.write(
        "db/schema.sql",
        &std::fs::read_to_string(project.path().join("db/schema.sql"))
            .unwrap()
            .replace(
                "  bio text DEFAULT '',",
                "  bio text DEFAULT '',\n  age int,",
            ),
    );
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    let said = up.stderr();
    assert!(
        said.contains("(the files changed since it was built); carried 1 row of 1 table"),
        "{said}"
    );
    assert_eq!(
        query(&url, "SELECT handle FROM users WHERE handle = 'bob'").as_deref(),
        Some("bob")
    );
    up.stop();
}

/// Tables for each kind of edit: a parent with a unique name, a child (a type to change, a
/// column to drop, a CHECK to add), a table to rename, a keyless log, a self-reference and a
/// foreign-key cycle.
const TABLES: &str = "CREATE TABLE parent (id serial PRIMARY KEY, name text UNIQUE NOT NULL);
CREATE TABLE child (id serial PRIMARY KEY, parent_id int REFERENCES parent, code text,
                    note text, score int);
CREATE TABLE old_name (id int PRIMARY KEY);
CREATE TABLE log (line text);
CREATE TABLE a (id int PRIMARY KEY, b_id int, up int REFERENCES a);
CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a, allowed_id int);
ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;
";

/// The same, edited: a column with a default, `code` text to int (one value does not cast),
/// `note` dropped, a CHECK one row breaks, `old_name` renamed, a table added, and a foreign
/// key from `b` that one row breaks.
const EDITED: &str = "CREATE TABLE parent (id serial PRIMARY KEY, name text UNIQUE NOT NULL,
                     extra int DEFAULT 7);
CREATE TABLE child (id serial PRIMARY KEY, parent_id int REFERENCES parent, code int,
                    score int CHECK (score >= 0));
CREATE TABLE new_name (id int PRIMARY KEY);
CREATE TABLE log (line text);
CREATE TABLE allowed (id int PRIMARY KEY);
INSERT INTO allowed VALUES (1);
CREATE TABLE a (id int PRIMARY KEY, b_id int, up int REFERENCES a);
CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a, allowed_id int REFERENCES allowed);
ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;
CREATE TABLE added (x int);
";

fn each_kind_of_edit(project: &Project) {
    project.write("db/schema.sql", TABLES);
    project.write(
        "db/seed.sql",
        "INSERT INTO parent (name) VALUES ('seeded');\n",
    );
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    query(
        &url,
        "INSERT INTO parent (name) VALUES ('p2'), ('p3'); \
         INSERT INTO child (parent_id, code, note, score) VALUES \
           (1, '12', 'n1', -5), (2, 'abc', 'n2', 1), (3, '7', NULL, 3); \
         INSERT INTO old_name VALUES (1), (2); \
         INSERT INTO log VALUES ('a'), ('b'); \
         INSERT INTO a VALUES (1, NULL, NULL), (2, NULL, 1), (3, NULL, 2); \
         INSERT INTO b VALUES (10, 1, 1), (20, 3, 2); \
         UPDATE a SET b_id = 10 WHERE id = 1; UPDATE a SET b_id = 20 WHERE id = 3;",
    )
    .expect("rows typed");
    let old_child = query(&url, "SELECT string_agg(concat_ws(':', id, parent_id, code, note, score), ' ' ORDER BY id) FROM child");

    project.write("db/schema.sql", EDITED);
    let line = wait_reload(&up, 1);
    for said in [
        ": ok, ",
        "; carried 8 rows of 5 tables;",
        "left 1 row of a (foreign key \"a_b_id_fkey\": no row of b it refers to)",
        "left 1 row of b (foreign key \"b_allowed_id_fkey\": no row of allowed it refers to)",
        "left 1 row of child (check \"child_score_check\")",
        "left 1 row of child (column \"code\": text to integer: invalid input syntax for type integer: \"abc\")",
        "left 2 values of child.note (no such column now)",
        "left 2 rows of old_name (no table of that name now)",
    ] {
        assert!(line.contains(said), "{said:?} not in {line}");
    }
    assert_eq!(
        query(
            &url,
            "SELECT string_agg(concat_ws(':', id, name, extra), ' ' ORDER BY id) FROM parent"
        )
        .as_deref(),
        Some("1:seeded:7 2:p2:7 3:p3:7")
    );
    assert_eq!(
        query(
            &url,
            "SELECT string_agg(concat_ws(':', id, code, score), ' ' ORDER BY id) FROM child"
        )
        .as_deref(),
        Some("3:7:3")
    );
    assert_eq!(
        query(&url, "SELECT string_agg(line, ' ' ORDER BY line) FROM log").as_deref(),
        Some("a b")
    );
    assert_eq!(
        query(
            &url,
            "SELECT string_agg(concat_ws(':', id, b_id, up), ' ' ORDER BY id) FROM a"
        )
        .as_deref(),
        Some("1:10 2:1")
    );
    // The sequences continue past the carried ids.
    assert_eq!(
        query(
            &url,
            "WITH i AS (INSERT INTO parent (name) VALUES ('next') RETURNING id) SELECT id FROM i"
        )
        .as_deref(),
        Some("4")
    );
    assert_eq!(
        query(
            &url,
            "WITH i AS (INSERT INTO child (code) VALUES (1) RETURNING id) SELECT id FROM i"
        )
        .as_deref(),
        Some("4")
    );

    // The automatic snapshot gives back the exact old database.
    let list = project.run(&["snapshot", "list", "--json"]);
    assert!(list.status.success(), "{}", support::stderr(&list));
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let name = list[0]["name"].as_str().unwrap().to_owned();
    let restore = project.run(&["snapshot", "restore", &name]);
    assert!(restore.status.success(), "{}", support::stderr(&restore));
    assert_eq!(
        query(&url, "SELECT string_agg(concat_ws(':', id, parent_id, code, note, score), ' ' ORDER BY id) FROM child"),
        old_child
    );
    assert_eq!(
        query(&url, "SELECT count(*) FROM old_name").as_deref(),
        Some("2")
    );
    up.stop();
}

#[test]
fn docker_each_kind_of_edit_carries_what_fits_and_says_what_not() {
    if !docker_ready() {
        return;
    }
    each_kind_of_edit(&Project::new());
}

#[test]
fn native_each_kind_of_edit_carries_what_fits_and_says_what_not() {
    each_kind_of_edit(&Project::native());
}

#[test]
fn docker_reload_carries_typed_rows_across_schema_edits() {
    if !docker_ready() {
        return;
    }
    carries_rows_across_edits(&Project::new());
}

#[test]
fn native_reload_carries_typed_rows_across_schema_edits() {
    carries_rows_across_edits(&Project::native());
}

/// A stop that comes once a reload's swap has begun (the live database closed, a carry of
/// many rows under way) waits for the swap to end: the new database is live, open, with every
/// row, and the next `up` reuses it; nothing was cancelled half-way.
#[test]
fn native_a_stop_during_the_swap_lets_it_end() {
    let project = Project::native();
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    query(
        &url,
        "INSERT INTO users (display_name, handle, email, cognito_user_id) \
         SELECT 'User ' || g, 'user' || g, 'u' || g || '@example.com', 'MOCK' \
         FROM generate_series(1, 300000) g",
    )
    .expect("rows typed");
    let (base, database) = url.rsplit_once('/').unwrap();
    let database = database.split('?').next().unwrap().to_owned();
    let admin = format!("{base}/postgres");
    project.add_users_column("bio");
    support::eventually(
        "the swap to close the live database",
        Duration::from_secs(30),
        || {
            query(
                &admin,
                &format!("SELECT NOT datallowconn FROM pg_database WHERE datname = '{database}'"),
            )
            .as_deref()
                == Some("t")
        },
    );
    up.stop();
    let line = wait_reload(&up, 1);
    assert!(
        line.contains(": ok, ") && line.contains("; carried 300,000 rows of 1 table;"),
        "{line}"
    );
    assert!(!up.stderr().contains("cancelled"), "{}", up.stderr());

    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    assert_eq!(
        query(&url, "SELECT count(bio IS NULL OR NULL) FROM users").as_deref(),
        Some("300003")
    );
    up.stop();
}
