//! Carry-over: after a rebuild's new database has loaded schema, migrations and seed, the rows
//! of the database it replaces that the new one lacks are copied in, for the columns both
//! have, so a schema edit does not cost the rows typed through the app.
//!
//! Which rows: the replaced database's *hand rows*, those whose `xmin` follows the build's
//! boundary ([`crate::db::Marks::seeded`]: the transaction id taken once its files had
//! loaded). Its seed rows are never carried: the new seed made its own. A row is *lacking* by
//! its primary key or any unique key (all of whose columns both tables have): a row of the old
//! database whose key the new one already holds stays as the new database made it, and its old
//! key is mapped to the new one, so the rows that referred to it (a foreign key, by the
//! referenced columns) follow it. That is how the seed's rows keep their hand-made children
//! when their keys are `uuid_generate_v4()` defaults: a seed user is matched by its unique
//! `handle`, and an activity typed for it gets the new user's key. A table with no usable key
//! is carried only when the new one is empty after the seed.
//!
//! How: table by table in foreign-key order, in one transaction of the new database. The
//! direct way first, when the new table holds few rows (the seed's: at most 1,000):
//! their key values come to this client and go to the old database in the query that
//! streams its rows out, which leaves out the rows the new table holds and rewrites foreign
//! keys by the parents' maps on its side; the rows stream straight into the new table
//! (`COPY ... TO STDOUT` into `COPY ... FROM STDIN`, binary when every column has the same
//! built-in type on both sides). When that does not apply (a big new table or map, a changed
//! type in a key) or a row does not go in, the table is staged instead: streamed into a
//! temporary table of text columns in the new database, matched and mapped there, then
//! inserted with a cast of each value to the new column's type. Either way
//! `session_replication_role = replica` is set when the role may set it (no triggers fire, so
//! a copy does not run the app's triggers again, and cycles need no order; every foreign key
//! is checked afterwards over the carried rows, and the rows that break one are taken out). A
//! value that does not fit (a cast, a NOT NULL, a CHECK, a foreign key) leaves its row behind,
//! found by halving the failing batch under savepoints, never the whole carry; a new NOT NULL
//! column without a default leaves the table's rows behind without trying. Identity and
//! serial sequences are set past the highest value carried. The [`Report`] says what came
//! and what stayed behind; the replaced database is kept as an automatic snapshot, so nothing
//! left behind is lost.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use devenv_server::{quote_ident, quote_literal};
use futures_util::{pin_mut, SinkExt, StreamExt};
use tokio_postgres::Client;

/// The most rows a new table (or a map of changed keys) may hold for the direct way
/// ([`Run::direct`]); past it the rows are staged.
const DIRECT_ROWS: usize = 1000;

/// Tables that hold migration records: the new database's own records stand.
const RECORD_TABLES: [&str; 3] = [
    "_sqlx_migrations",
    "__diesel_schema_migrations",
    "_devenv_migrations",
];

/// What a carry-over did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Per table of the old database with hand rows (or dropped values), in carry order.
    pub tables: Vec<TableReport>,
    /// Why the carry could not run at all (nothing was carried; the rows are in the snapshot).
    pub failed: Option<String>,
    /// How long it took.
    pub took: Duration,
}

/// What became of one table's hand rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableReport {
    /// The table, schema-qualified unless in `public`.
    pub table: String,
    /// Rows copied into the new database.
    pub carried: u64,
    /// Hand rows whose key the new database already held (they stay as it made them).
    pub matched: u64,
    /// Rows left behind, by reason.
    pub left: BTreeMap<String, u64>,
    /// Columns of the old table the new one lacks, with how many hand rows had a value there.
    pub dropped: Vec<(String, u64)>,
}

impl TableReport {
    /// The rows left behind.
    pub fn left_rows(&self) -> u64 {
        self.left.values().sum()
    }
}

impl Report {
    /// Rows carried in all.
    pub fn carried(&self) -> u64 {
        self.tables.iter().map(|t| t.carried).sum()
    }

    /// Rows left behind in all.
    pub fn left(&self) -> u64 {
        self.tables.iter().map(TableReport::left_rows).sum()
    }

    /// The table's report, if it had hand rows.
    pub fn table(&self, name: &str) -> Option<&TableReport> {
        self.tables.iter().find(|t| t.table == name)
    }
}

impl fmt::Display for Report {
    /// `carried 1,204 rows of 6 tables; left 3 rows of activities (column "kind": NOT NULL,
    /// no default)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.failed {
            return write!(f, "carried no rows ({why})");
        }
        let carried = self.carried();
        let tables = self.tables.iter().filter(|t| t.carried > 0).count();
        if carried == 0 {
            write!(f, "no rows to carry")?;
        } else {
            write!(
                f,
                "carried {} row{} of {tables} table{}",
                thousands(carried),
                plural(carried),
                plural(tables as u64)
            )?;
        }
        for t in &self.tables {
            if t.matched > 0 {
                write!(
                    f,
                    "; {} row{} of {} already there by key (kept as the files made {})",
                    thousands(t.matched),
                    plural(t.matched),
                    t.table,
                    if t.matched == 1 { "it" } else { "them" }
                )?;
            }
            for (why, rows) in &t.left {
                write!(
                    f,
                    "; left {} row{} of {} ({why})",
                    thousands(*rows),
                    plural(*rows),
                    t.table
                )?;
            }
            for (column, values) in &t.dropped {
                write!(
                    f,
                    "; left {} value{} of {}.{column} (no such column now)",
                    thousands(*values),
                    plural(*values),
                    t.table
                )?;
            }
        }
        Ok(())
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `1204` as `1,204`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Progress of a carry: the table being streamed and its rows so far.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    /// The table.
    pub table: &'a str,
    /// Rows streamed so far.
    pub rows: u64,
    /// Since the carry began.
    pub elapsed: Duration,
}

/// Called during a carry at most every 100 ms while a table streams.
#[derive(Clone)]
pub struct OnProgress(pub std::sync::Arc<dyn Fn(&Progress<'_>) + Send + Sync>);

impl fmt::Debug for OnProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnProgress")
    }
}

/// Copies the hand rows of the database `source` is connected to into the one `dest` is
/// connected to. `old_seeded` and `new_seeded` are the two databases' build boundaries
/// ([`crate::db::Marks::seeded`]; without one every row of the old database counts as a hand
/// row). Never fails: what went wrong is in the report, and `dest` is as it was then.
pub async fn carry(
    source: &Client,
    dest: &Client,
    prepared: Prepared,
    old_seeded: Option<u64>,
    new_seeded: u64,
    progress: Option<&OnProgress>,
) -> Report {
    let started = Instant::now();
    let _ = source
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await;
    let mut run = Run {
        source,
        dest,
        old_seed: seed_test(old_seeded),
        new_seed: seed_test(Some(new_seeded)),
        progress,
        started,
        replica: false,
    };
    let result = match prepared.0 {
        Ok(new) => run.all(new).await,
        Err(e) => Err(e),
    };
    let _ = source.batch_execute("COMMIT").await;
    match result {
        Ok(tables) => {
            if dest.batch_execute("COMMIT").await.is_err() {
                return Report {
                    failed: Some("the new database refused the carried rows".into()),
                    took: started.elapsed(),
                    ..Report::default()
                };
            }
            Report {
                tables,
                failed: None,
                took: started.elapsed(),
            }
        }
        Err(e) => {
            let _ = dest.batch_execute("ROLLBACK").await;
            Report {
                failed: Some(error_text(&e)),
                took: started.elapsed(),
                ..Report::default()
            }
        }
    }
}

/// The new database's side of a carry, read before the old one is closed ([`prepare`]).
#[derive(Debug)]
pub struct Prepared(Result<Catalog, tokio_postgres::Error>);

/// Readies `dest`, the session on the new database a carry will copy into, and reads its
/// catalog: nothing but the carry writes there, so this can run before the swap closes the
/// old database, meanwhile.
pub async fn prepare(dest: &Client) -> Prepared {
    Prepared(match dest.batch_execute(SETTINGS).await {
        Ok(()) => Catalog::read(dest, true).await,
        Err(e) => Err(e),
    })
}

/// Readies a session on the database a carry will copy from, while it is still open and the
/// new one loads: a new session's first catalog reads fill its caches, which then are warm
/// when the carry reads the catalog again, once the database is closed.
pub async fn warm_up(source: &Client) {
    let _ = source.batch_execute(SETTINGS).await;
    let _ = Catalog::read(source, false).await;
}

/// The SQL test "this row was made by the build" for a boundary: its `xmin` precedes the
/// boundary, in the 32-bit modular order transaction ids follow.
fn seed_test(seeded: Option<u64>) -> String {
    match seeded {
        Some(b) => format!(
            "(((({b}::bigint - xmin::text::bigint) % 4294967296) + 4294967296) % 4294967296 < 2147483648)",
            b = b % 4_294_967_296
        ),
        None => "false".into(),
    }
}

fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    }
}

/// Session settings that make both sides' text forms of a value the same.
const SETTINGS: &str = "SET datestyle = 'ISO, MDY'; SET intervalstyle = 'postgres'; \
     SET timezone = 'UTC'; SET extra_float_digits = 3; SET bytea_output = 'hex'; \
     SET statement_timeout = 0; SET lock_timeout = 0; SET search_path = ''";

#[derive(Debug, Clone)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "pg_attribute's flags, read as they are"
)]
struct Column {
    name: String,
    /// The type without its modifier (casts to it, then assignment applies the modifier).
    base: String,
    builtin: bool,
    not_null: bool,
    has_default: bool,
    identity: String,
    generated: bool,
}

#[derive(Debug, Clone)]
struct Table {
    oid: u32,
    schema: String,
    name: String,
    partitioned: bool,
    columns: Vec<Column>,
}

impl Table {
    fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// `FROM` target: the table alone, or a partitioned table with its partitions.
    fn from(&self) -> String {
        if self.partitioned {
            self.qualified()
        } else {
            format!("ONLY {}", self.qualified())
        }
    }

    fn display(&self) -> String {
        if self.schema == "public" {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        }
    }

    fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone)]
struct ForeignKey {
    name: String,
    child: u32,
    columns: Vec<String>,
    parent: u32,
    referenced: Vec<String>,
}

#[derive(Debug, Default)]
struct Catalog {
    tables: Vec<Table>,
    /// Unique keys per table, the primary key first.
    keys: HashMap<u32, Vec<Vec<String>>>,
    fks: Vec<ForeignKey>,
    /// Owned ascending sequences: (table, column, sequence as regclass text).
    sequences: Vec<(u32, String, String)>,
}

const TABLES: &str = "WITH t AS (SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't' \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
       AND c.relname <> ALL ($1::text[]) \
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                       AND d.objid = c.oid AND d.deptype = 'e')) ";

impl Catalog {
    /// Reads the catalog (its four queries pipelined on the one session); without `full`, only
    /// the tables and their columns (all a carry reads of the old database's catalog).
    async fn read(client: &Client, full: bool) -> Result<Catalog, tokio_postgres::Error> {
        let records: Vec<String> = RECORD_TABLES.iter().map(|s| (*s).to_owned()).collect();
        let columns = format!(
            "{TABLES} SELECT t.oid, t.nspname::text, t.relname::text, t.relkind = 'p', \
               a.attname::text, format_type(a.atttypid, NULL), \
               ty.typnamespace = 'pg_catalog'::regnamespace, a.attnotnull, a.atthasdef, \
               a.attidentity::text, a.attgenerated::text <> '' \
             FROM t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 \
               AND NOT a.attisdropped \
             JOIN pg_type ty ON ty.oid = a.atttypid \
             ORDER BY t.nspname, t.relname, a.attnum"
        );
        let keys = format!(
            "{TABLES} SELECT i.indrelid, ARRAY(SELECT a.attname::text \
               FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
               ORDER BY k.o) \
             FROM pg_index i JOIN t ON t.oid = i.indrelid \
             WHERE i.indisunique AND i.indisvalid AND i.indpred IS NULL \
               AND i.indexprs IS NULL \
             ORDER BY i.indrelid, i.indisprimary DESC, i.indexrelid"
        );
        let fks = format!(
            "{TABLES} SELECT c.conname::text, c.conrelid, c.confrelid, \
               ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o) \
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n \
                     ORDER BY k.o), \
               ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o) \
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n \
                     ORDER BY k.o) \
             FROM pg_constraint c JOIN t ON t.oid = c.conrelid \
             WHERE c.contype = 'f' AND c.conparentid = 0 ORDER BY c.conname"
        );
        let sequences = format!(
            "{TABLES} SELECT d.refobjid, a.attname::text, d.objid::regclass::text \
             FROM pg_depend d JOIN t ON t.oid = d.refobjid \
             JOIN pg_sequence s ON s.seqrelid = d.objid \
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE d.classid = 'pg_class'::regclass \
               AND d.refclassid = 'pg_class'::regclass \
               AND d.deptype IN ('a', 'i') AND s.seqincrement > 0"
        );
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&records];
        let (columns, keys, fks, sequences) = if full {
            tokio::try_join!(
                client.query(&columns, &params),
                client.query(&keys, &params),
                client.query(&fks, &params),
                client.query(&sequences, &params),
            )?
        } else {
            let columns = client.query(&columns, &params).await?;
            (columns, vec![], vec![], vec![])
        };
        let mut catalog = Catalog::default();
        for row in columns {
            let oid: u32 = row.get(0);
            if catalog.tables.last().is_none_or(|t| t.oid != oid) {
                catalog.tables.push(Table {
                    oid,
                    schema: row.get(1),
                    name: row.get(2),
                    partitioned: row.get(3),
                    columns: Vec::new(),
                });
            }
            if let Some(t) = catalog.tables.last_mut() {
                t.columns.push(Column {
                    name: row.get(4),
                    base: row.get(5),
                    builtin: row.get(6),
                    not_null: row.get(7),
                    has_default: row.get(8),
                    identity: row.get(9),
                    generated: row.get(10),
                });
            }
        }
        for row in keys {
            catalog.keys.entry(row.get(0)).or_default().push(row.get(1));
        }
        catalog.fks = fks
            .iter()
            .map(|row| ForeignKey {
                name: row.get(0),
                child: row.get(1),
                parent: row.get(2),
                columns: row.get(3),
                referenced: row.get(4),
            })
            .collect();
        catalog.sequences = sequences
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        Ok(catalog)
    }

    fn by_name(&self, schema: &str, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
    }

    fn by_oid(&self, oid: u32) -> Option<&Table> {
        self.tables.iter().find(|t| t.oid == oid)
    }

    /// The tables in foreign-key order, parents first (a cycle is broken where it closes).
    fn order(&self) -> Vec<&Table> {
        let mut done: HashSet<u32> = HashSet::new();
        let mut out = Vec::new();
        let mut visiting = HashSet::new();
        for t in &self.tables {
            self.visit(t.oid, &mut done, &mut visiting, &mut out);
        }
        out
    }

    fn visit<'a>(
        &'a self,
        oid: u32,
        done: &mut HashSet<u32>,
        visiting: &mut HashSet<u32>,
        out: &mut Vec<&'a Table>,
    ) {
        if done.contains(&oid) || !visiting.insert(oid) {
            return;
        }
        for fk in self
            .fks
            .iter()
            .filter(|f| f.child == oid && f.parent != oid)
        {
            self.visit(fk.parent, done, visiting, out);
        }
        visiting.remove(&oid);
        if done.insert(oid) {
            if let Some(t) = self.by_oid(oid) {
                out.push(t);
            }
        }
    }
}

/// A column both tables have: its staging column `c<i>` and both sides' definitions.
#[derive(Debug)]
struct Common<'a> {
    stage: String,
    new: &'a Column,
    old: &'a Column,
}

impl Common<'_> {
    /// The staged (old text form) value, as the new column's type.
    fn cast(&self, alias: &str) -> String {
        format!("{alias}.{}::{}", self.stage, self.new.base)
    }

    /// `new_alias.column` equal to the staged value: typed when both sides have the same
    /// built-in type (the text form reads back), else by the new value's text form.
    fn equals(&self, new_alias: &str, stage_alias: &str) -> String {
        let column = format!("{new_alias}.{}", quote_ident(&self.new.name));
        if self.same_type() && self.new.builtin {
            format!("{column} = {}", self.cast(stage_alias))
        } else {
            format!("{} = {stage_alias}.{}", text_form(&column), self.stage)
        }
    }

    fn same_type(&self) -> bool {
        self.new.base == self.old.base
    }
}

/// The value's text form (its type's output function), NULL for NULL.
fn text_form(expr: &str) -> String {
    format!("(CASE WHEN {expr} IS NULL THEN NULL ELSE format('%s', {expr}) END)")
}

/// One table's staging tables in the new database's session.
#[derive(Debug)]
struct Staged {
    /// The old rows: `_n`, `_seed`, then the common columns' text forms.
    rows: String,
    /// The staged rows the new table already holds (by a key): `n`, and the row.
    matched: String,
}

impl Staged {
    /// The staged rows to insert: hand rows the new table does not hold.
    fn candidates(&self) -> String {
        format!(
            "NOT s._seed AND NOT EXISTS (SELECT 1 FROM {} m WHERE m.n = s._n)",
            self.matched
        )
    }
}

/// Values' text forms (their types' output functions), `None` for NULL.
type Forms = Vec<Option<String>>;

/// A parent's rows whose referenced key changed: the old text forms of its referenced columns,
/// then the new row's (the seed rows' `uuid_generate_v4()` keys, say, matched by `handle`).
#[derive(Debug, Default)]
struct Map {
    width: usize,
    pairs: Vec<(Forms, Forms)>,
}

impl Map {
    /// A map of `width` columns from `(old, new)` pairs: pairs whose old forms hold a NULL
    /// (they refer to nothing) or repeat an earlier pair's are left out.
    fn new(
        width: usize,
        pairs: impl IntoIterator<Item = (Vec<Option<String>>, Vec<Option<String>>)>,
    ) -> Map {
        let mut seen = HashSet::new();
        let pairs = pairs
            .into_iter()
            .filter(|(old, new)| old != new && old.iter().all(Option::is_some))
            .filter(|(old, _)| seen.insert(old.clone()))
            .collect();
        Map { width, pairs }
    }

    /// The names of its columns where SQL reads it: `o0, .., n0, ..` (old forms, then new).
    fn columns(&self) -> String {
        (0..self.width)
            .map(|k| format!("o{k}"))
            .chain((0..self.width).map(|k| format!("n{k}")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The pairs as a `VALUES` list of `width * 2` text columns.
    fn values(&self) -> String {
        values(self.pairs.iter().map(|(o, n)| o.iter().chain(n)))
    }
}

/// A `VALUES` list of text literals (`NULL` for none), one row per item.
fn values<'a, R, I>(rows: R) -> String
where
    R: IntoIterator<Item = I>,
    I: IntoIterator<Item = &'a Option<String>>,
{
    let rows: Vec<String> = rows
        .into_iter()
        .map(|row| {
            let cells: Vec<String> = row
                .into_iter()
                .map(|v| match v {
                    Some(v) => format!("{}::text", quote_literal(v)),
                    None => "NULL::text".into(),
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    format!("VALUES {}", rows.join(", "))
}

struct Run<'a> {
    source: &'a Client,
    dest: &'a Client,
    old_seed: String,
    new_seed: String,
    progress: Option<&'a OnProgress>,
    started: Instant,
    replica: bool,
}

impl Run<'_> {
    async fn all(&mut self, new: Catalog) -> Result<Vec<TableReport>, tokio_postgres::Error> {
        self.source.batch_execute(SETTINGS).await?;
        let old = Catalog::read(self.source, false).await?;
        // The swap's renames commit with a WAL flush that covers this commit too.
        self.dest
            .batch_execute("BEGIN; SET LOCAL synchronous_commit = off")
            .await?;
        self.replica = self
            .dest
            .batch_execute("SAVEPOINT r; SET LOCAL session_replication_role = replica")
            .await
            .is_ok();
        if !self.replica {
            // Triggers fire: they find their functions on the usual path.
            self.dest
                .batch_execute("ROLLBACK TO SAVEPOINT r; SET LOCAL search_path TO DEFAULT")
                .await?;
        }
        self.dest.batch_execute("RELEASE SAVEPOINT r").await?;
        let mut reports: Vec<TableReport> = Vec::new();
        // Tables the new database no longer has.
        for t in &old.tables {
            if new.by_name(&t.schema, &t.name).is_none() {
                let rows = self.hand_rows(t).await?;
                if rows > 0 {
                    let mut r = TableReport {
                        table: t.display(),
                        ..TableReport::default()
                    };
                    r.left.insert("no table of that name now".into(), rows);
                    reports.push(r);
                }
            }
        }
        let mut maps: HashMap<(u32, Vec<String>), Map> = HashMap::new();
        let mut carried_tables = Vec::new();
        for (i, t) in new.order().into_iter().enumerate() {
            let Some(o) = old.by_name(&t.schema, &t.name) else {
                continue;
            };
            let report = self.table(i, o, t, &new, &mut maps).await?;
            if report.carried > 0 {
                carried_tables.push(t.oid);
            }
            if report.carried > 0
                || report.left_rows() > 0
                || report.matched > 0
                || !report.dropped.is_empty()
            {
                reports.push(report);
            }
        }
        if self.replica && !carried_tables.is_empty() {
            self.check_foreign_keys(&new, &carried_tables, &mut reports)
                .await?;
        }
        self.set_sequences(&new, &carried_tables).await;
        Ok(reports)
    }

    /// The old table's hand rows.
    async fn hand_rows(&self, t: &Table) -> Result<u64, tokio_postgres::Error> {
        let n: i64 = self
            .source
            .query_one(
                &format!(
                    "SELECT count(*) FROM {} WHERE NOT {}",
                    t.from(),
                    self.old_seed
                ),
                &[],
            )
            .await?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Carries one table: stage, map, match, insert.
    async fn table<'c>(
        &self,
        i: usize,
        old: &'c Table,
        new: &'c Table,
        catalog: &'c Catalog,
        maps: &mut HashMap<(u32, Vec<String>), Map>,
    ) -> Result<TableReport, tokio_postgres::Error> {
        let mut report = TableReport {
            table: new.display(),
            dropped: self.dropped_values(old, new).await?,
            ..TableReport::default()
        };
        let common = common_columns(old, new);
        if common.is_empty() {
            let rows = self.hand_rows(old).await?;
            if rows > 0 {
                report
                    .left
                    .insert("no column of the old table is left".into(), rows);
            }
            return Ok(report);
        }
        let keys = usable_keys(catalog, new, &common);
        if self
            .direct(old, new, catalog, &common, maps, &mut report)
            .await?
        {
            return Ok(report);
        }
        tracing::debug!(table = %report.table, "staging the rows");
        let staged = Staged {
            rows: format!("pg_temp._devenv_carry_{i}"),
            matched: format!("pg_temp._devenv_match_{i}"),
        };
        self.stage(&staged, old, &common, &report.table).await?;
        // Foreign keys to parents carried before: their old keys become the new ones.
        let own_fks: Vec<&ForeignKey> = catalog.fks.iter().filter(|f| f.child == new.oid).collect();
        for fk in own_fks.iter().filter(|f| f.parent != new.oid) {
            self.remap(&staged.rows, fk, &common, maps).await?;
        }
        // Rows the new database already holds, by each key whose columns both tables have.
        self.match_rows(new, &keys, &staged).await?;
        self.make_maps(new, catalog, &common, &staged, maps).await?;
        for fk in own_fks.iter().filter(|f| f.parent == new.oid) {
            self.remap(&staged.rows, fk, &common, maps).await?;
        }
        let row = self
            .dest
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE {}), \
                            count(*) FILTER (WHERE NOT s._seed), coalesce(max(s._n), 0) \
                     FROM {} s",
                    staged.candidates(),
                    staged.rows
                ),
                &[],
            )
            .await?;
        let (todo, hand, last): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        let todo = u64::try_from(todo).unwrap_or(0);
        report.matched = u64::try_from(hand).unwrap_or(0).saturating_sub(todo);
        if todo == 0 {
            return Ok(report);
        }
        if let Some(why) = self.none_fit(new, &common, &keys).await? {
            report.left.insert(why, todo);
            return Ok(report);
        }
        let (inserted, failed) = self
            .insert(new, &common, &staged, last, &mut report)
            .await?;
        debug_assert_eq!(inserted + failed, todo);
        report.carried = inserted;
        Ok(report)
    }

    /// The direct way, for a table whose new version holds few rows (the seed's): the new
    /// rows' key values come to this client, the old database matches and maps its rows
    /// against them itself, and the rows it keeps stream straight into the new table, with no
    /// staging. Returns false, having changed nothing, when it does not apply (a changed type
    /// in a key or a foreign key, a big new table or map) or a row did not go in: the staged
    /// way then carries the table and finds which rows did not fit, and why.
    #[allow(
        clippy::too_many_lines,
        reason = "one table's direct carry, step by step as the staged way's"
    )]
    async fn direct(
        &self,
        old: &Table,
        new: &Table,
        catalog: &Catalog,
        common: &[Common<'_>],
        maps: &mut HashMap<(u32, Vec<String>), Map>,
        report: &mut TableReport,
    ) -> Result<bool, tokio_postgres::Error> {
        let keys = &usable_keys(catalog, new, common);
        let find = |name: &String| common.iter().position(|c| c.new.name == *name);
        let own_fks: Vec<(&ForeignKey, Vec<usize>)> = catalog
            .fks
            .iter()
            .filter(|f| f.child == new.oid)
            .filter_map(|f| Some((f, f.columns.iter().map(find).collect::<Option<Vec<_>>>()?)))
            .collect();
        // Matches and maps compare the old values with the new ones as the old type.
        let compared = keys.iter().flatten().copied().chain(
            own_fks
                .iter()
                .flat_map(|(_, cols)| cols.iter().map(|&k| &common[k])),
        );
        if compared.into_iter().any(|c| !c.same_type()) {
            return Ok(false);
        }
        // The old values, as expressions over `o`: the foreign keys' columns through their
        // parents' maps (`m<j>`, joined in `joins`).
        let mut vals: Vec<String> = common
            .iter()
            .map(|c| format!("o.{}", quote_ident(&c.old.name)))
            .collect();
        let mut joins = String::new();
        let join_map = |vals: &mut Vec<String>, joins: &mut String, cols: &[usize], map: &Map| {
            if map.pairs.is_empty() {
                return;
            }
            let j = joins.matches(" LEFT JOIN ").count();
            let on = cols
                .iter()
                .enumerate()
                .map(|(k, &c)| format!("{} = m{j}.o{k}", text_form(&vals[c])))
                .collect::<Vec<_>>()
                .join(" AND ");
            let names = map.columns();
            let _ = write!(joins, " LEFT JOIN ({}) m{j}({names}) ON {on}", map.values());
            for (k, &c) in cols.iter().enumerate() {
                vals[c] = format!(
                    "(CASE WHEN m{j}.o0 IS NULL THEN {} ELSE m{j}.n{k}::{} END)",
                    vals[c], common[c].old.base
                );
            }
        };
        for (fk, cols) in own_fks.iter().filter(|(f, _)| f.parent != new.oid) {
            if let Some(map) = maps.get(&(fk.parent, fk.referenced.clone())) {
                if map.pairs.len() > DIRECT_ROWS || map.width != cols.len() {
                    return Ok(false);
                }
                join_map(&mut vals, &mut joins, cols, map);
            }
        }
        // The new table's rows: the text forms of its keys' columns and of the columns the
        // tables that refer to it refer to.
        let mut wanted: Vec<usize> = keys
            .iter()
            .flatten()
            .filter_map(|c| find(&c.new.name))
            .collect();
        let referring: Vec<&ForeignKey> = catalog
            .fks
            .iter()
            .filter(|f| f.parent == new.oid)
            .filter(|f| !maps.contains_key(&(new.oid, f.referenced.clone())))
            .filter(|f| f.referenced.iter().all(|r| find(r).is_some()))
            .collect();
        wanted.extend(
            referring
                .iter()
                .flat_map(|f| f.referenced.iter().filter_map(find)),
        );
        wanted.sort_unstable();
        wanted.dedup();
        let at = |k: usize| wanted.iter().position(|&w| w == k).unwrap_or(0);
        let rows = self
            .dest
            .query(
                &format!(
                    "SELECT {} FROM {} t LIMIT {}",
                    wanted
                        .iter()
                        .map(|&k| text_form(&format!("t.{}", quote_ident(&common[k].new.name))))
                        .collect::<Vec<_>>()
                        .join(", "),
                    new.from(),
                    DIRECT_ROWS + 1
                ),
                &[],
            )
            .await?;
        if rows.len() > DIRECT_ROWS {
            return Ok(false);
        }
        let news: Vec<Vec<Option<String>>> = rows
            .iter()
            .map(|r| (0..wanted.len()).map(|k| r.get(k)).collect())
            .collect();
        // Per key: `(old values) IN (the new rows' values)`, and the VALUES it reads.
        let equal = |c: &Common<'_>, val: &str, form: &str| {
            if c.new.builtin {
                (val.to_owned(), format!("{form}::{}", c.old.base))
            } else {
                (text_form(val), form.to_owned())
            }
        };
        let key_match = |key: &[&Common<'_>], vals: &[String], extra: &[usize]| {
            let cols: Vec<usize> = key.iter().filter_map(|c| find(&c.new.name)).collect();
            let rows: Vec<Vec<&Option<String>>> = news
                .iter()
                .filter(|r| cols.iter().all(|&c| r[at(c)].is_some()))
                .map(|r| cols.iter().chain(extra).map(|&c| &r[at(c)]).collect())
                .collect();
            if rows.is_empty() {
                return None;
            }
            let names: Vec<String> = (0..cols.len() + extra.len())
                .map(|k| format!("v{k}"))
                .collect();
            let (lhs, rhs): (Vec<String>, Vec<String>) = cols
                .iter()
                .enumerate()
                .map(|(k, &c)| equal(&common[c], &vals[c], &format!("k.v{k}")))
                .unzip();
            Some((
                lhs,
                rhs,
                format!("({}) k({})", values(rows), names.join(", ")),
            ))
        };
        let matched = {
            let tests: Vec<String> = keys
                .iter()
                .filter_map(|key| key_match(key, &vals, &[]))
                .map(|(lhs, rhs, from)| {
                    format!(
                        "({}) IN (SELECT {} FROM {from})",
                        lhs.join(", "),
                        rhs.join(", ")
                    )
                })
                .collect();
            if tests.is_empty() {
                "false".to_owned()
            } else {
                format!("({})", tests.join(" OR "))
            }
        };
        // Maps of this table's changed keys, for the tables that refer to it: each old row
        // matched (first by the first key that matches) to a new row.
        for fk in &referring {
            let map_key = (new.oid, fk.referenced.clone());
            if maps.contains_key(&map_key) {
                continue;
            }
            let refs: Vec<usize> = fk.referenced.iter().filter_map(find).collect();
            let width = refs.len();
            let selects: Vec<String> = keys
                .iter()
                .enumerate()
                .filter_map(|(q, key)| {
                    let (lhs, rhs, from) = key_match(key, &vals, &refs)?;
                    let on = lhs
                        .iter()
                        .zip(&rhs)
                        .map(|(l, r)| format!("{l} = {r}"))
                        .collect::<Vec<_>>()
                        .join(" AND ");
                    let olds = refs.iter().map(|&c| text_form(&vals[c]));
                    let newer = (0..width).map(|k| format!("k.v{}", key.len() + k));
                    Some(format!(
                        "SELECT {q}, o.tableoid::text || o.ctid::text, {} FROM {} o{joins} JOIN {from} ON {on}",
                        olds.chain(newer).collect::<Vec<_>>().join(", "),
                        old.from()
                    ))
                })
                .collect();
            let mut first = HashSet::new();
            let mut pairs = Vec::new();
            if !selects.is_empty() {
                let rows = self
                    .source
                    .query(&format!("{} ORDER BY 1", selects.join(" UNION ALL ")), &[])
                    .await?;
                for row in &rows {
                    if first.insert(row.get::<_, String>(1)) {
                        let forms: Vec<Option<String>> =
                            (0..width * 2).map(|k| row.get(k + 2)).collect();
                        let (o, n) = forms.split_at(width);
                        pairs.push((o.to_vec(), n.to_vec()));
                    }
                }
            }
            maps.insert(map_key, Map::new(width, pairs));
        }
        let hand_test = self.old_seed.replace("xmin", "o.xmin");
        let own_maps: Vec<(&Vec<usize>, &Map)> = own_fks
            .iter()
            .filter(|(f, _)| f.parent == new.oid)
            .filter_map(|(f, cols)| Some((cols, maps.get(&(f.parent, f.referenced.clone()))?)))
            .collect();
        if own_maps
            .iter()
            .any(|(cols, map)| map.pairs.len() > DIRECT_ROWS || map.width != cols.len())
        {
            return Ok(false);
        }
        // The hand rows the new table holds by a key (an index scan of the old table's key
        // when the key's values are the old ones).
        let held = if matched == "false" {
            0
        } else {
            let remapped = keys.iter().flatten().any(|c| {
                find(&c.new.name)
                    .is_some_and(|k| vals[k] != format!("o.{}", quote_ident(&c.old.name)))
            });
            let row = self
                .source
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {} o{} WHERE {matched} AND NOT {hand_test}",
                        old.from(),
                        if remapped { joins.as_str() } else { "" }
                    ),
                    &[],
                )
                .await?;
            u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)
        };
        report.matched = held;
        if let Some(why) = self.none_fit(new, common, keys).await? {
            let hand = self.hand_rows(old).await?;
            if hand > held {
                report.left.insert(why, hand - held);
            }
            return Ok(true);
        }
        // References within the table follow its own map too (after the match, as staged).
        for (cols, map) in own_maps {
            join_map(&mut vals, &mut joins, cols, map);
        }
        // Binary when every column has the same built-in type on both sides (a type of the
        // app's own has another oid in each database, which its binary form names).
        let format = if common.iter().all(|c| c.same_type() && c.new.builtin) {
            " (FORMAT binary)"
        } else {
            ""
        };
        let copy_out = format!(
            "COPY (SELECT {} FROM {} o{joins} WHERE NOT {hand_test} AND NOT {matched}) \
             TO STDOUT{format}",
            vals.join(", "),
            old.from()
        );
        let copy_in = format!(
            "COPY {} ({}) FROM STDIN{format}",
            new.qualified(),
            common
                .iter()
                .map(|c| quote_ident(&c.new.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
        tokio::try_join!(
            self.source.batch_execute("SAVEPOINT d"),
            self.dest.batch_execute("SAVEPOINT d")
        )?;
        match self
            .stream(&copy_out, &copy_in, &report.table, !format.is_empty())
            .await
        {
            Ok(n) => {
                tokio::try_join!(
                    self.source.batch_execute("RELEASE SAVEPOINT d"),
                    self.dest.batch_execute("RELEASE SAVEPOINT d")
                )?;
                report.carried = n;
                tracing::debug!(table = %report.table, rows = n, "carried directly");
                Ok(true)
            }
            Err(e) if e.as_db_error().is_some() => {
                tokio::try_join!(
                    self.source
                        .batch_execute("ROLLBACK TO SAVEPOINT d; RELEASE SAVEPOINT d"),
                    self.dest
                        .batch_execute("ROLLBACK TO SAVEPOINT d; RELEASE SAVEPOINT d")
                )?;
                report.matched = 0;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Why none of a table's rows can go in, if so: a new NOT NULL column without a default,
    /// or no key to match rows by while the new table has rows.
    async fn none_fit(
        &self,
        new: &Table,
        common: &[Common<'_>],
        keys: &[Vec<&Common<'_>>],
    ) -> Result<Option<String>, tokio_postgres::Error> {
        if let Some(c) = new.columns.iter().find(|c| {
            c.not_null
                && !c.has_default
                && c.identity.is_empty()
                && !c.generated
                && !common.iter().any(|k| k.new.name == c.name)
        }) {
            return Ok(Some(format!("column \"{}\": NOT NULL, no default", c.name)));
        }
        if keys.is_empty() {
            let empty: bool = self
                .dest
                .query_one(
                    &format!("SELECT NOT EXISTS (SELECT 1 FROM {})", new.from()),
                    &[],
                )
                .await?
                .get(0);
            if !empty {
                return Ok(Some(
                    "no primary or unique key to match rows by, and the new table has rows".into(),
                ));
            }
        }
        Ok(None)
    }

    /// Notes the staged rows `new` already holds by one of `keys`.
    async fn match_rows(
        &self,
        new: &Table,
        keys: &[Vec<&Common<'_>>],
        staged: &Staged,
    ) -> Result<(), tokio_postgres::Error> {
        for key in keys {
            let on = key
                .iter()
                .map(|c| c.equals("t", "s"))
                .collect::<Vec<_>>()
                .join(" AND ");
            self.dest
                .batch_execute(&format!(
                    "INSERT INTO {} SELECT s._n, t.tableoid, t.ctid FROM {} s \
                     JOIN {} t ON {on} ON CONFLICT DO NOTHING",
                    staged.matched,
                    staged.rows,
                    new.from()
                ))
                .await?;
        }
        Ok(())
    }

    /// The old table's columns the new one lacks, with how many hand rows have a value there.
    async fn dropped_values(
        &self,
        old: &Table,
        new: &Table,
    ) -> Result<Vec<(String, u64)>, tokio_postgres::Error> {
        let dropped: Vec<&Column> = old
            .columns
            .iter()
            .filter(|c| new.column(&c.name).is_none())
            .collect();
        if dropped.is_empty() {
            return Ok(Vec::new());
        }
        let counts = dropped
            .iter()
            .map(|c| format!("count({})", quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ");
        let row = self
            .source
            .query_one(
                &format!(
                    "SELECT {counts} FROM {} WHERE NOT {}",
                    old.from(),
                    self.old_seed
                ),
                &[],
            )
            .await?;
        Ok(dropped
            .iter()
            .enumerate()
            .filter_map(|(k, c)| {
                let n: i64 = row.get(k);
                (n > 0).then(|| (c.name.clone(), u64::try_from(n).unwrap_or(0)))
            })
            .collect())
    }

    /// Makes the staging tables and streams the old table's rows into them.
    async fn stage(
        &self,
        staged: &Staged,
        old: &Table,
        common: &[Common<'_>],
        table: &str,
    ) -> Result<(), tokio_postgres::Error> {
        let stage_columns: Vec<String> = common.iter().map(|c| c.stage.clone()).collect();
        self.dest
            .batch_execute(&format!(
                "CREATE TEMP TABLE {} (_n bigint NOT NULL, _seed boolean NOT NULL, {}) \
                   ON COMMIT DROP; \
                 CREATE TEMP TABLE {} (n bigint PRIMARY KEY, toid oid, tid tid) ON COMMIT DROP",
                staged.rows,
                stage_columns
                    .iter()
                    .map(|c| format!("{c} text"))
                    .collect::<Vec<_>>()
                    .join(", "),
                staged.matched
            ))
            .await?;
        let select = common
            .iter()
            .map(|c| quote_ident(&c.old.name))
            .collect::<Vec<_>>()
            .join(", ");
        self.stream(
            &format!(
                "COPY (SELECT row_number() OVER (), {}, {select} FROM {}) TO STDOUT",
                self.old_seed,
                old.from()
            ),
            &format!(
                "COPY {} (_n, _seed, {}) FROM STDIN",
                staged.rows,
                stage_columns.join(", ")
            ),
            table,
            false,
        )
        .await
        .map(|_| ())
    }

    /// Maps of `new`'s referenced keys (old text form to new), for the tables that refer to it.
    async fn make_maps(
        &self,
        new: &Table,
        catalog: &Catalog,
        common: &[Common<'_>],
        staged: &Staged,
        maps: &mut HashMap<(u32, Vec<String>), Map>,
    ) -> Result<(), tokio_postgres::Error> {
        for fk in catalog.fks.iter().filter(|f| f.parent == new.oid) {
            let map_key = (new.oid, fk.referenced.clone());
            if maps.contains_key(&map_key) {
                continue;
            }
            let Some(cols) = fk
                .referenced
                .iter()
                .map(|r| common.iter().find(|c| c.new.name == *r))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let new_form = |c: &Common<'_>| text_form(&format!("t.{}", quote_ident(&c.new.name)));
            let olds = cols
                .iter()
                .enumerate()
                .map(|(k, c)| format!("s.{} AS o{k}", c.stage));
            let news = cols
                .iter()
                .enumerate()
                .map(|(k, c)| format!("{} AS n{k}", new_form(c)));
            let differs = cols
                .iter()
                .map(|c| format!("s.{} IS DISTINCT FROM {}", c.stage, new_form(c)))
                .collect::<Vec<_>>()
                .join(" OR ");
            let rows = self
                .dest
                .query(
                    &format!(
                        "SELECT {} FROM {} m JOIN {} s ON s._n = m.n \
                         JOIN {} t ON t.tableoid = m.toid AND t.ctid = m.tid WHERE {differs}",
                        olds.chain(news).collect::<Vec<_>>().join(", "),
                        staged.matched,
                        staged.rows,
                        new.from()
                    ),
                    &[],
                )
                .await?;
            let width = cols.len();
            let pairs = rows.iter().map(|row| {
                let forms: Vec<Option<String>> = (0..width * 2).map(|k| row.get(k)).collect();
                let (old, new) = forms.split_at(width);
                (old.to_vec(), new.to_vec())
            });
            maps.insert(map_key, Map::new(width, pairs));
        }
        Ok(())
    }

    /// Inserts the staged candidates `1..=last`, halving a batch that fails under savepoints
    /// down to the rows that do not fit (their reasons go into `report`). Returns the rows
    /// inserted and the rows that failed.
    async fn insert(
        &self,
        new: &Table,
        common: &[Common<'_>],
        staged: &Staged,
        last: i64,
        report: &mut TableReport,
    ) -> Result<(u64, u64), tokio_postgres::Error> {
        let overriding = if common.iter().any(|c| c.new.identity == "a") {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        let insert = format!(
            "INSERT INTO {} ({}){overriding} SELECT {} FROM {} s \
             WHERE {} AND s._n BETWEEN $1 AND $2",
            new.qualified(),
            common
                .iter()
                .map(|c| quote_ident(&c.new.name))
                .collect::<Vec<_>>()
                .join(", "),
            common
                .iter()
                .map(|c| c.cast("s"))
                .collect::<Vec<_>>()
                .join(", "),
            staged.rows,
            staged.candidates()
        );
        let insert = self.dest.prepare(&insert).await?;
        let changed: Vec<&Common<'_>> = common.iter().filter(|c| !c.same_type()).collect();
        let (mut inserted, mut failed) = (0u64, 0u64);
        let mut ranges = vec![(1i64, last)];
        while let Some((lo, hi)) = ranges.pop() {
            self.dest.batch_execute("SAVEPOINT c").await?;
            match self.dest.execute(&insert, &[&lo, &hi]).await {
                Ok(n) => {
                    self.dest.batch_execute("RELEASE SAVEPOINT c").await?;
                    inserted += n;
                }
                Err(e) if e.as_db_error().is_some() => {
                    self.dest
                        .batch_execute("ROLLBACK TO SAVEPOINT c; RELEASE SAVEPOINT c")
                        .await?;
                    if lo == hi {
                        failed += 1;
                        *report.left.entry(reason(&e, &changed)).or_default() += 1;
                    } else {
                        let mid = lo + (hi - lo) / 2;
                        ranges.push((mid + 1, hi));
                        ranges.push((lo, mid));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok((inserted, failed))
    }

    /// Rewrites the staged foreign-key columns of `fk` by the parent's map.
    async fn remap(
        &self,
        stage: &str,
        fk: &ForeignKey,
        common: &[Common<'_>],
        maps: &HashMap<(u32, Vec<String>), Map>,
    ) -> Result<(), tokio_postgres::Error> {
        let Some(map) = maps.get(&(fk.parent, fk.referenced.clone())) else {
            return Ok(());
        };
        let Some(cols) = fk
            .columns
            .iter()
            .map(|f| common.iter().find(|c| c.new.name == *f))
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(());
        };
        if cols.len() != map.width || map.pairs.is_empty() {
            return Ok(());
        }
        let set = cols
            .iter()
            .enumerate()
            .map(|(k, c)| format!("{} = m.n{k}", c.stage))
            .collect::<Vec<_>>()
            .join(", ");
        let on = cols
            .iter()
            .enumerate()
            .map(|(k, c)| format!("s.{} = m.o{k}", c.stage))
            .collect::<Vec<_>>()
            .join(" AND ");
        // One text array per column of the map, old forms then new.
        let arrays: Vec<Vec<Option<String>>> = (0..map.width * 2)
            .map(|k| {
                map.pairs
                    .iter()
                    .map(|(o, n)| {
                        if k < map.width {
                            o[k].clone()
                        } else {
                            n[k - map.width].clone()
                        }
                    })
                    .collect()
            })
            .collect();
        let unnest = (1..=arrays.len())
            .map(|k| format!("${k}::text[]"))
            .collect::<Vec<_>>()
            .join(", ");
        let names = map.columns();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = arrays
            .iter()
            .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        self.dest
            .execute(
                &format!("UPDATE {stage} s SET {set} FROM unnest({unnest}) m({names}) WHERE {on}"),
                &params,
            )
            .await
            .map(|_| ())
    }

    /// Streams `copy_out` on the source into `copy_in` on the new database (`binary`: in
    /// binary form; the server sends a row per message either way). Returns the rows the new
    /// database took.
    async fn stream(
        &self,
        copy_out: &str,
        copy_in: &str,
        table: &str,
        binary: bool,
    ) -> Result<u64, tokio_postgres::Error> {
        let out = self.source.copy_out(copy_out).await?;
        let sink = self.dest.copy_in(copy_in).await?;
        pin_mut!(out);
        pin_mut!(sink);
        let mut rows = 0u64;
        let mut shown = Instant::now();
        while let Some(chunk) = out.next().await {
            let chunk = chunk?;
            rows += if binary {
                1
            } else {
                memchr::memchr_iter(b'\n', &chunk).count() as u64
            };
            sink.feed(chunk).await?;
            if let Some(progress) = self.progress {
                if shown.elapsed() >= Duration::from_millis(100) {
                    shown = Instant::now();
                    (progress.0)(&Progress {
                        table,
                        rows,
                        elapsed: self.started.elapsed(),
                    });
                }
            }
        }
        sink.finish().await
    }

    /// Takes out the carried rows that break a foreign key (checked here, as replica mode
    /// skipped the checks), until none does.
    async fn check_foreign_keys(
        &self,
        new: &Catalog,
        carried: &[u32],
        reports: &mut [TableReport],
    ) -> Result<(), tokio_postgres::Error> {
        for _ in 0..100 {
            let mut removed_any = false;
            for fk in new.fks.iter().filter(|f| carried.contains(&f.child)) {
                let (Some(child), Some(parent)) = (new.by_oid(fk.child), new.by_oid(fk.parent))
                else {
                    continue;
                };
                let set = fk
                    .columns
                    .iter()
                    .map(|c| format!("c.{} IS NOT NULL", quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let refers = fk
                    .columns
                    .iter()
                    .zip(&fk.referenced)
                    .map(|(c, r)| format!("p.{} = c.{}", quote_ident(r), quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let seed = self.new_seed.replace("xmin", "c.xmin");
                let removed: i64 = self
                    .dest
                    .query_one(
                        &format!(
                            "WITH d AS (DELETE FROM {} c WHERE NOT {seed} AND {set} \
                             AND NOT EXISTS (SELECT 1 FROM {} p WHERE {refers}) RETURNING 1) \
                             SELECT count(*) FROM d",
                            child.from(),
                            parent.qualified()
                        ),
                        &[],
                    )
                    .await?
                    .get(0);
                if removed > 0 {
                    removed_any = true;
                    let removed = u64::try_from(removed).unwrap_or(0);
                    if let Some(r) = reports.iter_mut().find(|r| r.table == child.display()) {
                        r.carried = r.carried.saturating_sub(removed);
                        *r.left
                            .entry(format!(
                                "foreign key \"{}\": no row of {} it refers to",
                                fk.name,
                                parent.display()
                            ))
                            .or_default() += removed;
                    }
                }
            }
            if !removed_any {
                break;
            }
        }
        Ok(())
    }

    /// Sets the carried tables' sequences past the highest value now there.
    async fn set_sequences(&self, new: &Catalog, carried: &[u32]) {
        for (oid, column, sequence) in &new.sequences {
            let Some(t) = new.by_oid(*oid).filter(|t| carried.contains(&t.oid)) else {
                continue;
            };
            let sql = format!(
                "SAVEPOINT q; SELECT setval({}::regclass, x.m) FROM \
                 (SELECT max({})::bigint AS m FROM {}) x, {sequence} s \
                 WHERE x.m IS NOT NULL AND x.m > CASE WHEN s.is_called THEN s.last_value \
                 ELSE s.last_value - 1 END",
                quote_literal(sequence),
                quote_ident(column),
                t.from(),
            );
            if self.dest.batch_execute(&sql).await.is_ok() {
                let _ = self.dest.batch_execute("RELEASE SAVEPOINT q").await;
            } else {
                let _ = self
                    .dest
                    .batch_execute("ROLLBACK TO SAVEPOINT q; RELEASE SAVEPOINT q")
                    .await;
            }
        }
    }
}

/// The columns both tables have (generated ones of the new table left out: they make their
/// own values), each with its staging column.
fn common_columns<'c>(old: &'c Table, new: &'c Table) -> Vec<Common<'c>> {
    new.columns
        .iter()
        .filter(|c| !c.generated)
        .filter_map(|c| old.column(&c.name).map(|o| (c, o)))
        .enumerate()
        .map(|(k, (c, o))| Common {
            stage: format!("c{k}"),
            new: c,
            old: o,
        })
        .collect()
}

/// `new`'s unique keys (primary first) whose columns both tables have.
fn usable_keys<'a, 'c>(
    catalog: &Catalog,
    new: &Table,
    common: &'a [Common<'c>],
) -> Vec<Vec<&'a Common<'c>>> {
    catalog
        .keys
        .get(&new.oid)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|key| {
            key.iter()
                .map(|k| common.iter().find(|c| c.new.name == *k))
                .collect::<Option<Vec<_>>>()
        })
        .collect()
}

/// Why one row did not go in, as the report says it.
fn reason(e: &tokio_postgres::Error, changed: &[&Common<'_>]) -> String {
    let Some(db) = e.as_db_error() else {
        return e.to_string();
    };
    let code = db.code().code();
    match code {
        "23502" => match db.column() {
            Some(c) => format!("column \"{c}\": NOT NULL"),
            None => db.message().to_owned(),
        },
        "23514" | "23503" | "23P01" | "23505" => match db.constraint() {
            Some(c) if code == "23503" => format!("foreign key \"{c}\""),
            Some(c) if code == "23505" => {
                format!("unique key \"{c}\": another row holds its value")
            }
            Some(c) if code == "23514" => format!("check \"{c}\""),
            _ => db.message().to_owned(),
        },
        _ if code.starts_with("22") && changed.len() == 1 => format!(
            "column \"{}\": {} to {}: {}",
            changed[0].new.name,
            changed[0].old.base,
            changed[0].new.base,
            db.message()
        ),
        _ => db.message().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn the_report_reads_as_one_line() {
        let mut t = TableReport {
            table: "activities".into(),
            carried: 1204,
            ..TableReport::default()
        };
        t.left
            .insert("column \"kind\": NOT NULL, no default".into(), 3);
        let r = Report {
            tables: vec![
                t,
                TableReport {
                    table: "users".into(),
                    carried: 1,
                    ..TableReport::default()
                },
            ],
            ..Report::default()
        };
        assert_eq!(
            r.to_string(),
            "carried 1,205 rows of 2 tables; left 3 rows of activities (column \"kind\": NOT NULL, no default)"
        );
        assert_eq!(Report::default().to_string(), "no rows to carry");
    }

    #[test]
    fn seed_rows_are_those_before_the_boundary_modulo_wraparound() {
        assert_eq!(seed_test(None), "false");
        assert!(seed_test(Some(4_294_967_296 + 10)).contains("(10::bigint"));
    }
}
