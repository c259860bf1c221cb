//! `devenv up` from start to ready (fresh container, schema + seed loaded, `.devenv/env`
//! written) against the raw baseline in the same run: `docker run` of the same image with the
//! same tmpfs and settings, poll until psql connects, `psql -f schema -f seed`. Then
//! `devenv down` against `docker rm -f`. And `devenv up` on the native backend (a fresh
//! project each time: the cluster comes from the initdb cache). Alternating, `BENCH_RUNS`
//! runs each (default 5).
//!
//! Run: `cargo bench --bench up` (needs the Docker engine and the test image:
//! `scripts/build-test-image.sh`; image in DEVENV_TEST_IMAGE).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{copy_example, ms, percentile};

const BIN: &str = env!("CARGO_BIN_EXE_devenv");
const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";

fn median(mut v: Vec<Duration>) -> Duration {
    percentile(&mut v, 0.5)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// devenv up until `.devenv/env` exists; then `devenv down`. Returns (up, down).
fn devenv_once(image: &str, backend: &str) -> (Duration, Duration) {
    let dir = copy_example("devenv-bench-");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("up")
        .current_dir(dir.path())
        .env("DEVENV_IMAGE", image)
        .env("DEVENV_PORT", "0")
        .env("DEVENV_BACKEND", backend)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let env = dir.path().join(".devenv/env");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "devenv up exited early"
        );
        assert!(Instant::now() < deadline, "devenv up not ready in 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    let up = started.elapsed();
    let started = Instant::now();
    run(Command::new(BIN).arg("down").current_dir(dir.path()));
    let down = started.elapsed();
    child.wait().unwrap();
    (up, down)
}

/// docker run + poll psql + psql -f schema -f seed; then docker rm -f. Returns (up, down).
fn baseline_once(root: &Path, image: &str) -> (Duration, Duration) {
    let started = Instant::now();
    let id = run(Command::new("docker")
        .args(["run", "-d", "-p", "127.0.0.1::5432"])
        .args(["--tmpfs", "/var/lib/postgresql/data:rw,mode=0700"])
        .args([
            "-e",
            "POSTGRES_USER=postgres",
            "-e",
            "POSTGRES_PASSWORD=password",
        ])
        .args(["-e", "POSTGRES_DB=cruddur", image, "postgres"])
        .args(devenv_server::dev_settings_args(
            devenv_server::Storage::Ephemeral,
        )));
    let port = run(Command::new("docker").args(["port", &id, "5432/tcp"]));
    let port = port
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let url = format!("postgresql://postgres:password@127.0.0.1:{port}/cruddur");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = Command::new(PSQL)
            .args(["-X", "-q", &url, "-c", "select 1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "baseline not ready in 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    run(Command::new(PSQL)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &url, "-f"])
        .arg(root.join("db/schema.sql"))
        .arg("-f")
        .arg(root.join("db/seed.sql")));
    let up = started.elapsed();
    let started = Instant::now();
    run(Command::new("docker").args(["rm", "-f", &id]));
    (up, started.elapsed())
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let image =
        std::env::var("DEVENV_TEST_IMAGE").unwrap_or_else(|_| "devenv-test/postgres:13".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mut dev_up, mut dev_down, mut raw_up, mut raw_down) = (vec![], vec![], vec![], vec![]);
    let (mut nat_up, mut nat_down) = (vec![], vec![]);
    // One warm-up of each, not counted.
    devenv_once(&image, "docker");
    devenv_once(&image, "native");
    baseline_once(root, &image);
    for _ in 0..runs {
        let (u, d) = devenv_once(&image, "docker");
        dev_up.push(u);
        dev_down.push(d);
        let (u, d) = baseline_once(root, &image);
        raw_up.push(u);
        raw_down.push(d);
        let (u, d) = devenv_once(&image, "native");
        nat_up.push(u);
        nat_down.push(d);
    }
    let (du, ru, nu) = (median(dev_up), median(raw_up), median(nat_up));
    let (dd, rd, nd) = (median(dev_down), median(raw_down), median(nat_down));
    println!("devenv up vs raw docker run + psql, image {image}, {runs} runs each, alternating:");
    println!(
        "  up to ready:  devenv (docker) {:>7.0} ms   baseline {:>7.0} ms   ratio {:.2}",
        ms(du),
        ms(ru),
        du.as_secs_f64() / ru.as_secs_f64()
    );
    println!(
        "  teardown:     devenv down {:>7.0} ms   docker rm -f {:>7.0} ms   ratio {:.2}",
        ms(dd),
        ms(rd),
        dd.as_secs_f64() / rd.as_secs_f64()
    );
    println!(
        "  native:       devenv up {:>7.0} ms (docker {:>7.0} ms)   devenv down {:>7.0} ms",
        ms(nu),
        ms(du),
        ms(nd)
    );
}
