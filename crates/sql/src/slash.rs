//! psql's backslash-command lexer (`psqlscanslash.l` and the argument reads of `command.c`,
//! psql 15): how a command's name ends, which names psql knows and in which case, how many
//! arguments each command reads and of which kind, and how one argument is lexed.
//!
//! - A name runs to the first whitespace or backslash (`\echo;` is the command `echo;`, which
//!   psql does not know). Names are matched in exact case, except `\copy`, which psql 15
//!   matches in any case (`pg_strcasecmp(cmd, "copy")` in `exec_command`, the only one):
//!   `\COPY` is `\copy`, `\ECHO` and `\I` are unknown commands, `\C` is not `\c`.
//! - Each command reads a fixed number of arguments, or all of them (`\set`, `\echo`, `\if`),
//!   each of one kind: normal (quotes, `:var` interpolation, and, for the commands that ask,
//!   unquoted trailing `;` dropped), SQL identifier (`\c`'s, double quotes removed), file or
//!   pipe (`\o`, `\g`, `\w`: a leading `|` takes the rest of the line) or the whole line
//!   (`\copy`: as written, nothing interpolated). What is left on the line is read as extra
//!   arguments, uninterpolated, which psql ignores with a warning.
//! - Normal arguments: `'...'` with `''` and `\n \t \b \r \f \NNN \xHH \c` escapes, `"..."`
//!   kept with its quotes, `` `...` `` a shell command (the loader runs none: using one is an
//!   error), `:name`, `:'name'`, `:"name"` and `:{?name}`. An argument ends at whitespace or a
//!   backslash; a quote left open at the end of the line is an error.

use crate::scan::Variables;
use postgres_protocol::escape::{escape_identifier, escape_literal};

/// How a command reads one argument (psql's `enum slash_option_type`, with `semicolon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// `OT_NORMAL`; `semicolon`: unquoted trailing `;` are dropped.
    Normal {
        /// Whether unquoted trailing semicolons are dropped.
        semicolon: bool,
    },
    /// `OT_SQLIDHACK` (`\c`): double quotes removed, case kept, trailing `;` dropped.
    SqlIdHack,
    /// `OT_SQLID`: double quotes removed, unquoted letters lowered, trailing `;` dropped.
    SqlId,
    /// `OT_FILEPIPE`: a normal argument, or `|` and the rest of the line.
    FilePipe {
        /// Whether unquoted trailing semicolons are dropped.
        semicolon: bool,
    },
    /// `OT_WHOLE_LINE`: the rest of the line as written, leading whitespace skipped.
    WholeLine,
}

const NORMAL: ArgKind = ArgKind::Normal { semicolon: false };
const NORMAL_SEMI: ArgKind = ArgKind::Normal { semicolon: true };

/// The arguments a command reads: `fixed` ones, then (`rest`) as many as there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Read in order, one each.
    pub fixed: &'static [ArgKind],
    /// Read until the line has no more.
    pub rest: Option<ArgKind>,
}

const fn fixed(args: &'static [ArgKind]) -> Shape {
    Shape {
        fixed: args,
        rest: None,
    }
}

const NONE: Shape = fixed(&[]);
const ONE: Shape = fixed(&[NORMAL]);
const ONE_SEMI: Shape = fixed(&[NORMAL_SEMI]);
const TWO: Shape = fixed(&[NORMAL, NORMAL]);
const TWO_SEMI: Shape = fixed(&[NORMAL_SEMI, NORMAL_SEMI]);
const ALL: Shape = Shape {
    fixed: &[],
    rest: Some(NORMAL),
};
const ALL_SEMI: Shape = Shape {
    fixed: &[],
    rest: Some(NORMAL_SEMI),
};
const WHOLE: Shape = fixed(&[ArgKind::WholeLine]);
/// `\c [-reuse-previous=on|off] [dbname [user [host [port]]]]`.
const CONNECT: Shape = fixed(&[ArgKind::SqlIdHack; 4]);

/// The command psql runs for the name `written`, and the arguments it reads; `None` when
/// psql 15 knows no such command. The name returned is the one psql compares against
/// (`copy` for `\COPY`).
pub fn lookup(written: &str) -> Option<(String, Shape)> {
    if written.eq_ignore_ascii_case("copy") {
        return Some(("copy".to_owned(), WHOLE));
    }
    let shape = match written {
        "a" | "conninfo" | "copyright" | "else" | "endif" | "errverbose" | "gdesc" | "gexec"
        | "H" | "html" | "p" | "print" | "q" | "quit" | "r" | "reset" => NONE,
        "C" | "cd" | "i" | "include" | "ir" | "include_relative" | "l" | "list" | "l+"
        | "list+" | "restrict" | "s" | "t" | "unrestrict" | "watch" | "x" | "z" => ONE_SEMI,
        "c" | "connect" => CONNECT,
        "crosstabview" => fixed(&[NORMAL_SEMI; 4]),
        "e" | "edit" => TWO_SEMI,
        "ef" | "ev" | "h" | "help" | "sf" | "sf+" | "sv" | "sv+" | "!" => WHOLE,
        "echo" | "qecho" | "warn" | "if" | "elif" | "set" => ALL,
        "encoding" | "f" | "gset" | "T" | "timing" | "unset" | "?" => ONE,
        "g" | "gx" => Shape {
            fixed: &[ArgKind::FilePipe { semicolon: false }],
            rest: Some(NORMAL),
        },
        "getenv" | "prompt" | "pset" | "setenv" => TWO,
        "o" | "out" | "w" | "write" => fixed(&[ArgKind::FilePipe { semicolon: true }]),
        "password" => fixed(&[ArgKind::SqlId]),
        name if name.starts_with("lo_") => TWO_SEMI,
        // `\d`, `\dt`, `\df+`, ...: patterns (an unknown `\d` variant is psql's error too,
        // but only when it runs; in a branch that does not run it is skipped).
        name if name.starts_with('d') => ALL_SEMI,
        _ => return None,
    };
    Some((written.to_owned(), shape))
}

/// One lexed argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// Its value (dequoted, interpolated).
    pub text: String,
    /// Byte offset of its first character.
    pub start: usize,
    /// Whether any part of it was quoted or interpolated (psql's `quote`): such an argument
    /// exists even when empty, and `\c` takes a quoted `-` as a name.
    pub quoted: bool,
    /// A backquoted shell command in it, at this offset.
    pub shell: Option<usize>,
}

/// What lexing an argument can find wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexError {
    /// Where (the opening quote).
    pub at: usize,
    /// psql's words.
    pub message: &'static str,
}

/// Where interpolation comes from: the variables, or none (a branch that does not run, or
/// extra arguments, which psql reads without substituting).
#[derive(Debug, Clone, Copy)]
pub enum Interpolate<'v> {
    /// Substitute from these.
    From(&'v Variables),
    /// Keep `:name` as written.
    Off,
}

impl Interpolate<'_> {
    fn get(&self, name: &[u8]) -> Option<&str> {
        match self {
            Interpolate::From(vars) => vars
                .get(std::str::from_utf8(name).ok()?)
                .map(String::as_str),
            Interpolate::Off => None,
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\x0c')
}

fn is_var_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// The end of the line that starts at or before `pos` (the offset of its `\n`, or the end).
pub fn line_end(src: &[u8], pos: usize) -> usize {
    src[pos..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(src.len(), |i| pos + i)
}

/// Lexes the next argument of kind `kind` from `*pos` (which moves past it). `Ok(None)` when
/// the line has no more (psql's NULL): the end of the line, a backslash, or an empty unquoted
/// argument (`;` alone, for a kind that drops it).
pub fn next_arg(
    src: &[u8],
    pos: &mut usize,
    kind: ArgKind,
    vars: Interpolate<'_>,
) -> Result<Option<Arg>, LexError> {
    let end = line_end(src, *pos);
    while *pos < end && is_space(src[*pos]) {
        *pos += 1;
    }
    let start = *pos;
    if start >= end {
        return Ok(None);
    }
    let whole = match kind {
        ArgKind::WholeLine => true,
        ArgKind::FilePipe { .. } => src[start] == b'|',
        _ => false,
    };
    if whole {
        let mut text = &src[start..end];
        if let Some(stripped) = text.strip_suffix(b"\r") {
            text = stripped;
        }
        *pos = end;
        return Ok(Some(Arg {
            text: String::from_utf8_lossy(text).into_owned(),
            start,
            quoted: false,
            shell: None,
        }));
    }
    let mut out: Vec<u8> = Vec::new();
    let mut quoted = false;
    let mut unquoted = 0usize;
    let mut shell = None;
    while *pos < end {
        let b = src[*pos];
        if is_space(b) || b == b'\\' {
            break;
        }
        match b {
            b'\'' => {
                quoted = true;
                unquoted = 0;
                single_quoted(src, pos, end, &mut out)?;
            }
            b'"' => {
                quoted = true;
                unquoted = 0;
                // Kept with its quotes.
                let inner = closing(src, pos, end)?;
                out.push(b'"');
                out.extend_from_slice(inner);
                out.push(b'"');
            }
            b'`' => {
                quoted = true;
                unquoted = 0;
                // Unrun (psql runs it only where it uses the argument), its text stays.
                shell.get_or_insert(*pos);
                out.extend_from_slice(closing(src, pos, end)?);
            }
            b':' => {
                if let Some((next, text, counts)) = variable(src, *pos, end, vars) {
                    out.extend_from_slice(text.as_bytes());
                    *pos = next;
                    if counts {
                        quoted = true;
                        unquoted = 0;
                    }
                } else {
                    out.push(b':');
                    unquoted += 1;
                    *pos += 1;
                }
            }
            other => {
                out.push(other);
                unquoted += 1;
                *pos += 1;
            }
        }
    }
    let semicolon = match kind {
        ArgKind::Normal { semicolon } | ArgKind::FilePipe { semicolon } => semicolon,
        ArgKind::SqlIdHack | ArgKind::SqlId => true,
        ArgKind::WholeLine => false,
    };
    if semicolon {
        while unquoted > 0 && out.last() == Some(&b';') {
            out.pop();
            unquoted -= 1;
        }
    }
    if let ArgKind::SqlIdHack | ArgKind::SqlId = kind {
        out = dequote_downcase(&out, kind == ArgKind::SqlId);
    }
    if out.is_empty() && !quoted {
        return Ok(None);
    }
    Ok(Some(Arg {
        text: String::from_utf8_lossy(&out).into_owned(),
        start,
        quoted,
        shell,
    }))
}

/// The text between the quote at `*pos` and the same quote closing it on the line (`*pos`
/// moves past it).
fn closing<'s>(src: &'s [u8], pos: &mut usize, end: usize) -> Result<&'s [u8], LexError> {
    let open = *pos;
    let quote = src[open];
    let len = src[open + 1..end]
        .iter()
        .position(|&c| c == quote)
        .ok_or(LexError {
            at: open,
            message: "unterminated quoted string",
        })?;
    *pos = open + len + 2;
    Ok(&src[open + 1..open + 1 + len])
}

/// A `'...'` argument part from the quote at `*pos`, with psql's escapes, into `out`.
fn single_quoted(
    src: &[u8],
    pos: &mut usize,
    end: usize,
    out: &mut Vec<u8>,
) -> Result<(), LexError> {
    let open = *pos;
    *pos += 1;
    while *pos < end {
        let c = src[*pos];
        *pos += 1;
        match c {
            b'\'' if src.get(*pos) == Some(&b'\'') && *pos < end => {
                out.push(b'\'');
                *pos += 1;
            }
            b'\'' => return Ok(()),
            b'\\' if *pos < end => {
                let e = src[*pos];
                match e {
                    b'0'..=b'7' => {
                        let digits = src[*pos..end]
                            .iter()
                            .take(3)
                            .take_while(|d| (b'0'..=b'7').contains(d))
                            .count();
                        let value = src[*pos..*pos + digits]
                            .iter()
                            .fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                        out.push((value & 0xff) as u8);
                        *pos += digits;
                    }
                    b'x' if src.get(*pos + 1).is_some_and(u8::is_ascii_hexdigit)
                        && *pos + 1 < end =>
                    {
                        let digits = src[*pos + 1..end]
                            .iter()
                            .take(2)
                            .take_while(|d| d.is_ascii_hexdigit())
                            .count();
                        let text =
                            std::str::from_utf8(&src[*pos + 1..*pos + 1 + digits]).unwrap_or("0");
                        out.push(u8::from_str_radix(text, 16).unwrap_or(0));
                        *pos += 1 + digits;
                    }
                    _ => {
                        out.push(match e {
                            b'n' => b'\n',
                            b't' => b'\t',
                            b'b' => 8,
                            b'r' => b'\r',
                            b'f' => 12,
                            other => other,
                        });
                        *pos += 1;
                    }
                }
            }
            other => out.push(other),
        }
    }
    Err(LexError {
        at: open,
        message: "unterminated quoted string",
    })
}

/// At a `:` in an argument: the interpolation psql makes there, as (end, text, whether it
/// counts as quoting); `None` when the `:` is just a character.
fn variable(
    src: &[u8],
    at: usize,
    end: usize,
    vars: Interpolate<'_>,
) -> Option<(usize, String, bool)> {
    let rest = &src[at + 1..end];
    let raw = |len: usize| String::from_utf8_lossy(&src[at..at + len]).into_owned();
    match rest.first()? {
        q @ (b'\'' | b'"') => {
            let len = rest[1..].iter().take_while(|&&b| is_var_char(b)).count();
            if len == 0 || rest.get(1 + len) != Some(q) {
                return None;
            }
            let total = len + 3;
            let text = match vars.get(&rest[1..=len]) {
                Some(value) if *q == b'\'' => escape_literal(value),
                Some(value) => escape_identifier(value),
                None => raw(total),
            };
            Some((at + total, text, true))
        }
        b'{' => {
            let body = rest.strip_prefix(b"{?")?;
            let len = body.iter().take_while(|&&b| is_var_char(b)).count();
            if len == 0 || body.get(len) != Some(&b'}') {
                return None;
            }
            let defined = vars.get(&body[..len]).is_some();
            let text = if defined { "TRUE" } else { "FALSE" };
            Some((at + len + 4, text.to_owned(), false))
        }
        &b if is_var_char(b) => {
            let len = rest.iter().take_while(|&&b| is_var_char(b)).count();
            let text = vars
                .get(&rest[..len])
                .map_or_else(|| raw(len + 1), str::to_owned);
            Some((at + 1 + len, text, true))
        }
        _ => None,
    }
}

/// psql's `dequote_downcase_identifier`: double quotes removed (`""` inside them is one `"`),
/// unquoted letters lowered when `downcase`.
fn dequote_downcase(text: &[u8], downcase: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut in_quotes = false;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if c == b'"' {
            if in_quotes && text.get(i + 1) == Some(&b'"') {
                out.push(b'"');
                i += 2;
                continue;
            }
            in_quotes = !in_quotes;
        } else if downcase && !in_quotes {
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str, kind: ArgKind, vars: &Variables) -> Vec<String> {
        let mut pos = 0;
        let mut out = Vec::new();
        while let Ok(Some(arg)) = next_arg(line.as_bytes(), &mut pos, kind, Interpolate::From(vars))
        {
            out.push(arg.text);
        }
        out
    }

    #[test]
    fn psql_escapes_semicolons_and_variables() {
        let mut vars = Variables::new();
        vars.insert("v".into(), "it's".into());
        vars.insert("e".into(), String::new());
        assert_eq!(
            args(
                r#":v :'v' :"v" :nope "dq x" 'a\tb' '\101\x41\q' '' :e :{?v} :{?w} x;"#,
                NORMAL,
                &vars
            ),
            [
                "it's", "'it''s'", "\"it's\"", ":nope", "\"dq x\"", "a\tb", "AAq", "", "", "TRUE",
                "FALSE", "x;"
            ]
        );
        assert_eq!(
            args("a;; 'b'; 'c;' :v;", NORMAL_SEMI, &vars),
            ["a", "b", "c;", "it's"]
        );
        assert_eq!(
            args(r#"My"Db""x";"#, ArgKind::SqlIdHack, &vars),
            ["MyDb\"x"]
        );
        assert_eq!(args(r#"My"Db""#, ArgKind::SqlId, &vars), ["myDb"]);
        assert_eq!(
            args("|cat > x  ", ArgKind::FilePipe { semicolon: true }, &vars),
            ["|cat > x  "]
        );
    }

    #[test]
    fn a_quote_left_open_is_an_error_at_the_quote() {
        let mut pos = 0;
        let e = next_arg(b"x 'abc\n'", &mut 2, NORMAL, Interpolate::Off).unwrap_err();
        assert_eq!(e.at, 2);
        assert_eq!(next_arg(b"", &mut pos, NORMAL, Interpolate::Off), Ok(None));
    }

    #[test]
    fn copy_is_the_only_name_matched_in_any_case() {
        assert_eq!(lookup("COPY").map(|(n, _)| n).as_deref(), Some("copy"));
        assert_eq!(lookup("Copy").map(|(n, _)| n).as_deref(), Some("copy"));
        for name in ["ECHO", "I", "Set", "IF", "Connect", "echo;", "!ls", ""] {
            assert_eq!(lookup(name), None, "{name}");
        }
        assert_eq!(lookup("C").map(|(_, s)| s), Some(ONE_SEMI));
        assert_eq!(lookup("c").map(|(_, s)| s), Some(CONNECT));
    }
}
