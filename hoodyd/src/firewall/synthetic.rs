//! Firewall-only containers for measuring and testing the table at 10,000 containers without
//! 10,000 root filesystems: the test hook `HOODY_TEST_FIREWALL_ONLY=N[:R]` adds N containers
//! that exist only as firewall elements (no record, root, process or interface) at the top of
//! the subnet, each with R egress allow rules (alternately one address and a /24), to every
//! start-up reconcile. Test builds only.

use std::net::Ipv4Addr;

use hoody_net::addr::Ipv4Net;
use hoody_net::policy::{ContainerFirewall, EgressPolicy};
use hoody_net::rules::{Action, Direction, PortRange, Protocol, Rule, RuleSpec};

/// Parses `N[:R]`; `None` when unset or malformed.
fn parse(v: &str) -> Option<(u32, u32)> {
    let (n, r) = v.split_once(':').unwrap_or((v, "0"));
    Some((n.trim().parse().ok()?, r.trim().parse().ok()?))
}

/// The synthetic containers of `spec` in `subnet`: addresses downwards from its last usable
/// one, ids starting `f…` with distinct first 8 digits (distinct host-end names).
pub fn containers(spec: &str, subnet: Ipv4Net) -> Vec<ContainerFirewall> {
    let Some((n, r)) = parse(spec) else { return vec![] };
    let top = u32::from(subnet.broadcast()) - 1;
    let room = top.saturating_sub(u32::from(subnet.network()) + 2);
    (0..n.min(room))
        .map(|i| ContainerFirewall {
            id: format!("{:08x}{:016x}", 0xf000_0000u32 + i, 0),
            ipv4: Ipv4Addr::from(top - i),
            egress_policy: EgressPolicy::Deny,
            dns: hoody_net::policy::DnsMode::Filtered,
            egress: (0..r)
                .map(|k| Rule {
                    id: format!("{:08x}{:08x}{:08x}", 0xf000_0000u32 + i, k, 0),
                    spec: RuleSpec {
                        direction: Direction::Egress,
                        action: Action::Allow,
                        protocol: Protocol::Tcp,
                        // Half exact addresses, half ranges (/24s: interval elements).
                        peer: if k % 2 == 0 {
                            Ipv4Net::new(Ipv4Addr::new(198, 51, 100, (k % 250) as u8 + 1), 32).expect("a /32")
                        } else {
                            Ipv4Net::new(Ipv4Addr::new(203, 0, (k % 250) as u8, 0), 24).expect("a /24")
                        },
                        ports: Some(PortRange { from: 1000 + k as u16, to: 1000 + k as u16 }),
                        description: String::new(),
                        fqdn: None,
                    },
                })
                .collect(),
            ingress: vec![],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_addresses_and_interfaces_at_the_top() {
        let c = containers("3:2", "10.78.0.0/16".parse().unwrap());
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].ipv4, Ipv4Addr::new(10, 78, 255, 254));
        assert_eq!(c[2].ipv4, Ipv4Addr::new(10, 78, 255, 252));
        let names: std::collections::BTreeSet<String> = c.iter().map(|c| c.ifname()).collect();
        assert_eq!(names.len(), 3);
        assert_eq!(c[1].egress.len(), 2);
        assert!(containers("x", "10.78.0.0/16".parse().unwrap()).is_empty());
    }
}
