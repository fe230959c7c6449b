//! The policy compiler: turns the declarative firewall into nftables operations. Pure: unit
//! tested against the recording double, applied by [`crate::nft::NftFirewall`] as one
//! transaction.
//!
//! ```text
//! table inet hoody
//!   map eg { ifname : verdict }   hvXXXXXXXX → jump e_<id>
//!   map in { ifname : verdict }   hvXXXXXXXX → jump i_<id>
//!   forward: iifname vmap @eg; iifname "hv*" drop; oifname vmap @in; oifname "hv*" drop
//!   input:   iifname vmap @eg; iifname "hv*" drop          (the host counts as egress)
//!   output:  oifname vmap @in; oifname "hv*" drop          (the host counts as ingress)
//!   allowed: oifname vmap @in; oifname "hv*" drop; accept  (egress that a rule allowed)
//!   postrouting (with an uplink): oifname <uplink> ip saddr <subnet> masquerade
//!   prerouting (mangle): iifname "hv*" meta mark set CONTAINER_MARK
//!                        (a policy routing rule refuses container traffic without the mark,
//!                        so if the table is ever gone, forwarding fails closed: see failsafe)
//!   e_<id>: spoofed source → drop; IPv6 → drop; invalid/untracked → drop; established →
//!           accept (not related: a container's ICMP errors go through the rules); rules…; policy
//!   d_<id>: limit → log (nflog); tcp → reset; udp → port unreachable; drop
//!   i_<id>: invalid/untracked → drop; established, related → accept; allow-list → accept; drop
//! ```
//! Every verdict is final. Allowed egress goes through `allowed`, which lets the receiving
//! container's allow-list decide when the destination is another container.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::addr::Ipv4Net;
use crate::names;
use crate::policy::{ContainerFirewall, DenyAction, EgressPolicy, TableConfig};
use crate::rules::{Action, PortRange, Rule};

pub const TABLE: &str = "hoody";
/// Where allowed egress goes: the destination's ingress list (if a container), then accept.
pub const ALLOWED_CHAIN: &str = "allowed";
pub const EGRESS_MAP: &str = "eg";
pub const INGRESS_MAP: &str = "in";
pub const NFPROTO_IPV4: u8 = 2;
/// Set on every packet that enters from a container's interface by the table's prerouting
/// chain; routing refuses container traffic without it ([`crate::failsafe`]).
pub const CONTAINER_MARK: u32 = 0x686f_6f64;
pub const NFPROTO_IPV6: u8 = 10;
/// `ct state` bits (as nft's `ct state` matches them).
pub const CT_INVALID: u32 = 1;
pub const CT_ESTABLISHED: u32 = 2;
pub const CT_RELATED: u32 = 4;
pub const CT_UNTRACKED: u32 = 64;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
    RejectTcpReset,
    RejectPortUnreachable,
}

/// One expression (match or statement) of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    IifPrefix(&'static str),
    OifPrefix(&'static str),
    OifName(String),
    IifVmap(&'static str),
    OifVmap(&'static str),
    NfProto(u8),
    L4Proto(u8),
    SaddrNot(Ipv4Addr),
    Saddr(Ipv4Net),
    Daddr(Ipv4Net),
    Dport(PortRange),
    /// `ct state` has any of these bits (conntrack's `NF_CT_STATE_*`: [`CT_INVALID`], …).
    CtState(u32),
    Counter,
    Limit {
        per_second: u32,
        burst: u32,
    },
    Log {
        group: u16,
        prefix: String,
    },
    Masquerade,
    SetMark(u32),
    Verdict(Verdict),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledRule {
    /// `<kind>:<name>:<hash>`: kind g (guard), r (user rule), p (policy), x (deny actions), b
    /// (base chain). The hash covers the expressions, so verification sees changed content.
    pub comment: String,
    pub exprs: Vec<Expr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseHook {
    Forward,
    Input,
    Output,
    Postrouting,
    Prerouting,
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    AddTable,
    DelTable,
    AddBaseChain {
        name: &'static str,
        hook: BaseHook,
    },
    AddChain(String),
    FlushChain(String),
    DelChain(String),
    AddMap(&'static str),
    AddMapElem {
        map: &'static str,
        ifname: String,
        chain: String,
    },
    DelMapElem {
        map: &'static str,
        ifname: String,
    },
    /// Appended at the end of the chain, or right after the rule with handle `after`.
    AddRule {
        chain: String,
        rule: CompiledRule,
        after: Option<u64>,
    },
    DelRule {
        chain: String,
        handle: u64,
    },
    /// Replaces the rule with handle `handle` in place (same position, new content).
    ReplaceRule {
        chain: String,
        handle: u64,
        rule: CompiledRule,
    },
}

/// FNV-1a: a hash that is the same in every build (unlike std's).
fn fnv(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn rule(kind: &str, name: &str, exprs: Vec<Expr>) -> CompiledRule {
    let comment = format!("{kind}:{name}:{:08x}", fnv(&format!("{exprs:?}")));
    CompiledRule { comment, exprs }
}

/// Kind of a rule from its comment (`r`, `p`, `g`, `x`, `b`).
pub fn comment_kind(comment: &str) -> &str {
    comment.split(':').next().unwrap_or("")
}

/// The user rule id in a comment `r:<id>:<hash>`.
pub fn comment_rule_id(comment: &str) -> Option<&str> {
    let mut it = comment.split(':');
    (it.next() == Some("r")).then(|| it.next()).flatten()
}

fn base_rules(cfg: &TableConfig) -> Vec<(&'static str, BaseHook, Vec<CompiledRule>)> {
    let hv = names::IFACE_PREFIX;
    let drop = |e: Expr| vec![e, Expr::Counter, Expr::Verdict(Verdict::Drop)];
    let mut v = vec![
        ("prerouting", BaseHook::Prerouting, vec![rule("b", "mark", vec![Expr::IifPrefix(hv), Expr::SetMark(CONTAINER_MARK)])]),
        (
            "forward",
            BaseHook::Forward,
            vec![
                rule("b", "eg", vec![Expr::IifVmap(EGRESS_MAP)]),
                rule("b", "eg-unknown", drop(Expr::IifPrefix(hv))),
                rule("b", "in", vec![Expr::OifVmap(INGRESS_MAP)]),
                rule("b", "in-unknown", drop(Expr::OifPrefix(hv))),
            ],
        ),
        (
            "input",
            BaseHook::Input,
            vec![rule("b", "eg", vec![Expr::IifVmap(EGRESS_MAP)]), rule("b", "eg-unknown", drop(Expr::IifPrefix(hv)))],
        ),
        (
            "output",
            BaseHook::Output,
            vec![rule("b", "in", vec![Expr::OifVmap(INGRESS_MAP)]), rule("b", "in-unknown", drop(Expr::OifPrefix(hv)))],
        ),
    ];
    if let Some(up) = &cfg.uplink {
        v.push((
            "postrouting",
            BaseHook::Postrouting,
            vec![rule(
                "b",
                "masquerade",
                vec![Expr::OifName(up.clone()), Expr::NfProto(NFPROTO_IPV4), Expr::Saddr(cfg.subnet), Expr::Masquerade],
            )],
        ));
    }
    v
}

fn allowed_rules() -> Vec<CompiledRule> {
    vec![
        rule("b", "allowed-in", vec![Expr::OifVmap(INGRESS_MAP)]),
        rule("b", "allowed-unknown", vec![Expr::OifPrefix(names::IFACE_PREFIX), Expr::Counter, Expr::Verdict(Verdict::Drop)]),
        rule("b", "allowed", vec![Expr::Verdict(Verdict::Accept)]),
    ]
}

/// The table, its maps and base chains.
pub fn skeleton(cfg: &TableConfig) -> Vec<Op> {
    let mut ops = vec![Op::AddTable, Op::AddMap(EGRESS_MAP), Op::AddMap(INGRESS_MAP), Op::AddChain(ALLOWED_CHAIN.into())];
    for r in allowed_rules() {
        ops.push(Op::AddRule { chain: ALLOWED_CHAIN.into(), rule: r, after: None });
    }
    for (name, hook, rules) in base_rules(cfg) {
        ops.push(Op::AddBaseChain { name, hook });
        for r in rules {
            ops.push(Op::AddRule { chain: name.into(), rule: r, after: None });
        }
    }
    ops
}

fn matches(spec: &crate::rules::RuleSpec, peer: Expr) -> Vec<Expr> {
    let mut e = vec![Expr::NfProto(NFPROTO_IPV4)];
    if let Some(p) = spec.protocol.number() {
        e.push(Expr::L4Proto(p));
    }
    e.push(peer);
    if let Some(ports) = spec.ports {
        e.push(Expr::Dport(ports));
    }
    e.push(Expr::Counter);
    e
}

/// A user egress rule of container `id`.
pub fn egress_rule(id: &str, r: &Rule) -> CompiledRule {
    let mut e = matches(&r.spec, Expr::Daddr(r.spec.peer));
    e.push(Expr::Verdict(match r.spec.action {
        Action::Allow => Verdict::Goto(ALLOWED_CHAIN.into()),
        Action::Deny => Verdict::Goto(names::deny_chain(id)),
    }));
    rule("r", &r.id, e)
}

/// An ingress allow-list entry.
pub fn ingress_rule(r: &Rule) -> CompiledRule {
    let mut e = matches(&r.spec, Expr::Saddr(r.spec.peer));
    e.push(Expr::Verdict(Verdict::Accept));
    rule("r", &r.id, e)
}

pub fn policy_rule(id: &str, p: EgressPolicy) -> CompiledRule {
    match p {
        EgressPolicy::Deny => rule("p", "deny", vec![Expr::Counter, Expr::Verdict(Verdict::Goto(names::deny_chain(id)))]),
        EgressPolicy::Allow => rule("p", "allow", vec![Expr::Counter, Expr::Verdict(Verdict::Goto(ALLOWED_CHAIN.into()))]),
    }
}

fn guards(c: &ContainerFirewall) -> Vec<CompiledRule> {
    vec![
        rule("g", "spoof", vec![Expr::NfProto(NFPROTO_IPV4), Expr::SaddrNot(c.ipv4), Expr::Counter, Expr::Verdict(Verdict::Drop)]),
        rule("g", "ipv6", vec![Expr::NfProto(NFPROTO_IPV6), Expr::Counter, Expr::Verdict(Verdict::Drop)]),
        // What conntrack calls invalid (a bad checksum while nf_conntrack_checksum is 1, the
        // default; a packet outside any window) or untracked never reaches a rule: it would
        // pass an allow rule and leave without masquerade (NAT needs a connection).
        rule("g", "invalid", vec![Expr::CtState(CT_INVALID | CT_UNTRACKED), Expr::Counter, Expr::Verdict(Verdict::Drop)]),
        // Replies of its own connections only: an ICMP error the container sends is "related"
        // to the connection it names, and forged it carries anything; it goes through the
        // rules like any packet (allowed only where ICMP is).
        rule("g", "established", vec![Expr::CtState(CT_ESTABLISHED), Expr::Verdict(Verdict::Accept)]),
    ]
}

fn deny_rules(cfg: &TableConfig, id: &str) -> Vec<CompiledRule> {
    let mut v = vec![rule(
        "x",
        "log",
        vec![
            Expr::Limit { per_second: cfg.log_rate, burst: cfg.log_rate * 2 },
            Expr::Log { group: cfg.nflog_group, prefix: log_prefix(id) },
        ],
    )];
    if cfg.deny_action == DenyAction::Reject {
        v.push(rule("x", "tcp", vec![Expr::L4Proto(libc::IPPROTO_TCP as u8), Expr::Verdict(Verdict::RejectTcpReset)]));
        v.push(rule("x", "udp", vec![Expr::L4Proto(libc::IPPROTO_UDP as u8), Expr::Verdict(Verdict::RejectPortUnreachable)]));
    }
    v.push(rule("x", "drop", vec![Expr::Verdict(Verdict::Drop)]));
    v
}

/// The NFLOG prefix naming the container whose packet was denied.
pub fn log_prefix(id: &str) -> String {
    format!("hoody {id} ")
}

/// The container id in an NFLOG prefix.
pub fn prefix_owner(prefix: &str) -> Option<&str> {
    prefix.strip_prefix("hoody ").map(str::trim_end)
}

/// Every chain of a container with the rules it must hold, in order.
pub fn container_chains(cfg: &TableConfig, c: &ContainerFirewall) -> Vec<(String, Vec<CompiledRule>)> {
    let mut e = guards(c);
    e.extend(c.egress.iter().map(|r| egress_rule(&c.id, r)));
    e.push(policy_rule(&c.id, c.egress_policy));
    // Into the container: replies and related ICMP (path-MTU discovery needs "fragmentation
    // needed" through); invalid and untracked never.
    let mut i = vec![
        rule("g", "invalid", vec![Expr::CtState(CT_INVALID | CT_UNTRACKED), Expr::Counter, Expr::Verdict(Verdict::Drop)]),
        rule("g", "established", vec![Expr::CtState(CT_ESTABLISHED | CT_RELATED), Expr::Verdict(Verdict::Accept)]),
    ];
    i.extend(c.ingress.iter().map(ingress_rule));
    i.push(rule("p", "drop", vec![Expr::Counter, Expr::Verdict(Verdict::Drop)]));
    vec![(names::deny_chain(&c.id), deny_rules(cfg, &c.id)), (names::egress_chain(&c.id), e), (names::ingress_chain(&c.id), i)]
}

/// Installs a container: its chains, then the map entries that route its interface to them
/// (the interface may appear only after; until then nothing matches).
pub fn install(cfg: &TableConfig, c: &ContainerFirewall) -> Vec<Op> {
    let chains = container_chains(cfg, c);
    let mut ops: Vec<Op> = chains.iter().map(|(n, _)| Op::AddChain(n.clone())).collect();
    for (name, rules) in chains {
        for r in rules {
            ops.push(Op::AddRule { chain: name.clone(), rule: r, after: None });
        }
    }
    ops.push(Op::AddMapElem { map: EGRESS_MAP, ifname: c.ifname(), chain: names::egress_chain(&c.id) });
    ops.push(Op::AddMapElem { map: INGRESS_MAP, ifname: c.ifname(), chain: names::ingress_chain(&c.id) });
    ops
}

/// Removes a container: map entries first, then its chains.
pub fn uninstall(id: &str) -> Vec<Op> {
    let ifname = names::host_ifname(id);
    let mut ops = vec![Op::DelMapElem { map: EGRESS_MAP, ifname: ifname.clone() }, Op::DelMapElem { map: INGRESS_MAP, ifname }];
    let chains = [names::egress_chain(id), names::ingress_chain(id), names::deny_chain(id)];
    ops.extend(chains.iter().map(|c| Op::FlushChain(c.clone())));
    ops.extend(chains.iter().map(|c| Op::DelChain(c.clone())));
    ops
}

/// The whole table from scratch, replacing whatever is there, in one transaction. (The leading
/// add makes the delete valid when the table does not exist yet.)
pub fn full(cfg: &TableConfig, containers: &[ContainerFirewall]) -> Vec<Op> {
    let mut ops = vec![Op::AddTable, Op::DelTable];
    ops.extend(skeleton(cfg));
    for c in containers {
        ops.extend(install(cfg, c));
    }
    ops
}

/// The full rebuild and what verification expects of it, compiling each container once.
pub fn plan(cfg: &TableConfig, containers: &[ContainerFirewall]) -> (Vec<Op>, Expected) {
    let mut ops = vec![Op::AddTable, Op::DelTable];
    ops.extend(skeleton(cfg));
    let mut x = expected(cfg, &[]);
    let mut elems = Vec::with_capacity(containers.len() * 2);
    for c in containers {
        let chains = container_chains(cfg, c);
        ops.extend(chains.iter().map(|(n, _)| Op::AddChain(n.clone())));
        for (name, rules) in chains {
            x.chains.insert(name.clone(), rules.iter().map(|r| r.comment.clone()).collect());
            ops.extend(rules.into_iter().map(|r| Op::AddRule { chain: name.clone(), rule: r, after: None }));
        }
        for (map, chain) in [(EGRESS_MAP, names::egress_chain(&c.id)), (INGRESS_MAP, names::ingress_chain(&c.id))] {
            x.maps.entry(map.into()).or_default().insert(c.ifname(), chain.clone());
            elems.push(Op::AddMapElem { map, ifname: c.ifname(), chain });
        }
    }
    ops.extend(elems);
    (ops, x)
}

/// What verification expects: the rule comments of every chain, and the map entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub chains: BTreeMap<String, Vec<String>>,
    pub maps: BTreeMap<String, BTreeMap<String, String>>,
}

pub fn expected(cfg: &TableConfig, containers: &[ContainerFirewall]) -> Expected {
    let mut x = Expected::default();
    for (name, _, rules) in base_rules(cfg) {
        x.chains.insert(name.into(), rules.into_iter().map(|r| r.comment).collect());
    }
    x.chains.insert(ALLOWED_CHAIN.into(), allowed_rules().into_iter().map(|r| r.comment).collect());
    for m in [EGRESS_MAP, INGRESS_MAP] {
        x.maps.insert(m.into(), BTreeMap::new());
    }
    for c in containers {
        expect_container(&mut x, cfg, c);
    }
    x
}

/// Adds one container's expectations.
pub fn expect_container(x: &mut Expected, cfg: &TableConfig, c: &ContainerFirewall) {
    for (name, rules) in container_chains(cfg, c) {
        x.chains.insert(name, rules.into_iter().map(|r| r.comment).collect());
    }
    x.maps.entry(EGRESS_MAP.into()).or_default().insert(c.ifname(), names::egress_chain(&c.id));
    x.maps.entry(INGRESS_MAP.into()).or_default().insert(c.ifname(), names::ingress_chain(&c.id));
}

/// Handle after which a new user rule goes: the rule right before the policy (`p:`) rule.
pub fn insert_after(chain: &[crate::nft::KernelRule]) -> Option<u64> {
    let pos = chain.iter().position(|r| comment_kind(&r.comment) == "p")?;
    pos.checked_sub(1).map(|i| chain[i].handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Direction, Protocol, RuleSpec};

    pub(crate) fn cfg() -> TableConfig {
        TableConfig {
            subnet: "10.77.0.0/16".parse().unwrap(),
            uplink: Some("up0".into()),
            deny_action: DenyAction::Reject,
            nflog_group: 7023,
            log_rate: 10,
        }
    }

    pub(crate) fn ctr(id: &str, n: u8) -> ContainerFirewall {
        ContainerFirewall {
            id: id.into(),
            ipv4: Ipv4Addr::new(10, 77, 0, n),
            egress_policy: EgressPolicy::Deny,
            egress: vec![],
            ingress: vec![],
        }
    }

    pub(crate) fn allow443(id: &str) -> Rule {
        Rule {
            id: id.into(),
            spec: RuleSpec {
                direction: Direction::Egress,
                action: Action::Allow,
                protocol: Protocol::Tcp,
                peer: "203.0.113.10/32".parse().unwrap(),
                ports: Some(PortRange { from: 443, to: 443 }),
                description: String::new(),
            },
        }
    }

    #[test]
    fn deny_all_container_chain_layout() {
        let c = ctr("aaaaaaaaaaaaaaaaaaaaaaaa", 5);
        let chains = container_chains(&cfg(), &c);
        let e = &chains.iter().find(|(n, _)| n.starts_with("e_")).unwrap().1;
        let kinds: Vec<&str> = e.iter().map(|r| r.comment.as_str()).map(|c| &c[..c.rfind(':').unwrap()]).collect();
        assert_eq!(kinds, ["g:spoof", "g:ipv6", "g:invalid", "g:established", "p:deny"]);
        assert_eq!(e[0].exprs[1], Expr::SaddrNot(Ipv4Addr::new(10, 77, 0, 5)), "anti-spoofing comes first");
        assert_eq!(e[2].exprs, vec![Expr::CtState(CT_INVALID | CT_UNTRACKED), Expr::Counter, Expr::Verdict(Verdict::Drop)]);
        assert_eq!(e[3].exprs, vec![Expr::CtState(CT_ESTABLISHED), Expr::Verdict(Verdict::Accept)], "egress: not related");
        assert_eq!(e[4].exprs.last(), Some(&Expr::Verdict(Verdict::Goto("d_aaaaaaaaaaaaaaaaaaaaaaaa".into()))));
        let i = &chains.iter().find(|(n, _)| n.starts_with("i_")).unwrap().1;
        assert_eq!(i[0].exprs, vec![Expr::CtState(CT_INVALID | CT_UNTRACKED), Expr::Counter, Expr::Verdict(Verdict::Drop)]);
        assert_eq!(i[1].exprs, vec![Expr::CtState(CT_ESTABLISHED | CT_RELATED), Expr::Verdict(Verdict::Accept)], "ingress: related too");
        let d = &chains.iter().find(|(n, _)| n.starts_with("d_")).unwrap().1;
        assert!(matches!(d[0].exprs[..], [Expr::Limit { .. }, Expr::Log { group: 7023, .. }]), "logging is rate-limited in the kernel");
        assert_eq!(d.last().unwrap().exprs, vec![Expr::Verdict(Verdict::Drop)]);
    }

    #[test]
    fn rules_keep_their_order_before_the_policy() {
        let mut c = ctr("bbbbbbbbbbbbbbbbbbbbbbbb", 6);
        c.egress = vec![allow443("r1"), allow443("r2")];
        let e = container_chains(&cfg(), &c).into_iter().find(|(n, _)| n.starts_with("e_")).unwrap().1;
        let ids: Vec<Option<&str>> = e.iter().map(|r| comment_rule_id(&r.comment)).collect();
        assert_eq!(ids, [None, None, None, None, Some("r1"), Some("r2"), None]);
        let r = &e[4].exprs;
        assert_eq!(
            r,
            &vec![
                Expr::NfProto(NFPROTO_IPV4),
                Expr::L4Proto(6),
                Expr::Daddr("203.0.113.10/32".parse().unwrap()),
                Expr::Dport(PortRange { from: 443, to: 443 }),
                Expr::Counter,
                Expr::Verdict(Verdict::Goto(ALLOWED_CHAIN.into()))
            ]
        );
    }

    #[test]
    fn install_adds_map_entries_after_chains() {
        let c = ctr("cccccccccccccccccccccccc", 7);
        let ops = install(&cfg(), &c);
        let first_elem = ops.iter().position(|o| matches!(o, Op::AddMapElem { .. })).unwrap();
        let last_rule = ops.iter().rposition(|o| matches!(o, Op::AddRule { .. })).unwrap();
        assert!(first_elem > last_rule, "an interface is routed to its chain only once the chain is complete");
        assert!(ops.iter().all(|o| !matches!(o, Op::DelRule { .. } | Op::FlushChain(_) | Op::DelChain(_))), "install only adds");
    }

    #[test]
    fn hashes_change_with_content() {
        let a = egress_rule("x", &allow443("r1"));
        let mut other = allow443("r1");
        other.spec.ports = Some(PortRange { from: 80, to: 80 });
        assert_ne!(a.comment, egress_rule("x", &other).comment);
        assert_eq!(a.comment, egress_rule("x", &allow443("r1")).comment, "stable");
    }

    #[test]
    fn plan_is_full_and_expected_in_one_pass() {
        let mut c = ctr("dddddddddddddddddddddddd", 9);
        c.egress = vec![allow443("r1")];
        let cs = vec![ctr("cccccccccccccccccccccccc", 7), c];
        let (ops, x) = plan(&cfg(), &cs);
        let mut a = ops.clone();
        let mut b = full(&cfg(), &cs);
        let key = |o: &Op| format!("{o:?}");
        a.sort_by_key(key);
        b.sort_by_key(key);
        assert_eq!(a, b, "the same operations as full()");
        assert_eq!(x, expected(&cfg(), &cs));
        let first_elem = ops.iter().position(|o| matches!(o, Op::AddMapElem { .. })).unwrap();
        assert!(ops[first_elem..].iter().all(|o| matches!(o, Op::AddMapElem { .. })), "map entries come last");
    }

    #[test]
    fn insert_position_is_before_the_policy() {
        use crate::nft::KernelRule;
        let k = |h, c: &str| KernelRule { handle: h, comment: c.into(), packets: 0, bytes: 0 };
        let chain = vec![k(1, "g:spoof:1"), k(2, "g:ipv6:1"), k(3, "g:established:1"), k(9, "r:r1:1"), k(4, "p:deny:1")];
        assert_eq!(insert_after(&chain), Some(9));
        assert_eq!(insert_after(&chain[..3]), None);
    }
}
