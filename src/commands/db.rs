//! `devenv db ...`: the jobs of the seed projects' `bin/db-*` scripts, against the running
//! `devenv up` (or, when none runs, the server `backend: external` + `url:` name), or
//! `--target prod` (`PROD_CONNECTION_URL`) or `--url URL`.
//!
//! Guards ([`crate::guard`]): on a server devenv does not own, a command that destroys or
//! rewrites data asks first when the server is remote (any host or `hostaddr` not loopback,
//! `--target prod` always) or the database is not devenv's (no devenv mark). Connection strings
//! are parsed, never printed with their password; `connect` hands psql the password through
//! `PGPASSWORD`, not its command line.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use devenv_core::files::{self, Part};
use devenv_core::project::parse_url;
use devenv_core::rebuild::{Rebuilder, Target};
use devenv_core::{db, CoreError, Environment, Project};
use devenv_server::{Record, Server};
use devenv_sql::Loader;

use crate::exit::CliError;
use crate::guard::confirm;
use crate::ui::Ui;

/// Where a `db` command goes.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// A named target: `prod` reads PROD_CONNECTION_URL.
    #[arg(long, value_enum, conflicts_with = "url")]
    pub target: Option<NamedTarget>,
    /// A PostgreSQL URL or conninfo string to use instead of the local environment.
    #[arg(long, env = "DEVENV_DB_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// Skip the confirmation of destructive commands.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Where a loading `db` command goes, and the psql variables its files start with.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Where.
    #[command(flatten)]
    pub target: TargetArgs,
    /// psql variables.
    #[command(flatten)]
    pub vars: crate::vars::SetArgs,
}

/// `db setup` and `db reset` arguments.
#[derive(Debug, Clone, Args)]
pub struct SetupArgs {
    /// Where, and the psql variables.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Carry the rows of the database it replaces that the new one lacks (as `up`'s reload
    /// does by default); devenv's own server only.
    #[arg(long)]
    pub keep_rows: bool,
}

/// Named targets.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NamedTarget {
    /// PROD_CONNECTION_URL.
    Prod,
}

/// `devenv db` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum DbCommand {
    /// Create the database (db-create).
    ///
    /// Example: `devenv db create`
    Create(TargetArgs),
    /// Drop the database, ending its other sessions first (db-drop).
    ///
    /// Example: `devenv db drop --target prod`
    Drop(TargetArgs),
    /// Load the schema files into the database (db-schema-load).
    ///
    /// Example: `devenv db schema-load`
    SchemaLoad(LoadArgs),
    /// Load the seed files into the database (db-seed).
    ///
    /// Example: `devenv db seed`, `devenv db seed --set USER_NAME=app`
    Seed(LoadArgs),
    /// Rebuild the database from schema and seed (db-setup), under a temporary name swapped
    /// in only when everything loaded: a broken file keeps the working database.
    ///
    /// Example: `devenv db setup`, `devenv db setup --keep-rows`,
    /// `devenv db setup --url postgresql://... --yes`
    Setup(SetupArgs),
    /// Same as `setup`.
    ///
    /// Example: `devenv db reset`
    Reset(SetupArgs),
    /// Open psql on the database (db-connect): psql on PATH, else `docker exec -it` into the
    /// container.
    ///
    /// Example: `devenv db connect --target prod`
    Connect(TargetArgs),
    /// List the server's sessions (db-sessions).
    ///
    /// Example: `devenv db sessions --kill-idle`
    Sessions {
        /// Where.
        #[command(flatten)]
        target: TargetArgs,
        /// End idle sessions (other than devenv's own).
        #[arg(long)]
        kill_idle: bool,
    },
}

/// A resolved target.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The server.
    pub server: Server,
    /// The database.
    pub database: String,
    /// Whether the server is devenv's own (a running `up` on docker or native).
    pub owned: bool,
    /// Whether it is on this machine (every host and `hostaddr` loopback or a socket).
    pub local: bool,
    /// The container of the local environment, if any.
    pub container: Option<String>,
    /// The supervisor of devenv's own server, when that is the target.
    pub supervisor: Option<u32>,
    /// How to name it to the user (masked).
    pub label: String,
}

fn from_url(url: &str, label: Option<&str>, default_db: &str) -> anyhow::Result<Resolved> {
    let (server, database) = parse_url(url)?;
    let masked = server.masked_url(database.as_deref().unwrap_or(default_db));
    Ok(Resolved {
        local: server.is_local() && label.is_none(),
        database: database.unwrap_or_else(|| default_db.to_owned()),
        label: label.map_or_else(|| masked.clone(), |l| format!("{l} ({masked})")),
        server,
        owned: false,
        container: None,
        supervisor: None,
    })
}

/// Resolves `--target` / `--url` / the running `up` / `backend: external`.
pub fn resolve(project: &Project, args: &TargetArgs) -> anyhow::Result<Resolved> {
    let config = &project.config;
    if let Some(NamedTarget::Prod) = args.target {
        let url =
            std::env::var("PROD_CONNECTION_URL").map_err(|_| devenv_core::ConfigError::Env {
                name: "PROD_CONNECTION_URL".into(),
                value: String::new(),
                message: "--target prod needs it set".into(),
            })?;
        let mut resolved = from_url(&url, Some("prod"), &config.database)?;
        // Production is checked in full unless the URL (or PGSSLMODE) says otherwise.
        resolved.server = resolved
            .server
            .or_sslmode(devenv_server::SslMode::VerifyFull);
        let masked = resolved.server.masked_url(&resolved.database);
        resolved.label = format!("prod ({masked})");
        return Ok(resolved);
    }
    if let Some(url) = &args.url {
        return from_url(url, None, &config.database);
    }
    let environment = Environment::of(project.clone())?;
    if let (Some(supervisor), Some(server)) = (environment.ready().ok(), environment.server()?) {
        if supervisor.backend() != Some(devenv_server::Backend::External) {
            let container = supervisor.record().and_then(Record::container_id);
            return Ok(Resolved {
                label: format!("local ({})", server.masked_url(&config.database)),
                server,
                database: config.database.clone(),
                owned: true,
                local: true,
                container,
                supervisor: Some(supervisor.pid()),
            });
        }
    }
    if let Some(server) = environment.server_or_configured()? {
        let local = server.is_local();
        return Ok(Resolved {
            label: format!(
                "the external server ({})",
                server.masked_url(&config.database)
            ),
            server,
            database: config.database.clone(),
            owned: false,
            local,
            container: None,
            supervisor: None,
        });
    }
    Err(CoreError::NotRunning.into())
}

/// Guards a destructive `what` on `target`: nothing to ask on devenv's own server; on a
/// remote one always asked, before any connection; on a local one asked when the database
/// exists and is not devenv's (no mark of this project).
async fn guard(target: &Resolved, project: &Project, what: &str, yes: bool) -> anyhow::Result<()> {
    if target.owned {
        return Ok(());
    }
    if target.local {
        let admin = db::admin(&target.server).await?;
        // A database that does not exist has nothing to lose.
        let Some(marks) = db::Marks::read(&admin, &target.database).await? else {
            return Ok(());
        };
        if marks.is_of(&project.id) {
            return Ok(());
        }
    }
    confirm(
        &format!(
            "{what} database \"{}\" on {}",
            target.database, target.label
        ),
        &target.database,
        yes,
    )?;
    Ok(())
}

/// The loader for `project`'s files on `target`: its events (and progress, on a terminal)
/// through the `Ui`, so that they are styled and secrets masked.
fn loader(project: &Project, target: &Resolved, ui: &'static Ui) -> Loader {
    devenv_core::files::loader(&project.config, &target.server)
        .events(ui.sql_events())
        .progress(true)
}

async fn load(
    project: &Project,
    target: &Resolved,
    part: Part,
    ui: &'static Ui,
) -> anyhow::Result<()> {
    // Onto the database as it is: the migrations it recorded are not run again.
    let client = db::connect(&target.server, &target.database).await?;
    let steps = files::steps_onto(&project.config, part, &client, &target.database).await?;
    drop(client);
    if steps.is_empty() {
        ui.result(format!(
            "nothing to load into \"{}\" on {}: its migrations are all recorded there",
            target.database, target.label
        ));
        return Ok(());
    }
    let names = steps
        .iter()
        .map(|s| s.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    ui.loading(format!("loading {names}"));
    let loaded = loader(project, target, ui)
        .load_steps(&target.database, &steps)
        .await;
    ui.done();
    let summary = loaded?;
    ui.result(format!(
        "loaded {names} into \"{}\" on {} ({} statements) in {} ms",
        target.database,
        target.label,
        summary.statements,
        summary.elapsed.as_millis()
    ));
    Ok(())
}

/// Runs a `db` subcommand.
pub async fn run(root: &Path, command: DbCommand, ui: &'static Ui) -> anyhow::Result<()> {
    let mut project = Project::open(root)?;
    crate::ui::secret(&project.config.password);
    if let DbCommand::SchemaLoad(args)
    | DbCommand::Seed(args)
    | DbCommand::Setup(SetupArgs { load: args, .. })
    | DbCommand::Reset(SetupArgs { load: args, .. }) = &command
    {
        crate::vars::apply(&mut project.config.vars, &args.vars.set);
    }
    match command {
        DbCommand::Create(args) => {
            let t = resolve(&project, &args)?;
            let admin = db::admin(&t.server).await?;
            if db::exists(&admin, &t.database).await? {
                ui.result(format!(
                    "database \"{}\" already exists on {}",
                    t.database, t.label
                ));
            } else {
                db::create(&admin, &t.database).await?;
                db::Marks {
                    project: Some(project.id.clone()),
                    ..db::Marks::default()
                }
                .write(&admin, &t.database)
                .await?;
                ui.result(format!(
                    "created database \"{}\" on {}",
                    t.database, t.label
                ));
            }
        }
        DbCommand::Drop(args) => {
            let t = resolve(&project, &args)?;
            guard(&t, &project, "drop", args.yes).await?;
            let admin = db::admin(&t.server).await?;
            db::drop_if_exists(&admin, &t.database).await?;
            ui.result(format!(
                "dropped database \"{}\" on {}",
                t.database, t.label
            ));
        }
        DbCommand::SchemaLoad(LoadArgs { target: args, .. }) => {
            let t = resolve(&project, &args)?;
            project.config.check_files()?;
            guard(&t, &project, "load the schema into", args.yes).await?;
            load(&project, &t, Part::Schema, ui).await?;
        }
        DbCommand::Seed(LoadArgs { target: args, .. }) => {
            let t = resolve(&project, &args)?;
            project.config.check_files()?;
            guard(&t, &project, "load the seed into", args.yes).await?;
            load(&project, &t, Part::Seed, ui).await?;
        }
        DbCommand::Setup(SetupArgs {
            load: LoadArgs { target: args, .. },
            keep_rows,
        })
        | DbCommand::Reset(SetupArgs {
            load: LoadArgs { target: args, .. },
            keep_rows,
        }) => setup(&project, &args, keep_rows, ui).await?,
        DbCommand::Connect(args) => {
            let t = resolve(&project, &args)?;
            connect(&t)?;
        }
        DbCommand::Sessions { target, kill_idle } => {
            let t = resolve(&project, &target)?;
            if kill_idle && !t.owned {
                confirm(
                    &format!("end idle sessions on {}", t.label),
                    &t.database,
                    target.yes,
                )?;
            }
            sessions(&t, kill_idle, ui).await?;
        }
    }
    Ok(())
}

/// `db setup`: build-then-swap on every target. On devenv's own server the database it
/// replaces is kept as an automatic snapshot; elsewhere it is dropped once the new one is in.
async fn setup(
    project: &Project,
    args: &TargetArgs,
    keep_rows: bool,
    ui: &'static Ui,
) -> anyhow::Result<()> {
    let t = resolve(project, args)?;
    if keep_rows && !t.owned {
        return Err(CliError::Refused {
            what: format!("keep the rows of \"{}\" on {}", t.database, t.label),
            why: "--keep-rows carries rows on devenv's own server only (a running `devenv up`); \
                  leave it out to rebuild from the files"
                .into(),
        }
        .into());
    }
    project.config.check_files()?;
    guard(&t, project, "drop and rebuild", args.yes).await?;
    let sources = devenv_core::files::Sources::read(&project.config)?;
    let target = Target {
        live: &t.database,
        project: &project.id,
        files_hash: &sources.digest,
        // Asked for explicitly and confirmed by the guard.
        replace_unmarked: true,
        keep_replaced: t.owned,
        carry: keep_rows,
    };
    let mut rebuilder = Rebuilder::new(t.server.clone()).one_shot();
    ui.loading(format!("rebuilding \"{}\"", t.database));
    let rebuilt = rebuilder
        .rebuild(
            &loader(project, &t, ui),
            &target,
            &files::steps(&project.config, Part::All)?,
        )
        .await;
    ui.done();
    let rebuilt = rebuilt?;
    match t.supervisor {
        // The supervisor prunes, makes the spare and ready copies in its own time.
        Some(pid) => {
            devenv_server::process::signal(pid, nix::sys::signal::Signal::SIGUSR2);
        }
        None => rebuilder.drop_spare(&t.database).await,
    }
    ui.result(format!(
        "rebuilt \"{}\" on {} ({} statements) in {} ms{}",
        t.database,
        t.label,
        rebuilt.summary.statements,
        rebuilt.total.as_millis(),
        rebuilt
            .carried
            .as_ref()
            .map(|c| format!("; {c}"))
            .unwrap_or_default()
            + &match (&rebuilt.kept, t.owned) {
                (Some(kept), true) => format!("; the database it replaced is snapshot {kept}"),
                _ => String::new(),
            }
    ));
    Ok(())
}

fn connect(t: &Resolved) -> anyhow::Result<()> {
    let has_psql = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("psql").is_file()));
    // The password goes through the environment, never the command line (`ps` shows that).
    let url = t.server.url_without_password(&t.database);
    let status = if has_psql {
        let mut psql = std::process::Command::new("psql");
        psql.arg(&url).env("PGPASSWORD", t.server.password());
        // psql cannot know the RDS bundle devenv checks RDS hosts against: it gets a copy.
        if t.server
            .tls()
            .uses_rds_bundle(&t.server.config(&t.database))
        {
            psql.env("PGSSLROOTCERT", rds_bundle_file()?);
        }
        psql.status()
    } else if let Some(container) = &t.container {
        eprintln!("devenv: no psql on PATH; using the container's");
        std::process::Command::new("docker")
            .args([
                "exec",
                "-it",
                container,
                "psql",
                "-U",
                t.server.user(),
                &t.database,
            ])
            .status()
    } else {
        return Err(CliError::Tool(
            "no psql on PATH (Debian: `apt-get install postgresql-client`)".into(),
        )
        .into());
    }?;
    if status.success() {
        Ok(())
    } else {
        Err(CliError::Tool(format!("psql exited with {status}")).into())
    }
}

/// The RDS bundle devenv ships, as a file psql can read (`~/.cache/devenv/`, rewritten when it
/// differs).
fn rds_bundle_file() -> anyhow::Result<PathBuf> {
    let dir = devenv_server::native::default_cache_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("rds-global-bundle.pem");
    let bundle = devenv_server::tls::rds::BUNDLE_PEM;
    if std::fs::read_to_string(&path).ok().as_deref() != Some(bundle) {
        std::fs::write(&path, bundle)?;
    }
    Ok(path)
}

async fn sessions(t: &Resolved, kill_idle: bool, ui: &Ui) -> anyhow::Result<()> {
    let admin = db::admin(&t.server).await?;
    let rows = admin
        .query(
            "SELECT pid, coalesce(usename, ''), coalesce(datname, ''), \
                    coalesce(host(client_addr), 'local'), coalesce(application_name, ''), \
                    coalesce(state, ''), pid = pg_backend_pid() \
             FROM pg_stat_activity WHERE backend_type = 'client backend' ORDER BY pid",
            &[],
        )
        .await?;
    let mut text = format!(
        "{:>7}  {:<12} {:<20} {:<15} {:<20} state\n",
        "pid", "user", "database", "client", "application"
    );
    for row in &rows {
        let own: bool = row.get(6);
        let _ = writeln!(
            text,
            "{:>7}  {:<12} {:<20} {:<15} {:<20} {}{}",
            row.get::<_, i32>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, String>(3),
            row.get::<_, String>(4),
            row.get::<_, String>(5),
            if own { " (this one)" } else { "" }
        );
    }
    crate::output::stdout(&text)?;
    if kill_idle {
        let ended: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE state = 'idle' AND backend_type = 'client backend' \
                 AND pid <> pg_backend_pid() AND application_name <> $1",
                &[&devenv_server::APPLICATION_NAME],
            )
            .await?
            .get(0);
        ui.result(format!("ended {ended} idle session(s) on {}", t.label));
    }
    Ok(())
}
