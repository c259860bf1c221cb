//! Getting a test database: what a process knows about each project (its server and current
//! template, resolved once), and the claim or clone of a database for one test.
//!
//! A process resolves each project once (server, bookkeeping, sweep) and hashes its SQL files
//! again only when their size or mtime changed; what it resolved (the digest with the files'
//! stamp, the templates' names) it leaves in the shared directory ([`KEPT_FILE`]) for the next
//! test process, which trusts it while the stamp holds. After that, a test database costs a claim from
//! the pool of ready clones (one `UPDATE ... FOR UPDATE SKIP LOCKED` and a rename, about 1 ms)
//! or, when the pool is empty, an `INSERT` and a `CREATE DATABASE ... TEMPLATE` sent together
//! (about 10 ms), on an admin connection kept between tests. Either way the pool is topped up
//! in the background while the test runs ([`Claimed::top_up_in_background`], once the test
//! holds its connections); [`wait_for_top_ups`] waits for that before a process lets go of a
//! database, so it never exits in the middle of a clone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use devenv_core::files::Sources;
use devenv_core::Project;

use crate::error::Error;
use crate::layers::{Base, Recipe};
use crate::registry::TestServer;
use crate::registry::{Strategy, Template};
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
    recipes: HashMap<String, Template>,
    /// Whether the shared directory's [`KEPT_FILE`] was looked at (once per process, and never
    /// again after a failure: it may be what misled).
    kept_read: bool,
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

/// What tells recipes apart in [`ProjectState::recipes`]: a SHA-256 of the base and the
/// layers' keys, hex.
fn recipe_key(recipe: &Recipe) -> String {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update([u8::from(recipe.base == Base::Empty)]);
    for layer in &recipe.layers {
        let layer_key = layer.key();
        hash.update(layer_key.len().to_le_bytes());
        hash.update(&layer_key);
    }
    devenv_server::files::hex(&hash.finalize())
}

/// The file in the project's shared directory where a process leaves what it resolved (the
/// SQL files' digest with their stamp, the templates of the recipes it used), so the next test
/// process skips hashing the files and looking the templates up while the stamp holds.
pub const KEPT_FILE: &str = "resolved.json";

/// [`KEPT_FILE`]'s content.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    /// [`config_key`] of the configuration it was resolved under.
    config: String,
    /// The files, their digest and stamp.
    sources: Sources,
    /// The project's template.
    project: KeptTemplate,
    /// The templates of the recipes, by [`recipe_key`].
    recipes: Vec<(String, KeptTemplate)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeptTemplate {
    name: String,
    strategy: Option<String>,
}

impl KeptTemplate {
    fn of(template: &Template) -> Self {
        KeptTemplate {
            name: template.name.clone(),
            strategy: template.strategy.map(|s| s.sql().to_owned()),
        }
    }

    fn template(&self) -> Template {
        Template {
            name: self.name.clone(),
            strategy: self.strategy.as_deref().and_then(Strategy::parse),
        }
    }
}

/// What the files' digest and the templates' names depend on besides the files: the whole
/// configuration (its `Debug`, the password masked: templates are named by user, not
/// password) and the `vars:` values (`Debug` masks the secret ones), hashed.
fn config_key(config: &devenv_core::Config) -> String {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update(format!("{config:?}").as_bytes());
    for (name, var) in config.vars.iter() {
        hash.update(b"\0var\0");
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update((var.value.len() as u64).to_le_bytes());
        hash.update(var.value.as_bytes());
    }
    devenv_server::files::hex(&hash.finalize())
}

/// What another process resolved for `config`, while the files' stamp holds: a changed file
/// (size, mtime), devenv.yaml or migrations directory means hashing again. A template it
/// names that is gone since (collected, pruned, another server) fails the clone as missing,
/// and [`acquire`] resolves again without it.
fn read_kept(dir: &Path, config: &devenv_core::Config) -> Option<Kept> {
    let text = std::fs::read(dir.join(KEPT_FILE)).ok()?;
    let kept: Kept = serde_json::from_slice(&text).ok()?;
    (kept.config == config_key(config) && kept.sources.stamp.retake() == kept.sources.stamp)
        .then_some(kept)
}

/// Leaves what this process resolved for the next one. Best effort: without it, the next
/// process hashes and looks up again.
fn write_kept(dir: &Path, config: &devenv_core::Config, state: &ProjectState) {
    let Some((sources, project)) = &state.resolved else {
        return;
    };
    let kept = Kept {
        config: config_key(config),
        sources: sources.clone(),
        project: KeptTemplate::of(project),
        recipes: state
            .recipes
            .iter()
            .map(|(key, template)| (key.clone(), KeptTemplate::of(template)))
            .collect(),
    };
    if let Ok(json) = serde_json::to_vec(&kept) {
        let _ = devenv_server::files::write_private(&dir.join(KEPT_FILE), &json);
    }
}

/// The server of the project at `root`, and the template of `recipe` on it. The project's
/// own template is resolved whatever the recipe: its files say when variants are stale, and a
/// broken devenv.yaml is reported the same way by every test.
async fn prepare(root: &Path, recipe: &Recipe) -> Result<(Arc<TestServer>, Template), Error> {
    let state = project_state(root);
    let mut state = state.lock().await;
    let key = recipe_key(recipe);
    let is_fresh = |state: &ProjectState| {
        state
            .resolved
            .as_ref()
            .is_some_and(|(sources, _)| sources.stamp.retake() == sources.stamp)
    };
    let fresh = is_fresh(&state);
    if fresh {
        if let (Some(server), Some(template)) = (&state.server, state.recipes.get(&key)) {
            return Ok((server.clone(), template.clone()));
        }
    }
    let project = Project::open(root)?;
    crate::trace::mark("project opened");
    let dir = shared_dir(&project.id);
    let mut fresh = fresh;
    if !state.kept_read && state.resolved.is_none() {
        state.kept_read = true;
        // Unset `vars:` and missing files fail as without it.
        project.config.check_files()?;
        if let Some(kept) = read_kept(&dir, &project.config) {
            state.resolved = Some((kept.sources, kept.project.template()));
            state.recipes = kept
                .recipes
                .iter()
                .map(|(key, template)| (key.clone(), template.template()))
                .collect();
            fresh = true;
            crate::trace::mark("resolution of an earlier process taken");
        }
    }
    let server = if let Some(server) = &state.server {
        server.clone()
    } else {
        let (server, source, first) = server::resolve(&project).await?;
        crate::trace::mark("server resolved");
        let ctx = TestServer::open(server, source, dir.clone(), first).await?;
        crate::trace::mark("server opened");
        state.server = Some(ctx.clone());
        ctx
    };
    if fresh {
        if let Some(template) = state.recipes.get(&key) {
            return Ok((server, template.clone()));
        }
    }
    let project_template = if let (Some((_, template)), true) = (&state.resolved, fresh) {
        template.clone()
    } else {
        state.recipes.clear();
        project.config.check_files()?;
        let sources = Sources::read(&project.config)?;
        crate::trace::mark("sources hashed");
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
    write_kept(&dir, &project.config, &state);
    crate::trace::mark("template resolved");
    Ok((server, template))
}

/// Forgets what the process knew about a project (its server went away, its template was
/// dropped), so the next [`prepare`] resolves it again, without [`KEPT_FILE`].
async fn forget(root: &Path, server_too: bool) {
    let state = project_state(root);
    let mut state = state.lock().await;
    state.resolved = None;
    state.empty = None;
    state.recipes.clear();
    state.kept_read = true;
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
        crate::trace::mark("top-up started");
        let _ = ctx.top_up(&template).await;
        crate::trace::mark("top-up done");
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
    /// The template, to top its pool up.
    from: Template,
}

impl Claimed {
    /// Clones the next test's database into the pool in the background (on the current tokio
    /// runtime: the one [`acquire`] ran on), while this test runs; [`wait_for_top_ups`] waits
    /// for it. [`acquire`] leaves it to the caller, who starts it once the test holds its
    /// connections, so the clone does not compete with the test's logins.
    pub fn top_up_in_background(&self) {
        top_up_in_background(&self.ctx, &self.from);
    }
}

/// A database of the project at `root` for the test `test`: claimed from the pool or cloned
/// from the template (built if missing); the pool's top-up is the caller's
/// ([`Claimed::top_up_in_background`]). A stopped shared server or a template collected
/// under a long-running process is resolved again, once. Run it on one long-lived runtime:
/// the connections it keeps live there.
pub async fn acquire(
    root: PathBuf,
    test: Option<String>,
    recipe: &Recipe,
) -> Result<Claimed, Error> {
    let name = crate::registry::unique_name(crate::TEST_DB_PREFIX, test.as_deref());
    crate::trace::mark("acquire");
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
            crate::trace::mark("claimed or cloned");
            Ok::<_, Error>(Claimed {
                ctx,
                template: template.name.clone(),
                name,
                from: template,
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
