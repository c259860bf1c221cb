//! What a test's database holds beyond the project's template: a [`Recipe`] names a base (the
//! project's template, or an empty one) and layers on it (sqlx fixture scripts, a migrator of
//! the test's own). Each distinct recipe is built once into a template of its own, a
//! *variant* named `<base>_fx_<hash12>` ([`crate::template`]), so a test whose
//! `fixtures(...)` ran before costs a clone, not a re-run of its scripts.
//!
//! Variants belong to their base: dropped with it (an SQL change, `devenv test-dbs --prune`),
//! never counted among the kept templates.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use devenv_core::Project;

use crate::error::Error;
use crate::registry::TestServer;

/// The future a [`Layer`] returns.
pub type LayerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// One thing put into a database on top of its base, once per template.
pub trait Layer: Send + Sync {
    /// What tells it from other layers: hashed into the variant's name. Two layers with the
    /// same key must put the same things into a database.
    fn key(&self) -> Vec<u8>;
    /// What it is, for the log and `devenv test-dbs` ("fixture users").
    fn describe(&self) -> String;
    /// Puts it into `database` on `server`'s server (a fresh clone of the base, or of the layers
    /// before it).
    fn apply<'a>(
        &'a self,
        server: &'a TestServer,
        project: &'a Project,
        database: &'a str,
    ) -> LayerFuture<'a>;
}

/// What a test's database is cloned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Base {
    /// The project's template: devenv.yaml's schema, migrations and seed.
    #[default]
    Project,
    /// An empty database (`#[sqlx::test(migrations = false)]`, or a migrator of the test's own).
    Empty,
}

/// A base and the layers on it, in order.
#[derive(Clone, Default)]
pub struct Recipe {
    /// What the layers go on.
    pub base: Base,
    /// What goes on it, in order.
    pub layers: Vec<Arc<dyn Layer>>,
}

impl fmt::Debug for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipe")
            .field("base", &self.base)
            .field(
                "layers",
                &self.layers.iter().map(|l| l.describe()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Recipe {
    /// The project's template as it is: what every test gets by default.
    #[must_use]
    pub fn project() -> Self {
        Recipe::default()
    }

    /// `layer` on top of what is there.
    #[must_use]
    pub fn with(mut self, layer: Arc<dyn Layer>) -> Self {
        self.layers.push(layer);
        self
    }
}

/// An SQL script run on the database as devenv runs SQL files (psql's rules, each statement on
/// its own, the first error reported at its `path:line:col`): a sqlx fixture.
#[derive(Debug, Clone)]
pub struct Script {
    /// Its name in the test's attribute (`users`).
    pub name: String,
    /// Where errors say it is (the file as the test names it).
    pub path: PathBuf,
    /// Its text.
    pub sql: String,
}

impl Layer for Script {
    fn key(&self) -> Vec<u8> {
        let mut key = b"script\0".to_vec();
        key.extend_from_slice(self.sql.as_bytes());
        key
    }

    fn describe(&self) -> String {
        format!("fixture {}", self.path.display())
    }

    fn apply<'a>(
        &'a self,
        server: &'a TestServer,
        project: &'a Project,
        database: &'a str,
    ) -> LayerFuture<'a> {
        Box::pin(async move {
            let loader = devenv_core::files::loader(&project.config, &server.server);
            let step = devenv_sql::Step::text(self.path.clone(), self.sql.clone());
            loader.load_steps(database, &[step]).await?;
            Ok(())
        })
    }
}
