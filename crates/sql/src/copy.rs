//! COPY as psql does it from the client side: parsing `\copy` into the `COPY ... FROM STDIN`
//! it sends, and finding the field of COPY data that a server error is about.
//!
//! `\copy TABLE [(cols)] FROM 'file' | stdin | pstdin [[WITH] options]` becomes
//! `COPY TABLE [(cols)] FROM STDIN [[WITH] options]`, the options passed on as written, as
//! psql's `parse_slash_copy` does; so both the `WITH (FORMAT csv, HEADER true)` syntax and the
//! old `CSV HEADER` one work.
//!
//! The server's CONTEXT for a bad field reads `COPY t, line 3, column b: "x"`: its line counts
//! the lines of the data (a CSV header included), and the column is found in the row from the
//! COPY's column list or the table's column order and the data's format.

use std::ops::Range;

/// Where a `\copy`'s data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// `stdin` or `pstdin`: the lines after the command, up to `\.`, as for `COPY ... FROM stdin`.
    Inline,
    /// A file, as written (relative paths are resolved by the loader).
    File(String),
}

/// A parsed `\copy ... FROM ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashCopy {
    /// The table and its optional column list, as written.
    pub target: String,
    /// Where the data comes from.
    pub source: CopySource,
    /// Everything after the source, as written (`WITH (FORMAT csv)`, `CSV HEADER`, ...).
    pub options: String,
}

impl SlashCopy {
    /// Parses the argument line of `\copy`. The error is a sentence for a `\copy:` report.
    pub fn parse(line: &str) -> Result<SlashCopy, String> {
        let toks = tokens(line);
        let Some(dir) = toks.iter().position(|t| {
            t.depth == 0 && matches!(t.kind, Kind::Word) && is_word(line, t, &["from", "to"])
        }) else {
            return Err(if line.trim().is_empty() {
                "arguments required".into()
            } else {
                "parse error at end of line (expected FROM)".into()
            });
        };
        if dir == 0 {
            return Err(format!(
                "parse error at \"{}\" (expected a table name)",
                &line[toks[dir].range.clone()]
            ));
        }
        if is_word(line, &toks[dir], &["to"]) {
            return Err(
                "\\copy ... TO is not supported: the loader only loads data (use \\copy ... FROM)"
                    .into(),
            );
        }
        let target = line[..toks[dir].range.start].trim().to_owned();
        let rest = line[toks[dir].range.end..].trim_start();
        let (word, options) = source_word(rest);
        let source = if word.starts_with('\'') {
            CopySource::File(dequote_string(word))
        } else if ["stdin", "pstdin"]
            .iter()
            .any(|w| word.eq_ignore_ascii_case(w))
        {
            CopySource::Inline
        } else if word.eq_ignore_ascii_case("program") {
            return Err(
                "\\copy ... FROM PROGRAM is not supported: the loader runs no commands".into(),
            );
        } else if word.is_empty() {
            return Err(
                "parse error at end of line (expected a file name, stdin or pstdin)".into(),
            );
        } else {
            CopySource::File(word.to_owned())
        };
        Ok(SlashCopy {
            target,
            source,
            options: options.trim().to_owned(),
        })
    }

    /// Whether the data follows in the file.
    pub fn inline(&self) -> bool {
        self.source == CopySource::Inline
    }

    /// The statement sent to the server.
    pub fn sql(&self) -> String {
        let mut sql = format!("COPY {} FROM STDIN", self.target);
        if !self.options.is_empty() {
            sql.push(' ');
            sql.push_str(&self.options);
        }
        sql
    }
}

/// What the loader needs to know about a `COPY ... FROM STDIN` statement to place an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStatement {
    /// The table as written (for `'...'::regclass`).
    pub table: String,
    /// The column list, as the server names the columns; `None` when the statement has none.
    pub columns: Option<Vec<String>>,
    /// The data's format.
    pub format: DataFormat,
}

/// The layout of COPY data, as far as finding a field needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataFormat {
    /// CSV rather than text.
    pub csv: bool,
    /// The field delimiter.
    pub delimiter: u8,
    /// CSV's quote character.
    pub quote: u8,
}

impl DataFormat {
    /// COPY's default text format.
    pub const TEXT: DataFormat = DataFormat {
        csv: false,
        delimiter: b'\t',
        quote: b'"',
    };
}

impl CopyStatement {
    /// Parses `COPY table [(cols)] FROM STDIN [options]`; `None` for anything else (a COPY of
    /// a query, binary data, a statement this reading does not follow).
    pub fn parse(sql: &str) -> Option<CopyStatement> {
        let toks = tokens(sql);
        let first = toks.first()?;
        if !is_word(sql, first, &["copy"]) {
            return None;
        }
        let from = toks
            .iter()
            .position(|t| t.depth == 0 && is_word(sql, t, &["from"]))?;
        let open = toks[1..from]
            .iter()
            .position(|t| matches!(t.kind, Kind::Open))
            .map(|i| i + 1);
        let table_end = open.unwrap_or(from);
        if table_end <= 1 {
            return None;
        }
        let table = sql[toks[1].range.start..toks[table_end - 1].range.end].to_owned();
        let columns = open.map(|open| {
            toks[open + 1..from]
                .iter()
                .filter(|t| matches!(t.kind, Kind::Word | Kind::Quoted(b'"')))
                .map(|t| column_name(&sql[t.range.clone()]))
                .collect()
        });
        let options = &toks[(from + 2).min(toks.len())..];
        let word = |t: &Token, w: &[&str]| is_word(sql, t, w) || is_quoted_word(sql, t, w);
        if options.iter().any(|t| word(t, &["binary"])) {
            return None;
        }
        let csv = options.iter().any(|t| word(t, &["csv"]));
        let option_char = |name: &str| {
            let at = options.iter().position(|t| word(t, &[name]))?;
            let value = options[at + 1..]
                .iter()
                .find(|t| matches!(t.kind, Kind::Quoted(b'\'')))?;
            let escaped =
                value.range.start > 0 && sql.as_bytes()[value.range.start - 1] | 0x20 == b'e';
            let text = &sql[value.range.clone()];
            let decoded = if escaped {
                unescape_e_string(text)
            } else {
                dequote_string(text)
            };
            decoded.bytes().next()
        };
        Some(CopyStatement {
            table,
            columns,
            format: DataFormat {
                csv,
                delimiter: option_char("delimiter").unwrap_or(if csv { b',' } else { b'\t' }),
                quote: option_char("quote").unwrap_or(b'"'),
            },
        })
    }
}

/// The file name (a `'...'` string, or a word up to a space or `;`) and what follows it.
fn source_word(rest: &str) -> (&str, &str) {
    let b = rest.as_bytes();
    let end = if b.first() == Some(&b'\'') {
        let mut i = 1;
        while i < b.len() {
            if b[i] == b'\'' && b.get(i + 1) == Some(&b'\'') {
                i += 2;
            } else if b[i] == b'\'' {
                break;
            } else {
                i += 1;
            }
        }
        (i + 1).min(b.len())
    } else {
        b.iter()
            .position(|&c| c.is_ascii_whitespace() || c == b';')
            .unwrap_or(b.len())
    };
    rest.split_at(end)
}

/// The server's name for a column as a COPY column list writes it.
fn column_name(text: &str) -> String {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

/// The line a COPY error's CONTEXT names (`COPY t, line 3, ...`) and its column, if it names
/// one (`..., column b: "x"`).
pub fn error_line_and_column(context: &str) -> Option<(usize, Option<&str>)> {
    let rest = &context[context.find(", line ")? + ", line ".len()..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let line = rest[..digits].parse().ok()?;
    let column = rest[digits..]
        .strip_prefix(", column ")
        .and_then(|c| c.split_once(": ").map(|(name, _)| name));
    Some((line, column))
}

/// The byte offset in `src` of the COPY data line `line` (1-based) of the data in `data`,
/// moved on to the start of field `field` (0-based) when given, or to the end of the row when
/// the row has fewer fields (where the missing data would be).
pub fn field_offset(
    src: &[u8],
    data: Range<usize>,
    line: usize,
    field: Option<usize>,
    format: DataFormat,
) -> Option<usize> {
    let mut offset = data.start;
    for _ in 1..line {
        offset += src[offset..data.end].iter().position(|&b| b == b'\n')? + 1;
    }
    let Some(field) = field else {
        return Some(offset);
    };
    let mut at = offset;
    let mut in_quotes = false;
    let mut current = 0;
    while current < field {
        let Some(&b) = src[..data.end].get(at) else {
            return Some(at);
        };
        match b {
            b'\n' | b'\r' if !in_quotes => return Some(at),
            b'\\' if !format.csv => at += 1,
            q if format.csv && q == format.quote => in_quotes = !in_quotes,
            d if d == format.delimiter && !in_quotes => current += 1,
            _ => {}
        }
        at += 1;
    }
    Some(at)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    /// A quoted string or identifier; the quote character.
    Quoted(u8),
    Open,
    Close,
    Other,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    range: Range<usize>,
    /// Parenthesis depth before the token.
    depth: usize,
}

/// Words, quoted strings and identifiers, parentheses and other punctuation, with their
/// parenthesis depth. Enough of SQL's lexing to read a COPY's head.
fn tokens(s: &str) -> Vec<Token> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let kind = match b[i] {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q && b.get(i + 1) == Some(&q) {
                        i += 2;
                    } else if b[i] == q {
                        break;
                    } else {
                        i += 1;
                    }
                }
                i = (i + 1).min(b.len());
                Kind::Quoted(q)
            }
            b'(' => {
                i += 1;
                Kind::Open
            }
            b')' => {
                i += 1;
                Kind::Close
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'$') || b[i] >= 0x80)
                {
                    i += 1;
                }
                Kind::Word
            }
            _ => {
                i += 1;
                Kind::Other
            }
        };
        if kind == Kind::Close {
            depth = depth.saturating_sub(1);
        }
        out.push(Token {
            kind,
            range: start..i,
            depth,
        });
        if kind == Kind::Open {
            depth += 1;
        }
    }
    out
}

fn is_word(s: &str, t: &Token, words: &[&str]) -> bool {
    t.kind == Kind::Word
        && words
            .iter()
            .any(|w| s[t.range.clone()].eq_ignore_ascii_case(w))
}

fn is_quoted_word(s: &str, t: &Token, words: &[&str]) -> bool {
    matches!(t.kind, Kind::Quoted(_))
        && words.iter().any(|w| {
            s[t.range.clone()]
                .trim_matches(['\'', '"'])
                .eq_ignore_ascii_case(w)
        })
}

/// `'it''s'` -> `it's`.
fn dequote_string(text: &str) -> String {
    let inner = text.strip_prefix('\'').unwrap_or(text);
    let inner = inner.strip_suffix('\'').unwrap_or(inner);
    inner.replace("''", "'")
}

/// The body of an `E'...'` string with its common escapes.
fn unescape_e_string(text: &str) -> String {
    let inner = dequote_string(text);
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash_copy_becomes_copy_from_stdin_with_the_options_as_written() {
        let c = SlashCopy::parse(
            "users (id, \"Name\") FROM 'data/it''s.csv' WITH (FORMAT csv, HEADER true);",
        )
        .unwrap();
        assert_eq!(c.source, CopySource::File("data/it's.csv".into()));
        assert_eq!(
            c.sql(),
            "COPY users (id, \"Name\") FROM STDIN WITH (FORMAT csv, HEADER true);"
        );
        let c = SlashCopy::parse("public.t from ../data/users.csv csv header").unwrap();
        assert_eq!(c.source, CopySource::File("../data/users.csv".into()));
        assert_eq!(c.sql(), "COPY public.t FROM STDIN csv header");
        for inline in ["t FROM stdin", "t from PSTDIN;", "\"from\" from stdin"] {
            let c = SlashCopy::parse(inline).unwrap();
            assert!(c.inline(), "{inline}");
        }
        assert_eq!(
            SlashCopy::parse("\"from\" from stdin").unwrap().target,
            "\"from\""
        );
    }

    #[test]
    fn slash_copy_refuses_what_the_loader_does_not_do() {
        for (line, error) in [
            ("", "arguments required"),
            ("t", "parse error at end of line (expected FROM)"),
            (
                "t from",
                "parse error at end of line (expected a file name, stdin or pstdin)",
            ),
            ("t to 'out.csv'", "\\copy ... TO is not supported"),
            (
                "t from program 'gunzip'",
                "\\copy ... FROM PROGRAM is not supported",
            ),
        ] {
            let e = SlashCopy::parse(line).unwrap_err();
            assert!(e.starts_with(error), "{line}: {e}");
        }
    }

    #[test]
    fn copy_statement_head_and_format() {
        let c = CopyStatement::parse(
            "COPY public.t (a, \"B\", Cc) FROM STDIN WITH (FORMAT csv, DELIMITER ';')",
        )
        .unwrap();
        assert_eq!(c.table, "public.t");
        assert_eq!(c.columns.unwrap(), ["a", "B", "cc"]);
        assert_eq!(
            c.format,
            DataFormat {
                csv: true,
                delimiter: b';',
                quote: b'"'
            }
        );
        let c = CopyStatement::parse("copy t from stdin;").unwrap();
        assert_eq!((c.table.as_str(), c.columns), ("t", None));
        assert_eq!(c.format.delimiter, b'\t');
        let c = CopyStatement::parse("COPY t FROM STDIN DELIMITER E'\\t' CSV").unwrap();
        assert_eq!((c.format.csv, c.format.delimiter), (true, b'\t'));
        assert!(CopyStatement::parse("COPY t FROM STDIN (FORMAT binary)").is_none());
        assert!(CopyStatement::parse("SELECT 1").is_none());
    }

    #[test]
    fn the_context_names_line_and_column() {
        assert_eq!(
            error_line_and_column("COPY u, line 5, column n: \"x: y\""),
            Some((5, Some("n")))
        );
        assert_eq!(
            error_line_and_column("COPY u, line 2: \"1,2,3\""),
            Some((2, None))
        );
        assert_eq!(error_line_and_column("SQL function f"), None);
    }

    #[test]
    fn fields_are_found_past_quotes_escapes_and_newlines() {
        let csv = DataFormat {
            csv: true,
            delimiter: b',',
            quote: b'"',
        };
        let src = b"id,name,n\n1,\"a, b\",2\n2,\"multi\nline\",x\n";
        let all = 0..src.len();
        let at = field_offset(src, all.clone(), 2, Some(2), csv).unwrap();
        assert_eq!(&src[at..=at], b"2");
        let at = field_offset(src, all.clone(), 3, Some(2), csv).unwrap();
        assert_eq!(&src[at..=at], b"x");
        // A missing field: the end of the row.
        assert_eq!(field_offset(src, all, 2, Some(7), csv), Some(20));
        let text = DataFormat {
            csv: false,
            delimiter: b'\t',
            quote: b'"',
        };
        let src = b"a\\\tb\tc\n";
        let at = field_offset(src, 0..src.len(), 1, Some(1), text).unwrap();
        assert_eq!(&src[at..=at], b"c");
    }
}
