//! `devenv db ...`: the jobs of the seed projects' `bin/db-*` scripts, against the local
//! environment (the running `devenv up`) by default, or `--target prod`
//! (`PROD_CONNECTION_URL`) or `--url URL`.
//!
//! Guards: a command that destroys or rewrites data on a non-local target asks the user to type
//! the database name, or takes `--yes`; without a terminal and without `--yes` it refuses.
//! `--target prod` always counts as non-local, whatever its host. Passwords are masked in
//! everything printed.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use devenv_core::project::StateFiles;
use devenv_core::rebuild::{RebuildError, Rebuilder};
use devenv_core::{db, Config};
use devenv_server::{mask_url, Server};
use devenv_sql::{stderr_events, Loader};

use crate::Failure;

/// Where a `db` command goes.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// A named target: `prod` reads PROD_CONNECTION_URL.
    #[arg(long, value_enum, conflicts_with = "url")]
    pub target: Option<NamedTarget>,
    /// A PostgreSQL URL to use instead of the local environment.
    #[arg(long, env = "DEVENV_DB_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// Skip the confirmation of destructive commands on non-local targets.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Named targets.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NamedTarget {
    /// PROD_CONNECTION_URL.
    Prod,
}

/// `devenv db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the database (db-create).
    Create(TargetArgs),
    /// Drop the database, ending its other sessions first (db-drop).
    Drop(TargetArgs),
    /// Load the schema files into the database (db-schema-load).
    SchemaLoad(TargetArgs),
    /// Load the seed files into the database (db-seed).
    Seed(TargetArgs),
    /// Drop, create, load schema and seed (db-setup). Locally through build-then-swap: a
    /// broken file keeps the working database.
    Setup(TargetArgs),
    /// Same as `setup`.
    Reset(TargetArgs),
    /// Open psql on the database (db-connect): psql on PATH, else `docker exec -it` into the
    /// container.
    Connect(TargetArgs),
    /// List the server's sessions (db-sessions).
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
    /// The database the URL names.
    pub database: String,
    /// The URL, for psql.
    pub url: String,
    /// Whether it is the local environment (or a loopback `--url`).
    pub local: bool,
    /// The container of the local environment, if any.
    pub container: Option<String>,
    /// How to name it to the user (masked).
    pub label: String,
}

/// A PostgreSQL URL's server and database (the user's name when it names none).
pub(crate) fn parse_url(url: &str) -> Result<(Server, String), Failure> {
    let parsed: tokio_postgres::Config = url.parse().map_err(|e| Failure {
        code: 2,
        message: format!("not a PostgreSQL URL ({}): {e}", mask_url(url)),
    })?;
    let host = match parsed.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "127.0.0.1".into(),
    };
    let user = parsed.get_user().unwrap_or("postgres").to_owned();
    let database = parsed.get_dbname().unwrap_or(&user).to_owned();
    Ok((
        Server {
            host,
            port: parsed.get_ports().first().copied().unwrap_or(5432),
            user,
            password: String::from_utf8_lossy(parsed.get_password().unwrap_or_default())
                .into_owned(),
        },
        database,
    ))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.starts_with('/')
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Resolves `--target` / `--url` / the local environment.
pub fn resolve(root: &Path, args: &TargetArgs) -> Result<Resolved, Failure> {
    if let Some(NamedTarget::Prod) = args.target {
        let url = std::env::var("PROD_CONNECTION_URL").map_err(|_| Failure {
            code: 2,
            message: "--target prod needs PROD_CONNECTION_URL set".into(),
        })?;
        let (server, database) = parse_url(&url)?;
        return Ok(Resolved {
            server,
            database,
            label: format!("prod ({})", mask_url(&url)),
            url,
            local: false,
            container: None,
        });
    }
    if let Some(url) = &args.url {
        let (server, database) = parse_url(url)?;
        return Ok(Resolved {
            local: is_loopback(&server.host),
            server,
            database,
            label: mask_url(url),
            url: url.clone(),
            container: None,
        });
    }
    let state = StateFiles::new(root).read()?.ok_or_else(|| {
        Failure::other(
            "no local environment runs for this project: start one with `devenv up`, or pass --url URL or --target prod",
        )
    })?;
    let url = state
        .env
        .iter()
        .find(|(k, _)| k == "CONNECTION_URL")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| {
            Failure::other("the state file has no CONNECTION_URL; restart `devenv up`")
        })?;
    let (server, database) = parse_url(&url)?;
    Ok(Resolved {
        server,
        database,
        label: format!("local ({})", mask_url(&url)),
        url,
        local: state.backend != devenv_core::Backend::External,
        container: state.container_id,
    })
}

/// Asks for confirmation of a destructive command on a non-local target.
fn guard(target: &Resolved, what: &str, yes: bool) -> Result<(), Failure> {
    if target.local {
        return Ok(());
    }
    let action = format!(
        "{what} database \"{}\" on {}",
        target.database, target.label
    );
    crate::guard::confirm(
        crate::guard::Danger {
            action: &action,
            name: &target.database,
            noun: "database name",
        },
        yes,
    )
}

fn loader(root: &Path, target: &Resolved, verbose: bool) -> Loader {
    Loader::new(target.server.config("postgres"), root).events(stderr_events(verbose))
}

async fn load(
    root: &Path,
    target: &Resolved,
    files: &[PathBuf],
    verbose: bool,
) -> Result<(), Failure> {
    let summary = loader(root, target, verbose)
        .load_files(&target.database, files)
        .await?;
    eprintln!(
        "devenv: loaded {} into \"{}\" on {} ({} statements) in {} ms",
        files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        target.database,
        target.label,
        summary.statements,
        summary.elapsed.as_millis()
    );
    Ok(())
}

/// Runs a `db` subcommand.
pub async fn run(root: &Path, command: DbCommand, verbose: bool) -> Result<(), Failure> {
    let config = Config::load(root)?;
    match command {
        DbCommand::Create(args) => {
            let t = resolve(root, &args)?;
            let admin = db::admin(&t.server).await?;
            if db::exists(&admin, &t.database).await? {
                eprintln!(
                    "devenv: database \"{}\" already exists on {}",
                    t.database, t.label
                );
            } else {
                db::create(&admin, &t.database).await?;
                eprintln!("devenv: created database \"{}\" on {}", t.database, t.label);
            }
        }
        DbCommand::Drop(args) => {
            let t = resolve(root, &args)?;
            guard(&t, "drop", args.yes)?;
            let admin = db::admin(&t.server).await?;
            db::drop_if_exists(&admin, &t.database).await?;
            eprintln!("devenv: dropped database \"{}\" on {}", t.database, t.label);
        }
        DbCommand::SchemaLoad(args) => {
            let t = resolve(root, &args)?;
            config.check_files()?;
            guard(&t, "load the schema into", args.yes)?;
            load(root, &t, &config.schema, verbose).await?;
        }
        DbCommand::Seed(args) => {
            let t = resolve(root, &args)?;
            config.check_files()?;
            guard(&t, "load the seed into", args.yes)?;
            load(root, &t, &config.seed, verbose).await?;
        }
        DbCommand::Setup(args) | DbCommand::Reset(args) => {
            let t = resolve(root, &args)?;
            config.check_files()?;
            guard(&t, "drop and rebuild", args.yes)?;
            if t.local {
                let rebuilt = Rebuilder::new(t.server.clone())
                    .rebuild(&loader(root, &t, verbose), &t.database, &config.sql_files())
                    .await
                    .map_err(|e| match e {
                        RebuildError::Load(e) => Failure::from(e),
                        other @ RebuildError::Db { .. } => Failure::other(other),
                    })?;
                eprintln!(
                    "devenv: rebuilt \"{}\" on {} ({} statements) in {} ms",
                    t.database,
                    t.label,
                    rebuilt.summary.statements,
                    rebuilt.total.as_millis()
                );
            } else {
                let admin = db::admin(&t.server).await?;
                db::drop_if_exists(&admin, &t.database).await?;
                db::create(&admin, &t.database).await?;
                load(root, &t, &config.sql_files(), verbose).await?;
            }
        }
        DbCommand::Connect(args) => {
            let t = resolve(root, &args)?;
            connect(&t)?;
        }
        DbCommand::Sessions { target, kill_idle } => {
            let t = resolve(root, &target)?;
            if kill_idle {
                guard(&t, "end idle sessions of", target.yes)?;
            }
            sessions(&t, kill_idle).await?;
        }
    }
    Ok(())
}

fn connect(t: &Resolved) -> Result<(), Failure> {
    let has_psql = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("psql").is_file()));
    let status = if has_psql {
        std::process::Command::new("psql").arg(&t.url).status()
    } else if let Some(container) = &t.container {
        eprintln!("devenv: no psql on PATH; using the container's");
        std::process::Command::new("docker")
            .args([
                "exec",
                "-it",
                container,
                "psql",
                "-U",
                &t.server.user,
                &t.database,
            ])
            .status()
    } else {
        return Err(Failure {
            code: 4,
            message: "no psql on PATH (Debian: `apt-get install postgresql-client`)".into(),
        });
    }?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::other(format!("psql exited with {status}")))
    }
}

async fn sessions(t: &Resolved, kill_idle: bool) -> Result<(), Failure> {
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
    println!(
        "{:>7}  {:<12} {:<20} {:<15} {:<20} state",
        "pid", "user", "database", "client", "application"
    );
    for row in &rows {
        let own: bool = row.get(6);
        println!(
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
        eprintln!("devenv: ended {ended} idle session(s) on {}", t.label);
    }
    Ok(())
}
