//! A container as set elements of the fixed table ([`crate::compile`]): which address its host
//! end may send from, its counters, its policy, and its ordered rule lists as disjoint regions
//! ([`crate::regions`]). Every change of a container is a diff of these elements.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::compile::{self, Elem, Expected, Op};
use crate::error::{NetError, Result};
use crate::policy::{ContainerFirewall, EgressPolicy};
use crate::regions::{self, Region};
use crate::rules::Action;

/// Elements go to the kernel in messages of at most this many.
const CHUNK: usize = 256;

/// The container's shard: the last bits of its address (`shards` a power of two).
pub fn shard(ip: Ipv4Addr, shards: u16) -> u16 {
    (u32::from(ip) & u32::from_be_bytes(compile::shard_mask(shards))) as u16
}

fn ifname_key(ifname: &str) -> Vec<u8> {
    let mut k = vec![0u8; 16];
    let b = ifname.as_bytes();
    let n = b.len().min(15);
    k[..n].copy_from_slice(&b[..n]);
    k
}

/// Whether a region is a single point (an exact key, held in a hash set).
fn is_point(r: &Region) -> bool {
    r.addr.0 == r.addr.1 && r.proto.0 == r.proto.1 && r.port.0 == r.port.1
}

/// A region as an element: `own . peer . proto . port`, each field 32 bits, exact when it is a
/// single point; otherwise an interval with the region's kind in front (`kind . own . …`).
fn region_elem(kind: u8, own: Ipv4Addr, r: &Region, rule_id: &str) -> Elem {
    let point = is_point(r);
    let key = |peer: u32, proto: u32, port: u32| {
        let mut k = if point { vec![] } else { vec![0, 0, 0, kind] };
        k.extend(own.octets());
        k.extend(peer.to_be_bytes());
        k.extend([proto as u8, 0, 0, 0]);
        k.extend([(port >> 8) as u8, port as u8, 0, 0]);
        k
    };
    Elem {
        key: key(r.addr.0, r.proto.0, r.port.0),
        key_end: (!point).then(|| key(r.addr.1, r.proto.1, r.port.1)),
        comment: Some(format!("r:{rule_id}")),
        goto: None,
        timeout_ms: None,
    }
}

/// The container's elements, set by set (every set it has a part in, even where that part is
/// empty). Refused when a rule list would need more than [`regions::MAX_REGIONS`] regions.
pub fn of(c: &ContainerFirewall, shards: u16) -> Result<BTreeMap<String, Vec<Elem>>> {
    let s = shard(c.ipv4, shards);
    let ip = c.ipv4.octets().to_vec();
    let ifk = ifname_key(&c.ifname());
    let mut m: BTreeMap<String, Vec<Elem>> = BTreeMap::new();
    m.insert(compile::SET_CTR.into(), vec![Elem::key([ifk.clone(), ip.clone()].concat())]);
    m.insert(compile::SET_SPOOFED.into(), vec![Elem::key(ifk)]);
    m.insert(compile::SET_DENIED.into(), vec![Elem::key(ip.clone())]);
    m.insert(compile::SET_INGRESS_DENIED.into(), vec![Elem::key(ip.clone())]);
    m.insert(compile::SET_OPEN.into(), if c.egress_policy == EgressPolicy::Allow { vec![Elem::key(ip.clone())] } else { vec![] });
    m.insert(compile::SET_DNS_OFF.into(), if c.dns == crate::policy::DnsMode::Off { vec![Elem::key(ip)] } else { vec![] });
    let too_many = |what: &str| {
        NetError::Invalid(crate::error::Invalid::new(
            "rules",
            format!("the {what} rules overlap into more than {} regions", regions::MAX_REGIONS),
        ))
    };
    let egress = regions::decompose(&c.egress).ok_or_else(|| too_many("egress"))?;
    let ingress = regions::decompose(&c.ingress).ok_or_else(|| too_many("ingress"))?;
    let shard_set = compile::shard_set(s);
    let targets = [
        (compile::SET_EGRESS_ALLOW_POINTS, compile::REGION_EGRESS_ALLOW),
        (compile::SET_EGRESS_DENY_POINTS, compile::REGION_EGRESS_DENY),
        (compile::SET_INGRESS_ALLOW_POINTS, compile::REGION_INGRESS_ALLOW),
    ];
    m.insert(shard_set.clone(), vec![]);
    for (points, _) in &targets {
        m.insert(points.to_string(), vec![]);
    }
    let placed = egress.iter().map(|o| (o, if o.action == Action::Allow { 0 } else { 1 })).chain(ingress.iter().map(|o| (o, 2)));
    for (o, t) in placed {
        let (points, kind) = targets[t];
        let set = if is_point(&o.region) { points.to_string() } else { shard_set.clone() };
        m.get_mut(&set).expect("inserted above").push(region_elem(kind, c.ipv4, &o.region, &o.rule_id));
    }
    Ok(m)
}

/// Whether element `key` of `set` belongs to the container with address `ip` and host end
/// `ifname`.
pub fn owned_by(set: &str, key: &[u8], ip: Ipv4Addr, ifname: &str) -> bool {
    let ip = ip.octets();
    match set {
        compile::SET_CTR => key.get(..16) == Some(&ifname_key(ifname)[..]) || key.get(16..20) == Some(&ip[..]),
        compile::SET_SPOOFED => key == &ifname_key(ifname)[..],
        compile::MAP_EGRESS_SHARDS | compile::MAP_INGRESS_SHARDS => false,
        s if s.starts_with("sh") => key.get(4..8) == Some(&ip[..]),
        _ => key.get(..4) == Some(&ip[..]),
    }
}

/// The exact keys of a container's elements in the hash sets (where it is looked up by key,
/// whatever the set's size).
pub fn hash_keys(ip: Ipv4Addr, ifname: &str) -> Vec<(&'static str, Vec<u8>)> {
    let ifk = ifname_key(ifname);
    let a = ip.octets().to_vec();
    vec![
        (compile::SET_CTR, [ifk.clone(), a.clone()].concat()),
        (compile::SET_SPOOFED, ifk),
        (compile::SET_DENIED, a.clone()),
        (compile::SET_INGRESS_DENIED, a.clone()),
        (compile::SET_OPEN, a.clone()),
        (compile::SET_DNS_OFF, a),
    ]
}

pub use crate::compile::is_learned;

/// What `addr`, learned by `c` through its rule by name `rule_id`, opens, as (set, element)
/// pairs with `timeout_ms`: a single point (one protocol and port) in the learned hash set
/// `elp` (a lookup costs the same however many are there), a range in `c`'s shard set. The
/// comments say `r:<rule id> <name>` (the name it was learned by). `None`: `c` has no such rule.
pub fn learned_elems(
    c: &ContainerFirewall,
    shards: u16,
    rule_id: &str,
    name: &str,
    addr: Ipv4Addr,
    timeout_ms: u64,
) -> Option<Vec<(String, Elem)>> {
    let regions = regions::learned(&c.egress, rule_id, addr)?;
    let shard_set = compile::shard_set(shard(c.ipv4, shards));
    let elems = regions
        .iter()
        .map(|r| {
            let mut e = region_elem(compile::REGION_EGRESS_LEARNED, c.ipv4, r, rule_id);
            e.timeout_ms = Some(timeout_ms);
            e.comment = Some(format!("r:{rule_id} {name}"));
            let set = if is_point(r) { compile::SET_EGRESS_LEARNED_POINTS.to_string() } else { shard_set.clone() };
            (set, e)
        })
        .collect();
    Some(elems)
}

fn chunked(set: &str, elems: Vec<Elem>, add: bool) -> Vec<Op> {
    elems
        .chunks(CHUNK)
        .map(
            |c| if add { Op::AddElems { set: set.into(), elems: c.to_vec() } } else { Op::DelElems { set: set.into(), elems: c.to_vec() } },
        )
        .collect()
}

/// The operations that turn `current` (what the kernel holds of a container, set by set) into
/// `wanted`: deletions first, then additions (an element whose owner changed is deleted and
/// added again in the same transaction).
pub fn diff(current: &BTreeMap<String, Vec<Elem>>, wanted: &BTreeMap<String, Vec<Elem>>) -> Vec<Op> {
    let mut dels = vec![];
    let mut adds = vec![];
    let names: BTreeSet<&String> = current.keys().chain(wanted.keys()).collect();
    for set in names {
        let have: BTreeSet<&Elem> = current.get(set).map(|v| v.iter().collect()).unwrap_or_default();
        let want: BTreeSet<&Elem> = wanted.get(set).map(|v| v.iter().collect()).unwrap_or_default();
        let gone: Vec<Elem> = have.difference(&want).map(|e| (*e).clone()).collect();
        let new: Vec<Elem> = want.difference(&have).map(|e| (*e).clone()).collect();
        dels.extend(chunked(set, gone, false));
        adds.extend(chunked(set, new, true));
    }
    dels.extend(adds);
    dels
}

/// The whole table from scratch, replacing whatever is there, in one transaction, and what
/// verification expects of it. (The leading add makes the delete valid when there is no table.)
pub fn plan(cfg: &crate::policy::TableConfig, containers: &[ContainerFirewall]) -> Result<(Vec<Op>, Expected)> {
    plan_each(cfg, containers).map(|(ops, x, _)| (ops, x))
}

/// [`plan`], and each container's elements (in the order of `containers`).
pub type PerContainer = Vec<BTreeMap<String, Vec<Elem>>>;

pub fn plan_each(cfg: &crate::policy::TableConfig, containers: &[ContainerFirewall]) -> Result<(Vec<Op>, Expected, PerContainer)> {
    let mut ops = vec![Op::AddTable, Op::DelTable];
    let (skel, mut x) = compile::skeleton(cfg);
    ops.extend(skel);
    let mut per = Vec::with_capacity(containers.len());
    for c in containers {
        let m = of(c, cfg.shards)?;
        for (set, elems) in &m {
            x.sets.entry(set.clone()).or_default().extend(elems.iter().cloned());
        }
        per.push(m);
    }
    for (set, elems) in &x.sets {
        if set != compile::MAP_EGRESS_SHARDS && set != compile::MAP_INGRESS_SHARDS {
            ops.extend(chunked(set, elems.clone(), true));
        }
    }
    Ok((ops, x, per))
}

/// The rule ids in `elems` with the sum of their elements' counters.
pub fn rule_counters(elems: &[crate::compile::KernelElem]) -> BTreeMap<String, (u64, u64)> {
    let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in elems {
        if let Some(id) = e.elem.comment.as_deref().and_then(compile::comment_rule_id) {
            let c = m.entry(id.to_owned()).or_default();
            c.0 += e.packets;
            c.1 += e.bytes;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Direction, PortRange, Protocol, Rule, RuleSpec};

    fn ctr(n: u8) -> ContainerFirewall {
        ContainerFirewall {
            id: format!("{n:02x}").repeat(12),
            ipv4: Ipv4Addr::new(10, 77, 1, n),
            egress_policy: EgressPolicy::Deny,
            dns: crate::policy::DnsMode::Filtered,
            egress: vec![],
            ingress: vec![],
        }
    }

    fn rule(id: &str, action: Action, port: u16) -> Rule {
        Rule {
            id: id.into(),
            spec: RuleSpec {
                direction: Direction::Egress,
                action,
                protocol: Protocol::Tcp,
                peer: "203.0.113.0/24".parse().unwrap(),
                ports: Some(PortRange { from: port, to: port }),
                description: String::new(),
                fqdn: None,
            },
        }
    }

    #[test]
    fn a_region_key_is_own_peer_proto_port() {
        let mut c = ctr(5);
        c.egress = vec![rule("r1", Action::Allow, 443)];
        let m = of(&c, compile::MAX_SHARDS).unwrap();
        let e = &m["sh105"][0];
        assert_eq!(e.key, [0, 0, 0, 1, 10, 77, 1, 5, 203, 0, 113, 0, 6, 0, 0, 0, 0x01, 0xbb, 0, 0]);
        assert_eq!(e.key_end.as_deref(), Some(&[0, 0, 0, 1, 10, 77, 1, 5, 203, 0, 113, 255, 6, 0, 0, 0, 0x01, 0xbb, 0, 0][..]));
        assert_eq!(e.comment.as_deref(), Some("r:r1"));
        assert!(m["edp"].is_empty() && m["open"].is_empty() && m["eap"].is_empty());
        for (set, elems) in &m {
            for e in elems {
                assert!(owned_by(set, &e.key, c.ipv4, &c.ifname()), "{set}");
                assert!(!owned_by(set, &e.key, Ipv4Addr::new(10, 77, 2, 5), "hvffffffff"), "{set}: not a neighbour's");
            }
        }
    }

    #[test]
    fn a_rule_change_is_a_diff_of_its_own_shard_only() {
        let mut c = ctr(7);
        let before = of(&c, compile::MAX_SHARDS).unwrap();
        c.egress.push(rule("r1", Action::Deny, 22));
        let after = of(&c, compile::MAX_SHARDS).unwrap();
        let ops = diff(&before, &after);
        assert_eq!(ops.len(), 1);
        assert!(
            matches!(&ops[0], Op::AddElems { set, elems } if set == "sh107" && elems.len() == 1 && elems[0].key[3] == compile::REGION_EGRESS_DENY)
        );
        assert!(diff(&after, &after).is_empty());
        c.egress_policy = EgressPolicy::Allow;
        let ops = diff(&after, &of(&c, compile::MAX_SHARDS).unwrap());
        assert!(matches!(&ops[..], [Op::AddElems { set, .. }] if set == "open"));
    }

    #[test]
    fn a_single_point_goes_to_the_hash_set() {
        let mut c = ctr(5);
        let mut r = rule("p1", Action::Allow, 443);
        r.spec.peer = "203.0.113.7/32".parse().unwrap();
        c.egress = vec![r];
        let m = of(&c, compile::MAX_SHARDS).unwrap();
        assert!(m["sh105"].is_empty());
        assert_eq!(m["eap"].len(), 1);
        assert_eq!(m["eap"][0].key_end, None, "exact: no interval end");
        assert_eq!(m["eap"][0].key, [10, 77, 1, 5, 203, 0, 113, 7, 6, 0, 0, 0, 0x01, 0xbb, 0, 0]);
        assert!(owned_by("eap", &m["eap"][0].key, c.ipv4, &c.ifname()));
    }

    #[test]
    fn deletions_come_before_additions() {
        let mut c = ctr(9);
        c.egress = vec![rule("a", Action::Allow, 80)];
        let before = of(&c, compile::MAX_SHARDS).unwrap();
        c.egress = vec![rule("b", Action::Allow, 80)];
        let ops = diff(&before, &of(&c, compile::MAX_SHARDS).unwrap());
        assert!(matches!(&ops[..], [Op::DelElems { .. }, Op::AddElems { .. }]), "{ops:?}");
    }
}
