//! An ordered rule list as disjoint regions: the first rule that matches a packet decides, so
//! each rule owns what it matches minus what the rules before it already own. Each region is a
//! box `destination range × protocol range × port range`, one element of an interval set, so a
//! container's whole list can be looked up by the kernel in one step and changed element by
//! element, never touching a rule or a chain (the layout issue 16 moves the firewall to; see
//! docs/PERFORMANCE.md, "Where a firewall change's cost grows").

use crate::rules::{Action, Rule};

/// An inclusive range of one dimension.
pub type Span = (u32, u32);

/// A box in (peer address, IP protocol, port) space; inclusive on every side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub addr: Span,
    pub proto: Span,
    pub port: Span,
}

/// A container holds at most this many regions per direction: a list whose rules overlap so
/// much that it would need more is refused (1,000 disjoint rules need 1,000).
pub const MAX_REGIONS: usize = 8_000;

impl Region {
    fn dims(&self) -> [Span; 3] {
        [self.addr, self.proto, self.port]
    }

    fn from_dims(d: [Span; 3]) -> Region {
        Region { addr: d[0], proto: d[1], port: d[2] }
    }

    /// What `rule` matches.
    pub fn of(rule: &Rule) -> Region {
        let s = &rule.spec;
        let proto = crate::rules::protocol_number(s.protocol).map(|p| (u32::from(p), u32::from(p))).unwrap_or((0, 255));
        let port = s.ports.map(|p| (u32::from(p.from), u32::from(p.to))).unwrap_or((0, 65535));
        Region { addr: (u32::from(s.peer.network()), u32::from(s.peer.broadcast())), proto, port }
    }

    fn intersects(&self, o: &Region) -> bool {
        self.dims().iter().zip(o.dims()).all(|(a, b)| a.0 <= b.1 && b.0 <= a.1)
    }

    /// `self` minus `o`: at most six disjoint boxes.
    fn minus(&self, o: &Region) -> Vec<Region> {
        if !self.intersects(o) {
            return vec![*self];
        }
        let mut out = vec![];
        let mut cur = self.dims();
        let other = o.dims();
        for d in 0..3 {
            if cur[d].0 < other[d].0 {
                let mut piece = cur;
                piece[d] = (cur[d].0, other[d].0 - 1);
                out.push(Region::from_dims(piece));
                cur[d].0 = other[d].0;
            }
            if cur[d].1 > other[d].1 {
                let mut piece = cur;
                piece[d] = (other[d].1 + 1, cur[d].1);
                out.push(Region::from_dims(piece));
                cur[d].1 = other[d].1;
            }
        }
        out
    }
}

/// One region with the rule that owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    pub region: Region,
    pub rule_id: String,
    pub action: Action,
}

/// The regions of an ordered list, first match first; `None` when they would exceed
/// [`MAX_REGIONS`].
pub fn decompose(rules: &[Rule]) -> Option<Vec<Owned>> {
    let mut owned: Vec<Owned> = vec![];
    // A rule by name owns nothing by itself: only what the container learned ([`learned`]).
    for r in rules.iter().filter(|r| r.spec.fqdn.is_none()) {
        let mut pieces = vec![Region::of(r)];
        for o in &owned {
            if pieces.is_empty() {
                break;
            }
            pieces = pieces.iter().flat_map(|p| p.minus(&o.region)).collect();
        }
        owned.extend(pieces.into_iter().map(|region| Owned { region, rule_id: r.id.clone(), action: r.spec.action }));
        if owned.len() > MAX_REGIONS {
            return None;
        }
    }
    Some(owned)
}

/// What a rule by name opens for an address the container learned through it: the rule's
/// protocol and ports at that address, minus what a deny rule before it owns (an allow rule
/// before it allows the same). `None` when the rule is not in the list (or not by name).
pub fn learned(rules: &[Rule], rule_id: &str, addr: std::net::Ipv4Addr) -> Option<Vec<Region>> {
    let pos = rules.iter().position(|r| r.id == rule_id && r.spec.fqdn.is_some())?;
    let mut area = Region::of(&rules[pos]);
    area.addr = (u32::from(addr), u32::from(addr));
    let mut pieces = vec![area];
    for r in rules[..pos].iter().filter(|r| r.spec.fqdn.is_none() && r.spec.action == Action::Deny) {
        pieces = pieces.iter().flat_map(|p| p.minus(&Region::of(r))).collect();
    }
    Some(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Direction, PortRange, Protocol, RuleSpec};

    fn rule(id: &str, action: Action, proto: Protocol, peer: &str, ports: Option<(u16, u16)>) -> Rule {
        Rule {
            id: id.into(),
            spec: RuleSpec {
                direction: Direction::Egress,
                action,
                protocol: proto,
                peer: peer.parse().unwrap(),
                ports: ports.map(|(from, to)| PortRange { from, to }),
                description: String::new(),
                fqdn: None,
            },
        }
    }

    fn contains(r: &Region, addr: u32, proto: u32, port: u32) -> bool {
        (r.addr.0..=r.addr.1).contains(&addr) && (r.proto.0..=r.proto.1).contains(&proto) && (r.port.0..=r.port.1).contains(&port)
    }

    /// The first rule matching (addr, proto, port), by brute force over the list.
    fn first_match(rules: &[Rule], addr: u32, proto: u32, port: u32) -> Option<&str> {
        rules.iter().find(|r| contains(&Region::of(r), addr, proto, port)).map(|r| r.id.as_str())
    }

    #[test]
    fn regions_are_disjoint_and_decide_as_the_first_match() {
        let rules = vec![
            rule("deny-one", Action::Deny, Protocol::Tcp, "203.0.113.10/32", Some((443, 443))),
            rule("web", Action::Allow, Protocol::Tcp, "203.0.113.0/24", Some((80, 8080))),
            rule("any", Action::Allow, Protocol::Any, "203.0.113.8/29", None),
            rule("dns", Action::Allow, Protocol::Udp, "198.51.100.53/32", Some((53, 53))),
            rule("shadowed", Action::Deny, Protocol::Tcp, "203.0.113.10/32", Some((443, 443))),
        ];
        let owned = decompose(&rules).unwrap();
        for (i, a) in owned.iter().enumerate() {
            for b in &owned[i + 1..] {
                assert!(!a.region.intersects(&b.region), "{a:?} overlaps {b:?}");
            }
        }
        assert!(owned.iter().all(|o| o.rule_id != "shadowed"), "a rule wholly behind others owns nothing");
        let base = u32::from(std::net::Ipv4Addr::new(203, 0, 113, 0));
        for addr in [base, base + 8, base + 10, base + 15, base + 16, u32::from(std::net::Ipv4Addr::new(198, 51, 100, 53))] {
            for proto in [1, 6, 17, 47] {
                for port in [0, 53, 79, 80, 443, 8080, 8081, 65535] {
                    let want = first_match(&rules, addr, proto, port);
                    let got: Vec<&str> =
                        owned.iter().filter(|o| contains(&o.region, addr, proto, port)).map(|o| o.rule_id.as_str()).collect();
                    assert_eq!(got.first().copied(), want, "addr {addr:x} proto {proto} port {port}");
                    assert!(got.len() <= 1);
                }
            }
        }
    }

    #[test]
    fn disjoint_rules_stay_one_region_each_and_a_pathological_list_is_refused() {
        let rules: Vec<Rule> = (0..1000)
            .map(|i| rule(&format!("r{i}"), Action::Allow, Protocol::Tcp, &format!("10.{}.{}.0/24", i / 256, i % 256), Some((443, 443))))
            .collect();
        assert_eq!(decompose(&rules).unwrap().len(), 1000);
        // Crossed stripes: 20 single ports over every address, then 500 single addresses over
        // every port; each address stripe is cut into 21 pieces by the ports before it.
        let mut crossed: Vec<Rule> =
            (0..20).map(|i| rule(&format!("p{i}"), Action::Deny, Protocol::Tcp, "0.0.0.0/0", Some((1000 + 2 * i, 1000 + 2 * i)))).collect();
        crossed.extend(
            (0..500).map(|i| rule(&format!("a{i}"), Action::Allow, Protocol::Tcp, &format!("10.0.{}.{}/32", i / 256, i % 256), None)),
        );
        assert!(decompose(&crossed[..40]).is_some_and(|o| o.len() == 20 + 20 * 21));
        assert_eq!(decompose(&crossed), None, "more than MAX_REGIONS pieces");
    }
}
