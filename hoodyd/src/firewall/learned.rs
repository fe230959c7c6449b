//! Addresses a container learned through its resolver, for its rules by name: elements with
//! kernel timeouts (so they close on their own, also while hoodyd is down) — of the learned
//! points set `elp`, or of its shard set for a range — mirrored here so that a rule change, a
//! delete or a rebuild knows them.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hoody_net::compile::{Elem, Op};
use hoody_net::elements;
use hoody_net::error::NetError;
use hoody_net::nft::{FirewallOps, KernelElem, TableDump};
use hoody_net::policy::ContainerFirewall;

/// One address one rule opened for a container.
#[derive(Clone, Debug)]
pub struct Learned {
    pub rule_id: String,
    pub addr: Ipv4Addr,
    /// The name whose answer carried it (empty when read back from the kernel at start-up).
    pub name: String,
    /// (set, element) pairs.
    pub elems: Vec<(String, Elem)>,
    pub until: Instant,
    /// The timeout it was given.
    pub timeout: Duration,
    /// What the elements this one replaced had counted (a refresh deletes and adds them).
    pub carried: (u64, u64),
}

/// What a resolved answer asks to open: `addr` for rule `rule_id`, `timeout` long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub rule_id: String,
    pub addr: Ipv4Addr,
    pub name: String,
    pub timeout: Duration,
    /// Already open for at least `timeout - slack` (half the grace): left as it is.
    pub slack: Duration,
}

/// Per container address: (rule id, learned address) → what is in the kernel.
#[derive(Default)]
pub struct LearnedMap {
    by_ip: HashMap<Ipv4Addr, BTreeMap<(String, Ipv4Addr), Learned>>,
}

impl LearnedMap {
    fn prune(&mut self, ip: Ipv4Addr) {
        let now = Instant::now();
        if let Some(m) = self.by_ip.get_mut(&ip) {
            m.retain(|_, l| l.until > now);
        }
    }

    /// The elements of `c`'s address that no rule by name of `c` owns any more (a deleted
    /// rule, a reset, a deleted container: `c` `None`), set by set: to delete with the change.
    pub fn stale(&mut self, ip: Ipv4Addr, c: Option<&ContainerFirewall>) -> BTreeMap<String, Vec<Elem>> {
        self.prune(ip);
        let live = |rule_id: &str| c.is_some_and(|c| c.egress.iter().any(|r| r.id == rule_id && r.spec.fqdn.is_some()));
        let mut out: BTreeMap<String, Vec<Elem>> = BTreeMap::new();
        if let Some(m) = self.by_ip.get_mut(&ip) {
            m.retain(|(rule, _), l| {
                if live(rule) {
                    return true;
                }
                for (set, e) in &l.elems {
                    out.entry(set.clone()).or_default().push(e.clone());
                }
                false
            });
        }
        out
    }

    pub fn of(&mut self, ip: Ipv4Addr) -> Vec<Learned> {
        self.prune(ip);
        self.by_ip.get(&ip).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    fn insert(&mut self, ip: Ipv4Addr, l: Learned) {
        self.by_ip.entry(ip).or_default().insert((l.rule_id.clone(), l.addr), l);
    }

    /// What earlier refreshes of (rule, address) of `ip` carried.
    fn carried(&self, ip: Ipv4Addr, rule_id: &str, addr: Ipv4Addr) -> (u64, u64) {
        self.by_ip.get(&ip).and_then(|m| m.get(&(rule_id.to_owned(), addr))).map(|l| l.carried).unwrap_or_default()
    }

    pub fn clear(&mut self) {
        self.by_ip.clear();
    }
}

/// Elements without what a lookup by key does not need (and the kernel does not take).
fn probe(e: &Elem) -> Elem {
    Elem { comment: None, goto: None, timeout_ms: None, ..e.clone() }
}

/// Opens what the answers ask, for each container with its answers, in one transaction
/// (answers that arrived together go together): elements already there are deleted and added
/// again in it (a re-add does not refresh a timeout on kernels before 6.10), then read back.
/// Returns what was opened, container by container.
pub fn learn(
    ops: &dyn FirewallOps,
    map: &mut LearnedMap,
    shards: u16,
    items: &[(ContainerFirewall, Vec<Answer>)],
) -> Result<Vec<Vec<Learned>>, NetError> {
    // (which item, what it opens)
    let mut todo: Vec<(usize, Learned)> = vec![];
    let now = Instant::now();
    for (i, (c, answers)) in items.iter().enumerate() {
        for a in answers {
            // Open for long enough already (a refresh now would add less than half the grace, and
            // what is left still outlasts the answer's TTL): no transaction.
            let enough = now + a.timeout.saturating_sub(a.slack);
            if map.by_ip.get(&c.ipv4).and_then(|m| m.get(&(a.rule_id.clone(), a.addr))).is_some_and(|l| l.until >= enough) {
                continue;
            }
            let ms = a.timeout.as_millis().min(u128::from(u32::MAX)) as u64;
            if let Some(elems) = elements::learned_elems(c, shards, &a.rule_id, &a.name, a.addr, ms)
                && !elems.is_empty()
            {
                todo.push((
                    i,
                    Learned {
                        rule_id: a.rule_id.clone(),
                        addr: a.addr,
                        name: a.name.clone(),
                        elems,
                        until: now + a.timeout,
                        timeout: a.timeout,
                        carried: map.carried(c.ipv4, &a.rule_id, a.addr),
                    },
                ));
            }
        }
    }
    let mut out: Vec<Vec<Learned>> = vec![vec![]; items.len()];
    if todo.is_empty() {
        return Ok(out);
    }
    let mut by_set: BTreeMap<String, Vec<Elem>> = BTreeMap::new();
    for (_, l) in &todo {
        for (set, e) in &l.elems {
            by_set.entry(set.clone()).or_default().push(e.clone());
        }
    }
    // An element can time out between the lookup and the commit (its delete then fails the
    // transaction): look again and retry once.
    let mut last = None;
    let base: Vec<(u64, u64)> = todo.iter().map(|(_, l)| l.carried).collect();
    for _ in 0..2 {
        for ((_, l), b) in todo.iter_mut().zip(&base) {
            l.carried = *b;
        }
        let mut batch = vec![];
        for (set, elems) in &by_set {
            let probes: Vec<Elem> = elems.iter().map(probe).collect();
            let there: Vec<KernelElem> = ops.get_elems(set, &probes)?;
            // What the replaced elements counted stays with their rule.
            for k in &there {
                if let Some((_, l)) = todo.iter_mut().find(|(_, l)| l.elems.iter().any(|(s, e)| s == set && e.key == k.elem.key)) {
                    l.carried.0 += k.packets;
                    l.carried.1 += k.bytes;
                }
            }
            if !there.is_empty() {
                batch.push(Op::DelElems { set: set.clone(), elems: there.into_iter().map(|k| probe(&k.elem)).collect() });
            }
        }
        for (set, elems) in &by_set {
            batch.push(Op::AddElems { set: set.clone(), elems: elems.clone() });
        }
        match ops.apply(&batch) {
            Ok(()) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    if let Some(e) = last {
        return Err(e);
    }
    for (set, elems) in &by_set {
        let probes: Vec<Elem> = elems.iter().map(probe).collect();
        let got = ops.get_elems(set, &probes)?;
        if got.len() < probes.len() {
            return Err(NetError::Verify(format!("set {set}: {} of {} learned elements after the change", got.len(), probes.len())));
        }
    }
    for (i, l) in todo {
        map.insert(items[i].0.ipv4, l.clone());
        out[i].push(l);
    }
    Ok(out)
}

/// Start-up: the learned elements the kernel still holds (for containers in `all` whose rule by
/// name still exists), with what is left of their timeouts, to keep across a rebuild — made
/// again from the rules as they are now (a rebuild with another shard count moves them).
pub fn from_dump(dump: &TableDump, all: &[ContainerFirewall], shards: u16, map: &mut LearnedMap) -> Vec<Op> {
    map.clear();
    let by_ip: HashMap<Ipv4Addr, &ContainerFirewall> = all.iter().map(|c| (c.ipv4, c)).collect();
    // (container address, rule, learned address) → what is left of its timeout, the name.
    let mut left: BTreeMap<(Ipv4Addr, String, Ipv4Addr), (u64, String)> = BTreeMap::new();
    for (set, elems) in &dump.sets {
        for k in elems.iter().filter(|k| elements::is_learned(set, &k.elem.key)) {
            let key = &k.elem.key;
            // A point's key is own . peer . …; a range's has the kind in front.
            let at = if set == hoody_net::compile::SET_EGRESS_LEARNED_POINTS { 0 } else { 4 };
            let (Some(own), Some(peer)) = (key.get(at..at + 4), key.get(at + 4..at + 8)) else { continue };
            let comment = k.elem.comment.as_deref().unwrap_or("");
            let Some(rule_id) = hoody_net::compile::comment_rule_id(comment) else { continue };
            let name = hoody_net::compile::comment_name(comment).unwrap_or("");
            let own = Ipv4Addr::new(own[0], own[1], own[2], own[3]);
            let addr = Ipv4Addr::new(peer[0], peer[1], peer[2], peer[3]);
            let e = left.entry((own, rule_id.to_owned(), addr)).or_insert((0, name.to_owned()));
            e.0 = e.0.max(k.expires_ms.unwrap_or(0));
        }
    }
    let mut by_set: BTreeMap<String, Vec<Elem>> = BTreeMap::new();
    for ((own, rule_id, addr), (ms, name)) in left {
        let Some(c) = by_ip.get(&own) else { continue };
        if ms < 1000 {
            continue;
        }
        let Some(elems) = elements::learned_elems(c, shards, &rule_id, &name, addr, ms) else { continue };
        for (set, e) in &elems {
            by_set.entry(set.clone()).or_default().push(e.clone());
        }
        let timeout = Duration::from_millis(ms);
        map.insert(own, Learned { rule_id, addr, name, elems, until: Instant::now() + timeout, timeout, carried: (0, 0) });
    }
    by_set.into_iter().map(|(set, elems)| Op::AddElems { set, elems }).collect()
}
