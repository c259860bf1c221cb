//! The chores themselves, through `devenv-aws` (built with the `aws` feature only). Humans
//! read stderr ([`Ui`]); `status --json` writes stdout.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use devenv_aws::instance::{Change, Instance, Spec, Transition, Wait};
use devenv_aws::myip::my_ip;
use devenv_aws::rule::{Allowed, Rule};
use devenv_aws::{Aws, AwsError};
use devenv_core::Config;
use devenv_server::Server;

use super::{ProdCommand, Timeout};
use crate::guard::confirm;
use crate::ui::Ui;
use devenv_core::config::ProdSettingsError;

/// How often `--wait` asks: RDS takes minutes to stop, start or create.
const POLL: Duration = Duration::from_secs(10);

/// The port the seeds' rule and instance use when PROD_CONNECTION_URL says none.
const DEFAULT_PORT: u16 = 5432;

/// Runs a chore; settings that need no AWS are checked before connecting.
pub(super) async fn run(config: &Config, command: ProdCommand, ui: &Ui) -> anyhow::Result<()> {
    let connect = || Aws::connect(config.prod.region.as_deref());
    match command {
        ProdCommand::AllowIp { ip, .. } => {
            let rule = config.prod.rule()?.ok_or(ProdSettingsError::NoRule)?;
            allow_ip(config, &connect().await?, rule, ip, ui).await
        }
        ProdCommand::Status { json, ip } => status(config, &connect().await?, json, ip, ui).await,
        ProdCommand::Create { timeout } => {
            let password = master_password()?;
            create(config, &connect().await?, &password, timeout, ui).await
        }
        ProdCommand::Stop { wait, yes, timeout } => {
            let wait = wait.then_some(timeout);
            stop(config, &connect().await?, yes, wait, ui).await
        }
        ProdCommand::Start { wait, timeout } => {
            let wait = wait.then_some(timeout);
            change(config, &connect().await?, Change::Start, wait, ui).await
        }
    }
}

/// The port of PROD_CONNECTION_URL, or the seeds' 5432 when it is not set.
fn prod_port() -> anyhow::Result<u16> {
    match std::env::var("PROD_CONNECTION_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(devenv_core::project::parse_url(&url)?.0.port()),
        _ => Ok(DEFAULT_PORT),
    }
}

/// `--ip`, or the service's answer (said on stderr).
async fn this_ip(config: &Config, ip: Option<Ipv4Addr>, ui: &Ui) -> Result<Ipv4Addr, AwsError> {
    if let Some(ip) = ip {
        return Ok(ip);
    }
    let found = my_ip(&config.prod.ip_service).await?;
    ui.say(format!(
        "this machine's IP is {found} (from {})",
        config.prod.ip_service
    ));
    Ok(found)
}

async fn allow_ip(
    config: &Config,
    aws: &Aws,
    (group, rule): (&str, &str),
    ip: Option<Ipv4Addr>,
    ui: &Ui,
) -> anyhow::Result<()> {
    let port = prod_port()?;
    let ip = this_ip(config, ip, ui).await?;
    match aws.allow(group, rule, ip, port).await? {
        Allowed::Unchanged(_) => ui.result(format!(
            "rule {rule} of {group} already allows {ip}/32 on port {port}; left alone"
        )),
        Allowed::Changed { before, .. } => ui.result(format!(
            "rule {rule} of {group} now allows {ip}/32 on port {port} (was {})",
            before.summary()
        )),
    }
    Ok(())
}

/// Whether the instance's security groups (the configured one, else the instance's own)
/// let `ip` in on `port`.
async fn ip_check(
    config: &Config,
    aws: &Aws,
    instance: &Instance,
    (ip, port): (Option<Ipv4Addr>, u16),
    ui: &Ui,
) -> Result<(Ipv4Addr, Option<Rule>), AwsError> {
    let ip = this_ip(config, ip, ui).await?;
    let groups = match &config.prod.security_group_id {
        Some(group) => vec![group.clone()],
        None => instance.security_groups.clone(),
    };
    for group in &groups {
        if let Some(rule) = aws.allowed_by(group, ip, port).await? {
            return Ok((ip, Some(rule)));
        }
    }
    Ok((ip, None))
}

/// What `status` found.
struct StatusView {
    instance: Instance,
    region: String,
    /// The port checked.
    port: u16,
    /// This IP and the rule that lets it in, or why that could not be told.
    check: Result<(Ipv4Addr, Option<Rule>), AwsError>,
}

async fn status(
    config: &Config,
    aws: &Aws,
    json: bool,
    ip: Option<Ipv4Addr>,
    ui: &Ui,
) -> anyhow::Result<()> {
    let instance = aws.instance(&config.prod.instance).await?;
    let port = match instance.endpoint {
        Some((_, port)) if std::env::var_os("PROD_CONNECTION_URL").is_none() => port,
        _ => prod_port()?,
    };
    // Whether this IP may connect is a detail: a failure to tell is reported, not fatal.
    let check = ip_check(config, aws, &instance, (ip, port), ui).await;
    let view = StatusView {
        instance,
        region: aws.region().to_owned(),
        port,
        check,
    };
    if json {
        crate::output::json(&view.json())
    } else {
        view.print(ui);
        Ok(())
    }
}

impl StatusView {
    fn endpoint(&self) -> Option<String> {
        self.instance
            .endpoint
            .as_ref()
            .map(|(host, port)| format!("{host}:{port}"))
    }

    fn json(&self) -> serde_json::Value {
        let i = &self.instance;
        let (ip, allowed_by, error) = match &self.check {
            Ok((ip, rule)) => (Some(ip.to_string()), Some(rule.as_ref()), None),
            Err(e) => (None, None, Some(e.to_string())),
        };
        serde_json::json!({
            "instance": i.id,
            "region": self.region,
            "engine": i.engine,
            "engine_version": i.engine_version,
            "class": i.class,
            "status": i.status,
            "endpoint": self.endpoint(),
            "security_groups": i.security_groups,
            "ip": ip,
            "port": self.port,
            "ip_allowed": allowed_by.map(|r| r.is_some()),
            "allowed_by": allowed_by.flatten().map(|r| &r.id),
            "ip_error": error,
        })
    }

    fn print(&self, ui: &Ui) {
        let (i, port) = (&self.instance, self.port);
        let allowed = match &self.check {
            Ok((ip, Some(rule))) => format!(
                "{ip} allowed on port {port} by rule {} of {} ({})",
                rule.id,
                rule.group,
                rule.summary()
            ),
            Ok((ip, None)) => {
                format!("{ip} NOT allowed on port {port}: `devenv prod allow-ip` lets it in")
            }
            Err(e) => format!("unknown: {e}"),
        };
        let endpoint = self.endpoint();
        ui.result(format!(
            "RDS instance {} ({})\n  engine      {} {} ({})\n  status      {}\n  \
             endpoint    {}\n  this IP     {allowed}",
            i.id,
            self.region,
            i.engine,
            i.engine_version,
            i.class,
            i.status,
            endpoint.as_deref().unwrap_or("none yet")
        ));
    }
}

/// Polls until `wanted`, with a line on stderr per state change.
async fn wait_for(
    aws: &Aws,
    id: &str,
    wanted: &str,
    timeout: Timeout,
    ui: &Ui,
) -> Result<Instance, AwsError> {
    let start = Instant::now();
    let wait = Wait {
        timeout: Duration::from_secs(timeout.seconds),
        every: POLL,
    };
    aws.wait_for(id, wanted, wait, |i| {
        ui.say(format!(
            "{} is {} ({} s)",
            i.id,
            i.status,
            start.elapsed().as_secs()
        ));
    })
    .await
}

/// The master password for `create`, from the environment only.
fn master_password() -> Result<String, ProdSettingsError> {
    let password = std::env::var(devenv_core::PASSWORD_VAR)
        .ok()
        .filter(|p| !p.is_empty())
        .ok_or(ProdSettingsError::NoPassword)?;
    crate::ui::secret(&password);
    Ok(password)
}

async fn create(
    config: &Config,
    aws: &Aws,
    password: &str,
    timeout: Timeout,
    ui: &Ui,
) -> anyhow::Result<()> {
    let prod = &config.prod;
    // RDS drops old minor versions: ask which it offers, and take the newest of the major.
    let version = aws
        .choose_engine_version(&prod.instance, &prod.engine_version)
        .await?;
    ui.say(if version == prod.engine_version {
        format!("postgres {version}, which RDS offers in {}", aws.region())
    } else {
        format!(
            "postgres {version}: the newest {}.x RDS offers in {} (engine_version: {})",
            prod.engine_version,
            aws.region(),
            prod.engine_version
        )
    });
    let spec = Spec {
        id: &prod.instance,
        class: &prod.instance_class,
        engine_version: &version,
        user: &prod.user,
        password,
        storage_gib: i32::from(prod.allocated_storage),
        database: &config.database,
        port: DEFAULT_PORT,
        security_group: prod.security_group_id.as_deref(),
    };
    ui.say(format!(
        "creating RDS instance {} in {} (postgres {}, {}, {} GiB, user {}, database {}); AWS \
         takes 10 to 15 minutes",
        spec.id,
        aws.region(),
        spec.engine_version,
        spec.class,
        spec.storage_gib,
        spec.user,
        spec.database
    ));
    aws.create_instance(&spec).await?;
    let ready = wait_for(aws, spec.id, "available", timeout, ui).await?;
    let (host, port) = ready
        .endpoint
        .ok_or_else(|| anyhow::anyhow!("{} is available but has no endpoint", ready.id))?;
    let (server, _) = Server::parse(&format!("postgresql://{host}:{port}"), |_| None)?;
    let url = server
        .with_credentials(spec.user, password)
        .masked_url(spec.database);
    ui.result(format!(
        "set PROD_CONNECTION_URL to this, with {}'s value for ****:\n  {url}",
        devenv_core::PASSWORD_VAR
    ));
    Ok(())
}

async fn stop(
    config: &Config,
    aws: &Aws,
    yes: bool,
    wait: Option<Timeout>,
    ui: &Ui,
) -> anyhow::Result<()> {
    let id = &config.prod.instance;
    let current = aws.instance(id).await?;
    // Only a request that would go out is confirmed.
    if !matches!(current.status.as_str(), "stopped" | "stopping") {
        let what = format!(
            "stop RDS instance \"{id}\" ({}, {})",
            aws.region(),
            current.status
        );
        confirm(&what, id, yes)?;
    }
    change(config, aws, Change::Stop, wait, ui).await
}

/// Asks for the stop or start, says what happened, and waits with `wait`.
async fn change(
    config: &Config,
    aws: &Aws,
    change: Change,
    wait: Option<Timeout>,
    ui: &Ui,
) -> anyhow::Result<()> {
    let id = &config.prod.instance;
    let transition = aws.change_instance(id, change).await?;
    report(&transition, change.verb(), wait.is_some(), ui);
    if let Transition::AlreadyThere(_) = transition {
        return Ok(());
    }
    if let Some(timeout) = wait {
        wait_for(aws, id, change.target(), timeout, ui).await?;
    }
    if change == Change::Stop {
        ui.note("AWS starts a stopped instance again by itself after seven days");
    }
    Ok(())
}

/// What a stop or start request did, on stderr.
fn report(transition: &Transition, verb: &str, waiting: bool, ui: &Ui) {
    let i = transition.instance();
    let hint = if waiting {
        ""
    } else {
        "; `devenv prod status` shows where it is, --wait waits"
    };
    ui.result(match transition {
        Transition::AlreadyThere(_) => format!("{} is already {}", i.id, i.status),
        Transition::Underway(_) => format!("{} is already {}, nothing sent{hint}", i.id, i.status),
        Transition::Requested(_) => format!("asked AWS to {verb} {}{hint}", i.id),
    });
}
