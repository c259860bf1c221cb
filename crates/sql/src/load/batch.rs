//! Runs of plain statements, sent many to a message: a seed of 491k single-row INSERTs loads
//! several times faster than psql sends it, one statement and one round trip at a time, and
//! ends exactly as psql's would.
//!
//! ## What is batched
//! Consecutive `INSERT`, `UPDATE` and `DELETE` statements of one file, with no meta-command
//! between them (a meta-command may read or change what they do: `\gset`, `\c`, ...), up to
//! [`MAX_STATEMENTS`] or [`MAX_BYTES`] of text. Anything else (DDL, `COPY`, `VACUUM`, `CREATE
//! DATABASE`, transaction control) is sent alone as before, so statements that cannot run
//! in a transaction block keep working. A statement that holds more than one (psql's `\;`,
//! a variable whose value has a `;`) is sent alone too.
//!
//! ## Same result, same error, same state as psql
//! Outside a transaction block (psql's autocommit) the run goes in one simple-query message as
//! `BEGIN; s1; COMMIT; BEGIN; s2; COMMIT; ...`: each statement commits on its own, as in psql,
//! and the server stops at the first error and skips the rest of the message, so nothing
//! after the failing statement runs. The statements before it are committed, the failing
//! one's own block is rolled back: the state psql's `ON_ERROR_STOP` leaves, sequence values
//! included (`devenv db seed` loads straight into a database, with no build-then-swap to
//! throw a wrong state away). The failing statement is the one whose `BEGIN` completed last
//! (the server answers each command with its completion, in order); its error, and the
//! server's position in the message, map back to its own `path:line:col` as for a statement
//! sent alone. A message the server cannot parse at all (a syntax error in any statement of
//! it) runs nothing, and is sent again one statement at a time, which stops at the bad one
//! exactly as psql does.
//!
//! Inside a transaction block the file opened (`BEGIN` ... `COMMIT`, followed from the
//! statements sent: [`super::session`]), the run goes without the wrappers: psql runs those
//! statements in the same block, and an error aborts the block in both.
//!
//! One difference remains: the statements of one message share the message's
//! `statement_timestamp()`, so `now()` (and a column's `DEFAULT now()`) is the same for the
//! rows of one batch where psql gives each statement its own microsecond; `psql -1` gives
//! the whole file one value.
//!
//! Notices are reported at the statement that raised them (the server sends them before
//! that statement's completion).

use futures_util::StreamExt as _;
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::SimpleQueryMessage;

use super::{File, Run};
use crate::error::{client_error_text, ErrorKind, LoadError};
use crate::scan::Statement;

/// Statements in one message at most.
pub const MAX_STATEMENTS: usize = 1_000;
/// Bytes of statement text in one message at most.
pub const MAX_BYTES: usize = 1 << 20;

/// Statements waiting to be sent together.
#[derive(Debug, Default)]
pub(super) struct Batch {
    statements: Vec<Statement>,
    bytes: usize,
}

impl Batch {
    pub(super) fn push(&mut self, statement: Statement) {
        self.bytes += statement.sql.len();
        self.statements.push(statement);
    }

    pub(super) fn full(&self) -> bool {
        self.statements.len() >= MAX_STATEMENTS || self.bytes >= MAX_BYTES
    }

    pub(super) fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Where the last statement ends in the file.
    pub(super) fn end(&self) -> usize {
        self.statements
            .last()
            .and_then(|s| s.pieces.last())
            .map_or(0, |p| p.src.end)
    }
}

/// Whether `statement` may go in a batch: an `INSERT`, `UPDATE` or `DELETE`, UTF-8, one
/// statement only (no `\;`, no variable value holding a `;`), not over the input limit.
pub(super) fn batchable(file: &File, statement: &Statement) -> bool {
    if statement.copy_from_stdin || statement.too_long {
        return false;
    }
    let word: Vec<u8> = statement
        .sql
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .map(u8::to_ascii_lowercase)
        .collect();
    if !matches!(word.as_slice(), b"insert" | b"update" | b"delete") {
        return false;
    }
    let pieces = &statement.pieces;
    let one = pieces.iter().enumerate().all(|(i, piece)| {
        if piece.verbatim {
            return true;
        }
        if file.src.get(piece.src.clone()) == Some(b"\\;".as_slice()) {
            return false;
        }
        let end = pieces.get(i + 1).map_or(statement.sql.len(), |p| p.sql_start);
        !statement.sql[piece.sql_start..end].contains(&b';')
    });
    one && std::str::from_utf8(&statement.sql).is_ok()
}

#[expect(
    clippy::result_large_err,
    reason = "LoadError is the public error, made once per failed load; boxing it would change the API the workspace uses"
)]
impl Run<'_> {
    /// Sends the batch's statements (see the module documentation); `previous` becomes the
    /// last of them.
    pub(super) async fn run_batch(
        &mut self,
        file: &File,
        batch: &mut Batch,
        previous: &mut Option<Statement>,
    ) -> Result<(), LoadError> {
        let statements = std::mem::take(&mut batch.statements);
        batch.bytes = 0;
        if statements.len() <= 1 {
            for statement in statements {
                self.statement(file, &statement, None).await?;
                *previous = Some(statement);
            }
            return Ok(());
        }
        let first = statements[0].start();
        let session = self.session(file, first).await?;
        let wrap = !session.in_block;
        let (text, starts) = message(&statements, wrap);
        let per = if wrap { 3 } else { 1 };
        let mut completions = 0usize;
        let mut failure = None;
        match session.client.simple_query_raw(&text).await {
            Err(e) => failure = Some(e),
            Ok(stream) => {
                futures_util::pin_mut!(stream);
                while let Some(message) = stream.next().await {
                    match message {
                        Ok(SimpleQueryMessage::CommandComplete(_)) => {
                            completions += 1;
                            let at = statements[(completions - 1) / per].start();
                            self.report_notices(file, at);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            }
        }
        let Some(e) = failure else {
            self.summary.statements += statements.len();
            *previous = statements.into_iter().last();
            return Ok(());
        };
        if e.as_db_error().is_none() {
            // The connection broke: which statements ran is not known.
            self.session = None;
            let at = statements[completions / per].start();
            return Err(file.error(at, ErrorKind::Client(client_error_text(&e))));
        }
        if wrap && completions == 0 {
            // The message did not parse: nothing ran. One at a time, psql's way.
            for statement in statements {
                self.statement(file, &statement, None).await?;
                *previous = Some(statement);
            }
            return Ok(());
        }
        let failed = if wrap {
            (completions - 1) / 3
        } else {
            position_statement(&e, &text, &starts).unwrap_or(completions)
        }
        .min(statements.len() - 1);
        self.summary.statements += failed;
        let sent_at = text[..starts[failed]].chars().count();
        let error = self.server_error(file, &statements[failed], None, &e, sent_at);
        if wrap {
            // The failing statement's own block is left aborted; end it (its notices, such
            // as "no transaction in progress" after a failed COMMIT, are not the file's).
            if let Some(session) = self.session.as_mut() {
                let _ = session.client.simple_query("ROLLBACK").await;
                while session.notices.try_recv().is_ok() {}
            }
        }
        Err(error)
    }
}

/// The text sent for `statements`, and where each one's text starts in it (bytes).
fn message(statements: &[Statement], wrap: bool) -> (String, Vec<usize>) {
    let bytes: usize = statements.iter().map(|s| s.sql.len() + 16).sum();
    let mut text = String::with_capacity(bytes);
    let mut starts = Vec::with_capacity(statements.len());
    for statement in statements {
        let sql = String::from_utf8_lossy(&statement.sql);
        if wrap {
            text.push_str("BEGIN;");
        }
        starts.push(text.len());
        text.push_str(&sql);
        if !sql.ends_with(';') {
            // The file's last statement may end without `;`, even in a `--` comment.
            text.push_str("\n;");
        }
        if wrap {
            text.push_str("COMMIT;");
        }
    }
    (text, starts)
}

/// The statement the server's error position points into, if it gives one.
fn position_statement(e: &tokio_postgres::Error, text: &str, starts: &[usize]) -> Option<usize> {
    let Some(ErrorPosition::Original(pos)) = e.as_db_error()?.position() else {
        return None;
    };
    let byte = text
        .char_indices()
        .nth((*pos as usize).saturating_sub(1))
        .map_or(text.len(), |(i, _)| i);
    Some(starts.partition_point(|&s| s <= byte).saturating_sub(1))
}
