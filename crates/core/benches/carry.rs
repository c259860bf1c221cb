//! Reload with carry-over against plain reload (`reload: fresh`), one native server, in this
//! workspace's bench profile: the same build-then-swap (`Rebuilder::rebuild`) of the same files,
//! with and without the rows typed since the last build carried across.
//!
//! - Cruddur (the example's `db/schema.sql` + `db/seed.sql`) with 10,000 app rows (2,000 users,
//!   8,000 activities, typed after the build). Target: carry-over adds at most 2x the plain
//!   reload.
//! - pagila's schema, its data (about 50k rows in 15 tables, with a partitioned `payment`)
//!   loaded after the build, so every row is an app row. Target: the reload with carry-over
//!   under 1 s.
//!
//! Plain runs come first (a plain reload drops the typed rows), then the carry runs, each of
//! which carries the same rows again; the report of each carry run is checked (every row
//! carried, none left). Run: `cargo bench -p devenv-core --bench carry` (`BENCH_RUNS`, default 5).

use std::path::Path;
use std::time::{Duration, Instant};

use devenv_core::rebuild::{Rebuilder, Target};
use devenv_server::native::TempServer;
use devenv_server::Server;
use devenv_sql::{Loader, Step};

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One project: its files, and how app rows get into its live database.
struct Case {
    name: &'static str,
    live: &'static str,
    dir: &'static Path,
    steps: Vec<Step>,
    rows: App,
    expected: u64,
}

enum App {
    Sql(&'static str),
    File(&'static str),
}

async fn run(server: &Server, case: &Case, runs: usize) {
    let loader = Loader::new(server.config("postgres"), case.dir);
    let mut rebuilder = Rebuilder::new(server.clone());
    let target = |carry| Target {
        live: case.live,
        project: "bench",
        files_hash: "h",
        replace_unmarked: true,
        keep_replaced: true,
        carry,
    };
    let mut reload = async |carry: bool| {
        let started = Instant::now();
        let rebuilt = rebuilder
            .rebuild(&loader, &target(carry), &case.steps)
            .await
            .expect("the files load");
        let wall = started.elapsed();
        // The spare, pruning and the ready copies of snapshots run after each reload, off its
        // path; they end before the next one, as between saves.
        rebuilder.settle_all().await;
        (wall, rebuilt)
    };
    reload(false).await;
    let (mut plain, mut carried, mut carry_only, mut closed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        plain.push(reload(false).await.0);
    }
    match &case.rows {
        App::Sql(sql) => {
            let client = devenv_core::db::connect(server, case.live).await.unwrap();
            client.batch_execute(sql).await.unwrap();
        }
        App::File(file) => {
            loader
                .load_steps(case.live, &[Step::file(*file)])
                .await
                .expect("the app rows load");
        }
    }
    let mut last = String::new();
    for _ in 0..runs {
        let (wall, rebuilt) = reload(true).await;
        let report = rebuilt.carried.expect("a carry report");
        assert_eq!(report.failed, None, "{report}");
        assert_eq!(report.carried(), case.expected, "{report}");
        assert_eq!(report.left(), 0, "{report}");
        carried.push(wall);
        carry_only.push(report.took);
        closed.push(rebuilt.swap);
        last = report.to_string();
    }
    let (p, c) = (median(&mut plain), median(&mut carried));
    println!(
        "{} ({runs} runs each):\n  plain reload        {:8.1} ms (median)\n  reload with carry   {:8.1} ms (median; the carry itself {:.1} ms, the database closed {:.1} ms)\n  carry-over adds     {:8.1} ms = {:.2}x the plain reload; whole reload {:.2}x\n  report: {last}",
        case.name,
        ms(p),
        ms(c),
        ms(median(&mut carry_only)),
        ms(median(&mut closed)),
        ms(c.saturating_sub(p)),
        ms(c.saturating_sub(p)) / ms(p),
        ms(c) / ms(p),
    );
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let temp = TempServer::start("bench")
        .await
        .expect("start a native server");
    let server = temp.server().clone();
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let corpora = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sql/tests/corpora/pagila"
    ));
    println!(
        "carry-over against plain reload, native PostgreSQL {} (one server, this workspace's bench build)",
        devenv_core::db::server_version_num(&devenv_core::db::admin(&server).await.unwrap())
            .await
            .unwrap_or(0)
    );
    let cases = [
        Case {
            name: "Cruddur + 10,000 app rows",
            live: "cruddur_bench",
            dir: root,
            steps: vec![Step::file("db/schema.sql"), Step::file("db/seed.sql")],
            rows: App::Sql(
                "INSERT INTO users (display_name, handle, email, cognito_user_id) \
                   SELECT 'User ' || g, 'user' || g, 'u' || g || '@example.com', 'MOCK' \
                   FROM generate_series(1, 2000) g; \
                 INSERT INTO activities (user_uuid, message) \
                   SELECT u.uuid, 'post ' || g FROM users u, generate_series(1, 4) g \
                   WHERE u.handle LIKE 'user%';",
            ),
            expected: 10_000,
        },
        Case {
            name: "pagila, its data as app rows",
            live: "pagila_bench",
            dir: corpora,
            steps: vec![Step::file("pagila-schema.sql")],
            rows: App::File("pagila-data.sql"),
            expected: 0,
        },
    ];
    for mut case in cases {
        if case.expected == 0 {
            case.expected = pagila_rows(&server, &case).await;
        }
        run(&server, &case, runs).await;
    }
}

/// How many rows pagila's data puts in its tables (loaded once into a scratch database).
async fn pagila_rows(server: &Server, case: &Case) -> u64 {
    let admin = devenv_core::db::admin(server).await.unwrap();
    devenv_core::db::drop_if_exists(&admin, "pagila_count")
        .await
        .unwrap();
    devenv_core::db::create(&admin, "pagila_count")
        .await
        .unwrap();
    let loader = Loader::new(server.config("postgres"), case.dir);
    loader
        .load_steps(
            "pagila_count",
            &[
                Step::file("pagila-schema.sql"),
                Step::file("pagila-data.sql"),
            ],
        )
        .await
        .unwrap();
    let client = devenv_core::db::connect(server, "pagila_count")
        .await
        .unwrap();
    let mut total = 0u64;
    for row in client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = 'public'",
            &[],
        )
        .await
        .unwrap()
    {
        let table: String = row.get(0);
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        total += u64::try_from(n).unwrap_or(0);
    }
    drop(client);
    devenv_core::db::drop_if_exists(&admin, "pagila_count")
        .await
        .unwrap();
    total
}
