//! devenv's marks on the databases it makes, typed and parsed in one place.
//!
//! A mark is a database-level setting in the `devenv.` namespace (`ALTER DATABASE x SET
//! devenv.project = '...'`), stored in `pg_db_role_setting` by the database's oid: marks move
//! with the database through renames, unlike a name, and a user's `COMMENT ON DATABASE` or
//! `GRANT` never touches them. A database without a project mark is not devenv's.
//!
//! [`Marks::write`] replaces the whole set (a field left `None` is reset), so a database
//! never carries a stale mark of what it was before (a ready copy renamed in as the live
//! database is not still "of" its snapshot).

use tokio_postgres::Client;

use crate::error::{db, CoreError};
use devenv_server::{quote_ident, quote_literal};

/// What a database devenv made is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The project's database, under its configured name.
    Live,
    /// An empty database made ahead of the next rebuild.
    Spare,
    /// A database being loaded (a claimed spare, or a new one).
    Building,
    /// A snapshot of the live database.
    Snapshot,
    /// A second copy of a snapshot made ahead, so a restore only renames.
    Ready,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Live => "live",
            Role::Spare => "spare",
            Role::Building => "building",
            Role::Snapshot => "snapshot",
            Role::Ready => "ready",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        [
            Role::Live,
            Role::Spare,
            Role::Building,
            Role::Snapshot,
            Role::Ready,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Who made a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `devenv snapshot save`.
    Manual,
    /// A reload, rebuild or restore replaced the database.
    Automatic,
    /// The database of a git branch that is not checked out (`branches: true`,
    /// [`crate::branch`]): its name is `branch:<branch>`.
    Branch,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Manual => "manual",
            Kind::Automatic => "automatic",
            Kind::Branch => "branch",
        }
    }
}

/// The marks of one database. Every field is optional: what a database carries depends on
/// its role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// The project id.
    pub project: Option<String>,
    /// What it is for.
    pub role: Option<Role>,
    /// The content hash of the files it was built from (live databases).
    pub files: Option<String>,
    /// When it was built, seconds since the epoch (live databases).
    pub built: Option<u64>,
    /// The snapshot's name (snapshots).
    pub snapshot: Option<String>,
    /// Manual or automatic (snapshots).
    pub kind: Option<Kind>,
    /// The full name of the database it is a copy of: the live database (snapshots), the
    /// snapshot database (ready copies).
    pub of: Option<String>,
    /// When it was made, seconds since the epoch (snapshots).
    pub at: Option<u64>,
    /// The transaction id (`txid_current()`, with its epoch) taken once schema, migrations and
    /// seed had loaded: rows whose `xmin` precedes it were made by the build, later ones by
    /// the app or by hand ([`crate::carry`]). Live databases, and snapshots of them.
    pub seeded: Option<u64>,
}

/// The keys, as stored (`devenv.<key>`).
const KEYS: [&str; 9] = [
    "project", "role", "files", "built", "snapshot", "kind", "of", "at", "seeded",
];

impl Marks {
    /// Marks of `role` for `project`.
    pub fn new(project: &str, role: Role) -> Marks {
        Marks {
            project: Some(project.to_owned()),
            role: Some(role),
            ..Marks::default()
        }
    }

    /// Whether the database is `project`'s.
    pub fn is_of(&self, project: &str) -> bool {
        self.project.as_deref() == Some(project)
    }

    /// Whether it is `project`'s database of `role`.
    pub fn is(&self, project: &str, role: Role) -> bool {
        self.is_of(project) && self.role == Some(role)
    }

    /// Whether the database carries any mark at all.
    pub fn any(&self) -> bool {
        *self != Marks::default()
    }

    /// Parses `pg_db_role_setting.setconfig` (`name=value` entries); other settings and
    /// unknown values are ignored.
    pub fn parse(settings: &[String]) -> Marks {
        let mut marks = Marks::default();
        for (key, value) in settings
            .iter()
            .filter_map(|s| s.strip_prefix("devenv.")?.split_once('='))
        {
            let value = value.to_owned();
            match key {
                "project" => marks.project = Some(value),
                "role" => marks.role = Role::parse(&value),
                "files" => marks.files = Some(value),
                "built" => marks.built = value.parse().ok(),
                "snapshot" => marks.snapshot = Some(value),
                "kind" => {
                    marks.kind = match value.as_str() {
                        "manual" => Some(Kind::Manual),
                        "automatic" => Some(Kind::Automatic),
                        "branch" => Some(Kind::Branch),
                        _ => None,
                    }
                }
                "of" => marks.of = Some(value),
                "at" => marks.at = value.parse().ok(),
                "seeded" => marks.seeded = value.parse().ok(),
                _ => {}
            }
        }
        marks
    }

    fn values(&self) -> [Option<String>; 9] {
        [
            self.project.clone(),
            self.role.map(|r| r.as_str().to_owned()),
            self.files.clone(),
            self.built.map(|b| b.to_string()),
            self.snapshot.clone(),
            self.kind.map(|k| k.as_str().to_owned()),
            self.of.clone(),
            self.at.map(|a| a.to_string()),
            self.seeded.map(|x| x.to_string()),
        ]
    }

    /// Makes these the marks of `database` (one round trip; a field left `None` is reset).
    pub async fn write(&self, client: &Client, database: &str) -> Result<(), CoreError> {
        let target = quote_ident(database);
        let sql: String = KEYS
            .iter()
            .zip(self.values())
            .map(|(key, value)| match value {
                Some(value) if !value.is_empty() => format!(
                    "ALTER DATABASE {target} SET devenv.{key} = {};",
                    quote_literal(&value)
                ),
                _ => format!("ALTER DATABASE {target} RESET devenv.{key};"),
            })
            .collect();
        client
            .batch_execute(&sql)
            .await
            .map_err(db("marking", database))
    }

    /// Every database with its marks (default marks for databases devenv did not make).
    pub async fn read_all(client: &Client) -> Result<Vec<(String, Marks)>, CoreError> {
        let rows = client
            .query(
                "SELECT d.datname, coalesce(s.setconfig, '{}') FROM pg_database d \
                 LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0 \
                 ORDER BY d.datname",
                &[],
            )
            .await
            .map_err(db("reading the marks of the databases on", "postgres"))?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), Marks::parse(&row.get::<_, Vec<String>>(1))))
            .collect())
    }

    /// The marks of `database` (`None` when it does not exist).
    pub async fn read(client: &Client, database: &str) -> Result<Option<Marks>, CoreError> {
        let row = client
            .query_opt(
                "SELECT coalesce(s.setconfig, '{}') FROM pg_database d \
                 LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0 \
                 WHERE d.datname = $1",
                &[&database],
            )
            .await
            .map_err(db("reading the marks of", database))?;
        Ok(row.map(|r| Marks::parse(&r.get::<_, Vec<String>>(0))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_keeps_known_marks_and_ignores_the_rest() {
        let settings = [
            "search_path=app, public".to_owned(),
            "devenv.project=abc".to_owned(),
            "devenv.role=snapshot".to_owned(),
            "devenv.kind=manual".to_owned(),
            "devenv.of=a_very_long_name".to_owned(),
            "devenv.at=1700000000".to_owned(),
            "devenv.snapshot=before=migration".to_owned(),
            "devenv.unknown=x".to_owned(),
        ];
        let m = Marks::parse(&settings);
        assert!(m.is("abc", Role::Snapshot));
        assert_eq!(m.kind, Some(Kind::Manual));
        assert_eq!(m.of.as_deref(), Some("a_very_long_name"));
        assert_eq!(m.at, Some(1_700_000_000));
        assert_eq!(m.snapshot.as_deref(), Some("before=migration"));
        assert!(!Marks::parse(&["search_path=x".to_owned()]).any());
    }
}
