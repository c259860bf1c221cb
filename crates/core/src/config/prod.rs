//! The `prod:` section of `devenv.yaml`: the seeds' AWS settings for `devenv prod ...`, with
//! the seeds' own variable names as fallbacks (`DB_SG_ID`, `DB_SG_RULE_ID`, `MASTER_USERNAME`)
//! and the defaults of their `aws rds create-db-instance`. The master password is never read
//! from the file: only from [`PASSWORD_VAR`].

use serde::Deserialize;

/// The variable that holds the master password for `devenv prod create`, as in the seeds.
pub const PASSWORD_VAR: &str = "MASTER_USER_PASSWORD";

/// The PostgreSQL major `devenv prod create` asks for by default: a major RDS offers in every
/// region with years of standard support ahead (RDS ends it for 13 in February 2026 and for 14
/// in February 2027; the seeds' 14.6 is no longer offered for new instances).
pub const DEFAULT_ENGINE_MAJOR: &str = "17";

/// The default what-is-my-ip service: the seeds' `curl ifconfig.me`, over HTTPS, at the path
/// that answers the bare address to any client.
pub const DEFAULT_IP_SERVICE: &str = "https://ifconfig.me/ip";

/// The section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProd {
    instance: Option<String>,
    region: Option<String>,
    security_group_id: Option<String>,
    security_group_rule_id: Option<String>,
    instance_class: Option<String>,
    engine_version: Option<String>,
    allocated_storage: Option<u16>,
    user: Option<String>,
    ip_service: Option<String>,
}

/// The resolved `prod:` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProdConfig {
    /// RDS instance identifier. Default: `<database>-db-instance` (the seeds'
    /// `cruddur-db-instance`).
    pub instance: String,
    /// AWS region; `None`: the AWS chain's (`AWS_REGION`, `AWS_DEFAULT_REGION`, the profile).
    pub region: Option<String>,
    /// The RDS security group (`sg-...`); fallback `DB_SG_ID`.
    pub security_group_id: Option<String>,
    /// Its inbound rule for this machine (`sgr-...`); fallback `DB_SG_RULE_ID`.
    pub security_group_rule_id: Option<String>,
    /// Default `db.t3.micro`.
    pub instance_class: String,
    /// PostgreSQL version: a major (`17`, the default: `devenv prod create` asks RDS for its
    /// newest 17.x) or a full version RDS offers (`16.4`). The seeds' `14.6` is no longer
    /// offered for new instances.
    pub engine_version: String,
    /// GiB. Default 20.
    pub allocated_storage: u16,
    /// Master user; fallback `MASTER_USERNAME`, default `root`.
    pub user: String,
    /// The what-is-my-ip service. Default [`DEFAULT_IP_SERVICE`].
    pub ip_service: String,
}

impl ProdConfig {
    /// Resolves the section against the environment; `database` is the project's database.
    pub(super) fn resolve(
        raw: Option<RawProd>,
        database: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> ProdConfig {
        let raw = raw.unwrap_or_default();
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        ProdConfig {
            instance: raw
                .instance
                .unwrap_or_else(|| format!("{database}-db-instance")),
            region: raw.region,
            security_group_id: raw.security_group_id.or_else(|| var("DB_SG_ID")),
            security_group_rule_id: raw.security_group_rule_id.or_else(|| var("DB_SG_RULE_ID")),
            instance_class: raw.instance_class.unwrap_or_else(|| "db.t3.micro".into()),
            engine_version: raw
                .engine_version
                .unwrap_or_else(|| DEFAULT_ENGINE_MAJOR.into()),
            allocated_storage: raw.allocated_storage.unwrap_or(20),
            user: raw
                .user
                .or_else(|| var("MASTER_USERNAME"))
                .unwrap_or_else(|| "root".into()),
            ip_service: raw.ip_service.unwrap_or_else(|| DEFAULT_IP_SERVICE.into()),
        }
    }
}

/// Settings a `devenv prod` chore needs that are missing (a configuration error, exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ProdSettingsError {
    /// One of the two rule settings without the other.
    #[error(
        "`devenv prod allow-ip` needs both `security_group_id` and `security_group_rule_id` \
         under `prod:` in devenv.yaml (or DB_SG_ID and DB_SG_RULE_ID); {missing} is missing"
    )]
    HalfARule {
        /// The one missing.
        missing: &'static str,
    },
    /// Neither rule setting.
    #[error(
        "`devenv prod allow-ip` needs `security_group_id` and `security_group_rule_id` under \
         `prod:` in devenv.yaml (or DB_SG_ID and DB_SG_RULE_ID)"
    )]
    NoRule,
    /// `create` without the master password.
    #[error(
        "`devenv prod create` takes the master password from {var} (never from devenv.yaml): \
         export {var}=...",
        var = PASSWORD_VAR
    )]
    NoPassword,
}

impl ProdConfig {
    /// The security group and rule `allow-ip` sets, when both are configured; an error when
    /// only one is.
    pub fn rule(&self) -> Result<Option<(&str, &str)>, ProdSettingsError> {
        match (
            self.security_group_id.as_deref(),
            self.security_group_rule_id.as_deref(),
        ) {
            (Some(group), Some(rule)) => Ok(Some((group, rule))),
            (None, None) => Ok(None),
            (None, Some(_)) => Err(ProdSettingsError::HalfARule {
                missing: "security_group_id",
            }),
            (Some(_), None) => Err(ProdSettingsError::HalfARule {
                missing: "security_group_rule_id",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, FILE_NAME};

    fn load(yaml: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), yaml).unwrap();
        Config::load_with_env(dir.path(), |k| {
            env.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_seeds_create_db_instance() {
        let p = load("database: cruddur\n", &[]).unwrap().prod;
        assert_eq!(p.instance, "cruddur-db-instance");
        assert_eq!(
            (p.instance_class.as_str(), p.engine_version.as_str()),
            ("db.t3.micro", "17")
        );
        assert_eq!((p.allocated_storage, p.user.as_str()), (20, "root"));
        assert_eq!(p.ip_service, "https://ifconfig.me/ip");
        assert_eq!(
            (p.region, p.security_group_id, p.security_group_rule_id),
            (None, None, None)
        );
    }

    #[test]
    fn the_seeds_variables_fill_in_what_the_file_leaves_out() {
        let env = [
            ("DB_SG_ID", "sg-env"),
            ("DB_SG_RULE_ID", "sgr-env"),
            ("MASTER_USERNAME", "cruddurroot"),
        ];
        let p = load("database: cruddur\n", &env).unwrap().prod;
        assert_eq!(p.security_group_id.as_deref(), Some("sg-env"));
        assert_eq!(p.security_group_rule_id.as_deref(), Some("sgr-env"));
        assert_eq!(p.user, "cruddurroot");
        let p = load(
            "prod:\n  security_group_id: sg-file\n  region: ca-central-1\n  user: admin\n",
            &env,
        )
        .unwrap()
        .prod;
        assert_eq!(p.security_group_id.as_deref(), Some("sg-file"));
        assert_eq!(p.security_group_rule_id.as_deref(), Some("sgr-env"));
        assert_eq!(p.region.as_deref(), Some("ca-central-1"));
        assert_eq!(p.user, "admin");
        let blank = load("{}\n", &[("DB_SG_ID", " ")]).unwrap().prod;
        assert_eq!(blank.security_group_id, None);
    }

    #[test]
    fn unknown_keys_and_a_password_in_the_file_are_errors() {
        let e = load("prod:\n  instance: x\n  password: secret\n", &[]).unwrap_err();
        assert!(
            e.contains("devenv.yaml:3:3: prod: unknown field `password`"),
            "{e}"
        );
        let e = load("prod:\n  allocated_storage: lots\n", &[]).unwrap_err();
        assert!(
            e.contains("devenv.yaml:2:22: prod.allocated_storage: invalid type"),
            "{e}"
        );
    }
}
