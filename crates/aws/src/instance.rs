//! The RDS instance: look it up, create it as the seeds do (`aws rds create-db-instance`),
//! stop it to stay within the free tier, start it again, and wait for a state.

use std::time::{Duration, Instant};

use aws_sdk_rds::types::DbInstance;

use crate::error::{Op, Subject};
use crate::{Aws, AwsError};

/// An RDS instance, as far as devenv cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The identifier (`cruddur-db-instance`).
    pub id: String,
    /// `postgres`.
    pub engine: String,
    /// `17.2`.
    pub engine_version: String,
    /// `db.t3.micro`.
    pub class: String,
    /// `available`, `stopped`, `stopping`, `starting`, `creating`, ...
    pub status: String,
    /// Host and port, once AWS has given it one.
    pub endpoint: Option<(String, u16)>,
    /// The master user.
    pub user: Option<String>,
    /// The database created with it.
    pub database: Option<String>,
    /// Its VPC security groups.
    pub security_groups: Vec<String>,
}

impl Instance {
    fn from_sdk(d: &DbInstance) -> Instance {
        Instance {
            id: d.db_instance_identifier().unwrap_or_default().to_owned(),
            engine: d.engine().unwrap_or_default().to_owned(),
            engine_version: d.engine_version().unwrap_or_default().to_owned(),
            class: d.db_instance_class().unwrap_or_default().to_owned(),
            status: d.db_instance_status().unwrap_or("unknown").to_owned(),
            endpoint: d.endpoint().and_then(|e| {
                Some((
                    e.address()?.to_owned(),
                    u16::try_from(e.port()?).unwrap_or(5432),
                ))
            }),
            user: d.master_username().map(str::to_owned),
            database: d.db_name().map(str::to_owned),
            security_groups: d
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                .collect(),
        }
    }
}

/// What `create_instance` asks for: the seeds' `create-db-instance` arguments.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// `--db-instance-identifier`.
    pub id: &'a str,
    /// `--db-instance-class`.
    pub class: &'a str,
    /// `--engine-version` (the engine is postgres): a full version, as
    /// [`Aws::choose_engine_version`] picks it.
    pub engine_version: &'a str,
    /// `--master-username`.
    pub user: &'a str,
    /// `--master-user-password`.
    pub password: &'a str,
    /// `--allocated-storage`, GiB.
    pub storage_gib: i32,
    /// `--db-name`.
    pub database: &'a str,
    /// `--port`.
    pub port: u16,
    /// `--vpc-security-group-ids`, when one is configured.
    pub security_group: Option<&'a str>,
}

/// A stop (AWS starts a stopped instance again by itself after seven days) or a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `available` to `stopping` to `stopped`.
    Stop,
    /// `stopped` to `starting` to `available`.
    Start,
}

impl Change {
    /// `stop`, `start`.
    pub fn verb(self) -> &'static str {
        match self {
            Change::Stop => "stop",
            Change::Start => "start",
        }
    }

    /// The state it ends in.
    pub fn target(self) -> &'static str {
        match self {
            Change::Stop => "stopped",
            Change::Start => "available",
        }
    }

    /// The state on the way.
    fn underway(self) -> &'static str {
        match self {
            Change::Stop => "stopping",
            Change::Start => "starting",
        }
    }

    /// The only state it can be asked from.
    fn source(self) -> &'static str {
        match self {
            Change::Stop => "available",
            Change::Start => "stopped",
        }
    }

    fn iam_action(self) -> &'static str {
        match self {
            Change::Stop => "rds:StopDBInstance",
            Change::Start => "rds:StartDBInstance",
        }
    }
}

/// Where a stop or start left things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// It already was in the state asked for; nothing was sent.
    AlreadyThere(Instance),
    /// It already was on its way there; nothing was sent.
    Underway(Instance),
    /// The request went out; here is the instance as AWS answered.
    Requested(Instance),
}

impl Transition {
    /// The instance, whichever case.
    pub fn instance(&self) -> &Instance {
        match self {
            Transition::AlreadyThere(i) | Transition::Underway(i) | Transition::Requested(i) => i,
        }
    }
}

/// How long and how often to poll.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// Give up after this long.
    pub timeout: Duration,
    /// Ask again after this long.
    pub every: Duration,
}

/// The newest of `offered` that `wanted` names: `wanted` itself, or a version under it
/// (`17` names `17.2` and `17.10`; `9.6` names `9.6.24`), compared number by number.
pub fn choose_version(wanted: &str, offered: &[String]) -> Option<String> {
    let wanted = wanted.trim();
    offered
        .iter()
        .filter(|v| {
            v.as_str() == wanted
                || v.strip_prefix(wanted)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('-'))
        })
        .max_by_key(|v| version_key(v))
        .cloned()
}

/// `17.10` as `[17, 10]`, `11.22-rds.20240418` as `[11, 22, 20240418]`: the numbers in order.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse().ok())
        .collect()
}

fn sorted_versions(mut versions: Vec<String>) -> Vec<String> {
    versions.sort_by_key(|v| version_key(v));
    versions.dedup();
    versions
}

/// States an instance does not leave by itself: waiting on would be pointless.
fn is_dead_end(status: &str) -> bool {
    matches!(status, "failed" | "storage-full" | "deleting" | "deleted")
        || status.starts_with("incompatible-")
        || status.starts_with("inaccessible-encryption-credentials")
}

impl Aws {
    fn instance_op<'a>(&'a self, action: &'static str, instance: &'a str) -> Op<'a> {
        Op {
            action,
            subject: Subject::Instance {
                instance,
                region: self.region(),
            },
        }
    }

    /// The instance, or [`AwsError::InstanceNotFound`].
    pub async fn instance(&self, id: &str) -> Result<Instance, AwsError> {
        let op = self.instance_op("rds:DescribeDBInstances", id);
        let out = self
            .rds()
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| op.error(&e))?;
        out.db_instances()
            .iter()
            .map(Instance::from_sdk)
            .find(|i| i.id == id)
            .ok_or_else(|| op.service_error("DBInstanceNotFound", ""))
    }

    /// The instance, or `None` when there is none of that name.
    pub async fn find_instance(&self, id: &str) -> Result<Option<Instance>, AwsError> {
        match self.instance(id).await {
            Ok(found) => Ok(Some(found)),
            Err(AwsError::InstanceNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The PostgreSQL versions RDS offers in this region (`describe-db-engine-versions`,
    /// every page; RDS lists only versions still available for new instances).
    pub async fn engine_versions(&self, id: &str) -> Result<Vec<String>, AwsError> {
        let op = self.instance_op("rds:DescribeDBEngineVersions", id);
        let versions = self
            .rds()
            .describe_db_engine_versions()
            .engine("postgres")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| op.error(&e))?;
        Ok(versions
            .iter()
            .filter(|v| v.status().is_none_or(|s| s == "available"))
            .filter_map(|v| v.engine_version().map(str::to_owned))
            .collect())
    }

    /// The version to create for `wanted` (`17`: the newest 17.x RDS offers; `16.4`: that
    /// one), or [`AwsError::NoEngineVersion`] with what RDS offers.
    pub async fn choose_engine_version(&self, id: &str, wanted: &str) -> Result<String, AwsError> {
        let offered = self.engine_versions(id).await?;
        choose_version(wanted, &offered).ok_or_else(|| AwsError::NoEngineVersion {
            wanted: wanted.to_owned(),
            region: self.region().to_owned(),
            offered: sorted_versions(offered),
        })
    }

    /// Creates the instance the seeds' way (gp2, single AZ, publicly accessible, encrypted,
    /// no backups, performance insights for 7 days, no deletion protection); refuses when it
    /// exists.
    pub async fn create_instance(&self, spec: &Spec<'_>) -> Result<Instance, AwsError> {
        if let Some(existing) = self.find_instance(spec.id).await? {
            return Err(AwsError::InstanceExists {
                instance: existing.id,
                status: existing.status,
            });
        }
        let op = self.instance_op("rds:CreateDBInstance", spec.id);
        let out = self
            .rds()
            .create_db_instance()
            .db_instance_identifier(spec.id)
            .db_instance_class(spec.class)
            .engine("postgres")
            .engine_version(spec.engine_version)
            .master_username(spec.user)
            .master_user_password(spec.password)
            .allocated_storage(spec.storage_gib)
            .backup_retention_period(0)
            .port(i32::from(spec.port))
            .multi_az(false)
            .db_name(spec.database)
            .storage_type("gp2")
            .publicly_accessible(true)
            .storage_encrypted(true)
            .enable_performance_insights(true)
            .performance_insights_retention_period(7)
            .deletion_protection(false)
            .set_vpc_security_group_ids(spec.security_group.map(|g| vec![g.to_owned()]))
            .send()
            .await
            .map_err(|e| op.error(&e))?;
        out.db_instance()
            .map(Instance::from_sdk)
            .ok_or_else(|| op.service_error("DBInstanceNotFound", ""))
    }

    /// Stops or starts the instance; sends nothing when it is there or on its way already.
    pub async fn change_instance(&self, id: &str, change: Change) -> Result<Transition, AwsError> {
        let current = self.instance(id).await?;
        let status = current.status.as_str();
        if status == change.target() {
            return Ok(Transition::AlreadyThere(current));
        }
        if status == change.underway() {
            return Ok(Transition::Underway(current));
        }
        if status != change.source() {
            return Err(AwsError::WrongState {
                action: change.verb(),
                instance: current.id,
                status: current.status,
            });
        }
        let op = self.instance_op(change.iam_action(), id);
        // The two requests differ only in their builder's type.
        macro_rules! send {
            ($request:ident) => {
                self.rds()
                    .$request()
                    .db_instance_identifier(id)
                    .send()
                    .await
                    .map_err(|e| op.error(&e))?
                    .db_instance
                    .map(|d| Instance::from_sdk(&d))
            };
        }
        let answered = match change {
            Change::Stop => send!(stop_db_instance),
            Change::Start => send!(start_db_instance),
        };
        Ok(Transition::Requested(answered.unwrap_or(current)))
    }

    /// Polls until the instance's status is `wanted`; `on_change` sees every new status (the
    /// first one too). Gives up at the timeout or in a state it will not leave by itself.
    pub async fn wait_for(
        &self,
        id: &str,
        wanted: &str,
        wait: Wait,
        mut on_change: impl FnMut(&Instance),
    ) -> Result<Instance, AwsError> {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            let current = self.instance(id).await?;
            if current.status != last {
                on_change(&current);
                last.clone_from(&current.status);
            }
            if current.status == wanted {
                return Ok(current);
            }
            if is_dead_end(&current.status) || start.elapsed() >= wait.timeout {
                return Err(AwsError::WaitGaveUp {
                    instance: id.to_owned(),
                    wanted: wanted.to_owned(),
                    status: current.status,
                    waited_s: start.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(wait.every).await;
        }
    }
}

#[cfg(test)]
mod version_tests {
    use super::choose_version;

    fn offered(list: &[&str]) -> Vec<String> {
        list.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn a_major_picks_its_newest_version_compared_as_numbers() {
        let list = offered(&[
            "16.8",
            "17.9",
            "17.10",
            "17.2",
            "170.1",
            "9.6.24",
            "9.6.3",
            "11.22-rds.20240418",
            "11.22",
        ]);
        assert_eq!(choose_version("17", &list).as_deref(), Some("17.10"));
        assert_eq!(choose_version("16", &list).as_deref(), Some("16.8"));
        assert_eq!(choose_version("9.6", &list).as_deref(), Some("9.6.24"));
        assert_eq!(
            choose_version("11", &list).as_deref(),
            Some("11.22-rds.20240418")
        );
        assert_eq!(choose_version("17.9", &list).as_deref(), Some("17.9"));
        assert_eq!(choose_version("14", &list), None);
        assert_eq!(choose_version("14.6", &list), None);
        assert_eq!(choose_version("1", &list), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_ends_are_the_states_rds_does_not_leave_alone() {
        for s in [
            "failed",
            "incompatible-parameters",
            "storage-full",
            "deleting",
        ] {
            assert!(is_dead_end(s), "{s}");
        }
        for s in [
            "available",
            "stopped",
            "stopping",
            "starting",
            "creating",
            "backing-up",
        ] {
            assert!(!is_dead_end(s), "{s}");
        }
    }

    #[test]
    fn a_stop_and_a_start_go_opposite_ways() {
        for change in [Change::Stop, Change::Start] {
            let states = [change.source(), change.underway(), change.target()];
            let distinct: std::collections::HashSet<_> = states.iter().collect();
            assert_eq!(distinct.len(), 3, "{change:?}");
        }
        assert_eq!(Change::Stop.source(), Change::Start.target());
        assert_eq!(Change::Start.source(), Change::Stop.target());
        assert_eq!(Change::Stop.iam_action(), "rds:StopDBInstance");
    }
}
