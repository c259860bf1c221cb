//! Carry-over on a real PostgreSQL server (native backend in a temp directory): rows typed into
//! the live database after a build come across a rebuild, each kind of schema edit leaves
//! behind only what no longer fits, and says so.

use devenv_core::carry::Report;
use devenv_core::rebuild::{Rebuilder, Target};
use devenv_core::{db, snapshot};
use devenv_server::native::TempServer;
use devenv_server::Server;
use devenv_sql::{Loader, Step};

const CRUDDUR: &str = include_str!("../../../db/schema.sql");
const CRUDDUR_SEED: &str = include_str!("../../../db/seed.sql");

/// A project on a temp server: its schema and seed files, rebuilt with carry-over.
struct Project {
    _temp: TempServer,
    server: Server,
    dir: tempfile::TempDir,
    rebuilder: Rebuilder,
}

impl Project {
    async fn new() -> Project {
        let temp = TempServer::start("pw").await.expect("PostgreSQL binaries");
        let server = temp.server().clone();
        Project {
            rebuilder: Rebuilder::new(server.clone()),
            _temp: temp,
            server,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes the files and rebuilds `app` from them, carrying rows over.
    async fn build(&mut self, schema: &str, seed: &str) -> Report {
        self.rebuild(schema, seed, true)
            .await
            .carried
            .unwrap_or_default()
    }

    async fn rebuild(
        &mut self,
        schema: &str,
        seed: &str,
        carry: bool,
    ) -> devenv_core::rebuild::Rebuilt {
        std::fs::write(self.dir.path().join("schema.sql"), schema).unwrap();
        std::fs::write(self.dir.path().join("seed.sql"), seed).unwrap();
        let loader = Loader::new(self.server.config("postgres"), self.dir.path());
        let target = Target {
            live: "app",
            project: "p1",
            files_hash: "h",
            replace_unmarked: true,
            keep_replaced: true,
            carry,
        };
        let rebuilt = self
            .rebuilder
            .rebuild(
                &loader,
                &target,
                &[Step::file("schema.sql"), Step::file("seed.sql")],
            )
            .await
            .expect("the files load");
        self.rebuilder.settle().await;
        rebuilt
    }

    /// Runs `sql` on the live database, as the app would.
    async fn exec(&self, sql: &str) {
        let client = db::connect(&self.server, "app").await.unwrap();
        client.batch_execute(sql).await.unwrap();
    }

    /// The rows of `sql` on the live database, each as its columns' text joined by `|` (NULL
    /// as nothing).
    async fn rows(&self, sql: &str) -> Vec<String> {
        let client = db::connect(&self.server, "app").await.unwrap();
        client
            .simple_query(sql)
            .await
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
                _ => None,
            })
            .collect()
    }

    async fn one(&self, sql: &str) -> i64 {
        let client = db::connect(&self.server, "app").await.unwrap();
        client.query_one(sql, &[]).await.unwrap().get(0)
    }
}

#[tokio::test]
async fn cruddur_hand_rows_follow_the_seed_rows_to_their_new_keys_and_the_seed_never_doubles() {
    let mut p = Project::new().await;
    p.build(CRUDDUR, CRUDDUR_SEED).await;
    // Typed through the app: a user, an activity of a seed user, and one of the new user.
    p.exec(
        "INSERT INTO users (display_name, handle, email, cognito_user_id) \
           VALUES ('Alice', 'alice', 'a@example.com', 'MOCK'); \
         INSERT INTO activities (user_uuid, message) \
           SELECT uuid, 'typed for andrew' FROM users WHERE handle = 'andrewbrown'; \
         INSERT INTO activities (user_uuid, message) \
           SELECT uuid, 'typed for alice' FROM users WHERE handle = 'alice';",
    )
    .await;
    let before_andrew = p
        .rows("SELECT uuid::text FROM users WHERE handle = 'andrewbrown'")
        .await;

    // A schema edit: a column with a default.
    let schema = CRUDDUR.replace(
        "  likes_count integer DEFAULT 0,",
        "  likes_count integer DEFAULT 0,\n  pinned boolean DEFAULT false NOT NULL,",
    );
    let report = p.build(&schema, CRUDDUR_SEED).await;
    assert_eq!(report.failed, None, "{report}");
    assert_eq!(report.carried(), 3, "{report}");
    assert_eq!(report.left(), 0, "{report}");
    assert_eq!(report.to_string(), "carried 3 rows of 2 tables");
    // The seed's user was matched by its handle: it stays as the new seed made it (a new
    // uuid), and the hand-typed activity now points at that new uuid.
    let after_andrew = p
        .rows("SELECT uuid::text FROM users WHERE handle = 'andrewbrown'")
        .await;
    assert_ne!(before_andrew, after_andrew);
    assert_eq!(
        p.rows(
            "SELECT u.handle, a.message, a.pinned::text FROM activities a \
             JOIN users u ON u.uuid = a.user_uuid ORDER BY a.message"
        )
        .await,
        [
            "andrewbrown|This was imported as seed data!|false",
            "alice|typed for alice|false",
            "andrewbrown|typed for andrew|false"
        ]
    );
    assert_eq!(p.one("SELECT count(*) FROM users").await, 4);

    // Saving again carries the same rows again, never the seed's.
    let again = p.build(&schema, CRUDDUR_SEED).await;
    assert_eq!(again.to_string(), "carried 3 rows of 2 tables");
    assert_eq!(p.one("SELECT count(*) FROM users").await, 4);
    assert_eq!(p.one("SELECT count(*) FROM activities").await, 3);

    // A seed row edited by hand is a typed row, but the new seed has it (by its handle): the
    // seed's version stays, and the report says so.
    p.exec("UPDATE users SET display_name = 'Edited' WHERE handle = 'bayko'")
        .await;
    let edited = p.build(&schema, CRUDDUR_SEED).await;
    assert_eq!(
        edited.to_string(),
        "carried 3 rows of 2 tables; 1 row of users already there by key (kept as the files made it)"
    );
    assert_eq!(
        p.rows("SELECT display_name FROM users WHERE handle = 'bayko'")
            .await,
        ["Andrew Bayko"]
    );

    // A fresh rebuild does not carry.
    let fresh = p.rebuild(&schema, CRUDDUR_SEED, false).await;
    assert!(fresh.carried.is_none());
    assert_eq!(p.one("SELECT count(*) FROM activities").await, 1);
}

#[tokio::test]
async fn a_new_not_null_column_without_default_leaves_the_rows_and_says_why() {
    let mut p = Project::new().await;
    p.build(CRUDDUR, CRUDDUR_SEED).await;
    p.exec(
        "INSERT INTO activities (user_uuid, message) \
           SELECT uuid, m FROM users, unnest(array['one', 'two', 'three']) m \
           WHERE handle = 'bayko'; \
         INSERT INTO users (display_name, handle, email, cognito_user_id) \
           VALUES ('Bob', 'bob', 'b@example.com', 'MOCK');",
    )
    .await;
    let schema = CRUDDUR.replace(
        "  message text NOT NULL,",
        "  message text NOT NULL,\n  kind text NOT NULL,",
    );
    let seed = CRUDDUR_SEED.replace(
        "INSERT INTO public.activities (user_uuid, message, expires_at)",
        "INSERT INTO public.activities (user_uuid, message, expires_at, kind)",
    );
    let seed = seed.replace(
        "current_timestamp + interval '10 day'\n",
        "current_timestamp + interval '10 day', 'post'\n",
    );
    let report = p.build(&schema, &seed).await;
    assert_eq!(
        report.to_string(),
        "carried 1 row of 1 table; left 3 rows of activities (column \"kind\": NOT NULL, no default)"
    );
    assert_eq!(p.one("SELECT count(*) FROM activities").await, 1);
}

#[tokio::test]
async fn each_kind_of_edit_carries_what_fits_and_reports_the_rest() {
    let mut p = Project::new().await;
    let schema = "CREATE TABLE parent (id serial PRIMARY KEY, name text UNIQUE NOT NULL); \
                  CREATE TABLE child (id serial PRIMARY KEY, parent_id int REFERENCES parent, \
                                      code text, note text, score int); \
                  CREATE TABLE old_name (id int PRIMARY KEY); \
                  CREATE TABLE log (line text);";
    p.build(schema, "INSERT INTO parent (name) VALUES ('seeded');")
        .await;
    p.exec(
        "INSERT INTO parent (name) VALUES ('p2'), ('p3'); \
         INSERT INTO child (parent_id, code, note, score) VALUES \
           (1, '12', 'n1', -5), (2, 'abc', 'n2', 1), (3, '7', NULL, 3); \
         INSERT INTO old_name VALUES (1), (2); \
         INSERT INTO log VALUES ('a'), ('b');",
    )
    .await;
    // code text -> int (one value does not cast), note dropped, a CHECK one row breaks, a
    // table renamed, a new table, the keyless log kept (empty after the seed).
    let edited = "CREATE TABLE parent (id serial PRIMARY KEY, name text UNIQUE NOT NULL, \
                                       extra int DEFAULT 7); \
                  CREATE TABLE child (id serial PRIMARY KEY, parent_id int REFERENCES parent, \
                                      code int, score int CHECK (score >= 0)); \
                  CREATE TABLE new_name (id int PRIMARY KEY); \
                  CREATE TABLE added (x int); \
                  CREATE TABLE log (line text);";
    let report = p
        .build(edited, "INSERT INTO parent (name) VALUES ('seeded');")
        .await;
    assert_eq!(report.failed, None, "{report}");
    let text = report.to_string();
    assert!(text.starts_with("carried 5 rows of 3 tables"), "{text}");
    let child = report.table("child").expect("child reported");
    assert_eq!(child.carried, 1, "{text}");
    assert_eq!(
        child.left.get("check \"child_score_check\""),
        Some(&1),
        "{text}"
    );
    assert!(
        child
            .left
            .keys()
            .any(|k| k.starts_with("column \"code\": text to integer: invalid input syntax")),
        "{text}"
    );
    assert_eq!(child.dropped, [("note".to_owned(), 2)], "{text}");
    assert!(
        text.contains("left 2 rows of old_name (no table of that name now)"),
        "{text}"
    );
    assert_eq!(report.table("log").map(|t| t.carried), Some(2), "{text}");
    assert_eq!(
        p.rows("SELECT id, code, score FROM child ORDER BY id")
            .await,
        ["3|7|3"]
    );
    // The sequences continue past the carried ids.
    p.exec("INSERT INTO parent (name) VALUES ('next'); INSERT INTO child (code) VALUES (1);")
        .await;
    assert_eq!(
        p.rows("SELECT id, name FROM parent ORDER BY id").await,
        ["1|seeded", "2|p2", "3|p3", "4|next"]
    );
    assert_eq!(p.one("SELECT max(id)::bigint FROM child").await, 4);

    // The automatic snapshot gives back the exact old database.
    let admin = db::admin(&p.server).await.unwrap();
    let kept = snapshot::list(&admin, "app").await.unwrap().remove(0);
    p.rebuilder
        .restore(
            &kept.database,
            &Target {
                live: "app",
                project: "p1",
                files_hash: "h",
                replace_unmarked: true,
                keep_replaced: true,
                carry: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        p.rows("SELECT id, parent_id, code, note, score FROM child ORDER BY id")
            .await,
        ["1|1|12|n1|-5", "2|2|abc|n2|1", "3|3|7||3"]
    );
    assert_eq!(p.one("SELECT count(*) FROM old_name").await, 2);
}

#[tokio::test]
async fn self_references_cycles_and_broken_foreign_keys() {
    let mut p = Project::new().await;
    let schema = "CREATE TABLE a (id int PRIMARY KEY, b_id int, up int REFERENCES a); \
                  CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a, allowed_id int); \
                  ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b; \
                  CREATE TABLE keyless (v int);";
    p.build(schema, "INSERT INTO keyless VALUES (0);").await;
    p.exec(
        "INSERT INTO a VALUES (1, NULL, NULL), (2, NULL, 1), (3, NULL, 2); \
         INSERT INTO b VALUES (10, 1, 1), (20, 3, 2); \
         UPDATE a SET b_id = 10 WHERE id = 1; UPDATE a SET b_id = 20 WHERE id = 3; \
         INSERT INTO keyless VALUES (1), (2);",
    )
    .await;
    // The same files: a cycle (a -> b -> a) and a self-reference come across whole.
    let report = p.build(schema, "INSERT INTO keyless VALUES (0);").await;
    assert_eq!(report.failed, None, "{report}");
    assert_eq!(report.table("a").map(|t| t.carried), Some(3), "{report}");
    assert_eq!(report.table("b").map(|t| t.carried), Some(2), "{report}");
    assert_eq!(
        report.table("keyless").and_then(|t| t
            .left
            .get("no primary or unique key to match rows by, and the new table has rows")
            .copied()),
        Some(2),
        "{report}"
    );
    assert_eq!(
        p.rows("SELECT id, b_id, up FROM a ORDER BY id").await,
        ["1|10|", "2||1", "3|20|2"]
    );

    // A new foreign key that one carried row breaks takes that row out, and the rows that
    // referred to it after it.
    let edited = format!(
        "CREATE TABLE allowed (id int PRIMARY KEY); INSERT INTO allowed VALUES (1); {}",
        schema.replace("allowed_id int", "allowed_id int REFERENCES allowed")
    );
    let report = p.build(&edited, "INSERT INTO keyless VALUES (0);").await;
    let b = report.table("b").expect("b reported");
    assert_eq!(b.carried, 1, "{report}");
    assert_eq!(
        b.left
            .get("foreign key \"b_allowed_id_fkey\": no row of allowed it refers to"),
        Some(&1),
        "{report}"
    );
    let a = report.table("a").expect("a reported");
    assert_eq!(a.carried, 2, "{report}");
    assert_eq!(
        a.left
            .get("foreign key \"a_b_id_fkey\": no row of b it refers to"),
        Some(&1),
        "{report}"
    );
    assert_eq!(p.rows("SELECT id FROM a ORDER BY id").await, ["1", "2"]);
}

/// A seed past the direct way's limit (its new tables are staged, and the map of its changed
/// keys is too big to send to the old database): the same rows come across, the same way.
#[tokio::test]
async fn a_big_seed_is_staged_and_its_new_keys_are_still_followed() {
    let mut p = Project::new().await;
    let seed = format!(
        "{CRUDDUR_SEED}\nINSERT INTO users (display_name, handle, email, cognito_user_id) \
           SELECT 'User ' || g, 'user' || g, 'u' || g || '@example.com', 'MOCK' \
           FROM generate_series(1, 1500) g;\n"
    );
    p.build(CRUDDUR, &seed).await;
    p.exec(
        "INSERT INTO users (display_name, handle, email, cognito_user_id) \
           VALUES ('Alice', 'alice', 'a@example.com', 'MOCK'); \
         INSERT INTO activities (user_uuid, message) \
           SELECT uuid, 'typed for ' || handle FROM users \
           WHERE handle IN ('user7', 'user1400', 'alice');",
    )
    .await;
    let schema = CRUDDUR.replace(
        "  message text NOT NULL,",
        "  message text NOT NULL,\n  pinned boolean DEFAULT false NOT NULL,",
    );
    let report = p.build(&schema, &seed).await;
    assert_eq!(report.to_string(), "carried 4 rows of 2 tables");
    assert_eq!(
        p.rows(
            "SELECT u.handle, a.message FROM activities a JOIN users u ON u.uuid = a.user_uuid \
             WHERE a.message LIKE 'typed%' ORDER BY a.message"
        )
        .await,
        [
            "alice|typed for alice",
            "user1400|typed for user1400",
            "user7|typed for user7"
        ]
    );
    assert_eq!(p.one("SELECT count(*) FROM users").await, 1504);
}
