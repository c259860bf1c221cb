//! COPY data through the COPY protocol: the data after `COPY ... FROM stdin`, and `\copy`'s
//! (a file, found as `\i` finds one, or inline); a data error points at the offending field
//! of the line the server names, in the file the data came from.

use std::ops::Range;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::error::DbError;
use tokio_postgres::Client;

use super::meta::{bad, Context};
use super::{inline_copy_data, server_kind, File, Run};
use crate::copy::{
    error_line_and_column, field_offset, CopySource, CopyStatement, DataFormat, SlashCopy,
};
use crate::error::{client_error_text, ErrorKind, LoadError};
use crate::scan::Meta;

/// COPY data goes to the server in pieces of this size.
const CHUNK: usize = 4 << 20;

/// Sends one COPY block through the COPY protocol; returns the rows the server counted.
pub(super) async fn copy_in(
    client: &Client,
    sql: &str,
    data: Bytes,
) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in(sql).await?;
    futures_util::pin_mut!(sink);
    let mut at = 0;
    while at < data.len() {
        let end = (at + CHUNK).min(data.len());
        sink.send(data.slice(at..end)).await?;
        at = end;
    }
    sink.as_mut().finish().await
}

impl Run<'_> {
    /// `\copy TABLE [(cols)] FROM 'file' | stdin | pstdin [options]`.
    pub(super) async fn slash_copy(
        &mut self,
        meta: &Meta,
        cx: &mut Context<'_, '_>,
    ) -> Result<(), LoadError> {
        let file = cx.file;
        let at = meta.span.start;
        let line = meta.args.first().map_or("", String::as_str);
        let copy = SlashCopy::parse(line).map_err(|message| bad(file, meta, message))?;
        let sql = copy.sql();
        let read;
        let (data_file, data) = match &copy.source {
            CopySource::Inline => (file, inline_copy_data(file, cx.scanner)),
            CopySource::File(name) => {
                let candidates = crate::inputs::candidates(&meta.name, &file.path, &self.top, name);
                let arg_at = meta.arg_starts.first().copied().unwrap_or(at);
                let (path, src) = self
                    .read(&candidates, "data file", Some((file, arg_at)))
                    .await?;
                read = File { path, src };
                (&read, 0..read.src.len())
            }
        };
        self.check_rows(data_file, data.clone())?;
        let bytes = data_file.src.slice(data.clone());
        match self.execute(file, at, &sql, Some(bytes)).await? {
            Ok(()) => Ok(()),
            Err(e) => {
                let Some(db) = e.as_db_error() else {
                    self.session = None;
                    return Err(file.error(at, ErrorKind::Client(client_error_text(&e))));
                };
                if let Some(offset) = self.copy_error_offset(data_file, &data, &sql, db).await {
                    let context = db.where_().map(str::to_owned);
                    return Err(data_file.error(offset, server_kind(db, context)));
                }
                let sent = format!("\\copy sent: {sql}");
                let context = match db.where_() {
                    Some(c) => format!("{c}\n{sent}"),
                    None => sent,
                };
                Err(file.error(at, server_kind(db, Some(context))))
            }
        }
    }

    /// The offset in `file` of the field of COPY data a server error is about: the line its
    /// CONTEXT names, the column it names found by the COPY's column list or the table's
    /// column order. `None` when the error is not about a line of the data.
    pub(super) async fn copy_error_offset(
        &mut self,
        file: &File,
        data: &Range<usize>,
        sql: &str,
        db: &DbError,
    ) -> Option<usize> {
        let (line, column) = error_line_and_column(db.where_()?)?;
        let statement = CopyStatement::parse(sql);
        let column = column.or_else(|| missing_column(db.message()));
        let mut field = None;
        if let Some(statement) = &statement {
            let extra = db
                .message()
                .starts_with("extra data after last expected column");
            if column.is_some() || extra {
                if let Some(columns) = self.copy_columns(statement).await {
                    field = match column {
                        Some(name) => columns.iter().position(|c| c == name),
                        None => Some(columns.len()),
                    };
                }
            }
        }
        let format = statement.map_or(DataFormat::TEXT, |s| s.format);
        field_offset(&file.src, data.clone(), line, field, format)
    }

    /// The columns a COPY fills, in data order: its column list, else the table's columns.
    async fn copy_columns(&mut self, statement: &CopyStatement) -> Option<Vec<String>> {
        if let Some(columns) = &statement.columns {
            return Some(columns.clone());
        }
        let session = self.session.as_ref()?;
        let rows = session
            .client
            .query(
                "SELECT attname::text FROM pg_catalog.pg_attribute \
                 WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped \
                 AND attgenerated = '' ORDER BY attnum",
                &[&statement.table],
            )
            .await
            .ok()?;
        Some(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// The column of `missing data for column "b"`.
fn missing_column(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing data for column \"")?
        .strip_suffix('"')
}
