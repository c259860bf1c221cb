//! The chores themselves, through `devenv-aws` (built with the `aws` feature only). Humans
//! read stderr; `status --json` writes stdout.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use devenv_aws::instance::{Instance, Spec, Transition, Wait};
use devenv_aws::myip::my_ip;
use devenv_aws::rule::{Allowed, Rule};
use devenv_aws::{Aws, AwsError};
use devenv_core::{Config, PASSWORD_VAR};
use devenv_server::mask_url;

use super::{rule_settings, ProdCommand, Timeout};
use crate::guard::{confirm, Danger};
use crate::Failure;

/// How often `--wait` asks: RDS takes minutes to stop, start or create.
const POLL: Duration = Duration::from_secs(10);

/// The port the seeds' rule and instance use when PROD_CONNECTION_URL says none.
const DEFAULT_PORT: u16 = 5432;

/// Runs a chore; settings that need no AWS are checked before connecting.
pub(super) async fn run(config: &Config, command: ProdCommand) -> Result<(), Failure> {
    let connect = || Aws::connect(config.prod.region.as_deref());
    match command {
        ProdCommand::AllowIp { ip, .. } => {
            let (group, rule) = rule_settings(&config.prod)?.ok_or_else(|| Failure {
                code: 2,
                message: "`devenv prod allow-ip` needs `security_group_id` and \
                          `security_group_rule_id` under `prod:` in devenv.yaml (or DB_SG_ID \
                          and DB_SG_RULE_ID)"
                    .into(),
            })?;
            allow_ip(config, &connect().await?, (group, rule), ip).await
        }
        ProdCommand::Status { json, ip } => status(config, &connect().await?, json, ip).await,
        ProdCommand::Create { timeout } => {
            let password = master_password()?;
            create(config, &connect().await?, &password, timeout).await
        }
        ProdCommand::Stop { wait, yes, timeout } => {
            stop(config, &connect().await?, yes, wait.then_some(timeout)).await
        }
        ProdCommand::Start { wait, timeout } => {
            start(config, &connect().await?, wait.then_some(timeout)).await
        }
    }
}

/// The port of PROD_CONNECTION_URL, or the seeds' 5432 when it is not set.
fn prod_port() -> Result<u16, Failure> {
    match std::env::var("PROD_CONNECTION_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(crate::dbcmd::parse_url(&url)?.0.port),
        _ => Ok(DEFAULT_PORT),
    }
}

/// `--ip`, or the service's answer (said on stderr).
async fn this_ip(config: &Config, ip: Option<Ipv4Addr>) -> Result<Ipv4Addr, AwsError> {
    if let Some(ip) = ip {
        return Ok(ip);
    }
    let found = my_ip(&config.prod.ip_service).await?;
    eprintln!(
        "devenv: this machine's IP is {found} (from {})",
        config.prod.ip_service
    );
    Ok(found)
}

async fn allow_ip(
    config: &Config,
    aws: &Aws,
    (group, rule): (&str, &str),
    ip: Option<Ipv4Addr>,
) -> Result<(), Failure> {
    let port = prod_port()?;
    let ip = this_ip(config, ip).await?;
    match aws.allow(group, rule, ip, port).await? {
        Allowed::Unchanged(_) => eprintln!(
            "devenv: rule {rule} of {group} already allows {ip}/32 on port {port}; left alone"
        ),
        Allowed::Changed { before, .. } => eprintln!(
            "devenv: rule {rule} of {group} now allows {ip}/32 on port {port} (was {})",
            before.summary()
        ),
    }
    Ok(())
}

/// Whether the instance's security groups (the configured one, else the instance's own)
/// let `ip` in on `port`.
async fn ip_check(
    config: &Config,
    aws: &Aws,
    instance: &Instance,
    ip: Option<Ipv4Addr>,
    port: u16,
) -> Result<(Ipv4Addr, Option<Rule>), AwsError> {
    let ip = this_ip(config, ip).await?;
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
) -> Result<(), Failure> {
    let instance = aws.instance(&config.prod.instance).await?;
    let port = match instance.endpoint {
        Some((_, port)) if std::env::var_os("PROD_CONNECTION_URL").is_none() => port,
        _ => prod_port()?,
    };
    // Whether this IP may connect is a detail: a failure to tell is reported, not fatal.
    let check = ip_check(config, aws, &instance, ip, port).await;
    let view = StatusView {
        instance,
        region: aws.region().to_owned(),
        port,
        check,
    };
    if json {
        println!("{:#}", view.json());
    } else {
        view.print();
    }
    Ok(())
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

    fn print(&self) {
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
        eprintln!("devenv: RDS instance {} ({})", i.id, self.region);
        eprintln!(
            "  engine      {} {} ({})",
            i.engine, i.engine_version, i.class
        );
        eprintln!("  status      {}", i.status);
        eprintln!(
            "  endpoint    {}",
            self.endpoint().as_deref().unwrap_or("none yet")
        );
        eprintln!("  this IP     {allowed}");
    }
}

/// Polls until `wanted`, with a line on stderr per state change.
async fn wait_for(
    aws: &Aws,
    id: &str,
    wanted: &str,
    timeout: Timeout,
) -> Result<Instance, Failure> {
    let start = Instant::now();
    let wait = Wait {
        timeout: Duration::from_secs(timeout.seconds),
        every: POLL,
    };
    Ok(aws
        .wait_for(id, wanted, wait, |i| {
            eprintln!(
                "devenv: {} is {} ({} s)",
                i.id,
                i.status,
                start.elapsed().as_secs()
            );
        })
        .await?)
}

/// The master password for `create`, from the environment only.
fn master_password() -> Result<String, Failure> {
    std::env::var(PASSWORD_VAR)
        .ok()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Failure {
            code: 2,
            message: format!(
                "`devenv prod create` takes the master password from {PASSWORD_VAR} (never \
                 from devenv.yaml): export {PASSWORD_VAR}=..."
            ),
        })
}

async fn create(
    config: &Config,
    aws: &Aws,
    password: &str,
    timeout: Timeout,
) -> Result<(), Failure> {
    let prod = &config.prod;
    let spec = Spec {
        id: &prod.instance,
        class: &prod.instance_class,
        engine_version: &prod.engine_version,
        user: &prod.user,
        password,
        storage_gib: i32::from(prod.allocated_storage),
        database: &config.database,
        port: DEFAULT_PORT,
        security_group: prod.security_group_id.as_deref(),
    };
    eprintln!(
        "devenv: creating RDS instance {} in {} (postgres {}, {}, {} GiB, user {}, database \
         {}); AWS takes 10 to 15 minutes",
        spec.id,
        aws.region(),
        spec.engine_version,
        spec.class,
        spec.storage_gib,
        spec.user,
        spec.database
    );
    aws.create_instance(&spec).await?;
    let ready = wait_for(aws, spec.id, "available", timeout).await?;
    let (host, port) = ready
        .endpoint
        .ok_or_else(|| Failure::other(format!("{} is available but has no endpoint", ready.id)))?;
    let url = devenv_server::url(spec.user, password, &host, port, spec.database);
    eprintln!(
        "devenv: set PROD_CONNECTION_URL to this, with {PASSWORD_VAR}'s value for ****:\n  {}",
        mask_url(&url)
    );
    Ok(())
}

async fn stop(config: &Config, aws: &Aws, yes: bool, wait: Option<Timeout>) -> Result<(), Failure> {
    let id = &config.prod.instance;
    let current = aws.instance(id).await?;
    // Only a request that would go out is confirmed.
    if !matches!(current.status.as_str(), "stopped" | "stopping") {
        let action = format!(
            "stop RDS instance \"{id}\" ({}, {})",
            aws.region(),
            current.status
        );
        let danger = Danger {
            action: &action,
            name: id,
            noun: "instance name",
        };
        confirm(danger, yes)?;
    }
    let transition = aws.stop_instance(id).await?;
    report(&transition, "stop", wait.is_some());
    if let Transition::AlreadyThere(_) = transition {
        return Ok(());
    }
    if let Some(timeout) = wait {
        wait_for(aws, id, "stopped", timeout).await?;
    }
    eprintln!("devenv: AWS starts a stopped instance again by itself after seven days");
    Ok(())
}

async fn start(config: &Config, aws: &Aws, wait: Option<Timeout>) -> Result<(), Failure> {
    let id = &config.prod.instance;
    let transition = aws.start_instance(id).await?;
    report(&transition, "start", wait.is_some());
    if let Some(timeout) = wait {
        wait_for(aws, id, "available", timeout).await?;
    }
    Ok(())
}

/// What a stop or start request did, on stderr.
fn report(transition: &Transition, verb: &str, waiting: bool) {
    let i = transition.instance();
    let hint = if waiting {
        ""
    } else {
        "; `devenv prod status` shows where it is, --wait waits"
    };
    match transition {
        Transition::AlreadyThere(_) => eprintln!("devenv: {} is already {}", i.id, i.status),
        Transition::Underway(_) => {
            eprintln!(
                "devenv: {} is already {}, nothing sent{hint}",
                i.id, i.status
            );
        }
        Transition::Requested(_) => {
            eprintln!("devenv: asked AWS to {verb} {}{hint}", i.id);
        }
    }
}
