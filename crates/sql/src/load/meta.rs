//! The meta-commands: the dispatch (with `\restrict` and inactive `\if` branches applied
//! first), and the small commands; `\g*` are in [`super::query`], `\copy` in [`super::copy`].

use tokio_postgres::{Config, SimpleQueryMessage};

use super::{Event, File, FileEnd, Run, Session, MAX_INCLUDE_DEPTH};
use crate::cond::{parse_bool, Branch};
use crate::error::{ErrorKind, LoadError};
use crate::scan::{valid_variable_name, Meta, Scanner, Statement, Variables};
use postgres_protocol::escape::escape_literal;

/// Display-only commands, accepted and ignored: the loader prints no query results.
const DISPLAY_ONLY: [&str; 8] = ["timing", "pset", "x", "a", "t", "f", "C", "H"];

/// Where a meta-command runs: its file, the file's scanner (variables and `\if` blocks) and
/// the previous query (for a `\g` with an empty query buffer).
pub(super) struct Context<'c, 's> {
    pub(super) file: &'c File,
    pub(super) depth: usize,
    pub(super) scanner: &'c mut Scanner<'s>,
    pub(super) previous: &'c mut Option<Statement>,
}

/// `\name: message` at the command.
pub(super) fn bad(file: &File, meta: &Meta, message: impl Into<String>) -> LoadError {
    file.error(
        meta.span.start,
        ErrorKind::BadMeta {
            name: meta.name.clone(),
            message: message.into(),
        },
    )
}

/// psql's `\name: missing required argument`.
fn missing(file: &File, meta: &Meta) -> LoadError {
    psql_error(
        file,
        meta,
        format!("\\{}: missing required argument", meta.name),
    )
}

/// What an unknown name likely meant: a known command in another case (psql matches names
/// in exact case, `\copy` alone in any), or a name with a `;` glued to it.
fn invalid_hint(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if lower != name && crate::slash::lookup(&lower).is_some() {
        return Some(format!(
            "psql matches meta-command names in exact case, only \\copy in any case: \\{lower}?"
        ));
    }
    let bare = name.trim_end_matches(';');
    if bare != name && crate::slash::lookup(bare).is_some() {
        return Some(format!(
            "a `;` right after a command's name is part of the name in psql: \\{bare} ;?"
        ));
    }
    None
}

fn psql_error(file: &File, meta: &Meta, message: impl Into<String>) -> LoadError {
    file.error(meta.span.start, ErrorKind::Psql(message.into()))
}

#[expect(
    clippy::result_large_err,
    reason = "LoadError is the public error, made once per failed load; boxing it would change the API the workspace uses"
)]
impl Run<'_> {
    pub(super) async fn meta(
        &mut self,
        meta: &Meta,
        mut cx: Context<'_, '_>,
    ) -> Result<FileEnd, LoadError> {
        let file = cx.file;
        if self.restricted.is_some() && meta.name != "unrestrict" {
            return Err(psql_error(
                file,
                meta,
                "backslash commands are restricted; only \\unrestrict is allowed",
            ));
        }
        if !meta.known {
            // psql stops at a command it does not know even where it runs nothing.
            return Err(file.error(
                meta.span.start,
                ErrorKind::InvalidMeta {
                    name: meta.name.clone(),
                    hint: invalid_hint(&meta.name),
                },
            ));
        }
        let active = match Branch::from_name(&meta.name) {
            Some(branch) => cx.scanner.conditions().evaluates(branch),
            None => cx.scanner.conditions().active(),
        };
        if active {
            self.check_line(file, meta)?;
        }
        if let Some(branch) = Branch::from_name(&meta.name) {
            branch_command(file, meta, branch, cx.scanner)?;
            return Ok(FileEnd::Done);
        }
        if !active {
            return Ok(FileEnd::Done);
        }
        match meta.name.as_str() {
            "c" | "connect" => self.connect(file, meta, &mut cx.scanner.vars).await?,
            "i" | "include" | "ir" | "include_relative" => self.include(meta, &mut cx).await?,
            "g" | "gx" | "gset" | "gexec" => self.send_query(meta, &mut cx).await?,
            "copy" => self.slash_copy(meta, &mut cx).await?,
            "echo" | "warn" => self.echo(meta),
            "set" => self.set(file, meta, &mut cx.scanner.vars)?,
            "unset" => {
                let [name] = meta.args.as_slice() else {
                    return Err(missing(file, meta));
                };
                cx.scanner.vars.remove(name);
            }
            "getenv" => self.getenv(file, meta, &mut cx.scanner.vars)?,
            "setenv" => self.setenv(file, meta)?,
            "encoding" => self.encoding(file, meta, &mut cx.scanner.vars).await?,
            // Query output goes nowhere already: `\o` and `\o /dev/null` change nothing.
            "o" | "out" if meta.args.iter().all(|a| a == "/dev/null") => {
                self.ignored(file, meta);
            }
            "o" | "out" => return Err(bad(
                file,
                meta,
                "writing query output to a file or a pipe is not supported (the loader prints no results; `\\o /dev/null` and `\\o` are accepted)",
            )),
            name if DISPLAY_ONLY.contains(&name) => self.ignored(file, meta),
            "restrict" => match meta.args.first() {
                Some(key) => self.restricted = Some(key.clone()),
                None => return Err(missing(file, meta)),
            },
            "unrestrict" => self.unrestrict(file, meta)?,
            "q" | "quit" => return Ok(FileEnd::Quit),
            other => {
                return Err(file.error(
                    meta.span.start,
                    ErrorKind::UnsupportedMeta(other.to_owned()),
                ));
            }
        }
        Ok(FileEnd::Done)
    }

    /// What psql does with a command's line before running it, where the loader stops
    /// instead: a quote left open, a backquoted shell command; an over-long line. Extra
    /// arguments get psql's warning.
    #[expect(
        clippy::result_large_err,
        reason = "LoadError is the public error, made once per failed load"
    )]
    fn check_line(&self, file: &File, meta: &Meta) -> Result<(), LoadError> {
        let line = file.src[meta.span.clone()]
            .strip_suffix(b"\n")
            .map_or(meta.span.len(), <[u8]>::len);
        if line > self.loader.limit {
            return Err(file.error(meta.span.start, self.too_long("meta-command line", line)));
        }
        if let Some(e) = meta.error {
            // psql prints this and runs the command without the argument; the loader stops.
            return Err(file.error(e.at, ErrorKind::Psql(e.message.into())));
        }
        if let Some(at) = meta.shell {
            return Err(file.error(
                at,
                ErrorKind::BadMeta {
                    name: meta.name.clone(),
                    message:
                        "backquoted shell commands (`...`) are not run: the loader runs no commands"
                            .into(),
                },
            ));
        }
        for arg in &meta.extra {
            let location = file.location(meta.span.start);
            let message = format!("\\{}: extra argument \"{arg}\" ignored", meta.name);
            (self.loader.events)(&Event::Warning {
                location: &location,
                message: &message,
            });
        }
        Ok(())
    }

    fn ignored(&self, file: &File, meta: &Meta) {
        let location = file.location(meta.span.start);
        (self.loader.events)(&Event::Ignored {
            location: &location,
            command: &meta.name,
        });
    }

    fn unrestrict(&mut self, file: &File, meta: &Meta) -> Result<(), LoadError> {
        let Some(key) = meta.args.first() else {
            return Err(missing(file, meta));
        };
        match &self.restricted {
            None => Err(psql_error(
                file,
                meta,
                "\\unrestrict: not currently in restricted mode",
            )),
            Some(restricted) if restricted != key => {
                Err(psql_error(file, meta, "\\unrestrict: wrong key"))
            }
            Some(_) => {
                self.restricted = None;
                Ok(())
            }
        }
    }

    async fn connect(
        &mut self,
        file: &File,
        meta: &Meta,
        vars: &mut Variables,
    ) -> Result<(), LoadError> {
        // psql's `read_connect_arg`: an unquoted `-` keeps what the connection has.
        let args: Vec<(&str, bool)> = meta
            .args
            .iter()
            .zip(&meta.arg_quoted)
            .enumerate()
            .filter(|(i, (a, _))| *i > 0 || !a.starts_with("-reuse-previous="))
            .map(|(_, (a, quoted))| (a.as_str(), *quoted))
            .collect();
        let given = |i: usize| {
            args.get(i)
                .filter(|(a, quoted)| *quoted || *a != "-")
                .map(|(a, _)| *a)
        };
        let mut config = self.loader.config.clone();
        let mut database = self
            .session
            .as_ref()
            .map_or(self.database.clone(), |s| s.database.clone());
        if let Some(first) = given(0) {
            if first.contains('=') || first.contains("://") {
                let parsed: Config = first
                    .parse()
                    .map_err(|e| bad(file, meta, format!("invalid connection string: {e}")))?;
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
                first.clone_into(&mut database);
            }
        }
        if let Some(user) = given(1) {
            config.user(user);
        }
        if given(2).is_some() || given(3).is_some() {
            return Err(bad(
                file,
                meta,
                "only a database name and a user are supported; host and port stay those of the server being loaded",
            ));
        }
        let session = Session::open(self.loader, &config, &database)
            .await
            .map_err(|message| {
                file.error(meta.span.start, ErrorKind::Connect { database, message })
            })?;
        session.set_variables(vars);
        self.session = Some(session);
        Ok(())
    }

    async fn include(&mut self, meta: &Meta, cx: &mut Context<'_, '_>) -> Result<(), LoadError> {
        let file = cx.file;
        let [arg] = meta.args.as_slice() else {
            return Err(missing(file, meta));
        };
        if cx.depth >= MAX_INCLUDE_DEPTH {
            return Err(bad(
                file,
                meta,
                format!(
                    "includes nest deeper than {MAX_INCLUDE_DEPTH} files; is a file including itself?"
                ),
            ));
        }
        let candidates = crate::inputs::candidates(&meta.name, &file.path, &self.top, arg);
        let arg_at = meta.arg_starts.first().copied().unwrap_or(meta.span.start);
        let (path, src) = self
            .read(&candidates, "included file", Some((file, arg_at)))
            .await?;
        // The include shares the session and the variables; `\quit` stops it alone.
        self.vars = std::mem::take(&mut cx.scanner.vars);
        let outcome = self.run_file(path, src, cx.depth + 1).await;
        cx.scanner.vars = std::mem::take(&mut self.vars);
        outcome.map(drop)
    }

    /// `\echo` and `\warn`; with `-n` (first, unquoted) the line is not ended yet: the text
    /// goes out with the next one (or at the end of the load), as psql prints it.
    fn echo(&mut self, meta: &Meta) {
        let no_newline =
            meta.args.first().is_some_and(|a| a == "-n") && meta.arg_quoted.first() == Some(&false);
        let text = meta.args[usize::from(no_newline)..].join(" ");
        let warn = meta.name == "warn";
        let unended = &mut self.unended[usize::from(warn)];
        unended.push_str(&text);
        if !no_newline {
            let line = std::mem::take(unended);
            self.line(warn, &line);
        }
    }

    fn line(&self, warn: bool, text: &str) {
        if warn {
            (self.loader.events)(&Event::Warn(text));
        } else {
            (self.loader.events)(&Event::Echo(text));
        }
    }

    /// Ends what `\echo -n` and `\warn -n` left unended.
    pub(super) fn end_lines(&mut self) {
        for warn in [false, true] {
            let line = std::mem::take(&mut self.unended[usize::from(warn)]);
            if !line.is_empty() {
                self.line(warn, &line);
            }
        }
    }

    fn set(&self, file: &File, meta: &Meta, vars: &mut Variables) -> Result<(), LoadError> {
        match meta.args.split_first() {
            None => {
                let listing: Vec<String> =
                    vars.iter().map(|(k, v)| format!("{k} = '{v}'")).collect();
                (self.loader.events)(&Event::Echo(&listing.join("\n")));
            }
            Some((name, values)) => {
                if !valid_variable_name(name) {
                    return Err(bad(
                        file,
                        meta,
                        format!("invalid variable name: \"{name}\""),
                    ));
                }
                vars.insert(name.clone(), values.concat());
            }
        }
        Ok(())
    }

    /// `\getenv VAR ENVVAR`: the environment variable's value, `\setenv`'s first; an unset
    /// one leaves the variable as it was (psql).
    fn getenv(&self, file: &File, meta: &Meta, vars: &mut Variables) -> Result<(), LoadError> {
        let [name, env] = meta.args.as_slice() else {
            return Err(missing(file, meta));
        };
        if !valid_variable_name(name) {
            return Err(bad(
                file,
                meta,
                format!("invalid variable name: \"{name}\""),
            ));
        }
        let value = match self.env.get(env) {
            Some(value) => value.clone(),
            None => std::env::var(env).ok(),
        };
        if let Some(value) = value {
            vars.insert(name.clone(), value);
        }
        Ok(())
    }

    /// `\setenv NAME [VALUE]`: for this load only. The process's environment is shared by
    /// every load running in it (the fixture runs many at once), so it is left alone.
    fn setenv(&mut self, file: &File, meta: &Meta) -> Result<(), LoadError> {
        let (name, value) = match meta.args.as_slice() {
            [name] => (name, None),
            [name, value] => (name, Some(value.clone())),
            _ => return Err(missing(file, meta)),
        };
        if name.is_empty() || name.contains('=') {
            return Err(psql_error(
                file,
                meta,
                "\\setenv: environment variable name must not contain \"=\"",
            ));
        }
        self.env.insert(name.clone(), value);
        Ok(())
    }

    /// `\encoding [ENC]`: sets `client_encoding` (which COPY data is read in); without an
    /// argument, echoes it.
    async fn encoding(
        &mut self,
        file: &File,
        meta: &Meta,
        vars: &mut Variables,
    ) -> Result<(), LoadError> {
        let Some(encoding) = meta.args.first() else {
            let current = vars.get("ENCODING").cloned().unwrap_or_default();
            (self.loader.events)(&Event::Echo(&current));
            return Ok(());
        };
        let session = self.session(file, meta.span.start).await?;
        let sql = format!(
            "SET client_encoding TO {}; SHOW client_encoding",
            escape_literal(encoding)
        );
        let messages = session.client.simple_query(&sql).await.map_err(|e| {
            let message = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |db| db.message().to_owned());
            bad(file, meta, message)
        })?;
        for message in messages {
            if let SimpleQueryMessage::Row(row) = message {
                if let Some(name) = row.get(0) {
                    vars.insert("ENCODING".into(), name.to_owned());
                }
            }
        }
        Ok(())
    }
}

/// `\if`, `\elif`, `\else`, `\endif`: evaluates the expression where psql would.
#[expect(
    clippy::result_large_err,
    reason = "LoadError is the public error, made once per failed load; boxing it would change the API the workspace uses"
)]
fn branch_command(
    file: &File,
    meta: &Meta,
    branch: Branch,
    scanner: &mut Scanner<'_>,
) -> Result<(), LoadError> {
    let mut value = false;
    if scanner.conditions().evaluates(branch) {
        let expression = meta.args.join(" ");
        value = parse_bool(&expression).ok_or_else(|| {
            psql_error(
                file,
                meta,
                format!(
                    "unrecognized value \"{expression}\" for \"\\{} expression\": Boolean expected",
                    meta.name
                ),
            )
        })?;
    }
    scanner
        .branch(branch, value, meta.span.start)
        .map_err(|message| psql_error(file, meta, message))
}
