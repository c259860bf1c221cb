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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_postgres::error::{DbError, ErrorPosition};
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

use crate::error::{client_error_text, ErrorKind, LoadError, Location};
use crate::scan::{line_col, line_text, Item, Meta, Scanner, Statement, Variables};

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
    /// A server notice (`NOTICE`, `WARNING`, ...) raised by a statement.
    Notice {
        /// The statement that raised it.
        location: &'a Location,
        /// `NOTICE`, `WARNING`, `INFO`, ...
        severity: &'a str,
        /// The message.
        message: &'a str,
    },
}

/// A callback that receives the loader's [`Event`]s.
pub type EventHandler = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// Prints events on stderr as a compiler would; notices below `WARNING` only when `verbose`.
pub fn stderr_events(verbose: bool) -> EventHandler {
    Arc::new(move |event| match event {
        Event::Echo(text) | Event::Warn(text) => eprintln!("{text}"),
        Event::Warning { location, message } => eprintln!(
            "{}:{}: warning: {message}",
            location.path.display(),
            location.line
        ),
        Event::Notice {
            location,
            severity,
            message,
        } => {
            if notice_shown(severity, verbose) {
                eprintln!(
                    "{}:{}: {}: {message}",
                    location.path.display(),
                    location.line,
                    severity.to_ascii_lowercase()
                );
            }
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
    /// Every file read, includes too, as paths on disk (for a watcher).
    pub files: Vec<PathBuf>,
    /// Statements executed.
    pub statements: usize,
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
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("root", &self.root)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

const MAX_INCLUDE_DEPTH: usize = 32;

impl Loader {
    /// A loader for the server `config` points at (its `dbname` is replaced per load). Relative
    /// paths, given or `\i`-included, are read from `root`; errors show them as given.
    pub fn new(config: Config, root: impl Into<PathBuf>) -> Self {
        Loader {
            config,
            root: root.into(),
            durability: Durability::default(),
            events: stderr_events(false),
        }
    }

    /// Sets the durability of the loading sessions.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
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
        let started = Instant::now();
        let mut run = Run {
            loader: self,
            database: database.to_owned(),
            vars: Variables::new(),
            summary: LoadSummary::default(),
            session: None,
        };
        for file in files {
            let path = file.as_ref().to_path_buf();
            let src = run.read(&path, "file", None).await?;
            run.run_file(path, src, 0).await?;
            run.end_of_file_session().await?;
        }
        run.summary.elapsed = started.elapsed();
        Ok(run.summary)
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root.join(path)
        }
    }
}

/// A connection and the notices it receives.
struct Session {
    client: Client,
    database: String,
    notices: mpsc::UnboundedReceiver<DbError>,
}

impl Session {
    async fn open(loader: &Loader, config: &Config, database: &str) -> Result<Self, String> {
        let mut config = config.clone();
        config.dbname(database);
        if config.get_application_name().is_none() {
            config.application_name("devenv");
        }
        if loader.durability == Durability::Relaxed {
            let options = config.get_options().unwrap_or_default().to_owned();
            config.options(format!("{options} -c synchronous_commit=off").trim());
        }
        let (client, mut connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| client_error_text(&e))?;
        let (tx, notices) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notice(notice) = message {
                    let _ = tx.send(notice);
                }
            }
        });
        Ok(Session {
            client,
            database: database.to_owned(),
            notices,
        })
    }
}

enum FileEnd {
    Done,
    Quit,
}

struct Run<'l> {
    loader: &'l Loader,
    database: String,
    vars: Variables,
    summary: LoadSummary,
    session: Option<Session>,
}

/// A file being run: what errors point into.
struct File {
    path: PathBuf,
    src: Bytes,
}

impl File {
    fn location(&self, offset: usize) -> Location {
        let (line, col) = line_col(&self.src, offset);
        Location {
            path: self.path.clone(),
            line,
            col,
            source_line: line_text(&self.src, line),
        }
    }

    fn error(&self, offset: usize, kind: ErrorKind) -> LoadError {
        LoadError {
            location: Some(self.location(offset)),
            kind,
        }
    }
}

impl Run<'_> {
    async fn read(
        &mut self,
        path: &Path,
        what: &'static str,
        at: Option<(&File, usize)>,
    ) -> Result<Bytes, LoadError> {
        let on_disk = self.loader.resolve(path);
        match tokio::fs::read(&on_disk).await {
            Ok(bytes) => {
                self.summary.files.push(on_disk);
                Ok(Bytes::from(bytes))
            }
            Err(source) => {
                let kind = ErrorKind::Read {
                    what,
                    path: path.to_path_buf(),
                    source,
                };
                Err(match at {
                    Some((file, offset)) => file.error(offset, kind),
                    None => LoadError {
                        location: None,
                        kind,
                    },
                })
            }
        }
    }

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
        if session.database != self.database {
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
        while let Some(item) = scanner.next_item() {
            match item {
                Item::Trivia(_) | Item::CopyData { .. } => {}
                Item::Statement(statement) => {
                    let copy = if statement.copy_from_stdin {
                        match scanner.next_item() {
                            Some(Item::CopyData { data, .. }) => Some(data),
                            _ => Some(file.src.len()..file.src.len()),
                        }
                    } else {
                        None
                    };
                    self.statement(file, &statement, copy).await?;
                }
                Item::Meta(meta) => {
                    if let FileEnd::Quit = self.meta(file, &meta, depth, &mut scanner.vars).await? {
                        let (line, _) = line_col(&file.src, meta.span.start);
                        let total = line_col(&file.src, file.src.len()).0;
                        let message = format!(
                            "\\{} stops loading this file here; {} line(s) after it are not loaded",
                            meta.name,
                            total.saturating_sub(line)
                        );
                        let location = file.location(meta.span.start);
                        (self.loader.events)(&Event::Warning {
                            location: &location,
                            message: &message,
                        });
                        return Ok(FileEnd::Quit);
                    }
                }
            }
        }
        Ok(FileEnd::Done)
    }

    async fn statement(
        &mut self,
        file: &File,
        statement: &Statement,
        copy: Option<std::ops::Range<usize>>,
    ) -> Result<(), LoadError> {
        let start = statement.start();
        let Ok(sql) = std::str::from_utf8(&statement.sql) else {
            return Err(file.error(start, ErrorKind::InvalidUtf8));
        };
        let session = self.session(file, start).await?;
        let result = match &copy {
            None => session.client.simple_query(sql).await.map(|_| 0),
            Some(data) => copy_in(&session.client, sql, file.src.slice(data.clone())).await,
        };
        let notices: Vec<DbError> =
            std::iter::from_fn(|| session.notices.try_recv().ok()).collect();
        if !notices.is_empty() {
            let location = file.location(start);
            for notice in &notices {
                (self.loader.events)(&Event::Notice {
                    location: &location,
                    severity: notice.severity(),
                    message: notice.message(),
                });
            }
        }
        match result {
            Ok(rows) => {
                self.summary.statements += 1;
                self.summary.copy_rows += rows;
                Ok(())
            }
            Err(e) => Err(self.server_error(file, statement, copy, &e)),
        }
    }

    fn server_error(
        &mut self,
        file: &File,
        statement: &Statement,
        copy: Option<std::ops::Range<usize>>,
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
            None => copy
                .and_then(|data| copy_error_offset(&file.src, data, db.where_()?))
                .unwrap_or_else(|| statement.start()),
        };
        file.error(
            offset,
            ErrorKind::Server {
                message: db.message().to_owned(),
                code: db.code().code().to_owned(),
                detail: db.detail().map(str::to_owned),
                hint: db.hint().map(str::to_owned),
                context,
            },
        )
    }

    async fn meta(
        &mut self,
        file: &File,
        meta: &Meta,
        depth: usize,
        vars: &mut Variables,
    ) -> Result<FileEnd, LoadError> {
        let at = meta.span.start;
        let bad = |message: &str| {
            file.error(
                at,
                ErrorKind::BadMeta {
                    name: meta.name.clone(),
                    message: message.to_owned(),
                },
            )
        };
        match meta.name.as_str() {
            "c" | "connect" => {
                let args: Vec<&str> = meta
                    .args
                    .iter()
                    .map(String::as_str)
                    .filter(|a| !a.starts_with("-reuse-previous"))
                    .collect();
                let mut config = self.loader.config.clone();
                let current = self
                    .session
                    .as_ref()
                    .map_or(self.database.clone(), |s| s.database.clone());
                let mut database = current;
                if let Some(first) = args.first().filter(|a| **a != "-") {
                    if first.contains('=') || first.contains("://") {
                        let parsed: Config = first
                            .parse()
                            .map_err(|e| bad(&format!("invalid connection string: {e}")))?;
                        if let Some(db) = parsed.get_dbname() {
                            db.clone_into(&mut database);
                        }
                        if let Some(user) = parsed.get_user() {
                            config.user(user);
                        }
                        if let Some(pw) = parsed.get_password() {
                            config.password(pw);
                        }
                    } else {
                        database = dequote_ident(first);
                    }
                }
                if let Some(user) = args.get(1).filter(|a| **a != "-") {
                    config.user(dequote_ident(user));
                }
                if args.len() > 2 {
                    return Err(bad(
                        "only a database name and a user are supported; host and port stay those of the server being loaded",
                    ));
                }
                let session = Session::open(self.loader, &config, &database)
                    .await
                    .map_err(|message| file.error(at, ErrorKind::Connect { database, message }))?;
                self.session = Some(session);
            }
            "i" | "include" | "ir" | "include_relative" => {
                let [arg] = meta.args.as_slice() else {
                    return Err(bad("takes exactly one file name"));
                };
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(bad(&format!(
                        "includes nest deeper than {MAX_INCLUDE_DEPTH} files; is a file including itself?"
                    )));
                }
                let target = Path::new(arg);
                let path = if meta.name.starts_with("ir") || meta.name == "include_relative" {
                    file.path
                        .parent()
                        .map_or_else(|| target.to_path_buf(), |dir| dir.join(target))
                } else {
                    target.to_path_buf()
                };
                let arg_at = meta.arg_starts.first().copied().unwrap_or(at);
                let src = self
                    .read(&path, "included file", Some((file, arg_at)))
                    .await?;
                // The include shares the session and the variables; `\quit` stops it alone.
                self.vars = std::mem::take(vars);
                self.run_file(path, src, depth + 1).await?;
                *vars = std::mem::take(&mut self.vars);
            }
            "echo" | "warn" => {
                // `-n` (no newline) has no meaning for line-wise events.
                let args = match meta.args.split_first() {
                    Some((first, rest)) if first == "-n" => rest,
                    _ => meta.args.as_slice(),
                };
                let text = args.join(" ");
                if meta.name == "echo" {
                    (self.loader.events)(&Event::Echo(&text));
                } else {
                    (self.loader.events)(&Event::Warn(&text));
                }
            }
            "set" => match meta.args.split_first() {
                None => {
                    let listing: Vec<String> =
                        vars.iter().map(|(k, v)| format!("{k} = '{v}'")).collect();
                    (self.loader.events)(&Event::Echo(&listing.join("\n")));
                }
                Some((name, values)) => {
                    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                        return Err(bad(&format!("invalid variable name: \"{name}\"")));
                    }
                    vars.insert(name.clone(), values.concat());
                }
            },
            "unset" => {
                let [name] = meta.args.as_slice() else {
                    return Err(bad("takes exactly one variable name"));
                };
                vars.remove(name);
            }
            "q" | "quit" => return Ok(FileEnd::Quit),
            // pg_dump 17.6+ brackets its output with these; they only guard psql itself.
            "restrict" | "unrestrict" | "\\" => {}
            other => {
                return Err(file.error(at, ErrorKind::UnsupportedMeta(other.to_owned())));
            }
        }
        Ok(FileEnd::Done)
    }
}

/// Sends one COPY block through the COPY protocol; returns the rows the server counted.
async fn copy_in(client: &Client, sql: &str, data: Bytes) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in(sql).await?;
    futures_util::pin_mut!(sink);
    if !data.is_empty() {
        sink.send(data).await?;
    }
    sink.as_mut().finish().await
}

/// The file offset of the data line a COPY error's CONTEXT names (`COPY t, line 3, ...`).
fn copy_error_offset(src: &[u8], data: std::ops::Range<usize>, context: &str) -> Option<usize> {
    let rest = &context[context.find(", line ")? + ", line ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let line: usize = digits.parse().ok()?;
    let mut offset = data.start;
    for _ in 1..line {
        offset += src[offset..data.end].iter().position(|&b| b == b'\n')? + 1;
    }
    Some(offset.min(src.len()))
}

/// `"Name"` -> `Name`; unquoted names are kept as written (psql's `\c` does not downcase).
fn dequote_ident(s: &str) -> String {
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_owned(),
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
