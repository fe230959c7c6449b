//! Which queries a container may send upstream: by its `dns` mode and its rules by name. What is
//! refused is answered REFUSED by hoodyd and never forwarded, so a name cannot carry data out.

use hickory_proto::rr::RecordType;
use hoody_net::policy::{ContainerFirewall, DnsMode};

use super::wire::ClientQuery;

/// Types a container may ask for; anything else is refused (and never forwarded).
pub const TYPES: [RecordType; 7] =
    [RecordType::A, RecordType::AAAA, RecordType::CNAME, RecordType::TXT, RecordType::MX, RecordType::SRV, RecordType::HTTPS];

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forward `name` (lower case, no trailing dot) as a fresh query; the addresses of its answer
    /// open for `rules` (the rules by name that match it).
    Forward {
        name: String,
        qtype: RecordType,
        rules: Vec<String>,
    },
    Refuse {
        name: String,
        qtype: String,
        why: &'static str,
    },
}

/// A name as hoodyd forwards it: printable host-name characters (and `_`, for SRV names) only.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= hoody_net::fqdn::MAX_NAME
        && name.split('.').all(|l| !l.is_empty() && l.len() <= hoody_net::fqdn::MAX_LABEL)
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

pub fn decide(c: &ContainerFirewall, q: &ClientQuery) -> Decision {
    let name = q.name.clone();
    let refuse = |why| Decision::Refuse { name: q.name.clone(), qtype: q.qtype.to_string(), why };
    if !q.standard {
        return refuse("not a standard query of one question of class IN");
    }
    if !TYPES.contains(&q.qtype) {
        return refuse("type not allowed");
    }
    if !plain(&name) {
        return refuse("not a host name");
    }
    let rules: Vec<String> = c
        .egress
        .iter()
        .filter(|r| r.spec.fqdn.as_deref().is_some_and(|p| hoody_net::fqdn::matches(p, &name)))
        .map(|r| r.id.clone())
        .collect();
    match c.dns {
        DnsMode::Off => refuse("dns is off"),
        DnsMode::Filtered if rules.is_empty() => refuse("no rule allows this name"),
        DnsMode::Filtered | DnsMode::Open => Decision::Forward { name, qtype: q.qtype, rules },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoody_net::policy::EgressPolicy;
    use hoody_net::rules::{Action, Direction, Protocol, Rule, RuleSpec};

    fn ctr(dns: DnsMode, names: &[&str]) -> ContainerFirewall {
        ContainerFirewall {
            id: "c".repeat(24),
            ipv4: "10.77.0.2".parse().unwrap(),
            egress_policy: EgressPolicy::Deny,
            dns,
            egress: names
                .iter()
                .enumerate()
                .map(|(i, n)| Rule {
                    id: format!("r{i}"),
                    spec: RuleSpec {
                        direction: Direction::Egress,
                        action: Action::Allow,
                        protocol: Protocol::Tcp,
                        peer: hoody_net::rules::FQDN_PEER,
                        ports: None,
                        description: String::new(),
                        fqdn: Some(n.to_string()),
                    },
                })
                .collect(),
            ingress: vec![],
        }
    }

    fn q(name: &str, qtype: RecordType) -> ClientQuery {
        ClientQuery::for_test(name, qtype)
    }

    #[test]
    fn filtered_forwards_only_names_a_rule_allows() {
        let c = ctr(DnsMode::Filtered, &["api.stripe.com", "*.github.com"]);
        assert_eq!(
            decide(&c, &q("api.stripe.com", RecordType::A)),
            Decision::Forward { name: "api.stripe.com".into(), qtype: RecordType::A, rules: vec!["r0".into()] }
        );
        assert!(matches!(decide(&c, &q("x.api.github.com", RecordType::AAAA)), Decision::Forward { rules, .. } if rules == ["r1"]));
        for (name, t, why) in [
            ("secret.attacker.tld", RecordType::A, "no rule"),
            ("github.com", RecordType::A, "no rule"),
            ("api.stripe.com", RecordType::NULL, "type"),
            ("api.stripe.com", RecordType::ANY, "type"),
            ("a b.github.com", RecordType::A, "host name"),
        ] {
            match decide(&c, &q(name, t)) {
                Decision::Refuse { why: w, .. } => assert!(w.contains(why), "{name}: {w}"),
                d => panic!("{name} {t}: {d:?}"),
            }
        }
    }

    #[test]
    fn open_forwards_any_name_and_off_none() {
        let open = ctr(DnsMode::Open, &["api.stripe.com"]);
        assert!(matches!(decide(&open, &q("example.org", RecordType::A)), Decision::Forward { rules, .. } if rules.is_empty()));
        assert!(matches!(decide(&open, &q("api.stripe.com", RecordType::A)), Decision::Forward { rules, .. } if rules == ["r0"]));
        let off = ctr(DnsMode::Off, &["api.stripe.com"]);
        assert!(matches!(decide(&off, &q("api.stripe.com", RecordType::A)), Decision::Refuse { why: "dns is off", .. }));
    }
}
