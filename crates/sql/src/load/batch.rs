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
//! The run goes in one simple-query message, in a transaction of its own outside a block
//! (`BEGIN; SET CONSTRAINTS ALL IMMEDIATE; ...`: a deferred constraint is checked at each
//! statement's end, where psql's per-statement commit checks it), or under a savepoint
//! inside the file's own block; the message also reads the sequences' positions. When every
//! statement ran and none raised a notice, the loader commits (or releases the savepoint):
//! the database holds what psql's statements would have left.
//!
//! Otherwise (an error, a notice, a commit that fails), the loader rolls the run back (to
//! the savepoint), puts the sequences back where they were (`setval`: their advances are the
//! one thing a rollback keeps) and sends the run's statements again one at a time, as psql
//! does: the statements before a bad one commit, the bad one fails with psql's error at its
//! own `path:line:col` (inside a block, it aborts the block as psql's does), nothing after it
//! runs, and each notice is reported at its own statement. So an error leaves the state
//! psql's `ON_ERROR_STOP` leaves, sequence values included (`devenv db seed` loads straight
//! into a database, with no build-then-swap to throw a wrong state away), and a run that
//! fails only as a whole (too many locks for one transaction) loads one statement at a time.
//! (The server sends notices on a channel of their own, so which statement of a run raised
//! one cannot be told; the rerun tells.)
//!
//! Differences that remain: the statements of one run share one transaction, so `now()` (and
//! a column's `DEFAULT now()`) is the same for its rows where psql gives each statement its
//! own microsecond (`psql -1` gives the whole file one value), and a temporary table `ON
//! COMMIT DELETE ROWS` keeps its rows until the run ends.

use futures_util::StreamExt as _;
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
        let end = pieces
            .get(i + 1)
            .map_or(statement.sql.len(), |p| p.sql_start);
        !statement.sql[piece.sql_start..end].contains(&b';')
    });
    one && std::str::from_utf8(&statement.sql).is_ok()
}

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
        let own = !session.in_block;
        let (text, prelude) = message(&statements, own);
        let mut completions = 0usize;
        let mut positions: Vec<(u32, Option<String>)> = Vec::new();
        let mut failure = None;
        match session.client.simple_query_raw(&text).await {
            Err(e) => failure = Some(e),
            Ok(stream) => {
                futures_util::pin_mut!(stream);
                while let Some(message) = stream.next().await {
                    match message {
                        Ok(SimpleQueryMessage::CommandComplete(_)) => completions += 1,
                        Ok(SimpleQueryMessage::Row(row)) if completions < prelude => {
                            if let Some(oid) = row.get(0).and_then(|o| o.parse().ok()) {
                                positions.push((oid, row.get(1).map(str::to_owned)));
                            }
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
        if failure.as_ref().is_some_and(|e| e.as_db_error().is_none()) {
            // The connection broke: which statements ran is not known.
            self.session = None;
            let e = failure.expect("checked above");
            let at = statements[completions
                .saturating_sub(prelude)
                .min(statements.len() - 1)]
            .start();
            return Err(file.error(at, ErrorKind::Client(client_error_text(&e))));
        }
        // Every notice of the message came before its end.
        let noticed = std::iter::from_fn(|| session.notices.try_recv().ok()).count() > 0;
        if failure.is_none() && !noticed {
            let end = if own {
                "COMMIT"
            } else {
                "RELEASE SAVEPOINT devenv_batch"
            };
            if session.client.simple_query(end).await.is_ok() {
                self.summary.statements += statements.len();
                self.summary.batched += statements.len();
                *previous = statements.into_iter().last();
                return Ok(());
            }
        }
        // Undone, then psql's way.
        let undo = if own {
            "ROLLBACK"
        } else {
            "ROLLBACK TO SAVEPOINT devenv_batch; RELEASE SAVEPOINT devenv_batch"
        };
        let _ = session.client.batch_execute(undo).await;
        if let Some(sql) = restore_sequences(&positions) {
            let _ = session.client.simple_query(&sql).await;
        }
        while session.notices.try_recv().is_ok() {}
        for statement in statements {
            self.statement(file, &statement, None).await?;
            *previous = Some(statement);
        }
        Ok(())
    }
}

/// Reads the position of every sequence this session may read and set (`pg_sequence_last_value`
/// is NULL before the first `nextval`).
const SEQUENCES: &str = "SELECT s.seqrelid::int8, pg_catalog.pg_sequence_last_value(s.seqrelid) \
     FROM pg_catalog.pg_sequence s \
     WHERE pg_catalog.has_sequence_privilege(s.seqrelid, 'SELECT') \
     AND pg_catalog.has_sequence_privilege(s.seqrelid, 'UPDATE');";

/// The statement that puts the sequences back at `positions` (oid, last value).
fn restore_sequences(positions: &[(u32, Option<String>)]) -> Option<String> {
    let values: Vec<String> = positions
        .iter()
        .map(|(oid, last)| match last {
            Some(last) if last.bytes().all(|b| b.is_ascii_digit() || b == b'-') => {
                format!("({oid}::oid, {last}::int8)")
            }
            _ => format!("({oid}::oid, NULL::int8)"),
        })
        .collect();
    (!values.is_empty()).then(|| {
        format!(
            "SELECT pg_catalog.setval(s.seqrelid, coalesce(v.last, s.seqstart), v.last IS NOT NULL) \
             FROM (VALUES {}) v(id, last) JOIN pg_catalog.pg_sequence s ON s.seqrelid = v.id",
            values.join(", ")
        )
    })
}

/// The text sent for `statements`: a transaction of its own (`own`) or a savepoint, the
/// sequences' positions, the statements; and how many commands come before the statements.
fn message(statements: &[Statement], own: bool) -> (String, usize) {
    let bytes: usize = statements.iter().map(|s| s.sql.len() + 2).sum();
    let mut text = String::with_capacity(bytes + SEQUENCES.len() + 64);
    let prelude = if own {
        text.push_str("BEGIN;SET CONSTRAINTS ALL IMMEDIATE;");
        3
    } else {
        text.push_str("SAVEPOINT devenv_batch;");
        2
    };
    text.push_str(SEQUENCES);
    for statement in statements {
        let sql = String::from_utf8_lossy(&statement.sql);
        text.push_str(&sql);
        if !sql.ends_with(';') {
            // The file's last statement may end without `;`, even in a `--` comment.
            text.push_str("\n;");
        }
    }
    (text, prelude)
}
