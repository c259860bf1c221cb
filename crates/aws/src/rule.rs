//! The security group's inbound rule for this machine: the seeds' `db-update-sg-rule`
//! (`aws ec2 modify-security-group-rules ... CidrIpv4=$GITPOD_IP/32`), made idempotent, and the
//! check behind `devenv prod status` of whether a group lets an IP in.

use std::net::Ipv4Addr;

use aws_sdk_ec2::types::{Filter, SecurityGroupRuleRequest, SecurityGroupRuleUpdate};

use crate::error::{Op, Subject};
use crate::{Aws, AwsError};

/// The description a rule gets when it has none: the seeds' name for it.
pub const DEFAULT_DESCRIPTION: &str = "GITPOD";

/// One inbound or outbound rule, as far as devenv cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `sgr-...`.
    pub id: String,
    /// `sg-...`.
    pub group: String,
    /// Outbound.
    pub egress: bool,
    /// `tcp`, `udp`, `-1` (all), ...
    pub protocol: String,
    /// First port (-1: all).
    pub from_port: i32,
    /// Last port (-1: all).
    pub to_port: i32,
    /// The IPv4 range, if the rule has one.
    pub cidr_ipv4: Option<String>,
    /// The description.
    pub description: Option<String>,
}

impl Rule {
    fn from_sdk(r: &aws_sdk_ec2::types::SecurityGroupRule) -> Rule {
        Rule {
            id: r.security_group_rule_id().unwrap_or_default().to_owned(),
            group: r.group_id().unwrap_or_default().to_owned(),
            egress: r.is_egress().unwrap_or(false),
            protocol: r.ip_protocol().unwrap_or("-1").to_owned(),
            from_port: r.from_port().unwrap_or(-1),
            to_port: r.to_port().unwrap_or(-1),
            cidr_ipv4: r.cidr_ipv4().map(str::to_owned),
            description: r.description().map(str::to_owned),
        }
    }

    /// Whether this is an inbound rule that lets `ip` in on TCP `port`.
    pub fn allows(&self, ip: Ipv4Addr, port: u16) -> bool {
        let protocol = self.protocol == "-1" || self.protocol.eq_ignore_ascii_case("tcp");
        let all_ports = self.from_port == -1 && self.to_port == -1;
        let in_range = all_ports || (self.from_port..=self.to_port).contains(&i32::from(port));
        !self.egress
            && protocol
            && in_range
            && self
                .cidr_ipv4
                .as_deref()
                .is_some_and(|cidr| cidr_contains(cidr, ip))
    }

    /// Whether this rule is exactly `ip/32` on TCP `port`, what `allow-ip` would set.
    pub fn is_exactly(&self, ip: Ipv4Addr, port: u16) -> bool {
        !self.egress
            && self.protocol.eq_ignore_ascii_case("tcp")
            && self.from_port == i32::from(port)
            && self.to_port == i32::from(port)
            && self.cidr_ipv4.as_deref() == Some(format!("{ip}/32").as_str())
    }

    /// `tcp 5432 from 1.2.3.4/32`, for messages.
    pub fn summary(&self) -> String {
        let ports = if self.from_port == self.to_port {
            self.from_port.to_string()
        } else {
            format!("{}-{}", self.from_port, self.to_port)
        };
        format!(
            "{} {ports} from {}",
            self.protocol,
            self.cidr_ipv4.as_deref().unwrap_or("(no IPv4 range)")
        )
    }
}

/// Whether an IPv4 CIDR (`10.0.0.0/8`, `1.2.3.4/32`) contains `ip`.
pub fn cidr_contains(cidr: &str, ip: Ipv4Addr) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<Ipv4Addr>(), len.parse::<u32>()) else {
        return false;
    };
    if len > 32 {
        return false;
    }
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(net) & mask == u32::from(ip) & mask
}

/// What `allow` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// The rule already was `ip/32` on the port; nothing was sent.
    Unchanged(Rule),
    /// The rule was rewritten; here is what it was.
    Changed {
        /// The rule before.
        before: Rule,
        /// The rule after.
        after: Rule,
    },
}

impl Aws {
    /// One rule of a group, by id.
    pub async fn rule(&self, group: &str, rule: &str) -> Result<Rule, AwsError> {
        let op = Op {
            action: "ec2:DescribeSecurityGroupRules",
            subject: Subject::Rule { group, rule },
        };
        let out = self
            .ec2()
            .describe_security_group_rules()
            .security_group_rule_ids(rule)
            .send()
            .await
            .map_err(|e| op.error(&e))?;
        let found = out
            .security_group_rules()
            .iter()
            .map(Rule::from_sdk)
            .find(|r| r.id == rule)
            .ok_or_else(|| AwsError::RuleNotFound {
                group: group.to_owned(),
                rule: rule.to_owned(),
            })?;
        if found.group != group {
            return Err(AwsError::RuleInOtherGroup {
                group: group.to_owned(),
                rule: rule.to_owned(),
                actual: found.group,
            });
        }
        Ok(found)
    }

    /// Every rule of a group.
    pub async fn rules(&self, group: &str) -> Result<Vec<Rule>, AwsError> {
        let op = Op {
            action: "ec2:DescribeSecurityGroupRules",
            subject: Subject::Group(group),
        };
        let out = self
            .ec2()
            .describe_security_group_rules()
            .filters(Filter::builder().name("group-id").values(group).build())
            .send()
            .await
            .map_err(|e| op.error(&e))?;
        Ok(out
            .security_group_rules()
            .iter()
            .map(Rule::from_sdk)
            .collect())
    }

    /// Sets the rule to TCP `port` from `ip/32`, keeping its description; leaves it alone when
    /// it already is exactly that.
    pub async fn allow(
        &self,
        group: &str,
        rule: &str,
        ip: Ipv4Addr,
        port: u16,
    ) -> Result<Allowed, AwsError> {
        let before = self.rule(group, rule).await?;
        if before.is_exactly(ip, port) {
            return Ok(Allowed::Unchanged(before));
        }
        let description = before
            .description
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEFAULT_DESCRIPTION.to_owned());
        let request = SecurityGroupRuleRequest::builder()
            .ip_protocol("tcp")
            .from_port(i32::from(port))
            .to_port(i32::from(port))
            .cidr_ipv4(format!("{ip}/32"))
            .description(description)
            .build();
        let op = Op {
            action: "ec2:ModifySecurityGroupRules",
            subject: Subject::Rule { group, rule },
        };
        self.ec2()
            .modify_security_group_rules()
            .group_id(group)
            .security_group_rules(
                SecurityGroupRuleUpdate::builder()
                    .security_group_rule_id(rule)
                    .security_group_rule(request)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| op.error(&e))?;
        let after = self.rule(group, rule).await?;
        Ok(Allowed::Changed { before, after })
    }

    /// The first inbound rule of `group` that lets `ip` in on TCP `port`.
    pub async fn allowed_by(
        &self,
        group: &str,
        ip: Ipv4Addr,
        port: u16,
    ) -> Result<Option<Rule>, AwsError> {
        Ok(self
            .rules(group)
            .await?
            .into_iter()
            .find(|r| r.allows(ip, port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: &str, from: i32, to: i32, cidr: &str) -> Rule {
        Rule {
            id: "sgr-1".into(),
            group: "sg-1".into(),
            egress: false,
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            cidr_ipv4: Some(cidr.into()),
            description: None,
        }
    }

    #[test]
    fn cidrs_contain_what_they_should() {
        let ip = Ipv4Addr::new(203, 0, 113, 7);
        assert!(cidr_contains("203.0.113.7/32", ip));
        assert!(cidr_contains("203.0.113.0/24", ip));
        assert!(cidr_contains("0.0.0.0/0", ip));
        assert!(!cidr_contains("203.0.113.8/32", ip));
        assert!(!cidr_contains("10.0.0.0/8", ip));
        assert!(!cidr_contains("203.0.113.7/33", ip));
        assert!(!cidr_contains("nonsense", ip));
    }

    #[test]
    fn a_rule_allows_by_protocol_port_and_range() {
        let ip = Ipv4Addr::new(203, 0, 113, 7);
        assert!(rule("tcp", 5432, 5432, "203.0.113.7/32").allows(ip, 5432));
        assert!(rule("-1", -1, -1, "0.0.0.0/0").allows(ip, 5432));
        assert!(rule("tcp", 5000, 6000, "203.0.113.0/24").allows(ip, 5432));
        assert!(!rule("tcp", 5432, 5432, "203.0.113.7/32").allows(ip, 5433));
        assert!(!rule("udp", 5432, 5432, "203.0.113.7/32").allows(ip, 5432));
        let mut out = rule("tcp", 5432, 5432, "203.0.113.7/32");
        out.egress = true;
        assert!(!out.allows(ip, 5432));
    }

    #[test]
    fn only_the_exact_rule_counts_as_already_set() {
        let ip = Ipv4Addr::new(203, 0, 113, 7);
        assert!(rule("tcp", 5432, 5432, "203.0.113.7/32").is_exactly(ip, 5432));
        assert!(!rule("tcp", 5432, 5432, "203.0.113.0/24").is_exactly(ip, 5432));
        assert!(!rule("-1", -1, -1, "203.0.113.7/32").is_exactly(ip, 5432));
        assert_eq!(
            rule("tcp", 5432, 5432, "203.0.113.7/32").summary(),
            "tcp 5432 from 203.0.113.7/32"
        );
    }
}
