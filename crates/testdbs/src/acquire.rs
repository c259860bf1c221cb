//! Getting a test database: what a process knows about each project (its server and current
//! template, resolved once), and the claim or clone of a database for one test.
//!
//! A process resolves each project once (server, bookkeeping, sweep) and hashes its SQL files
//! again only when their size or mtime changed; after that, a test database costs a claim from
//! the pool of ready clones (one `UPDATE ... FOR UPDATE SKIP LOCKED` and a rename, about 1 ms)
//! or, when the pool is empty, an `INSERT` and a `CREATE DATABASE ... TEMPLATE` sent together
//! (about 10 ms), on an admin connection kept between tests. Either way the pool is topped up
//! in the background while the test runs; [`wait_for_top_ups`] waits for that before a process
//! lets go of a database, so it never exits in the middle of a clone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use devenv_core::files::Sources;
use devenv_core::Project;

use crate::error::Error;
use crate::layers::{Base, Recipe};
use crate::registry::Template;
use crate::registry::TestServer;
use crate::server::{self, shared_dir};
use crate::template;

/// What a process knows about one project.
#[derive(Default)]
struct ProjectState {
    server: Option<Arc<TestServer>>,
    resolved: Option<(Sources, Template)>,
    /// The empty template, once resolved.
    empty: Option<Template>,
    /// The templates of the recipes resolved so far (by [`recipe_key`]); cleared with
    /// `resolved`, as the project's variants change with its files.
    recipes: HashMap<Vec<u8>, Template>,
}

type Projects = Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<ProjectState>>>>;

fn project_state(root: &Path) -> Arc<tokio::sync::Mutex<ProjectState>> {
    static PROJECTS: OnceLock<Projects> = OnceLock::new();
    PROJECTS
        .get_or_init(Projects::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(root.to_path_buf())
        .or_default()
        .clone()
}

/// What tells recipes apart in [`ProjectState::recipes`].
fn recipe_key(recipe: &Recipe) -> Vec<u8> {
    let mut key = vec![u8::from(recipe.base == Base::Empty)];
    for layer in &recipe.layers {
        let layer_key = layer.key();
        key.extend_from_slice(&layer_key.len().to_le_bytes());
        key.extend_from_slice(&layer_key);
    }
    key
}

/// The server of the project at `root`, and the template of `recipe` on it. The project's
/// own template is resolved whatever the recipe: its files say when variants are stale, and a
/// broken devenv.yaml is reported the same way by every test.
async fn prepare(root: &Path, recipe: &Recipe) -> Result<(Arc<TestServer>, Template), Error> {
    let state = project_state(root);
    let mut state = state.lock().await;
    let key = recipe_key(recipe);
    let fresh = state
        .resolved
        .as_ref()
        .is_some_and(|(sources, _)| sources.stamp.retake() == sources.stamp);
    if fresh {
        if let (Some(server), Some(template)) = (&state.server, state.recipes.get(&key)) {
            return Ok((server.clone(), template.clone()));
        }
    }
    let project = Project::open(root)?;
    let server = if let Some(server) = &state.server {
        server.clone()
    } else {
        let (server, source) = server::resolve(&project).await?;
        let ctx = TestServer::open(server, source, shared_dir(&project.id)).await?;
        state.server = Some(ctx.clone());
        ctx
    };
    let project_template = if let (Some((_, template)), true) = (&state.resolved, fresh) {
        template.clone()
    } else {
        state.recipes.clear();
        project.config.check_files()?;
        let sources = Sources::read(&project.config)?;
        let template = template::ensure(&server, &project, &sources).await?;
        state.resolved = Some((sources, template.clone()));
        template
    };
    let base = match (recipe.base, &state.empty) {
        (Base::Project, _) => project_template,
        (Base::Empty, Some(empty)) => empty.clone(),
        (Base::Empty, None) => {
            let empty = template::ensure_empty(&server).await?;
            state.empty = Some(empty.clone());
            empty
        }
    };
    let template = if recipe.layers.is_empty() {
        base
    } else {
        template::ensure_variant(&server, &project, &base, &recipe.layers).await?
    };
    state.recipes.insert(key, template.clone());
    Ok((server, template))
}

/// Forgets what the process knew about a project (its server went away, its template was
/// dropped), so the next [`prepare`] resolves it again.
async fn forget(root: &Path, server_too: bool) {
    let state = project_state(root);
    let mut state = state.lock().await;
    state.resolved = None;
    state.empty = None;
    state.recipes.clear();
    if server_too {
        state.server = None;
    }
}

/// Pool top-ups this process started and has not waited for yet.
static TOP_UPS: Mutex<Vec<tokio::task::JoinHandle<()>>> = Mutex::new(Vec::new());

/// Clones the next test's database while this test runs (see [`crate::registry`]).
fn top_up_in_background(ctx: &Arc<TestServer>, template: &Template) {
    let (ctx, template) = (ctx.clone(), template.clone());
    let handle = tokio::spawn(async move {
        // A failure only costs the next test the clone it would have had ready.
        let _ = ctx.top_up(&template).await;
    });
    TOP_UPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(handle);
}

/// Waits for the pool top-ups started so far.
pub async fn wait_for_top_ups() {
    let pending = std::mem::take(
        &mut *TOP_UPS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for handle in pending {
        let _ = handle.await;
    }
}

/// A test database, claimed or cloned for one test.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The server it lives on, as this process uses it.
    pub ctx: Arc<TestServer>,
    /// The template it was cloned from.
    pub template: String,
    /// Its name.
    pub name: String,
}

/// A database of the project at `root` for the test `test`: claimed from the pool or cloned
/// from the template (built if missing). A stopped shared server or a template collected
/// under a long-running process is resolved again, once. Run it on one long-lived runtime:
/// the connections it keeps live there.
pub async fn acquire(
    root: PathBuf,
    test: Option<String>,
    recipe: &Recipe,
) -> Result<Claimed, Error> {
    let name = crate::registry::unique_name(crate::TEST_DB_PREFIX, test.as_deref());
    let mut attempt = 0;
    loop {
        let result = async {
            let (ctx, template) = prepare(&root, recipe).await?;
            let claimed = ctx.claim(&name, &template.name, test.as_deref()).await?;
            let name = if let Some(claimed) = claimed {
                claimed
            } else {
                ctx.create_test_db(&name, &template, test.as_deref())
                    .await?;
                name.clone()
            };
            top_up_in_background(&ctx, &template);
            Ok::<_, Error>(Claimed {
                ctx,
                template: template.name,
                name,
            })
        }
        .await;
        match result {
            Ok(claimed) => return Ok(claimed),
            Err(e) if attempt == 0 && (e.is_unreachable() || e.is_missing_database()) => {
                forget(&root, e.is_unreachable()).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
