//! One-line errors that say the fix, and the mapping of the SDK's errors onto them.
//!
//! The SDK reports a service error by its code (`DBInstanceNotFound`,
//! `InvalidSecurityGroupRuleId.NotFound`, `AuthFailure`, ...), a missing credential as a
//! [`CredentialsError`] somewhere in the source chain, and an unreachable endpoint as a dispatch
//! failure. [`Op`] says what was being done to what, so that the message can name the rule or
//! the instance and the setting to check.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

/// What can go wrong in a chore.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// No credentials anywhere in the standard chain.
    #[error(
        "no AWS credentials found ({detail}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
         or AWS_PROFILE, or run `aws configure`"
    )]
    NoCredentials {
        /// The SDK's account of what it tried.
        detail: String,
    },
    /// AWS rejected the credentials.
    #[error(
        "AWS rejected the credentials ({code}: {message}): check AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, or the profile in AWS_PROFILE"
    )]
    BadCredentials {
        /// The error code.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The credentials may not do this.
    #[error("AWS denied {action} ({code}: {message}): the IAM user or role needs that permission")]
    Denied {
        /// What was attempted.
        action: String,
        /// The error code.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// No region anywhere.
    #[error(
        "no AWS region: set `region:` under `prod:` in devenv.yaml, or AWS_DEFAULT_REGION \
         (e.g. us-east-1)"
    )]
    NoRegion,
    /// The security-group rule does not exist.
    #[error(
        "security group rule {rule} not found in group {group}: check `security_group_rule_id` \
         under `prod:` in devenv.yaml (or DB_SG_RULE_ID); \
         `aws ec2 describe-security-group-rules --filters Name=group-id,Values={group}` lists them"
    )]
    RuleNotFound {
        /// The security group.
        group: String,
        /// The rule.
        rule: String,
    },
    /// The rule exists but in another group.
    #[error(
        "security group rule {rule} belongs to group {actual}, not {group}: check \
         `security_group_id` under `prod:` in devenv.yaml (or DB_SG_ID)"
    )]
    RuleInOtherGroup {
        /// The configured group.
        group: String,
        /// The rule.
        rule: String,
        /// The group it belongs to.
        actual: String,
    },
    /// The security group does not exist.
    #[error(
        "security group {group} not found: check `security_group_id` under `prod:` in \
         devenv.yaml (or DB_SG_ID)"
    )]
    GroupNotFound {
        /// The security group.
        group: String,
    },
    /// The RDS instance does not exist.
    #[error(
        "RDS instance {instance} not found in {region}: check `instance:` and `region:` under \
         `prod:` in devenv.yaml, or create it with `devenv prod create`"
    )]
    InstanceNotFound {
        /// The instance identifier.
        instance: String,
        /// The region asked.
        region: String,
    },
    /// RDS offers no PostgreSQL version that `engine_version` names.
    #[error(
        "RDS in {region} offers no PostgreSQL {wanted} for new instances; it offers {}: set \
         `engine_version:` under `prod:` in devenv.yaml to one of them, or to a major version \
         (such as 17) for its newest",
        if offered.is_empty() { "none".to_owned() } else { offered.join(", ") }
    )]
    NoEngineVersion {
        /// What devenv.yaml asks for.
        wanted: String,
        /// The region asked.
        region: String,
        /// What RDS offers, oldest first.
        offered: Vec<String>,
    },
    /// `create` found the instance already there.
    #[error(
        "RDS instance {instance} already exists (status {status}); nothing created: \
         `devenv prod status` shows it"
    )]
    InstanceExists {
        /// The instance identifier.
        instance: String,
        /// Its status.
        status: String,
    },
    /// The instance is in a state that does not allow the action.
    #[error(
        "cannot {action} RDS instance {instance} while it is {status}: wait until it is \
         available or stopped (`devenv prod status`)"
    )]
    WrongState {
        /// `stop` or `start`.
        action: &'static str,
        /// The instance identifier.
        instance: String,
        /// Its status.
        status: String,
    },
    /// Waiting for a state took too long, or the instance went into a state it will not
    /// leave by itself.
    #[error(
        "RDS instance {instance} is {status}, not {wanted}, after {waited_s} s; \
         `devenv prod status` shows where it is"
    )]
    WaitGaveUp {
        /// The instance identifier.
        instance: String,
        /// The state waited for.
        wanted: String,
        /// The last state seen.
        status: String,
        /// Seconds waited.
        waited_s: u64,
    },
    /// The what-is-my-ip service did not answer with an IPv4 address.
    #[error("cannot learn this machine's IP from {url} ({message}): pass --ip IP, or set `ip_service:` under `prod:` in devenv.yaml")]
    IpLookup {
        /// The service.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// AWS (or `AWS_ENDPOINT_URL`) cannot be reached.
    #[error(
        "cannot reach AWS for {action} ({message}): check the network, or AWS_ENDPOINT_URL if set"
    )]
    Unreachable {
        /// What was attempted.
        action: String,
        /// The SDK's account.
        message: String,
    },
    /// Any other error AWS answered.
    #[error("AWS refused {action}: {code}: {message}")]
    Api {
        /// What was attempted.
        action: String,
        /// The error code.
        code: String,
        /// AWS's message.
        message: String,
    },
}

/// What the failed call was about, for the message.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A rule of a security group.
    Rule {
        /// The group.
        group: &'a str,
        /// The rule.
        rule: &'a str,
    },
    /// A security group.
    Group(&'a str),
    /// An RDS instance.
    Instance {
        /// The identifier.
        instance: &'a str,
        /// The region.
        region: &'a str,
    },
}

/// A call: the API action and its subject.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    /// The API action, as IAM names it (`ec2:ModifySecurityGroupRules`).
    pub action: &'static str,
    /// What it was about.
    pub subject: Subject<'a>,
}

impl Op<'_> {
    /// Maps an SDK error of this call to an [`AwsError`].
    pub fn error<E, R>(self, err: &SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + StdError + 'static,
        R: std::fmt::Debug + 'static,
    {
        if let Some(creds) = find_credentials_error(err) {
            return AwsError::NoCredentials {
                detail: match creds {
                    CredentialsError::CredentialsNotLoaded(_) => {
                        "none in the environment, ~/.aws, a profile or the instance metadata".into()
                    }
                    other => display_chain(other),
                },
            };
        }
        match err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                self.service_error(
                    e.code().unwrap_or("Unknown"),
                    e.message().unwrap_or("no message"),
                )
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => AwsError::Unreachable {
                action: self.action.to_owned(),
                message: display_chain(err),
            },
            _ => AwsError::Api {
                action: self.action.to_owned(),
                code: "SdkError".into(),
                message: display_chain(err),
            },
        }
    }

    /// Maps an error code AWS answered.
    pub fn service_error(self, code: &str, message: &str) -> AwsError {
        let (code, message) = (code.to_owned(), one_line(message));
        let not_found = code.contains("NotFound") || code.ends_with(".Malformed");
        match (self.subject, code.as_str()) {
            (Subject::Rule { group, rule }, _)
                if code.starts_with("InvalidSecurityGroupRuleId") =>
            {
                AwsError::RuleNotFound {
                    group: group.to_owned(),
                    rule: rule.to_owned(),
                }
            }
            (Subject::Rule { group, .. } | Subject::Group(group), _)
                if not_found && code.contains("Group") =>
            {
                AwsError::GroupNotFound {
                    group: group.to_owned(),
                }
            }
            (Subject::Instance { instance, region }, "DBInstanceNotFound") => {
                AwsError::InstanceNotFound {
                    instance: instance.to_owned(),
                    region: region.to_owned(),
                }
            }
            (
                _,
                "AuthFailure"
                | "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "UnrecognizedClientException"
                | "ExpiredToken"
                | "InvalidAccessKeyId",
            ) => AwsError::BadCredentials { code, message },
            (_, c) if c.starts_with("UnauthorizedOperation") || c.starts_with("AccessDenied") => {
                AwsError::Denied {
                    action: self.action.to_owned(),
                    code,
                    message,
                }
            }
            _ => AwsError::Api {
                action: self.action.to_owned(),
                code,
                message,
            },
        }
    }
}

/// A [`CredentialsError`] anywhere in the error's source chain.
fn find_credentials_error<'e>(err: &'e (dyn StdError + 'static)) -> Option<&'e CredentialsError> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<CredentialsError>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// An error and its sources, `: `-separated on one line (the SDK's `Debug` dumps left out).
fn display_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let part = one_line(&e.to_string());
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

/// The SDK's multi-line accounts folded onto one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Op<'static> = Op {
        action: "ec2:ModifySecurityGroupRules",
        subject: Subject::Rule {
            group: "sg-1",
            rule: "sgr-9",
        },
    };

    #[test]
    fn codes_map_to_errors_that_name_the_subject_and_the_fix() {
        let e = RULE
            .service_error("InvalidSecurityGroupRuleId.NotFound", "gone")
            .to_string();
        assert!(
            e.starts_with("security group rule sgr-9 not found in group sg-1"),
            "{e}"
        );
        assert!(e.contains("DB_SG_RULE_ID"), "{e}");
        let e = RULE.service_error("InvalidGroup.NotFound", "x").to_string();
        assert!(e.starts_with("security group sg-1 not found"), "{e}");
        let instance = Op {
            action: "rds:DescribeDBInstances",
            subject: Subject::Instance {
                instance: "cruddur-db-instance",
                region: "ca-central-1",
            },
        };
        let e = instance
            .service_error("DBInstanceNotFound", "DBInstance x not found.")
            .to_string();
        assert!(
            e.starts_with("RDS instance cruddur-db-instance not found in ca-central-1"),
            "{e}"
        );
        assert!(matches!(
            instance.service_error("AuthFailure", "bad"),
            AwsError::BadCredentials { .. }
        ));
        assert!(matches!(
            instance.service_error("AccessDenied", "no"),
            AwsError::Denied { .. }
        ));
        let e = instance
            .service_error(
                "InvalidParameterCombination",
                "Cannot find version 14.6\n for postgres",
            )
            .to_string();
        assert_eq!(
            e,
            "AWS refused rds:DescribeDBInstances: InvalidParameterCombination: Cannot find version 14.6 for postgres"
        );
    }

    #[test]
    fn messages_are_one_line() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused\nhere");
        let outer = CredentialsError::provider_error(io);
        assert_eq!(
            display_chain(&outer),
            "an error occurred while loading credentials: refused here"
        );
    }
}
