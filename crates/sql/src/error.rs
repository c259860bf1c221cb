//! Load errors and their compiler-style report: `path:line:col: error: message [SQLSTATE]`,
//! the source line with a caret under the column, then the server's DETAIL, HINT and CONTEXT.

use std::fmt;
use std::path::PathBuf;

/// The meta-commands the loader runs, for the error that names one it does not.
pub const SUPPORTED_META: &str = "\\c \\connect \\i \\ir \\include \\include_relative \\copy \\g \\gx \\gset \\gexec \\if \\elif \\else \\endif \\echo \\warn \\set \\unset \\getenv \\setenv \\encoding \\q \\quit \\restrict \\unrestrict, and the display-only \\timing \\pset \\x \\a \\t \\f \\C \\H \\o, which are ignored";

fn looked(tried: &[(PathBuf, &'static str)]) -> String {
    let all: Vec<String> = tried
        .iter()
        .map(|(path, why)| format!("{} ({why})", path.display()))
        .collect();
    all.join(", then ")
}

/// Where in which file a load stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as the user named it (or as an include resolved it).
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// The text of that line, for the caret display (of a very long line, a part of it).
    pub source_line: String,
    /// The caret's 1-based column in `source_line`.
    pub caret: usize,
}

impl Location {
    /// `path:line`, as events show it.
    pub fn short(&self) -> String {
        format!("{}:{}", self.path.display(), self.line)
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The server rejected a statement or COPY data.
    #[error("{message} [{code}]")]
    Server {
        /// The primary message.
        message: String,
        /// The SQLSTATE code.
        code: String,
        /// DETAIL, if any.
        detail: Option<String>,
        /// HINT, if any.
        hint: Option<String>,
        /// CONTEXT, if any.
        context: Option<String>,
    },
    /// A file could not be read (a top-level file, an `\i` include, a `\copy` file).
    #[error("could not read {what} \"{}\": {source}", path.display())]
    Read {
        /// "file", "included file" or "data file" (`\copy ... FROM 'file'`).
        what: &'static str,
        /// The path tried.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file a command names is nowhere it was looked for.
    #[error("could not read {what} \"{}\": not found; looked for {}", path.display(), looked(tried))]
    NotFound {
        /// "included file" or "data file".
        what: &'static str,
        /// The name as the command gave it.
        path: PathBuf,
        /// Where it was looked for, in order, each with why there.
        tried: Vec<(PathBuf, &'static str)>,
    },
    /// A file to read is a FIFO, a device, a directory: reading it could block or never end.
    #[error("could not read {what} \"{}\": it is {kind}, not a regular file; devenv reads SQL and data from regular files only", path.display())]
    NotRegular {
        /// "file", "included file" or "data file".
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What it is ("a FIFO (named pipe)", "a character device", ...).
        kind: &'static str,
    },
    /// A statement, meta-command line or COPY row longer than PostgreSQL takes in a message.
    #[error("this {what} is {len} bytes, over the {limit}-byte limit of one message to PostgreSQL (1 GB); it is not sent")]
    TooLong {
        /// "statement", "meta-command line" or "COPY data row".
        what: &'static str,
        /// Its length, or at least this much.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A meta-command psql does not know.
    #[error("invalid command \\{name}{}", hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    InvalidMeta {
        /// The name as written.
        name: String,
        /// A likely fix.
        hint: Option<String>,
    },
    /// The file is not UTF-8.
    #[error("invalid UTF-8 in statement; devenv reads SQL files as UTF-8")]
    InvalidUtf8,
    /// A meta-command devenv does not run.
    #[error("meta-command \\{0} is not supported (supported: {list})", list = SUPPORTED_META)]
    UnsupportedMeta(String),
    /// An error psql itself reports, in psql's words (`no rows returned for \gset`, ...).
    #[error("{0}")]
    Psql(String),
    /// A supported meta-command used wrongly.
    #[error("\\{name}: {message}")]
    BadMeta {
        /// The command.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Connecting failed (at the start of a file or at `\c`).
    #[error("could not connect to database \"{database}\": {message}")]
    Connect {
        /// The database.
        database: String,
        /// The client's error, with the server's message when there is one.
        message: String,
    },
    /// The connection broke in the middle of a statement without a server error.
    #[error("{0}")]
    Client(String),
}

/// A load that stopped at its first error, with where and why.
#[derive(Debug)]
pub struct LoadError {
    /// The position in a file, when the error has one.
    pub location: Option<Location>,
    /// The cause.
    pub kind: ErrorKind,
}

impl LoadError {
    /// The SQLSTATE of a server error.
    pub fn sqlstate(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(loc) = &self.location else {
            return write!(f, "error: {}", self.kind);
        };
        writeln!(
            f,
            "{}:{}:{}: error: {}",
            loc.path.display(),
            loc.line,
            loc.col,
            self.kind
        )?;
        let gutter = loc.line.to_string().len();
        // The caret line copies tabs so the caret lands under the column in any tab width.
        let pad: String = loc
            .source_line
            .chars()
            .take(loc.caret.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        writeln!(f, "{:gutter$} |", "")?;
        writeln!(f, "{} | {}", loc.line, loc.source_line)?;
        write!(f, "{:gutter$} | {pad}^", "")?;
        if let ErrorKind::Server {
            detail,
            hint,
            context,
            ..
        } = &self.kind
        {
            for (label, value) in [("DETAIL", detail), ("HINT", hint), ("CONTEXT", context)] {
                if let Some(value) = value {
                    write!(f, "\n{label}: {value}")?;
                }
            }
        }
        Ok(())
    }
}

/// A tokio-postgres error on one line: the server's message and SQLSTATE when the server
/// answered, else the client error with its chain of causes (connection refused, timeouts).
pub fn client_error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} [{}]", db.message(), db.code().code());
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}
