//! The policy compiler: turns the declarative firewall into nftables operations. Pure: unit
//! tested against the recording double, applied by [`crate::nft::NftFirewall`] as one
//! transaction.
//!
//! The table's chains and rules are **fixed**: they do not depend on how many containers there
//! are or what their rules say. A container is nothing but elements of non-verdict sets
//! ([`crate::elements`]), so creating, deleting or changing one is an element diff: no rule and no
//! chain changes, so the kernel neither validates the table nor visits a chain per container at
//! commit (docs/PERFORMANCE.md, "Which kernel set types keep a change O(1)").
//!
//! ```text
//! table inet hoody
//!   sets: ctr { ifname . ipv4 }            which address each host end may send from
//!         spoofed { ifname } counter       forged sources, per interface
//!         denied, idenied { ipv4 } counter denied egress / ingress, per container
//!         open { ipv4 }                    containers whose egress policy is allow
//!         lograte { ipv4 } dynamic         per-container NFLOG rate
//!         eap, edp, iap                    allow / deny / ingress regions that are single points
//!             { saddr . daddr . l4proto . dport } hash, counter, comment "r:<rule id>"
//!         shNNN (000..3ff)                 the other regions of the containers whose address's
//!             { kind . the same key }          last ten bits are NNN (kind: egress allow, deny,
//!             interval, counter, comment   ingress allow): a change of an interval set costs
//!                                          O(its elements), so only a shard's
//!   maps (fixed at creation): esh, ish { 0.0.N.NN : goto esNNN / isNNN }
//!   prerouting (mangle): iifname "hv*" meta mark set CONTAINER_MARK (see failsafe)
//!   forward: iifname "hv*" goto egress; oifname "hv*" goto ingress
//!   input:   iifname "hv*" goto egress            (the host counts as egress)
//!   output:  oifname "hv*" goto ingress           (the host counts as ingress)
//!   egress:  ipv6 drop; iifname . saddr ∉ ctr: count in spoofed, drop; invalid|untracked drop;
//!            established accept (not related: a container's ICMP errors go through its rules);
//!            ip saddr & 0.0.3.255 vmap @esh
//!   esNNN:   ∈ eap or 1 . key ∈ shNNN goto allowed; ∈ edp or 2 . key ∈ shNNN goto deny;
//!            saddr ∈ open goto allowed; goto deny
//!   allowed: oifname "hv*" goto ingress; accept
//!   deny:    count in denied; per-container limit → log (nflog); reject tcp/udp; drop
//!   ingress: ipv6 drop; invalid|untracked drop; established, related accept;
//!            oifname . daddr ∉ ctr drop; ip daddr & 0.0.3.255 vmap @ish
//!   isNNN:   ∈ iap or 3 . key ∈ shNNN accept; count in idenied; drop
//!   postrouting (with an uplink): oifname <uplink> ip saddr <subnet> masquerade
//! ```

use std::collections::BTreeMap;

use crate::addr::Ipv4Net;
use crate::names;
use crate::policy::{DenyAction, TableConfig};

pub const TABLE: &str = "hoody";
pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_IPV6: u8 = 10;
/// Set on every packet that enters from a container's interface by the table's prerouting
/// chain; routing refuses container traffic without it ([`crate::failsafe`]).
pub const CONTAINER_MARK: u32 = 0x686f_6f64;
/// `ct state` bits (as nft's `ct state` matches them).
pub const CT_INVALID: u32 = 1;
pub const CT_ESTABLISHED: u32 = 2;
pub const CT_RELATED: u32 = 4;
pub const CT_UNTRACKED: u32 = 64;
/// The NFLOG prefix of denied egress; the owner is the packet's source address.
pub const LOG_PREFIX: &str = "hoody ";
/// The NFLOG prefix of new connections through addresses learned by name.
pub const ALLOW_LOG_PREFIX: &str = "hoody-allow ";
pub const CT_NEW: u32 = 8;
/// At most this many shards (the default): containers are spread over them by the last bits
/// of their address ([`TableConfig::shards`], a power of two).
pub const MAX_SHARDS: u16 = 1024;

/// The shard of an address is `addr & shard_mask(shards)`.
pub fn shard_mask(shards: u16) -> [u8; 4] {
    (u32::from(shards.max(1)) - 1).to_be_bytes()
}

pub const EGRESS: &str = "egress";
pub const INGRESS: &str = "ingress";
pub const ALLOWED: &str = "allowed";
pub const DENY: &str = "deny";
pub const SET_CTR: &str = "ctr";
pub const SET_SPOOFED: &str = "spoofed";
pub const SET_DENIED: &str = "denied";
pub const SET_INGRESS_DENIED: &str = "idenied";
pub const SET_OPEN: &str = "open";
pub const SET_LOGRATE: &str = "lograte";
/// Per-container rate of the NFLOG of connections through learned addresses.
pub const SET_ALLOW_LOGRATE: &str = "alograte";
/// Where a learned address's packets go: new connections logged (rate-limited), then allowed.
pub const LEARNED: &str = "learned";
pub const MAP_EGRESS_SHARDS: &str = "esh";
pub const MAP_INGRESS_SHARDS: &str = "ish";
pub const SET_EGRESS_ALLOW_POINTS: &str = "eap";
pub const SET_EGRESS_DENY_POINTS: &str = "edp";
pub const SET_INGRESS_ALLOW_POINTS: &str = "iap";

pub fn egress_shard_chain(s: u16) -> String {
    format!("es{s:03x}")
}
pub fn ingress_shard_chain(s: u16) -> String {
    format!("is{s:03x}")
}
/// The interval set of shard `s`: every container's non-point regions whose address is in it,
/// the first key field saying which list a region belongs to ([`REGION_EGRESS_ALLOW`], …).
pub fn shard_set(s: u16) -> String {
    format!("sh{s:03x}")
}

pub const REGION_EGRESS_ALLOW: u8 = 1;
pub const REGION_EGRESS_DENY: u8 = 2;
pub const REGION_INGRESS_ALLOW: u8 = 3;
/// What a rule by name opens for an address the container learned (an element with a timeout).
pub const REGION_EGRESS_LEARNED: u8 = 4;

/// Containers whose DNS is off (their queries to the gateway are denied like any packet).
pub const SET_DNS_OFF: &str = "dnsoff";
/// Addresses learned by name whose region is one point (one protocol and port), with timeouts.
pub const SET_EGRESS_LEARNED_POINTS: &str = "elp";

/// A set's id within a transaction (rules created in the same batch refer to it by id too):
/// distinct for every set of the table.
pub fn set_id(name: &str) -> u32 {
    let shard = |rest: &str| u32::from_str_radix(rest, 16).ok().filter(|_| rest.len() == 3);
    let fixed = [
        SET_CTR,
        SET_SPOOFED,
        SET_DENIED,
        SET_INGRESS_DENIED,
        SET_OPEN,
        SET_LOGRATE,
        MAP_EGRESS_SHARDS,
        MAP_INGRESS_SHARDS,
        SET_EGRESS_ALLOW_POINTS,
        SET_EGRESS_DENY_POINTS,
        SET_INGRESS_ALLOW_POINTS,
        SET_DNS_OFF,
        SET_ALLOW_LOGRATE,
        SET_EGRESS_LEARNED_POINTS,
    ];
    if let Some(i) = fixed.iter().position(|n| *n == name) {
        return i as u32 + 1;
    }
    if let Some(n) = name.strip_prefix("sh").and_then(shard) {
        return 0x1000 + n;
    }
    0xffff
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Goto(String),
    RejectTcpReset,
    RejectPortUnreachable,
}

/// A packet field that goes into a set key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Iifname,
    Oifname,
    Saddr,
    Daddr,
    /// `meta l4proto`, padded to four bytes.
    L4Proto,
    /// `th dport` (TCP and UDP keep it at the same offset), padded to four bytes.
    Dport,
}

impl Field {
    /// Bytes the field takes in a concatenated key (each field padded to 32 bits).
    pub fn key_len(self) -> usize {
        match self {
            Field::Iifname | Field::Oifname => 16,
            _ => 4,
        }
    }
}

/// What kind of set, which fixes its key type and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetKind {
    /// `ifname . ipv4_addr`, hash.
    IfAddr,
    /// `ifname` with a counter per element.
    IfCounted,
    /// `ipv4_addr` with a counter per element.
    AddrCounted,
    /// `ipv4_addr`.
    Addr,
    /// `ipv4_addr`, filled by the packet path (`update @set { … }`), entries time out.
    Meter,
    /// `kind . ipv4_addr . ipv4_addr . inet_proto . inet_service`, intervals, counter per
    /// element.
    Regions,
    /// The same key, exact (regions that are single points), counter per element.
    Points,
    /// `ipv4_addr : verdict`.
    ShardMap,
    /// As `Points`, and entries time out.
    LearnedPoints,
}

/// One expression (match or statement) of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    IifPrefix(&'static str),
    OifPrefix(&'static str),
    OifName(String),
    NfProto(u8),
    L4Proto(u8),
    Saddr(Ipv4Net),
    Daddr(Ipv4Net),
    /// `th dport == N` (after an `L4Proto` of tcp or udp).
    Dport(u16),
    /// The concatenation of `fields` is (or, inverted, is not) in `set`; a counted set counts
    /// the element that matched.
    Lookup {
        fields: Vec<Field>,
        set: &'static str,
        invert: bool,
    },
    /// `<kind> . fields…` is in the shard set `set` (shNNN): the constant `kind` first.
    ShardLookup {
        kind: u8,
        fields: Vec<Field>,
        set: String,
    },
    /// `ip saddr|daddr & mask vmap @map`.
    ShardVmap {
        field: Field,
        map: &'static str,
        mask: [u8; 4],
    },
    /// `ct state` has any of these bits.
    CtState(u32),
    Counter,
    /// `update @set { ip saddr limit rate N/second burst 2N packets }`.
    Meter {
        set: &'static str,
        per_second: u32,
        burst: u32,
    },
    Log {
        group: u16,
        prefix: &'static str,
    },
    Masquerade,
    SetMark(u32),
    Verdict(Verdict),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledRule {
    /// `<kind>:<name>:<hash>`; the hash covers the expressions, so verification sees changed
    /// content.
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

/// One element of a set: an exact key, or an interval `key..=key_end`; a comment (rule id); a
/// verdict for maps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Elem {
    pub key: Vec<u8>,
    pub key_end: Option<Vec<u8>>,
    pub comment: Option<String>,
    /// Map elements: `goto CHAIN`.
    pub goto: Option<String>,
    /// The element's timeout (a learned address; the set must allow timeouts).
    pub timeout_ms: Option<u64>,
}

impl Elem {
    pub fn key(key: Vec<u8>) -> Elem {
        Elem { key, key_end: None, comment: None, goto: None, timeout_ms: None }
    }
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
    AddSet {
        name: String,
        kind: SetKind,
    },
    /// Appended at the end of the chain.
    AddRule {
        chain: String,
        rule: CompiledRule,
    },
    AddElems {
        set: String,
        elems: Vec<Elem>,
    },
    DelElems {
        set: String,
        elems: Vec<Elem>,
    },
}

/// FNV-1a: a hash that is the same in every build (unlike std's).
pub fn fnv(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Changes whenever the same expressions are encoded differently (so a table written by an
/// older encoding is seen as different and rebuilt, not left in place).
const ENCODING: u32 = 3;

fn rule(kind: &str, name: &str, exprs: Vec<Expr>) -> CompiledRule {
    let comment = format!("{kind}:{name}:{:08x}", fnv(&format!("{ENCODING} {exprs:?}")));
    CompiledRule { comment, exprs }
}

fn drop(mut e: Vec<Expr>) -> Vec<Expr> {
    e.extend([Expr::Counter, Expr::Verdict(Verdict::Drop)]);
    e
}

fn goto(c: &str) -> Expr {
    Expr::Verdict(Verdict::Goto(c.into()))
}

/// Every set of the table and its kind.
pub fn sets(shards: u16) -> Vec<(String, SetKind)> {
    let mut v = vec![
        (SET_CTR.into(), SetKind::IfAddr),
        (SET_SPOOFED.into(), SetKind::IfCounted),
        (SET_DENIED.into(), SetKind::AddrCounted),
        (SET_INGRESS_DENIED.into(), SetKind::AddrCounted),
        (SET_OPEN.into(), SetKind::Addr),
        (SET_LOGRATE.into(), SetKind::Meter),
        (SET_EGRESS_ALLOW_POINTS.into(), SetKind::Points),
        (SET_EGRESS_DENY_POINTS.into(), SetKind::Points),
        (SET_INGRESS_ALLOW_POINTS.into(), SetKind::Points),
        (SET_DNS_OFF.into(), SetKind::Addr),
        (SET_ALLOW_LOGRATE.into(), SetKind::Meter),
        (SET_EGRESS_LEARNED_POINTS.into(), SetKind::LearnedPoints),
    ];
    for s in 0..shards {
        v.push((shard_set(s), SetKind::Regions));
    }
    v.push((MAP_EGRESS_SHARDS.into(), SetKind::ShardMap));
    v.push((MAP_INGRESS_SHARDS.into(), SetKind::ShardMap));
    v
}

/// The fixed elements of the shard maps: `0.0.N.NN : goto esNNN` (isNNN).
pub fn shard_map_elems(map: &str, shards: u16) -> Vec<Elem> {
    (0..shards)
        .map(|s| Elem {
            key: vec![0, 0, (s >> 8) as u8, s as u8],
            key_end: None,
            comment: None,
            goto: Some(if map == MAP_EGRESS_SHARDS { egress_shard_chain(s) } else { ingress_shard_chain(s) }),
            timeout_ms: None,
        })
        .collect()
}

fn base_chains(cfg: &TableConfig) -> Vec<(&'static str, BaseHook, Vec<CompiledRule>)> {
    let hv = names::IFACE_PREFIX;
    let mut v = vec![
        ("prerouting", BaseHook::Prerouting, vec![rule("b", "mark", vec![Expr::IifPrefix(hv), Expr::SetMark(CONTAINER_MARK)])]),
        (
            "forward",
            BaseHook::Forward,
            vec![
                rule("b", "egress", vec![Expr::IifPrefix(hv), goto(EGRESS)]),
                rule("b", "ingress", vec![Expr::OifPrefix(hv), goto(INGRESS)]),
            ],
        ),
        ("input", BaseHook::Input, vec![rule("b", "egress", vec![Expr::IifPrefix(hv), goto(EGRESS)])]),
        ("output", BaseHook::Output, vec![rule("b", "ingress", vec![Expr::OifPrefix(hv), goto(INGRESS)])]),
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

const V4: Expr = Expr::NfProto(NFPROTO_IPV4);

fn egress_rules(shards: u16) -> Vec<CompiledRule> {
    let not_own = |fields| Expr::Lookup { fields, set: SET_CTR, invert: true };
    vec![
        rule("g", "ipv6", drop(vec![Expr::NfProto(NFPROTO_IPV6)])),
        // Counted per interface (an unknown interface has no element and is not counted), then
        // dropped whatever the count did.
        rule(
            "g",
            "spoof-count",
            vec![
                V4,
                not_own(vec![Field::Iifname, Field::Saddr]),
                Expr::Lookup { fields: vec![Field::Iifname], set: SET_SPOOFED, invert: false },
                Expr::Verdict(Verdict::Drop),
            ],
        ),
        rule("g", "spoof", drop(vec![V4, not_own(vec![Field::Iifname, Field::Saddr])])),
        // What conntrack calls invalid (a bad checksum while nf_conntrack_checksum is 1, the
        // default; a packet outside any window) or untracked never reaches a rule: it would
        // pass an allow rule and leave without masquerade (NAT needs a connection).
        rule("g", "invalid", drop(vec![Expr::CtState(CT_INVALID | CT_UNTRACKED)])),
        // Replies of its own connections only: an ICMP error the container sends is "related"
        // to the connection it names, and forged it carries anything; it goes through the
        // rules like any packet (allowed only where ICMP is).
        rule("g", "established", vec![Expr::CtState(CT_ESTABLISHED), Expr::Verdict(Verdict::Accept)]),
        // DNS to the gateway is hoodyd's resolver, which polices names itself (unless off);
        // DNS to anywhere else never leaves, whatever the rules or the policy say.
        rule("g", "dns-udp", dns_to_gateway(libc::IPPROTO_UDP as u8)),
        rule("g", "dns-tcp", dns_to_gateway(libc::IPPROTO_TCP as u8)),
        rule("g", "direct-dns-udp-53", vec![V4, Expr::L4Proto(libc::IPPROTO_UDP as u8), Expr::Dport(53), goto(DENY)]),
        rule("g", "direct-dns-tcp-53", vec![V4, Expr::L4Proto(libc::IPPROTO_TCP as u8), Expr::Dport(53), goto(DENY)]),
        rule("g", "direct-dns-udp-853", vec![V4, Expr::L4Proto(libc::IPPROTO_UDP as u8), Expr::Dport(853), goto(DENY)]),
        rule("g", "direct-dns-tcp-853", vec![V4, Expr::L4Proto(libc::IPPROTO_TCP as u8), Expr::Dport(853), goto(DENY)]),
        rule("b", "shard", vec![V4, Expr::ShardVmap { field: Field::Saddr, map: MAP_EGRESS_SHARDS, mask: shard_mask(shards) }]),
        rule("b", "unknown", drop(vec![])),
    ]
}

/// The key of a container's egress regions: its address, the peer, protocol, port.
pub const EGRESS_KEY: [Field; 4] = [Field::Saddr, Field::Daddr, Field::L4Proto, Field::Dport];
/// Ingress regions: the container (destination), the peer (source), protocol, port.
pub const INGRESS_KEY: [Field; 4] = [Field::Daddr, Field::Saddr, Field::L4Proto, Field::Dport];

fn dns_to_gateway(proto: u8) -> Vec<Expr> {
    vec![
        V4,
        Expr::Daddr(Ipv4Net { addr: crate::addr::GATEWAY, prefix: 32 }),
        Expr::L4Proto(proto),
        Expr::Dport(53),
        Expr::Lookup { fields: vec![Field::Saddr], set: SET_DNS_OFF, invert: true },
        Expr::Verdict(Verdict::Accept),
    ]
}

fn egress_shard_rules(s: u16) -> Vec<CompiledRule> {
    vec![
        // First: a learned region excludes what an earlier deny rule owns (regions::learned).
        rule(
            "r",
            "learned-point",
            vec![V4, Expr::Lookup { fields: EGRESS_KEY.to_vec(), set: SET_EGRESS_LEARNED_POINTS, invert: false }, goto(LEARNED)],
        ),
        rule(
            "r",
            "learned",
            vec![V4, Expr::ShardLookup { kind: REGION_EGRESS_LEARNED, fields: EGRESS_KEY.to_vec(), set: shard_set(s) }, goto(LEARNED)],
        ),
        rule(
            "r",
            "allow-point",
            vec![V4, Expr::Lookup { fields: EGRESS_KEY.to_vec(), set: SET_EGRESS_ALLOW_POINTS, invert: false }, goto(ALLOWED)],
        ),
        rule(
            "r",
            "deny-point",
            vec![V4, Expr::Lookup { fields: EGRESS_KEY.to_vec(), set: SET_EGRESS_DENY_POINTS, invert: false }, goto(DENY)],
        ),
        rule(
            "r",
            "allow",
            vec![V4, Expr::ShardLookup { kind: REGION_EGRESS_ALLOW, fields: EGRESS_KEY.to_vec(), set: shard_set(s) }, goto(ALLOWED)],
        ),
        rule(
            "r",
            "deny",
            vec![V4, Expr::ShardLookup { kind: REGION_EGRESS_DENY, fields: EGRESS_KEY.to_vec(), set: shard_set(s) }, goto(DENY)],
        ),
        rule("p", "allow", vec![V4, Expr::Lookup { fields: vec![Field::Saddr], set: SET_OPEN, invert: false }, goto(ALLOWED)]),
        rule("p", "deny", vec![goto(DENY)]),
    ]
}

fn ingress_shard_rules(s: u16) -> Vec<CompiledRule> {
    vec![
        rule(
            "r",
            "allow-point",
            vec![
                V4,
                Expr::Lookup { fields: INGRESS_KEY.to_vec(), set: SET_INGRESS_ALLOW_POINTS, invert: false },
                Expr::Verdict(Verdict::Accept),
            ],
        ),
        rule(
            "r",
            "allow",
            vec![
                V4,
                Expr::ShardLookup { kind: REGION_INGRESS_ALLOW, fields: INGRESS_KEY.to_vec(), set: shard_set(s) },
                Expr::Verdict(Verdict::Accept),
            ],
        ),
        rule("p", "count", vec![V4, Expr::Lookup { fields: vec![Field::Daddr], set: SET_INGRESS_DENIED, invert: false }]),
        rule("p", "drop", vec![Expr::Verdict(Verdict::Drop)]),
    ]
}

fn allowed_rules() -> Vec<CompiledRule> {
    vec![
        rule("b", "ingress", vec![Expr::OifPrefix(names::IFACE_PREFIX), goto(INGRESS)]),
        rule("b", "accept", vec![Expr::Verdict(Verdict::Accept)]),
    ]
}

fn learned_rules(cfg: &TableConfig) -> Vec<CompiledRule> {
    vec![
        rule(
            "l",
            "log",
            vec![
                V4,
                Expr::CtState(CT_NEW),
                Expr::Meter { set: SET_ALLOW_LOGRATE, per_second: cfg.log_rate, burst: cfg.log_rate * 2 },
                Expr::Log { group: cfg.nflog_group, prefix: ALLOW_LOG_PREFIX },
            ],
        ),
        rule("l", "allow", vec![goto(ALLOWED)]),
    ]
}

fn deny_rules(cfg: &TableConfig) -> Vec<CompiledRule> {
    let mut v = vec![
        rule("x", "count", vec![V4, Expr::Lookup { fields: vec![Field::Saddr], set: SET_DENIED, invert: false }]),
        rule(
            "x",
            "log",
            vec![
                V4,
                Expr::Meter { set: SET_LOGRATE, per_second: cfg.log_rate, burst: cfg.log_rate * 2 },
                Expr::Log { group: cfg.nflog_group, prefix: LOG_PREFIX },
            ],
        ),
    ];
    if cfg.deny_action == DenyAction::Reject {
        v.push(rule("x", "tcp", vec![Expr::L4Proto(libc::IPPROTO_TCP as u8), Expr::Verdict(Verdict::RejectTcpReset)]));
        v.push(rule("x", "udp", vec![Expr::L4Proto(libc::IPPROTO_UDP as u8), Expr::Verdict(Verdict::RejectPortUnreachable)]));
    }
    v.push(rule("x", "drop", vec![Expr::Verdict(Verdict::Drop)]));
    v
}

fn ingress_rules(shards: u16) -> Vec<CompiledRule> {
    vec![
        rule("g", "ipv6", drop(vec![Expr::NfProto(NFPROTO_IPV6)])),
        rule("g", "invalid", drop(vec![Expr::CtState(CT_INVALID | CT_UNTRACKED)])),
        // Replies and related ICMP (path-MTU discovery needs "fragmentation needed" through).
        rule("g", "established", vec![Expr::CtState(CT_ESTABLISHED | CT_RELATED), Expr::Verdict(Verdict::Accept)]),
        rule("g", "unknown", drop(vec![V4, Expr::Lookup { fields: vec![Field::Oifname, Field::Daddr], set: SET_CTR, invert: true }])),
        rule("b", "shard", vec![V4, Expr::ShardVmap { field: Field::Daddr, map: MAP_INGRESS_SHARDS, mask: shard_mask(shards) }]),
        rule("b", "unknown", drop(vec![])),
    ]
}

/// Every regular chain with its rules, in the order they must be created (a goto needs its
/// target chain to exist).
fn chains(cfg: &TableConfig) -> Vec<(String, Vec<CompiledRule>)> {
    let mut v = vec![
        (DENY.to_string(), deny_rules(cfg)),
        (INGRESS.to_string(), ingress_rules(cfg.shards)),
        (ALLOWED.to_string(), allowed_rules()),
        (LEARNED.to_string(), learned_rules(cfg)),
    ];
    for s in 0..cfg.shards {
        v.push((egress_shard_chain(s), egress_shard_rules(s)));
        v.push((ingress_shard_chain(s), ingress_shard_rules(s)));
    }
    v.push((EGRESS.to_string(), egress_rules(cfg.shards)));
    v
}

/// What verification expects: the rule comments of every chain, and the elements of every set
/// (as [`crate::elements`] computes them for the containers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub chains: BTreeMap<String, Vec<String>>,
    pub sets: BTreeMap<String, Vec<Elem>>,
}

/// The table with no container: its sets, chains and rules, and the shard maps' elements.
pub fn skeleton(cfg: &TableConfig) -> (Vec<Op>, Expected) {
    let mut ops = vec![Op::AddTable];
    let mut x = Expected::default();
    for (name, kind) in sets(cfg.shards) {
        x.sets.insert(name.clone(), vec![]);
        ops.push(Op::AddSet { name, kind });
    }
    let chains = chains(cfg);
    ops.extend(chains.iter().map(|(n, _)| Op::AddChain(n.clone())));
    for map in [MAP_EGRESS_SHARDS, MAP_INGRESS_SHARDS] {
        let elems = shard_map_elems(map, cfg.shards);
        x.sets.insert(map.into(), elems.clone());
        ops.push(Op::AddElems { set: map.into(), elems });
    }
    for (name, rules) in chains {
        x.chains.insert(name.clone(), rules.iter().map(|r| r.comment.clone()).collect());
        ops.extend(rules.into_iter().map(|rule| Op::AddRule { chain: name.clone(), rule }));
    }
    for (name, hook, rules) in base_chains(cfg) {
        ops.push(Op::AddBaseChain { name, hook });
        x.chains.insert(name.into(), rules.iter().map(|r| r.comment.clone()).collect());
        ops.extend(rules.into_iter().map(|rule| Op::AddRule { chain: name.into(), rule }));
    }
    (ops, x)
}

/// The user rule id in an element comment `r:<id>`.
pub fn comment_rule_id(comment: &str) -> Option<&str> {
    comment.strip_prefix("r:").map(|r| r.split(' ').next().unwrap_or(r))
}

/// The name in the comment of a learned address's element, `r:<rule id> <name>`.
pub fn comment_name(comment: &str) -> Option<&str> {
    comment.strip_prefix("r:")?.split_once(' ').map(|(_, n)| n)
}

/// A set element as read back from the kernel, with its counter (0 where the set counts
/// nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelElem {
    pub elem: Elem,
    pub packets: u64,
    pub bytes: u64,
    /// What is left of its timeout.
    pub expires_ms: Option<u64>,
}

/// Whether an element of `set` is a learned address (a rule by name's, with a timeout): never
/// part of what a container's rules compile to, so diffs and verification leave it alone.
pub fn is_learned(set: &str, key: &[u8]) -> bool {
    set == SET_EGRESS_LEARNED_POINTS || (set.starts_with("sh") && key.get(..4) == Some(&[0, 0, 0, REGION_EGRESS_LEARNED][..]))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn cfg() -> TableConfig {
        TableConfig {
            subnet: "10.77.0.0/16".parse().unwrap(),
            uplink: Some("up0".into()),
            deny_action: DenyAction::Reject,
            nflog_group: 7023,
            log_rate: 10,
            shards: MAX_SHARDS,
        }
    }

    #[test]
    fn the_shard_count_is_the_tables_and_changes_its_rules() {
        let small = TableConfig { shards: 16, ..cfg() };
        let (_, x) = skeleton(&small);
        assert_eq!(x.chains.len(), 4 + 2 * 16 + 1 + 5);
        assert_eq!(x.sets.keys().filter(|s| s.starts_with("sh")).count(), 16);
        assert_eq!(x.sets[MAP_EGRESS_SHARDS].len(), 16);
        assert_eq!(shard_mask(16), [0, 0, 0, 15]);
        assert_eq!(shard_mask(MAX_SHARDS), [0, 0, 3, 255]);
        assert_eq!(crate::elements::shard(std::net::Ipv4Addr::new(10, 77, 1, 20), 16), 4);
        // A daemon restarted with another count sees different rules and rebuilds the table.
        let (_, big) = skeleton(&cfg());
        assert_ne!(x.chains[EGRESS], big.chains[EGRESS]);
    }

    #[test]
    fn the_layout_is_fixed_and_every_goto_has_its_target_first() {
        let (ops, x) = skeleton(&cfg());
        let mut made: std::collections::BTreeSet<String> = Default::default();
        for op in &ops {
            match op {
                Op::AddChain(n) => {
                    made.insert(n.clone());
                }
                Op::AddBaseChain { name, .. } => {
                    made.insert(name.to_string());
                }
                Op::AddRule { rule, chain } => {
                    assert!(made.contains(chain), "rule before its chain {chain}");
                    for e in &rule.exprs {
                        if let Expr::Verdict(Verdict::Goto(t)) = e {
                            assert!(made.contains(t), "goto {t} before it exists");
                        }
                    }
                }
                _ => {}
            }
        }
        assert_eq!(x.chains.len(), 4 + 2 * MAX_SHARDS as usize + 1 + 5, "independent of the containers");
        let e = &x.chains[EGRESS];
        let kinds: Vec<&str> = e.iter().map(|c| &c[..c.rfind(':').unwrap()]).collect();
        assert_eq!(
            kinds,
            [
                "g:ipv6",
                "g:spoof-count",
                "g:spoof",
                "g:invalid",
                "g:established",
                "g:dns-udp",
                "g:dns-tcp",
                "g:direct-dns-udp-53",
                "g:direct-dns-tcp-53",
                "g:direct-dns-udp-853",
                "g:direct-dns-tcp-853",
                "b:shard",
                "b:unknown"
            ]
        );
    }

    #[test]
    fn egress_guards_drop_invalid_and_accept_established_only() {
        let r = egress_rules(MAX_SHARDS);
        assert_eq!(r[3].exprs, vec![Expr::CtState(CT_INVALID | CT_UNTRACKED), Expr::Counter, Expr::Verdict(Verdict::Drop)]);
        assert_eq!(r[4].exprs, vec![Expr::CtState(CT_ESTABLISHED), Expr::Verdict(Verdict::Accept)], "egress: not related");
        let i = ingress_rules(MAX_SHARDS);
        assert_eq!(i[2].exprs, vec![Expr::CtState(CT_ESTABLISHED | CT_RELATED), Expr::Verdict(Verdict::Accept)], "ingress: related too");
        let d = deny_rules(&cfg());
        assert!(matches!(d[1].exprs[..], [_, Expr::Meter { per_second: 10, burst: 20, .. }, Expr::Log { group: 7023, .. }]));
    }

    #[test]
    fn hashes_change_with_content() {
        let mut c = cfg();
        let a = deny_rules(&c)[1].comment.clone();
        c.log_rate = 11;
        assert_ne!(a, deny_rules(&c)[1].comment);
    }
}
