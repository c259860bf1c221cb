//! A real PostgreSQL server for the loader's tests: the native backend in a temp directory,
//! shared by the tests of one process while any of them holds it; and the helpers the tests
//! share (a project in a temp dir, a loader that records its events).

#![allow(
    dead_code,
    reason = "each test crate uses a different part of the support"
)]

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use devenv_server::native::TempServer;
use devenv_server::Server;
use devenv_sql::{Event, Loader};

pub struct TestServer(TempServer);

static SHARED: Mutex<Weak<TestServer>> = Mutex::new(Weak::new());

/// The shared server, started on first use.
pub async fn server() -> Arc<TestServer> {
    if let Some(server) = SHARED.lock().unwrap().upgrade() {
        return server;
    }
    let server = TempServer::start("test-pw")
        .await
        .unwrap_or_else(|e| panic!("the loader tests need PostgreSQL server binaries: {e}"));
    let server = Arc::new(TestServer(server));
    let mut shared = SHARED.lock().unwrap();
    if let Some(other) = shared.upgrade() {
        return other;
    }
    *shared = Arc::downgrade(&server);
    server
}

impl TestServer {
    pub fn server(&self) -> &Server {
        self.0.server()
    }

    /// A new empty database with a unique name.
    pub async fn fresh_db(&self, prefix: &str) -> String {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let client = self.connect("postgres").await;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        name
    }

    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = self
            .server()
            .config(db)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    pub async fn count(&self, db: &str, sql: &str) -> i64 {
        self.connect(db)
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }
}

/// Events the loader reported, as text.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<String>>>);

impl Events {
    pub fn handler(&self) -> devenv_sql::EventHandler {
        let log = self.0.clone();
        Arc::new(move |event: &Event<'_>| {
            let line = match event {
                Event::Echo(t) => format!("echo: {t}"),
                Event::Warn(t) => format!("warn: {t}"),
                Event::Warning { location, message } => {
                    format!("warning: {}: {message}", location.short())
                }
                Event::Ignored { location, command } => {
                    format!("ignored: {}: \\{command}", location.short())
                }
                Event::Notice {
                    location,
                    severity,
                    message,
                } => format!("{severity}: {}: {message}", location.short()),
                // Timing-dependent; the progress test records them itself.
                Event::Progress { .. } => return,
            };
            log.lock().unwrap().push(line);
        })
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

pub async fn loader(root: &Path) -> (Arc<TestServer>, Loader, Events) {
    let server = server().await;
    let events = Events::default();
    let loader = Loader::new(server.server().config("postgres"), root).events(events.handler());
    (server, loader, events)
}

/// psql 15 (`-X -q -v ON_ERROR_STOP=1 -o /dev/null`, then `args`) run from `dir` on `file`
/// in `db` of the shared server: its output.
pub async fn psql(dir: &Path, file: &str, db: &str, args: &[&str]) -> std::process::Output {
    let server = server().await;
    let s = server.server();
    let bin = devenv_server::native::find_bin_dir()
        .await
        .expect("PostgreSQL binaries")
        .join("psql");
    tokio::process::Command::new(&bin)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null"])
        .args(["-h", &s.host(), "-p", &s.port().to_string(), "-U", s.user()])
        .args(args)
        .args(["-d", db, "-f", file])
        .env("PGPASSWORD", s.password())
        .current_dir(dir)
        .output()
        .await
        .unwrap_or_else(|e| panic!("these tests compare with psql; run {}: {e}", bin.display()))
}

/// Writes `files` (path, content) under a new temp dir.
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}
