//! The statement splitter: cuts a SQL file into statements, `COPY ... FROM stdin` data blocks
//! and psql meta-commands, the way psql's own lexer (`psqlscan.l`) does.
//!
//! It works on bytes, so it never fails and never panics whatever the input: every syntax
//! character it cares about is ASCII, and UTF-8 is checked later, per statement, by the
//! executor. Every byte of the input belongs to exactly one [`Item`] (the statement's pieces,
//! a meta-command, a COPY data block, or trivia between them); the property tests check that.
//!
//! What it understands, as psql does: `'...'` strings (backslash escapes in `E'...'`, and in
//! plain strings after `SET standard_conforming_strings = off`), `"..."` identifiers,
//! `$tag$ ... $tag$` bodies, `--` and nested `/* */` comments, parentheses (a `;` inside them
//! does not end a statement), `BEGIN ATOMIC ... END` bodies of `CREATE FUNCTION/PROCEDURE`,
//! `:NAME`, `:'NAME'` and `:"NAME"` variable interpolation outside quotes, and a last
//! statement with no `;`.
//!
//! It also follows the state psql's lexer depends on: the `\if` blocks of the file (text in
//! an inactive branch is scanned but not interpolated, and a `COPY ... FROM stdin` there reads
//! no data), `\copy ... FROM stdin` (whose data follows, like COPY's), and the query buffer
//! that `\g`, `\gset` and `\gexec` send.

use std::collections::BTreeMap;
use std::ops::Range;

use postgres_protocol::escape::{escape_identifier, escape_literal};

use crate::cond::{Branch, Conditions};
use crate::slash;

/// The longest statement, meta-command line or COPY data row PostgreSQL takes: a query
/// message's body is at most 1 GiB less 2 bytes (`PQ_LARGE_MESSAGE_LIMIT`), the text's NUL
/// included, and the server's line buffer for COPY rows is no longer.
pub const MAX_INPUT: usize = 0x3fff_fffd;

/// psql variables set with `\set`, interpolated into SQL as `:NAME`, `:'NAME'` and `:"NAME"`.
pub type Variables = BTreeMap<String, String>;

/// One part of a statement's text and where it came from in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Bytes of the source file this piece stands for.
    pub src: Range<usize>,
    /// Offset of this piece in [`Statement::sql`].
    pub sql_start: usize,
    /// False for a variable interpolation, whose text in `sql` differs from the source.
    pub verbatim: bool,
}

/// A statement to send to the server, with the map from its text back to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The text sent to the server (variables interpolated).
    pub sql: Vec<u8>,
    /// The source ranges it was built from, in order.
    pub pieces: Vec<Piece>,
    /// A `COPY ... FROM stdin`: the next item is its data block.
    pub copy_from_stdin: bool,
    /// The text is longer than [`Scanner::limit`]: `sql` is left empty and the statement
    /// must not be sent.
    pub too_long: bool,
}

impl Statement {
    /// Byte offset in the file of the statement's first byte.
    pub fn start(&self) -> usize {
        self.pieces.first().map_or(0, |p| p.src.start)
    }

    /// Maps a byte offset in [`Statement::sql`] back to a byte offset in the file.
    pub fn source_offset(&self, sql_offset: usize) -> usize {
        let idx = self
            .pieces
            .partition_point(|p| p.sql_start <= sql_offset)
            .saturating_sub(1);
        let Some(piece) = self.pieces.get(idx) else {
            return 0;
        };
        if piece.verbatim {
            (piece.src.start + (sql_offset - piece.sql_start))
                .min(piece.src.end.max(piece.src.start))
        } else {
            piece.src.start
        }
    }
}

/// A psql meta-command such as `\c db` or `\i file.sql`, lexed as psql lexes it
/// ([`crate::slash`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The command psql runs, without its backslash (`c`, `connect`, `i`, ...; `copy` for
    /// `\COPY`), or the name as written when psql knows no such command.
    pub name: String,
    /// Whether psql 15 knows the command (an unknown one is an error even in a branch that
    /// does not run, as in psql).
    pub known: bool,
    /// The arguments the command reads, dequoted and interpolated as psql does.
    pub args: Vec<String>,
    /// Where each argument starts in the file (same length as `args`).
    pub arg_starts: Vec<usize>,
    /// Whether each argument was quoted or interpolated (same length as `args`).
    pub arg_quoted: Vec<bool>,
    /// The arguments after those, which psql ignores with a warning.
    pub extra: Vec<String>,
    /// A backquoted shell command in the arguments, at this offset.
    pub shell: Option<usize>,
    /// A quote left open on the line.
    pub error: Option<crate::slash::LexError>,
    /// The bytes of the command, from its backslash to the end of its line or its `\\`.
    pub span: Range<usize>,
    /// For `\g`, `\gx`, `\gset` and `\gexec`: the query buffer they send, the statement
    /// text before them that no `;` ended; `None` when it was empty (psql then sends the
    /// previous statement again).
    pub query: Option<Statement>,
}

/// Meta-commands that send the query buffer, as `;` does.
const SENDS_QUERY: [&str; 4] = ["g", "gx", "gset", "gexec"];

/// One unit of a SQL file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A statement to execute.
    Statement(Statement),
    /// The data lines of the preceding `COPY ... FROM stdin`, sent unchanged. `span` covers the
    /// data and the terminating `\.` line; `data` is the part to send.
    CopyData {
        /// The bytes covered, terminator included.
        span: Range<usize>,
        /// The data bytes to send.
        data: Range<usize>,
    },
    /// A meta-command.
    Meta(Meta),
    /// Whitespace, comments and empty statements (`;` alone) between the other items, and
    /// text of an inactive `\if` branch that psql drops from the query buffer.
    Trivia(Range<usize>),
}

impl Item {
    /// The source ranges this item covers.
    pub fn source_ranges(&self) -> Vec<Range<usize>> {
        match self {
            Item::Statement(s) => s.pieces.iter().map(|p| p.src.clone()).collect(),
            Item::CopyData { span, .. } | Item::Trivia(span) => vec![span.clone()],
            Item::Meta(m) => {
                let mut ranges: Vec<_> = m
                    .query
                    .iter()
                    .flat_map(|q| q.pieces.iter().map(|p| p.src.clone()))
                    .collect();
                ranges.push(m.span.clone());
                ranges
            }
        }
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn is_var_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Whether `name` is a valid psql variable name (ASCII letters, digits, `_`, non-ASCII).
pub fn valid_variable_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_var_char)
}

/// The incremental splitter. The executor pulls one [`Item`] at a time and may change
/// [`Scanner::vars`] between items, as `\set` does in psql.
#[derive(Debug)]
pub struct Scanner<'a> {
    src: &'a [u8],
    pos: usize,
    /// Variables for interpolation; `\set` changes them between items.
    pub vars: Variables,
    /// The longest statement text kept ([`MAX_INPUT`] unless set lower); a longer one comes
    /// out with [`Statement::too_long`].
    pub limit: usize,
    std_strings: bool,
    pending_copy: bool,
    /// A statement interrupted by a meta-command, continued afterwards.
    partial: Option<Partial>,
    /// The file's open `\if` blocks.
    cond: Conditions,
    /// The query buffer when the current inactive branch began, restored when it ends (psql
    /// forgets text read in an inactive branch); `None` once a statement ended there.
    saved: Option<Partial>,
    /// Text of an inactive branch dropped from the query buffer, still to be returned as
    /// [`Item::Trivia`] so that the items keep tiling the file.
    dropped: Vec<Range<usize>>,
}

#[derive(Debug, Default, Clone)]
struct Partial {
    sql: Vec<u8>,
    pieces: Vec<Piece>,
    paren_depth: usize,
    begin_depth: usize,
    idents: Vec<u8>,
    ident_count: usize,
    first_words: Vec<String>,
    prev_word_from: bool,
    from_stdin: bool,
    /// The longest text allowed ([`Scanner::limit`]).
    limit: usize,
    /// The text went over [`Partial::limit`].
    too_long: bool,
}

impl Partial {
    /// Whether `len` more bytes would take the text over the limit (then it stops growing:
    /// the statement is refused, never sent, so its text is not needed).
    fn over(&mut self, len: usize) -> bool {
        if self.too_long || self.sql.len().saturating_add(len) > self.limit {
            self.too_long = true;
            self.sql = Vec::new();
        }
        self.too_long
    }

    fn push_verbatim(&mut self, src: &[u8], range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        let bytes = if self.over(range.len()) {
            &[][..]
        } else {
            &src[range.clone()]
        };
        if let Some(last) = self.pieces.last_mut() {
            if last.verbatim && last.src.end == range.start {
                last.src.end = range.end;
                self.sql.extend_from_slice(bytes);
                return;
            }
        }
        self.pieces.push(Piece {
            src: range,
            sql_start: self.sql.len(),
            verbatim: true,
        });
        self.sql.extend_from_slice(bytes);
    }

    fn push_replacement(&mut self, range: Range<usize>, text: &str) {
        self.pieces.push(Piece {
            src: range,
            sql_start: self.sql.len(),
            verbatim: false,
        });
        if !self.over(text.len()) {
            self.sql.extend_from_slice(text.as_bytes());
        }
    }

    /// psql's heuristic for `CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ATOMIC ... END`.
    fn track_word(&mut self, word: &[u8]) {
        let lower = word.to_ascii_lowercase();
        if self.prev_word_from && matches!(lower.as_slice(), b"stdin" | b"pstdin") {
            self.from_stdin = true;
        }
        self.prev_word_from = lower == b"from";
        if self.first_words.len() < 12 {
            self.first_words
                .push(String::from_utf8_lossy(&lower).into_owned());
        }
        if self.ident_count < 4
            && matches!(
                lower.as_slice(),
                b"create" | b"function" | b"procedure" | b"or" | b"replace"
            )
        {
            self.idents.resize(self.ident_count, 0);
            self.idents.push(lower[0]);
        }
        self.ident_count += 1;
        let id = |i: usize| self.idents.get(i).copied().unwrap_or(0);
        let is_routine = id(0) == b'c'
            && (id(1) == b'f'
                || id(1) == b'p'
                || (id(1) == b'o' && id(2) == b'r' && (id(3) == b'f' || id(3) == b'p')));
        if is_routine && self.paren_depth == 0 {
            match lower.as_slice() {
                b"begin" => self.begin_depth += 1,
                b"case" if self.begin_depth >= 1 => self.begin_depth += 1,
                b"end" if self.begin_depth > 0 => self.begin_depth -= 1,
                _ => {}
            }
        }
    }

    fn is_copy_from_stdin(&self) -> bool {
        self.from_stdin && self.first_words.first().is_some_and(|w| w == "copy")
    }
}

impl<'a> Scanner<'a> {
    /// A scanner over a whole file.
    pub fn new(src: &'a [u8]) -> Self {
        Scanner {
            src,
            pos: 0,
            vars: Variables::new(),
            limit: MAX_INPUT,
            std_strings: true,
            pending_copy: false,
            partial: None,
            cond: Conditions::default(),
            saved: None,
            dropped: Vec::new(),
        }
    }

    /// The file's open `\if` blocks.
    pub fn conditions(&self) -> &Conditions {
        &self.cond
    }

    /// Applies a branching meta-command found at byte `at` (see [`Conditions::apply`]). Text
    /// read in a branch that did not run is dropped from the query buffer when it ends.
    pub fn branch(&mut self, branch: Branch, value: bool, at: usize) -> Result<(), String> {
        let was_active = self.cond.active();
        self.cond.apply(branch, value, at)?;
        match (was_active, self.cond.active()) {
            (true, false) => self.saved = self.partial.clone(),
            (false, true) => {
                let saved = self.saved.take();
                if let Some(current) = self.partial.take() {
                    self.dropped = dropped_ranges(saved.as_ref(), &current);
                }
                self.partial = saved;
            }
            _ => {}
        }
        Ok(())
    }

    /// The byte offset the scanner has reached.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn peek(&self, off: usize) -> Option<u8> {
        self.src.get(self.pos + off).copied()
    }

    /// Skips whitespace, comments, a BOM and lone `;` before the next item.
    fn skip_trivia(&mut self) {
        loop {
            let rest = &self.src[self.pos..];
            if self.pos == 0 && rest.starts_with("\u{feff}".as_bytes()) {
                self.pos += 3;
            } else if rest.first().is_some_and(u8::is_ascii_whitespace)
                || rest.first() == Some(&b';')
            {
                self.pos += 1;
            } else if rest.starts_with(b"--") {
                self.skip_line_comment();
            } else if rest.starts_with(b"/*") {
                self.skip_block_comment();
            } else {
                return;
            }
        }
    }

    fn skip_line_comment(&mut self) {
        while let Some(b) = self.peek(0) {
            self.pos += 1;
            if b == b'\n' {
                break;
            }
        }
    }

    fn skip_block_comment(&mut self) {
        let mut depth = 0usize;
        while self.pos < self.src.len() {
            if self.src[self.pos..].starts_with(b"/*") {
                depth += 1;
                self.pos += 2;
            } else if self.src[self.pos..].starts_with(b"*/") {
                depth -= 1;
                self.pos += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.pos += 1;
            }
        }
    }

    /// Skips a quoted string or identifier starting at `pos` (on the opening quote).
    fn skip_quoted(&mut self, quote: u8, backslash_escapes: bool) {
        self.pos += 1;
        while let Some(b) = self.peek(0) {
            self.pos += 1;
            if backslash_escapes && b == b'\\' {
                self.pos = (self.pos + 1).min(self.src.len());
            } else if b == quote {
                if self.peek(0) == Some(quote) {
                    self.pos += 1;
                } else {
                    return;
                }
            }
        }
    }

    /// At a `$`: the length of a dollar-quote delimiter (`$$`, `$tag$`) starting here, if any.
    fn dollar_delimiter_len(&self) -> Option<usize> {
        let rest = &self.src[self.pos..];
        if rest.len() < 2 {
            return None;
        }
        if rest[1] == b'$' {
            return Some(2);
        }
        if !is_ident_start(rest[1]) {
            return None;
        }
        let mut i = 2;
        while i < rest.len() && is_ident_cont(rest[i]) && rest[i] != b'$' {
            i += 1;
        }
        (i < rest.len() && rest[i] == b'$').then_some(i + 1)
    }

    fn skip_dollar_body(&mut self, delim_len: usize) {
        let delim = &self.src[self.pos..self.pos + delim_len];
        self.pos += delim_len;
        let body = &self.src[self.pos..];
        match body.windows(delim_len).position(|w| w == delim) {
            Some(i) => self.pos += i + delim_len,
            None => self.pos = self.src.len(),
        }
    }

    /// Returns the next item, or `None` at the end of the input.
    pub fn next_item(&mut self) -> Option<Item> {
        if let Some(range) = self.dropped.pop() {
            return Some(Item::Trivia(range));
        }
        if self.pending_copy {
            self.pending_copy = false;
            return Some(self.copy_data());
        }
        if self.partial.is_none() {
            let start = self.pos;
            self.skip_trivia();
            if self.pos > start {
                return Some(Item::Trivia(start..self.pos));
            }
            if self.pos >= self.src.len() {
                return None;
            }
        }
        if self.peek(0) == Some(b'\\') && !matches!(self.peek(1), Some(b';' | b':')) {
            return Some(Item::Meta(self.meta()));
        }
        Some(self.statement())
    }

    /// Scans statement text up to its terminating `;` (or EOF, or a meta-command).
    fn statement(&mut self) -> Item {
        let mut st = self.partial.take().unwrap_or_default();
        st.limit = self.limit;
        let mut seg_start = self.pos;
        loop {
            let Some(b) = self.peek(0) else {
                st.push_verbatim(self.src, seg_start..self.pos);
                break;
            };
            match b {
                b'\'' => {
                    let escapes = !self.std_strings;
                    self.skip_quoted(b'\'', escapes);
                }
                b'"' => self.skip_quoted(b'"', false),
                b'-' if self.peek(1) == Some(b'-') => self.skip_line_comment(),
                b'/' if self.peek(1) == Some(b'*') => self.skip_block_comment(),
                b'$' => match self.dollar_delimiter_len() {
                    Some(n) => self.skip_dollar_body(n),
                    None => self.pos += 1,
                },
                b'(' => {
                    st.paren_depth += 1;
                    self.pos += 1;
                }
                b')' => {
                    st.paren_depth = st.paren_depth.saturating_sub(1);
                    self.pos += 1;
                }
                b';' => {
                    self.pos += 1;
                    if st.paren_depth == 0 && st.begin_depth == 0 {
                        st.push_verbatim(self.src, seg_start..self.pos);
                        break;
                    }
                }
                b'\\' if matches!(self.peek(1), Some(b';' | b':')) => {
                    // psql's `\;` and `\:`: the character goes into the statement as is, a
                    // `;` without ending it, a `:` without interpolating.
                    st.push_verbatim(self.src, seg_start..self.pos);
                    let text = if self.peek(1) == Some(b';') { ";" } else { ":" };
                    st.push_replacement(self.pos..self.pos + 2, text);
                    self.pos += 2;
                    seg_start = self.pos;
                }
                b'\\' => {
                    // A meta-command inside a statement runs first; the statement goes on after.
                    st.push_verbatim(self.src, seg_start..self.pos);
                    self.partial = Some(st);
                    return Item::Meta(self.meta());
                }
                b':' => {
                    if let Some((range, text)) = self.interpolation() {
                        st.push_verbatim(self.src, seg_start..range.start);
                        st.push_replacement(range.clone(), &text);
                        self.pos = range.end;
                        seg_start = self.pos;
                    } else if matches!(self.peek(1), Some(b':' | b'=')) {
                        self.pos += 2;
                    } else {
                        self.pos += 1;
                    }
                }
                b if b.is_ascii_digit() => {
                    while self
                        .peek(0)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                    {
                        self.pos += 1;
                    }
                }
                b if is_ident_start(b) => {
                    let start = self.pos;
                    while self.peek(0).is_some_and(is_ident_cont) {
                        self.pos += 1;
                    }
                    let word = &self.src[start..self.pos];
                    let next = self.peek(0);
                    if word.len() == 1 && next == Some(b'\'') {
                        // E'..', B'..', X'..', N'..' and friends: a prefix glued to a string.
                        let escapes = word[0].eq_ignore_ascii_case(&b'e') || !self.std_strings;
                        self.skip_quoted(b'\'', escapes);
                    } else if word.eq_ignore_ascii_case(b"u") && next == Some(b'&') {
                        if let Some(q @ (b'\'' | b'"')) = self.peek(1) {
                            self.pos += 1;
                            self.skip_quoted(q, false);
                        }
                    } else {
                        st.track_word(word);
                    }
                }
                _ => self.pos += 1,
            }
        }
        Item::Statement(self.finish(st))
    }

    /// Ends a statement: notes what it changes in the lexer and whether COPY data follows
    /// (not in an inactive branch, where psql runs no COPY and reads its data as SQL).
    fn finish(&mut self, st: Partial) -> Statement {
        let copy_from_stdin = st.is_copy_from_stdin();
        self.note_standard_conforming_strings(&st);
        self.pending_copy = copy_from_stdin && self.cond.active();
        if !self.cond.active() {
            // The statement took the query buffer with it: nothing to restore.
            self.saved = None;
        }
        Statement {
            sql: st.sql,
            pieces: st.pieces,
            copy_from_stdin,
            too_long: st.too_long,
        }
    }

    /// Follows `SET standard_conforming_strings`, which changes how `'\'` is read.
    fn note_standard_conforming_strings(&mut self, st: &Partial) {
        let w = &st.first_words;
        let name_at = match w.first().map(String::as_str) {
            Some("set") if w.get(1).is_some_and(|x| x == "session" || x == "local") => 2,
            Some("set") => 1,
            _ => return,
        };
        if w.get(name_at)
            .is_some_and(|x| x == "standard_conforming_strings")
        {
            let text = String::from_utf8_lossy(&st.sql).to_ascii_lowercase();
            let value = text
                .rsplit(['=', ' '])
                .find(|s| !s.trim().is_empty())
                .unwrap_or("")
                .trim_matches(|c: char| c == ';' || c == '\'' || c.is_whitespace())
                .to_owned();
            match value.as_str() {
                "off" | "false" | "0" => self.std_strings = false,
                "on" | "true" | "1" | "default" => self.std_strings = true,
                _ => {}
            }
        }
    }

    /// At a `:`: a variable interpolation (`:name`, `:'name'`, `:"name"`) of a defined variable.
    /// Nothing is interpolated in an inactive branch.
    fn interpolation(&self) -> Option<(Range<usize>, String)> {
        if !self.cond.active() {
            return None;
        }
        self.interpolate()
    }

    fn interpolate(&self) -> Option<(Range<usize>, String)> {
        let start = self.pos;
        let rest = &self.src[start + 1..];
        match rest.first()? {
            q @ (b'\'' | b'"') => {
                let len = rest[1..].iter().take_while(|&&b| is_var_char(b)).count();
                if len == 0 || rest.get(1 + len) != Some(q) {
                    return None;
                }
                let name = std::str::from_utf8(&rest[1..=len]).ok()?;
                let value = self.vars.get(name)?;
                let text = if *q == b'\'' {
                    escape_literal(value)
                } else {
                    escape_identifier(value)
                };
                Some((start..start + len + 3, text))
            }
            b'{' => {
                // `:{?name}`: whether the variable is set.
                let body = rest.strip_prefix(b"{?")?;
                let len = body.iter().take_while(|&&b| is_var_char(b)).count();
                if len == 0 || body.get(len) != Some(&b'}') {
                    return None;
                }
                let name = std::str::from_utf8(&body[..len]).ok()?;
                let text = if self.vars.contains_key(name) {
                    "TRUE"
                } else {
                    "FALSE"
                };
                Some((start..start + len + 4, text.to_owned()))
            }
            &b if is_var_char(b) => {
                let len = rest.iter().take_while(|&&b| is_var_char(b)).count();
                let name = std::str::from_utf8(&rest[..len]).ok()?;
                let value = self.vars.get(name)?;
                Some((start..start + 1 + len, value.clone()))
            }
            _ => None,
        }
    }

    /// Scans a meta-command from its backslash to the end of its arguments, as psql reads
    /// them ([`crate::slash`]): the name to the first whitespace or backslash, the arguments
    /// the command reads, the rest of the line as extra arguments, and a `\\` after them.
    fn meta(&mut self) -> Meta {
        let start = self.pos;
        self.pos += 1;
        let name_start = self.pos;
        while self
            .peek(0)
            .is_some_and(|b| !b.is_ascii_whitespace() && b != b'\\')
        {
            self.pos += 1;
        }
        let written = String::from_utf8_lossy(&self.src[name_start..self.pos]).into_owned();
        let known = slash::lookup(&written);
        let name = known
            .as_ref()
            .map_or_else(|| written.clone(), |(n, _)| n.clone());
        let query = if known.is_some() && SENDS_QUERY.contains(&name.as_str()) {
            self.partial.take().map(|st| self.finish(st))
        } else {
            None
        };
        // A branching command interpolates its expression only when it evaluates it: an
        // `\elif` after false branches does, one after a taken branch does not (psql).
        let interpolate = match Branch::from_name(&name) {
            Some(branch) => self.cond.evaluates(branch),
            None => self.cond.active(),
        };
        let mut meta = Meta {
            name,
            args: Vec::new(),
            arg_starts: Vec::new(),
            arg_quoted: Vec::new(),
            extra: Vec::new(),
            shell: None,
            error: None,
            known: known.is_some(),
            span: start..start,
            query,
        };
        // psql throws the rest of the line away after a command it does not know.
        let shape = known.map_or(
            slash::Shape {
                fixed: &[slash::ArgKind::WholeLine],
                rest: None,
            },
            |(_, shape)| shape,
        );
        let mut pos = self.pos;
        self.read_args(&mut meta, shape, interpolate, &mut pos);
        // A `\\` after the arguments separates this command from the next one on the line.
        if self.src[pos..].starts_with(b"\\\\") {
            pos += 2;
        }
        self.pos = pos;
        // The line's end belongs to the command; a following `\cmd` starts a new item.
        if self.peek(0) == Some(b'\n') {
            self.pos += 1;
        }
        if meta.name == "copy" && self.cond.active() {
            self.pending_copy = meta
                .args
                .first()
                .is_some_and(|line| crate::copy::SlashCopy::parse(line).is_ok_and(|c| c.inline()));
        }
        meta.span = start..self.pos;
        meta
    }

    /// Reads `meta`'s arguments of `shape` from `*pos`, then the extra ones to the line's end.
    fn read_args(&self, meta: &mut Meta, shape: slash::Shape, interpolate: bool, pos: &mut usize) {
        let vars = if interpolate {
            slash::Interpolate::From(&self.vars)
        } else {
            slash::Interpolate::Off
        };
        let connect = meta.name == "c" || meta.name == "connect";
        let mut kinds: Vec<slash::ArgKind> = shape.fixed.to_vec();
        let mut i = 0;
        while let Some(kind) = kinds.get(i).copied().or(shape.rest) {
            match slash::next_arg(self.src, pos, kind, vars) {
                Ok(Some(arg)) => {
                    if connect && i == 0 && arg.text.starts_with("-reuse-previous=") {
                        kinds.push(slash::ArgKind::SqlIdHack);
                    }
                    meta.shell = meta.shell.or(arg.shell);
                    meta.args.push(arg.text);
                    meta.arg_starts.push(arg.start);
                    meta.arg_quoted.push(arg.quoted);
                }
                // `\c - user`: an omitted argument keeps its place.
                Ok(None) if connect && i < kinds.len() => {
                    meta.args.push("-".into());
                    meta.arg_starts.push(*pos);
                    meta.arg_quoted.push(false);
                }
                Ok(None) if i >= kinds.len() => break,
                Ok(None) => {}
                Err(e) => {
                    meta.error = Some(e);
                    *pos = slash::line_end(self.src, *pos);
                    break;
                }
            }
            i += 1;
        }
        if connect {
            while meta.args.last().is_some_and(|a| a == "-")
                && meta.arg_quoted.last() == Some(&false)
            {
                meta.args.pop();
                meta.arg_starts.pop();
                meta.arg_quoted.pop();
            }
        }
        // What is left on the line: extra arguments, read without interpolation.
        loop {
            let kind = slash::ArgKind::Normal { semicolon: false };
            match slash::next_arg(self.src, pos, kind, slash::Interpolate::Off) {
                Ok(Some(arg)) => meta.extra.push(arg.text),
                Ok(None) => break,
                Err(e) => {
                    meta.error = meta.error.or(Some(e));
                    *pos = slash::line_end(self.src, *pos);
                    break;
                }
            }
        }
    }

    /// The data lines after `COPY ... FROM stdin`, up to a line that is `\.` or the end.
    fn copy_data(&mut self) -> Item {
        // Data starts on the line after the one that ended the COPY statement (a meta-command
        // such as `\copy` has taken its line's end already).
        let start = if self.pos > 0 && self.src[self.pos - 1] == b'\n' {
            self.pos
        } else {
            match self.src[self.pos..].iter().position(|&b| b == b'\n') {
                Some(i) => self.pos + i + 1,
                None => self.src.len(),
            }
        };
        let mut line = start;
        while line < self.src.len() {
            let end = self.src[line..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.src.len(), |i| line + i + 1);
            let text = &self.src[line..end];
            let text = text.strip_suffix(b"\n").unwrap_or(text);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text == b"\\." {
                let span = self.pos..end;
                self.pos = end;
                return Item::CopyData {
                    span,
                    data: start..line,
                };
            }
            line = end;
        }
        let span = self.pos..self.src.len();
        self.pos = self.src.len();
        Item::CopyData {
            span,
            data: start..self.src.len(),
        }
    }
}

/// The source ranges of `current` that `saved`, a state it grew from, does not have.
fn dropped_ranges(saved: Option<&Partial>, current: &Partial) -> Vec<Range<usize>> {
    let kept = saved.map_or(0, |s| s.pieces.len());
    let mut out: Vec<Range<usize>> = current
        .pieces
        .iter()
        .skip(kept)
        .map(|p| p.src.clone())
        .collect();
    // The last kept piece may have grown since (contiguous text is merged into one piece).
    if let (Some(last), Some(now)) = (
        saved.and_then(|s| s.pieces.last()),
        kept.checked_sub(1).and_then(|i| current.pieces.get(i)),
    ) {
        if now.src.end > last.src.end {
            out.push(last.src.end..now.src.end);
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

/// Splits a whole file without variables, for tests and tools.
pub fn split(src: &[u8]) -> Vec<Item> {
    let mut scanner = Scanner::new(src);
    std::iter::from_fn(|| scanner.next_item()).collect()
}

/// 1-based line and column (in characters) of a byte offset; a BOM is not counted.
pub fn line_col(src: &[u8], offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = count_newlines(before) + 1;
    let mut line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    if line_start == 0 && src.starts_with("\u{feff}".as_bytes()) {
        line_start = 3.min(offset);
    }
    (line, chars(&src[line_start..offset]) + 1)
}

/// Characters in `bytes` (of UTF-8; counted without decoding, so without copying a long line).
fn chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xc0 != 0x80).count()
}

/// Lines longer than this many bytes are shown around the column only.
pub const SHOWN_LINE: usize = 1_000;

/// The line holding byte `offset`, for a caret display (without its line ending or a BOM),
/// and the caret's 1-based column in that text. A line longer than [`SHOWN_LINE`] bytes is
/// shown as a part of it around the offset, cut with `…`, so that a 1 GB line is not copied.
pub fn line_window(src: &[u8], offset: usize) -> (String, usize) {
    let offset = offset.min(src.len());
    let mut start = src[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    if start == 0 && src.starts_with("\u{feff}".as_bytes()) {
        start = 3.min(offset);
    }
    let mut end = src[offset..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(src.len(), |i| offset + i);
    if end > start && src[end - 1] == b'\r' {
        end -= 1;
    }
    if end - start <= SHOWN_LINE {
        let text = String::from_utf8_lossy(&src[start..end]).into_owned();
        return (text, chars(&src[start..offset.min(end)]) + 1);
    }
    let boundary = |mut i: usize| {
        while i < src.len() && src[i] & 0xc0 == 0x80 {
            i += 1;
        }
        i
    };
    let from = boundary(offset.saturating_sub(SHOWN_LINE / 2).max(start));
    let to = boundary((from + SHOWN_LINE).min(end)).min(end);
    let mut text = String::new();
    if from > start {
        text.push('…');
    }
    text.push_str(&String::from_utf8_lossy(&src[from..to]));
    if to < end {
        text.push('…');
    }
    let caret = chars(&src[from..offset.min(to)]) + 1 + usize::from(from > start);
    (text, caret)
}

/// Newlines in `bytes`.
fn count_newlines(bytes: &[u8]) -> usize {
    bytes.split(|&b| b == b'\n').count() - 1
}
