//! The executor: runs the splitter's items against a server over tokio-postgres, with psql's
//! semantics (`ON_ERROR_STOP`, COPY through the COPY protocol, meta-commands).
//!
//! ## Sessions
//! Each top-level file starts from a clean session: after a file, the loader runs
//! `DISCARD ALL` on the session (which resets `set_config(..., false)`, roles, temp tables and
//! prepared statements) or, when the file switched database with `\c`, opens a new
//! connection. `DISCARD ALL` fails inside a transaction block, which is also how a file that
//! ends with an open `BEGIN` is caught: psql would roll its work back in silence at exit; the
//! loader reports it instead. `\i` includes share the including file's session, as in psql.
//! A session is opened when a file starts, as psql connects before it reads, so psql's
//! automatic variables (`:DBNAME`, ...) are set from the first line on.
//!
//! ## Variables and branches
//! Variables live for the whole load, as in one psql run; `\if` blocks belong to one file.
//! Statements and meta-commands in a branch that does not run are skipped whole: nothing is
//! sent, interpolated or opened.
//!
//! ## Transaction mode
//! Statements run in autocommit, one `simple_query` each, as psql runs them by default, so
//! files that create databases, run `VACUUM` or carry their own `BEGIN`/`COMMIT` load as they
//! do in psql. The callers load into a database they throw away on error, so the session sets
//! `synchronous_commit = off` ([`Durability::Relaxed`], the default): commits no longer wait for
//! the WAL flush, which is what a single wrapping transaction (`psql -1`) would have bought,
//! without its restrictions. Measured with the `load_pagila` bench (pagila schema + data, PG15,
//! same server, 7 alternating runs): relaxed autocommit 2030 ms, full-durability autocommit
//! 1941 ms, `psql -1` 1962 ms, i.e. all within noise of each other on a server that already
//! runs with `fsync=off` (as devenv's servers do), where the time goes to the server's own work
//! (foreign-key checks, index builds). Relaxed stays the default because it is correct for
//! throw-away databases and only helps on a durable server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_postgres::error::{DbError, ErrorPosition};
use tokio_postgres::Config;

use crate::error::{client_error_text, ErrorKind, LoadError, Location};
use crate::inputs::{ReadError, MAX_INCLUDE_DEPTH};
use crate::scan::{line_col, line_window, Item, Scanner, Statement, Variables, MAX_INPUT};

pub mod batch;
mod copy;
mod meta;
mod query;
mod session;

use session::Session;
pub use session::{Connect, Connected, Plain};

/// A file to run and how: [`Loader::load_steps`]. Plain files are steps with nothing around
/// them; a migration runs inside a transaction (unless it asks not to) with the statement that
/// records it after it, in the same transaction, so a migration is recorded if and only if it
/// committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The file, as listed (relative to the loader's root) or absolute; with `text`, only the
    /// name errors show.
    pub path: PathBuf,
    /// The file's text when it is already in hand (a fixture compiled into a test); else it is
    /// read from `path`.
    pub text: Option<Bytes>,
    /// Run inside one transaction: `BEGIN` before the file, `COMMIT` after `after`.
    pub transaction: bool,
    /// Statements run in the file's session before it (outside its transaction).
    pub before: Option<String>,
    /// Statements run in the file's session after it (inside its transaction).
    pub after: Option<String>,
    /// What errors of `before`, `after` and the transaction name it ("migration 3 (add
    /// users)").
    pub label: Option<String>,
}

impl Step {
    /// A plain file, run as psql runs it.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Step {
            path: path.into(),
            text: None,
            transaction: false,
            before: None,
            after: None,
            label: None,
        }
    }

    /// A file whose text is in hand, run as psql runs it; errors name it `path`.
    pub fn text(path: impl Into<PathBuf>, text: impl Into<Bytes>) -> Self {
        Step {
            text: Some(text.into()),
            ..Step::file(path)
        }
    }
}

/// How far a session's commits must reach before they return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous_commit = off`: commits return before the WAL flush. Right for databases
    /// that are rebuilt from their files after a crash, which is every database devenv loads.
    #[default]
    Relaxed,
    /// The server's own setting.
    Full,
}

/// Something the loader reports while it runs.
#[derive(Debug)]
pub enum Event<'a> {
    /// Text from `\echo`.
    Echo(&'a str),
    /// Text from `\warn`.
    Warn(&'a str),
    /// A warning about the files themselves, such as a `\quit` that stops a file.
    Warning {
        /// Where.
        location: &'a Location,
        /// What.
        message: &'a str,
    },
    /// A display-only meta-command (`\timing`, `\pset`, `\x`, ...) accepted and ignored.
    Ignored {
        /// Where.
        location: &'a Location,
        /// The command, without its backslash.
        command: &'a str,
    },
    /// A server notice (`NOTICE`, `WARNING`, ...) raised by a statement.
    Notice {
        /// The statement that raised it.
        location: &'a Location,
        /// `NOTICE`, `WARNING`, `INFO`, ...
        severity: &'a str,
        /// The message.
        message: &'a str,
    },
    /// How far the loader is in a file, when asked for ([`Loader::progress`]): sent when a
    /// file (top-level or included) starts, then between items at most every
    /// [`PROGRESS_EVERY`] while it runs (one clock read per item).
    Progress {
        /// The file as the user named it (or as an include resolved it).
        path: &'a Path,
        /// Bytes of it run so far.
        done: u64,
        /// Its size in bytes.
        total: u64,
        /// Statements the load has run so far, in every file.
        statements: usize,
    },
}

/// The least time between two [`Event::Progress`] of a running load.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// A callback that receives the loader's [`Event`]s.
pub type EventHandler = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// An event as a line for people: what [`stderr_events`] prints and devenv's terminal output
/// styles, so both show the same. `None` for events not shown (progress, and notices or ignored
/// display commands unless `verbose`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `path:line[:col]`, for events of the files.
    pub location: Option<String>,
    /// `warning`, `note`, `notice`, ...: what the line is, lowercase; `None` for `\echo` text.
    pub label: Option<String>,
    /// The text.
    pub text: String,
}

impl Event<'_> {
    /// The line shown for this event ([`Line`]).
    pub fn line(&self, verbose: bool) -> Option<Line> {
        match self {
            Event::Echo(text) | Event::Warn(text) => Some(Line {
                location: None,
                label: None,
                text: (*text).to_owned(),
            }),
            Event::Warning { location, message } => Some(Line {
                location: Some(location.short()),
                label: Some("warning".into()),
                text: (*message).to_owned(),
            }),
            Event::Ignored { location, command } => verbose.then(|| Line {
                location: Some(location.short()),
                label: Some("note".into()),
                text: format!("\\{command} ignored (it only changes psql's display)"),
            }),
            Event::Notice {
                location,
                severity,
                message,
            } => notice_shown(severity, verbose).then(|| Line {
                location: Some(location.short()),
                label: Some(severity.to_ascii_lowercase()),
                text: (*message).to_owned(),
            }),
            Event::Progress { .. } => None,
        }
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if let Some(label) = &self.label {
            write!(f, "{label}: ")?;
        }
        f.write_str(&self.text)
    }
}

/// Prints events on stderr as a compiler would; notices below `WARNING` only when `verbose`.
pub fn stderr_events(verbose: bool) -> EventHandler {
    Arc::new(move |event| {
        if let Some(line) = event.line(verbose) {
            eprintln!("{line}");
        }
    })
}

/// Whether a server message of `severity` is printed: `WARNING` and above always, `NOTICE`
/// and below (`DROP TABLE IF EXISTS` on a fresh database, say) only when verbose.
pub fn notice_shown(severity: &str, verbose: bool) -> bool {
    verbose || !matches!(severity, "NOTICE" | "INFO" | "DEBUG" | "LOG")
}

/// What a successful load did.
#[derive(Debug, Default, Clone)]
pub struct LoadSummary {
    /// Every file read, includes and `\copy` data files too, as paths on disk (for a watcher).
    pub files: Vec<PathBuf>,
    /// Statements executed.
    pub statements: usize,
    /// Of those, how many went to the server in runs of several ([`batch`]).
    pub batched: usize,
    /// Rows loaded through COPY.
    pub copy_rows: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Loads SQL files into a database on one server.
#[derive(Clone)]
pub struct Loader {
    config: Config,
    root: PathBuf,
    durability: Durability,
    events: EventHandler,
    progress: bool,
    vars: Variables,
    limit: usize,
    connector: Arc<dyn Connect>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("root", &self.root)
            .field("durability", &self.durability)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl Loader {
    /// A loader for the server `config` points at (its `dbname` is replaced per load). Relative
    /// paths, given or `\i`-included, are read from `root`; errors show them as given.
    pub fn new(config: Config, root: impl Into<PathBuf>) -> Self {
        Loader {
            config,
            root: root.into(),
            durability: Durability::default(),
            events: stderr_events(false),
            progress: false,
            vars: Variables::new(),
            limit: MAX_INPUT,
            connector: Arc::new(Plain),
        }
    }

    /// Sets how connections are opened (default: [`Plain`]); devenv's callers pass their TLS
    /// rules here.
    #[must_use]
    pub fn connector(mut self, connector: Arc<dyn Connect>) -> Self {
        self.connector = connector;
        self
    }

    /// Sets psql variables before the first file, as `psql -v NAME=VALUE` does; psql's
    /// automatic variables (`DBNAME`, `USER`, ...) are set over them at each connection, as
    /// psql sets them.
    #[must_use]
    pub fn vars(mut self, vars: Variables) -> Self {
        self.vars = vars;
        self
    }

    /// The longest statement, meta-command line or COPY data row the loader sends (default
    /// [`MAX_INPUT`], PostgreSQL's own limit for one message); a longer one is an error at
    /// its `path:line`, found before anything of it is sent.
    #[must_use]
    pub fn input_limit(mut self, bytes: usize) -> Self {
        self.limit = bytes.min(MAX_INPUT);
        self
    }

    /// Sets the durability of the loading sessions.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sends [`Event::Progress`] events (default: off, and then not a clock read is spent).
    #[must_use]
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Sets where events go (default: stderr, notices hidden).
    #[must_use]
    pub fn events(mut self, events: EventHandler) -> Self {
        self.events = events;
        self
    }

    /// Runs `files` in order into `database`, stopping at the first error.
    pub async fn load_files<P: AsRef<Path>>(
        &self,
        database: &str,
        files: &[P],
    ) -> Result<LoadSummary, LoadError> {
        let steps: Vec<Step> = files.iter().map(|f| Step::file(f.as_ref())).collect();
        self.load_steps(database, &steps).await
    }

    /// Runs `steps` in order into `database`, stopping at the first error: each a file, with
    /// statements around it and in a transaction when asked (migrations: [`Step`]).
    pub async fn load_steps(
        &self,
        database: &str,
        steps: &[Step],
    ) -> Result<LoadSummary, LoadError> {
        let started = Instant::now();
        let mut run = Run {
            loader: self,
            database: database.to_owned(),
            vars: self.vars.clone(),
            summary: LoadSummary::default(),
            session: None,
            restricted: None,
            env: BTreeMap::new(),
            progress_at: Instant::now(),
            unended: [String::new(), String::new()],
            top: PathBuf::new(),
        };
        let outcome = async {
            for step in steps {
                let listed = step.path.clone();
                let (path, src) = match &step.text {
                    Some(text) => (listed, text.clone()),
                    None => run.read(&[(listed, "as listed")], "file", None).await?,
                };
                run.top.clone_from(&path);
                run.start_session().await?;
                if let Some(sql) = &step.before {
                    run.step_sql(step, sql).await?;
                }
                if step.transaction {
                    run.step_sql(step, "BEGIN").await?;
                }
                run.run_file(path, src, 0).await?;
                if let Some(sql) = &step.after {
                    run.step_sql(step, sql).await?;
                }
                if step.transaction {
                    run.step_sql(step, "COMMIT").await?;
                }
                run.end_of_file_session().await?;
            }
            Ok(())
        }
        .await;
        run.end_lines();
        outcome?;
        run.summary.elapsed = started.elapsed();
        Ok(run.summary)
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        crate::inputs::on_disk(&self.root, path)
    }
}

enum FileEnd {
    Done,
    Quit,
}

struct Run<'l> {
    loader: &'l Loader,
    database: String,
    /// The variables between files (a running file's scanner holds them meanwhile).
    vars: Variables,
    summary: LoadSummary,
    session: Option<Session>,
    /// The key of `\restrict`, while meta-commands are restricted.
    restricted: Option<String>,
    /// Environment variables set (`Some`) or unset (`None`) by `\setenv`, seen by `\getenv`.
    env: BTreeMap<String, Option<String>>,
    /// When the last [`Event::Progress`] went out.
    progress_at: Instant,
    /// Text of `\echo -n` and `\warn -n` not yet ended by a newline, as psql leaves it.
    unended: [String; 2],
    /// The top-level file running (relative paths are also looked for from its directory).
    top: PathBuf,
}

/// A file being run: what errors point into.
struct File {
    path: PathBuf,
    src: Bytes,
}

impl File {
    fn location(&self, offset: usize) -> Location {
        let (line, col) = line_col(&self.src, offset);
        let (source_line, caret) = line_window(&self.src, offset);
        Location {
            path: self.path.clone(),
            line,
            col,
            source_line,
            caret,
        }
    }

    fn error(&self, offset: usize, kind: ErrorKind) -> LoadError {
        LoadError {
            location: Some(self.location(offset)),
            kind,
        }
    }
}

/// The error a server error is, with `context` in place of the server's CONTEXT.
fn server_kind(db: &DbError, context: Option<String>) -> ErrorKind {
    ErrorKind::Server {
        message: db.message().to_owned(),
        code: db.code().code().to_owned(),
        detail: db.detail().map(str::to_owned),
        hint: db.hint().map(str::to_owned),
        context,
    }
}

impl Run<'_> {
    /// Reads the first of `candidates` (paths as shown, each with why it is looked at) that
    /// exists, as a regular file; `at` is where the command that names it is.
    async fn read(
        &mut self,
        candidates: &[(PathBuf, &'static str)],
        what: &'static str,
        at: Option<(&File, usize)>,
    ) -> Result<(PathBuf, Bytes), LoadError> {
        let error = |kind| match at {
            Some((file, offset)) => file.error(offset, kind),
            None => LoadError {
                location: None,
                kind,
            },
        };
        let shown = match crate::inputs::resolve(&self.loader.root, candidates) {
            Some(shown) => shown,
            // A single place: its own error says why.
            None if candidates.len() == 1 => candidates[0].0.clone(),
            None => {
                return Err(error(ErrorKind::NotFound {
                    what,
                    path: candidates[0].0.clone(),
                    tried: candidates.to_vec(),
                }))
            }
        };
        let on_disk = self.loader.resolve(&shown);
        let path = on_disk.clone();
        let read = tokio::task::spawn_blocking(move || crate::inputs::read_regular(&path))
            .await
            .unwrap_or_else(|e| Err(ReadError::Io(std::io::Error::other(e))));
        match read {
            Ok(bytes) => {
                self.summary.files.push(on_disk);
                Ok((shown, Bytes::from(bytes)))
            }
            Err(ReadError::NotRegular(kind)) => Err(error(ErrorKind::NotRegular {
                what,
                path: shown,
                kind,
            })),
            Err(ReadError::Io(source)) => Err(error(ErrorKind::Read {
                what,
                path: shown,
                source,
            })),
        }
    }

    /// Connects before a top-level file runs, as psql does, and sets the automatic variables.
    async fn start_session(&mut self) -> Result<(), LoadError> {
        if self.session.is_none() {
            let session = Session::open(self.loader, &self.loader.config, &self.database)
                .await
                .map_err(|message| LoadError {
                    location: None,
                    kind: ErrorKind::Connect {
                        database: self.database.clone(),
                        message,
                    },
                })?;
            session.set_variables(&mut self.vars);
            self.session = Some(session);
        }
        Ok(())
    }

    /// The session, reopened (on the load's database) if a broken connection dropped it.
    async fn session(&mut self, file: &File, offset: usize) -> Result<&mut Session, LoadError> {
        if self.session.is_none() {
            let session = Session::open(self.loader, &self.loader.config, &self.database)
                .await
                .map_err(|message| {
                    file.error(
                        offset,
                        ErrorKind::Connect {
                            database: self.database.clone(),
                            message,
                        },
                    )
                })?;
            self.session = Some(session);
        }
        Ok(self.session.as_mut().expect("session opened above"))
    }

    /// Runs a step's own statements (its `before`, `after`, or the transaction around it) in
    /// the session; an error names the step.
    async fn step_sql(&mut self, step: &Step, sql: &str) -> Result<(), LoadError> {
        let label = step.label.as_deref().unwrap_or("the file");
        let result = match self.session.as_mut() {
            Some(session) => session.client.batch_execute(sql).await,
            None => {
                return Err(LoadError {
                    location: None,
                    kind: ErrorKind::Client(format!(
                        "{}: {label}: the session ended (\\c in a migration?)",
                        step.path.display()
                    )),
                })
            }
        };
        result.map_err(|e| LoadError {
            location: None,
            kind: ErrorKind::Client(format!(
                "{}: {label}: {}",
                step.path.display(),
                client_error_text(&e)
            )),
        })
    }

    /// Resets the session for the next file, or drops it when `\c` moved it elsewhere.
    async fn end_of_file_session(&mut self) -> Result<(), LoadError> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        if let Err(e) = session.client.batch_execute("DISCARD ALL").await {
            let in_tx = e
                .as_db_error()
                .is_some_and(|db| db.code().code() == "25001");
            let path = self.summary.files.last().cloned().unwrap_or_default();
            self.session = None;
            return Err(LoadError {
                location: None,
                kind: ErrorKind::Client(if in_tx {
                    format!(
                        "{}: the file ends inside a transaction block (BEGIN without COMMIT); \
                         psql would roll its work back at exit",
                        path.display()
                    )
                } else {
                    format!("resetting the session failed: {}", client_error_text(&e))
                }),
            });
        }
        if session.database == self.database {
            // `DISCARD ALL` reset an `\encoding` too.
            session.set_variables(&mut self.vars);
        } else {
            self.session = None;
        }
        Ok(())
    }

    fn run_file(
        &mut self,
        path: PathBuf,
        src: Bytes,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<FileEnd, LoadError>> + Send + '_>>
    {
        Box::pin(async move {
            let file = File { path, src };
            let src = file.src.clone();
            let mut scanner = Scanner::new(&src);
            scanner.vars = std::mem::take(&mut self.vars);
            let outcome = self.run_items(&file, &mut scanner, depth).await;
            self.vars = std::mem::take(&mut scanner.vars);
            outcome
        })
    }

    async fn run_items(
        &mut self,
        file: &File,
        scanner: &mut Scanner<'_>,
        depth: usize,
    ) -> Result<FileEnd, LoadError> {
        // psql's previous query buffer, sent again by a `\g` with an empty one.
        let mut previous: Option<Statement> = None;
        let mut batch = batch::Batch::default();
        // Bytes of the file run so far, for progress.
        let mut done = 0;
        scanner.limit = self.loader.limit;
        let progress = self.loader.progress;
        if progress {
            self.progress(file, 0);
        }
        loop {
            if progress && self.progress_at.elapsed() >= PROGRESS_EVERY {
                self.progress(file, done);
            }
            let Some(item) = scanner.next_item() else {
                break;
            };
            match item {
                Item::Trivia(_) | Item::CopyData { .. } => {}
                Item::Statement(_) if !scanner.conditions().active() => {}
                Item::Statement(statement) => {
                    if batch::batchable(file, &statement) {
                        batch.push(statement);
                        if batch.full() {
                            let end = batch.end();
                            self.run_batch(file, &mut batch, &mut previous).await?;
                            done = end;
                        }
                        continue;
                    }
                    if !batch.is_empty() {
                        self.run_batch(file, &mut batch, &mut previous).await?;
                    }
                    let copy = if statement.copy_from_stdin {
                        Some(inline_copy_data(file, scanner))
                    } else {
                        None
                    };
                    self.statement(file, &statement, copy).await?;
                    done = scanner.position();
                    if !statement.copy_from_stdin {
                        previous = Some(statement);
                    }
                }
                Item::Meta(meta) => {
                    if !batch.is_empty() {
                        self.run_batch(file, &mut batch, &mut previous).await?;
                    }
                    let context = meta::Context {
                        file,
                        depth,
                        scanner: &mut *scanner,
                        previous: &mut previous,
                    };
                    if let FileEnd::Quit = self.meta(&meta, context).await? {
                        self.warn_quit(file, &meta.name, meta.span.start);
                        return Ok(FileEnd::Quit);
                    }
                    done = scanner.position();
                }
            }
        }
        self.run_batch(file, &mut batch, &mut previous).await?;
        if let Some(at) = scanner.conditions().unclosed() {
            return Err(file.error(
                at,
                ErrorKind::Psql("reached EOF without finding closing \\endif(s)".into()),
            ));
        }
        Ok(FileEnd::Done)
    }

    /// Reports that `done` bytes of `file` have run.
    fn progress(&mut self, file: &File, done: usize) {
        self.progress_at = Instant::now();
        (self.loader.events)(&Event::Progress {
            path: &file.path,
            done: done as u64,
            total: file.src.len() as u64,
            statements: self.summary.statements,
        });
    }

    fn warn_quit(&self, file: &File, name: &str, at: usize) {
        let (line, _) = line_col(&file.src, at);
        let total = line_col(&file.src, file.src.len()).0;
        let message = format!(
            "\\{name} stops loading this file here; {} line(s) after it are not loaded",
            total.saturating_sub(line)
        );
        let location = file.location(at);
        (self.loader.events)(&Event::Warning {
            location: &location,
            message: &message,
        });
    }

    async fn statement(
        &mut self,
        file: &File,
        statement: &Statement,
        copy: Option<std::ops::Range<usize>>,
    ) -> Result<(), LoadError> {
        let start = statement.start();
        if statement.too_long {
            return Err(file.error(start, self.too_long("statement", statement_len(statement))));
        }
        let Ok(sql) = std::str::from_utf8(&statement.sql) else {
            return Err(file.error(start, ErrorKind::InvalidUtf8));
        };
        if let Some(data) = &copy {
            self.check_rows(file, data.clone())?;
        }
        let data = copy.as_ref().map(|data| file.src.slice(data.clone()));
        match self.execute(file, start, sql, data).await? {
            Ok(()) => Ok(()),
            Err(e) => {
                let data_error = match (&copy, e.as_db_error()) {
                    (Some(data), Some(db)) => self.copy_error_offset(file, data, sql, db).await,
                    _ => None,
                };
                Err(self.server_error(file, statement, data_error, &e))
            }
        }
    }

    /// Runs `sql` (a COPY with `data`, when given) and counts it; notices are reported at
    /// `offset`. The outer error is one of the session, the inner one the statement's.
    async fn execute(
        &mut self,
        file: &File,
        offset: usize,
        sql: &str,
        data: Option<Bytes>,
    ) -> Result<Result<(), tokio_postgres::Error>, LoadError> {
        let session = self.session(file, offset).await?;
        let result = match data {
            None => session.client.simple_query(sql).await.map(|_| 0),
            Some(data) => copy::copy_in(&session.client, sql, data).await,
        };
        if result.is_ok() {
            session.track(sql);
        }
        self.report_notices(file, offset);
        Ok(result.map(|rows| {
            self.summary.statements += 1;
            self.summary.copy_rows += rows;
        }))
    }

    /// Passes the notices the last command raised to the event handler, at `offset`.
    fn report_notices(&mut self, file: &File, offset: usize) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let notices: Vec<DbError> =
            std::iter::from_fn(|| session.notices.try_recv().ok()).collect();
        for notice in &notices {
            self.notice(file, offset, notice);
        }
    }

    /// Passes one notice to the event handler, at `offset`.
    fn notice(&self, file: &File, offset: usize, notice: &DbError) {
        let location = file.location(offset);
        (self.loader.events)(&Event::Notice {
            location: &location,
            severity: notice.severity(),
            message: notice.message(),
        });
    }

    /// The error for a failed statement: at the server's position in it, at `data_error` (the
    /// COPY data the error is about), else at its start.
    fn server_error(
        &mut self,
        file: &File,
        statement: &Statement,
        data_error: Option<usize>,
        e: &tokio_postgres::Error,
    ) -> LoadError {
        let Some(db) = e.as_db_error() else {
            self.session = None;
            return file.error(statement.start(), ErrorKind::Client(client_error_text(e)));
        };
        let mut context = db.where_().map(str::to_owned);
        let offset = match db.position() {
            Some(ErrorPosition::Original(pos)) => {
                let sql = String::from_utf8_lossy(&statement.sql);
                let byte = sql
                    .char_indices()
                    .nth((*pos as usize).saturating_sub(1))
                    .map_or(sql.len(), |(i, _)| i);
                statement.source_offset(byte)
            }
            Some(ErrorPosition::Internal { query, .. }) => {
                let internal = format!("internal query: {query}");
                context = Some(match context {
                    Some(c) => format!("{c}\n{internal}"),
                    None => internal,
                });
                statement.start()
            }
            None => data_error.unwrap_or_else(|| statement.start()),
        };
        file.error(offset, server_kind(db, context))
    }
}

impl Run<'_> {
    /// The error for an input of `len` bytes over the limit.
    fn too_long(&self, what: &'static str, len: usize) -> ErrorKind {
        ErrorKind::TooLong {
            what,
            len,
            limit: self.loader.limit,
        }
    }

    /// Refuses COPY data in `data` with a row (a line) longer than the limit, at that line.
    #[expect(
        clippy::result_large_err,
        reason = "LoadError is the public error, made once per failed load"
    )]
    fn check_rows(&self, file: &File, data: std::ops::Range<usize>) -> Result<(), LoadError> {
        let limit = self.loader.limit;
        if data.len() <= limit {
            return Ok(());
        }
        let mut at = data.start;
        for line in file.src[data.clone()].split(|&b| b == b'\n') {
            if line.len() > limit {
                return Err(file.error(at, self.too_long("COPY data row", line.len())));
            }
            at += line.len() + 1;
        }
        Ok(())
    }
}

/// The length of a statement's text in the file (its pieces, from first to last).
fn statement_len(statement: &Statement) -> usize {
    let end = statement.pieces.last().map_or(0, |p| p.src.end);
    end.saturating_sub(statement.start())
}

/// The data block after a `COPY ... FROM stdin` or `\copy ... FROM stdin` (empty at the end
/// of the file).
fn inline_copy_data(file: &File, scanner: &mut Scanner<'_>) -> std::ops::Range<usize> {
    match scanner.next_item() {
        Some(Item::CopyData { data, .. }) => data,
        _ => file.src.len()..file.src.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::notice_shown;

    #[test]
    fn notices_are_hidden_unless_verbose_but_warnings_are_not() {
        assert!(!notice_shown("NOTICE", false));
        assert!(notice_shown("NOTICE", true));
        assert!(notice_shown("WARNING", false));
    }
}
