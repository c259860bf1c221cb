//! `devenv up` from start to ready (fresh container, schema + seed loaded, `.devenv/env`
//! written) against the raw baseline in the same run: `docker run` of the same image with the
//! same tmpfs and settings, poll until psql connects, `psql -f schema -f seed`. Then
//! `devenv down` against `docker rm -f`. And `devenv up` on the native backend (a fresh
//! project each time: the cluster comes from the initdb cache). Then `devenv up -d` from its
//! start to its exit against the foreground `devenv up` from its start to its "ready" line, on
//! both backends (issue #14: the detached start may cost at most 5% more). Alternating,
//! `BENCH_RUNS` runs each (default 5). Every run forgets its data (`down --volumes`).
//!
//! Run: `cargo bench --bench up` (needs the Docker engine and the test image:
//! `scripts/build-test-image.sh`; image in DEVENV_TEST_IMAGE).

mod common;

use std::io::{BufRead as _, BufReader};
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
        // Like the baseline: a fresh cluster on a tmpfs.
        .env("DEVENV_PERSIST", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(dir.path(), &mut child);
    let up = started.elapsed();
    let started = Instant::now();
    run(Command::new(BIN)
        .args(["down", "--volumes"])
        .current_dir(dir.path()));
    let down = started.elapsed();
    child.wait().unwrap();
    (up, down)
}

fn devenv(dir: &Path, image: &str, backend: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env("DEVENV_IMAGE", image)
        .env("DEVENV_PORT", "0")
        .env("DEVENV_BACKEND", backend)
        .stdin(Stdio::null());
    cmd
}

/// The time the supervisor itself says it took, from its "ready in 1.23s" line.
fn said_ready(line: &str) -> Duration {
    let secs = line
        .split("ready in ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no ready time in {line:?}"));
    Duration::from_secs_f64(secs)
}

/// The foreground `devenv up` from its start to its "ready" line on stderr; and the time
/// outside the supervisor's own (process start, argument parsing).
fn foreground_once(image: &str, backend: &str) -> (Duration, Duration) {
    let dir = copy_example("devenv-bench-");
    let started = Instant::now();
    let mut child = devenv(dir.path(), image, backend)
        .arg("up")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut ready = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.starts_with("devenv: ready in ") {
            let took = started.elapsed();
            ready = Some((took, took.saturating_sub(said_ready(&line))));
            break;
        }
    }
    let ready = ready.expect("devenv up ended without its ready line");
    run(devenv(dir.path(), image, backend).args(["down", "--volumes"]));
    child.wait().unwrap();
    ready
}

/// `devenv up -d` from its start to its exit (ready, in the background); and the time outside
/// the background supervisor's own (the parent, the second process, the wait for its state).
fn detached_once(image: &str, backend: &str) -> (Duration, Duration) {
    let dir = copy_example("devenv-bench-");
    let started = Instant::now();
    let status = devenv(dir.path(), image, backend)
        .args(["up", "-d"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let took = started.elapsed();
    assert!(status.success(), "devenv up -d: {status}");
    // The supervisor writes its ready state, then prints its "ready in" line.
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = std::fs::read_to_string(dir.path().join(".devenv/up.log")).unwrap();
        if let Some(line) = log.lines().find(|l| l.starts_with("devenv: ready in ")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no ready line in up.log: {log}");
        std::thread::sleep(Duration::from_millis(2));
    };
    let outside = took.saturating_sub(said_ready(&line));
    run(devenv(dir.path(), image, backend).args(["down", "--volumes"]));
    (took, outside)
}

/// `up -d` against the foreground `up` on `backend`, alternating; prints medians and ratio,
/// and the medians of the time spent outside the supervisor's own start (its "ready in"), which
/// is what detaching adds, free of the start's own spread on a busy machine.
fn detached_against_foreground(image: &str, backend: &str, runs: usize) {
    foreground_once(image, backend);
    detached_once(image, backend);
    let (mut fg, mut bg, mut fg_out, mut bg_out) = (vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        // Alternate which goes first, so neither always runs on a warmer machine.
        let (f, b) = if i % 2 == 0 {
            let f = foreground_once(image, backend);
            (f, detached_once(image, backend))
        } else {
            let b = detached_once(image, backend);
            (foreground_once(image, backend), b)
        };
        fg.push(f.0);
        fg_out.push(f.1);
        bg.push(b.0);
        bg_out.push(b.1);
    }
    let (f, b) = (median(fg), median(bg));
    println!(
        "  {backend:<6}  up -d to its exit {:>7.0} ms   up to its ready line {:>7.0} ms   ratio {:.3} (limit 1.05)",
        ms(b),
        ms(f),
        b.as_secs_f64() / f.as_secs_f64()
    );
    println!(
        "          outside the supervisor's own start: up -d {:>5.0} ms   up {:>5.0} ms (its \"ready in\" has 10 ms steps)",
        ms(median(bg_out)),
        ms(median(fg_out))
    );
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
    let url = wait_select_1(&id, "cruddur");
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

/// Waits until `dir`'s `.devenv/env` exists (the `up` is ready).
fn wait_ready(dir: &Path, child: &mut std::process::Child) {
    let env = dir.join(".devenv/env");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "devenv up exited early"
        );
        assert!(Instant::now() < deadline, "devenv up not ready in 60 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `devenv up` on kept data built from unchanged files, to ready; then `devenv down` (data
/// kept). Returns (up, down).
fn warm_once(dir: &Path, image: &str, backend: &str) -> (Duration, Duration) {
    let started = Instant::now();
    let mut child = devenv(dir, image, backend)
        .arg("up")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(dir, &mut child);
    let up = started.elapsed();
    let started = Instant::now();
    run(devenv(dir, image, backend).arg("down"));
    let down = started.elapsed();
    child.wait().unwrap();
    (up, down)
}

/// Polls the container `id` with `psql -c 'select 1'` every 5 ms until it answers; returns
/// the URL of `database` on its published port.
fn wait_select_1(id: &str, database: &str) -> String {
    let port = run(Command::new("docker").args(["port", id, "5432/tcp"]));
    let port = port
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let url = format!("postgresql://postgres:password@127.0.0.1:{port}/{database}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Command::new(PSQL)
        .args(["-X", "-q", &url, "-c", "select 1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "{id} not ready in 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    url
}

/// The raw peer of a warm start: `docker run` on a volume that already holds a cluster, polled
/// with `SELECT 1` until it answers; then `docker stop` (and an untimed `docker rm`). On the
/// engine's default bridge, or on `network` (a user-defined one, as devenv's container is).
fn raw_warm_once(volume: &str, image: &str, network: Option<&str>) -> (Duration, Duration) {
    let started = Instant::now();
    let id = run(Command::new("docker")
        .args(["run", "-d", "-p", "127.0.0.1::5432"])
        .args(network.map(|n| format!("--network={n}")))
        .args(["-v", &format!("{volume}:/var/lib/postgresql/data")])
        .args(["-e", "POSTGRES_PASSWORD=password", image, "postgres"])
        .args(devenv_server::dev_settings_args(
            devenv_server::Storage::Persistent,
        )));
    wait_select_1(&id, "postgres");
    let up = started.elapsed();
    let started = Instant::now();
    run(Command::new("docker").args(["stop", &id]));
    let down = started.elapsed();
    run(Command::new("docker").args(["rm", "-f", &id]));
    (up, down)
}

/// Warm starts and stops with kept data, docker and native, side by side with the raw peer.
fn warm(image: &str, runs: usize) {
    let volume = format!("devenv-bench-warm-{}", std::process::id());
    raw_warm_once(&volume, image, None); // initialises the volume's cluster
    let network = format!("devenv-bench-warm-{}", std::process::id());
    run(Command::new("docker").args(["network", "create", &network]));
    let projects = [
        ("docker", copy_example("devenv-bench-warm-")),
        ("native", copy_example("devenv-bench-warm-")),
    ];
    for (backend, dir) in &projects {
        warm_once(dir.path(), image, backend); // builds the database, kept
    }
    let (mut dup, mut ddown, mut nup, mut ndown, mut rup, mut rdown, mut wup) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let (u, d) = warm_once(projects[0].1.path(), image, "docker");
        dup.push(u);
        ddown.push(d);
        let (u, d) = raw_warm_once(&volume, image, None);
        rup.push(u);
        rdown.push(d);
        wup.push(raw_warm_once(&volume, image, Some(&network)).0);
        let (u, d) = warm_once(projects[1].1.path(), image, "native");
        nup.push(u);
        ndown.push(d);
    }
    let (du, ru, nu, wu) = (median(dup), median(rup), median(nup), median(wup));
    let (dd, rd, nd) = (median(ddown), median(rdown), median(ndown));
    println!("warm starts: data kept, files unchanged, {runs} runs each, alternating:");
    println!(
        "  up to ready:  devenv (docker) {:>6.0} ms   docker run on the volume + SELECT 1 {:>6.0} ms   ratio {:.2}",
        ms(du),
        ms(ru),
        du.as_secs_f64() / ru.as_secs_f64()
    );
    println!(
        "                the same on a user-defined network (devenv's container is on one) {:>6.0} ms   ratio {:.2}",
        ms(wu),
        du.as_secs_f64() / wu.as_secs_f64()
    );
    println!("  up to ready:  devenv (native) {:>6.0} ms", ms(nu));
    println!(
        "  stop:         devenv down (docker, data kept) {:>6.0} ms   docker stop {:>6.0} ms   ratio {:.2}; devenv down (native) {:>6.0} ms",
        ms(dd),
        ms(rd),
        dd.as_secs_f64() / rd.as_secs_f64(),
        ms(nd)
    );
    for (backend, dir) in &projects {
        let _ = devenv(dir.path(), image, backend)
            .args(["down", "--volumes"])
            .output();
    }
    let _ = Command::new("docker")
        .args(["volume", "rm", "-f", &volume])
        .output();
    let _ = Command::new("docker")
        .args(["network", "rm", &network])
        .output();
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
    println!("cold starts: devenv up (throw-away data) vs raw docker run + psql, image {image}, {runs} runs each, alternating:");
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
    warm(&image, runs);
    println!("devenv up -d against the foreground devenv up, {runs} runs each, alternating:");
    for backend in ["native", "docker"] {
        detached_against_foreground(&image, backend, runs);
    }
}
