//! The daemon's side of the firewall: keeps the kernel's `inet hoody` table in step with the
//! state store, one nftables transaction per change, verified after it is applied.

pub mod events;
pub mod learned;
pub mod synthetic;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use hoody_net::compile::{self, Elem};
use hoody_net::elements;
use hoody_net::error::NetError;
use hoody_net::names;
use hoody_net::nft::{FirewallOps, KernelElem, verify_elems};
use hoody_net::policy::{ContainerFirewall, TableConfig};
use tracing::info;

pub use events::EventLog;

pub struct Firewall {
    ops: Arc<dyn FirewallOps>,
    pub cfg: TableConfig,
    /// One change at a time: a container's elements are read, diffed and written under it.
    lock: tokio::sync::Mutex<()>,
    pub events: EventLog,
    /// Which container an address belongs to (the table logs every denial with one prefix),
    /// with its policy as last applied (the resolver polices names by it).
    owners: std::sync::Mutex<HashMap<Ipv4Addr, ContainerFirewall>>,
    /// What each container learned through its resolver for its rules by name.
    learned: std::sync::Mutex<learned::LearnedMap>,
    /// Answers waiting for the next learning transaction, each with where its result goes.
    learn_queue: std::sync::Mutex<Vec<LearnRequest>>,
    /// The elements each container's address is believed to hold in the kernel (what the last
    /// verified change or rebuild left), so a change looks up only its own elements.
    known: std::sync::Mutex<HashMap<Ipv4Addr, Known>>,
}

type Known = BTreeMap<String, Vec<Elem>>;

type LearnRequest = (Ipv4Addr, Vec<learned::Answer>, tokio::sync::oneshot::Sender<Result<Vec<learned::Learned>, String>>);

/// What start-up reconciliation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reconciled {
    /// The kernel already held exactly the policy: nothing was touched (counters kept).
    InPlace,
    /// The table was rebuilt from the state store in one transaction.
    Rebuilt,
}

/// A container's counters as the kernel holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Rule id → (packets, bytes), summed over the rule's regions.
    pub egress: BTreeMap<String, (u64, u64)>,
    pub ingress: BTreeMap<String, (u64, u64)>,
    /// Egress that went to the deny chain (a deny rule or the deny policy).
    pub denied: (u64, u64),
    /// Packets from its interface with a source address not its own.
    pub spoofed: (u64, u64),
    /// Ingress that no allow-list entry accepted.
    pub ingress_denied: (u64, u64),
}

/// What the kernel holds of a container, looked up element by element: the elements it is
/// believed to hold (`known`), those it should hold (`wanted`) and its keys in the hash sets —
/// O(its own elements), whatever the table holds besides.
fn current_of(
    ops: &dyn FirewallOps,
    ip: Ipv4Addr,
    ifname: &str,
    known: &BTreeMap<String, Vec<Elem>>,
    wanted: &BTreeMap<String, Vec<Elem>>,
) -> Result<BTreeMap<String, Vec<KernelElem>>, NetError> {
    let mut probes: BTreeMap<String, std::collections::BTreeSet<Elem>> = BTreeMap::new();
    for (set, key) in elements::hash_keys(ip, ifname) {
        probes.entry(set.into()).or_default().insert(Elem::key(key));
    }
    for m in [known, wanted] {
        for (set, elems) in m {
            probes.entry(set.clone()).or_default().extend(elems.iter().map(|e| Elem {
                comment: None,
                goto: None,
                timeout_ms: None,
                ..e.clone()
            }));
        }
    }
    let mut out: BTreeMap<String, Vec<KernelElem>> = BTreeMap::new();
    for (set, p) in probes {
        let mut found = ops.get_elems(&set, &p.into_iter().collect::<Vec<_>>())?;
        found.retain(|e| elements::owned_by(&set, &e.elem.key, ip, ifname));
        found.sort_by(|a, b| a.elem.cmp(&b.elem));
        found.dedup_by(|a, b| a.elem == b.elem);
        out.insert(set, found);
    }
    Ok(out)
}

/// Every element of the container in the sets it can have elements in, by dumping them: for a
/// container whose elements are not known (never used when the table was built by this daemon).
fn scan_of(ops: &dyn FirewallOps, ip: Ipv4Addr, ifname: &str, shards: u16) -> Result<BTreeMap<String, Vec<Elem>>, NetError> {
    let s = elements::shard(ip, shards);
    let mut out = BTreeMap::new();
    for set in [
        compile::SET_EGRESS_ALLOW_POINTS.to_string(),
        compile::SET_EGRESS_DENY_POINTS.into(),
        compile::SET_INGRESS_ALLOW_POINTS.into(),
        compile::shard_set(s),
    ] {
        let all = ops.set_elems(&set)?.unwrap_or_default();
        let own = all.into_iter().filter(|e| elements::owned_by(&set, &e.elem.key, ip, ifname) && !elements::is_learned(&set, &e.elem.key));
        out.insert(set.clone(), own.map(|e| e.elem).collect());
    }
    Ok(out)
}

fn plain(m: &BTreeMap<String, Vec<KernelElem>>) -> BTreeMap<String, Vec<Elem>> {
    m.iter().map(|(k, v)| (k.clone(), v.iter().map(|e| e.elem.clone()).collect())).collect()
}

/// Makes the kernel hold exactly `wanted` for the container (empty: nothing), in one
/// transaction, and reads it back.
/// `stale`: learned elements to delete with the change (their rule by name is gone).
fn sync(
    ops: &dyn FirewallOps,
    shards: u16,
    ip: Ipv4Addr,
    ifname: &str,
    known: Option<BTreeMap<String, Vec<Elem>>>,
    stale: BTreeMap<String, Vec<Elem>>,
    wanted: &BTreeMap<String, Vec<Elem>>,
) -> Result<(), NetError> {
    let t = std::time::Instant::now();
    let mut known = match known {
        Some(k) => k,
        None => scan_of(ops, ip, ifname, shards)?,
    };
    for (set, elems) in stale {
        known.entry(set).or_default().extend(elems);
    }
    let current = plain(&current_of(ops, ip, ifname, &known, wanted)?);
    let t_read = t.elapsed();
    let diff = elements::diff(&current, wanted);
    ops.apply(&diff)?;
    let t_apply = t.elapsed();
    let after = current_of(ops, ip, ifname, &known, wanted)?;
    for (set, got) in &after {
        verify_elems(set, got, wanted.get(set).map(Vec::as_slice).unwrap_or(&[]))?;
    }
    tracing::debug!(
        %ip,
        ops = diff.len(),
        read_us = t_read.as_micros() as u64,
        apply_us = (t_apply - t_read).as_micros() as u64,
        verify_us = (t.elapsed() - t_apply).as_micros() as u64,
        "firewall elements synced"
    );
    Ok(())
}

impl Firewall {
    pub fn new(ops: Arc<dyn FirewallOps>, cfg: TableConfig) -> Arc<Firewall> {
        Arc::new(Firewall {
            ops,
            cfg,
            lock: tokio::sync::Mutex::new(()),
            events: EventLog::default(),
            owners: Default::default(),
            learned: Default::default(),
            learn_queue: Default::default(),
            known: Default::default(),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn FirewallOps) -> Result<T, NetError> + Send + 'static,
    ) -> Result<T, NetError> {
        let ops = self.ops.clone();
        tokio::task::spawn_blocking(move || f(ops.as_ref())).await.map_err(|e| NetError::Io {
            op: "run",
            target: "firewall task".into(),
            source: std::io::Error::other(e),
        })?
    }

    /// The container an address belongs to, for denied-packet events.
    pub fn owner_of(&self, ip: Ipv4Addr) -> Option<String> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).get(&ip).map(|c| c.id.clone())
    }

    /// The policy of the container with address `ip`, as last applied.
    pub fn policy_of(&self, ip: Ipv4Addr) -> Option<ContainerFirewall> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).get(&ip).cloned()
    }

    fn own(&self, c: &ContainerFirewall) {
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).insert(c.ipv4, c.clone());
    }

    fn stale(&self, ip: Ipv4Addr, c: Option<&ContainerFirewall>) -> BTreeMap<String, Vec<Elem>> {
        self.learned.lock().unwrap_or_else(|e| e.into_inner()).stale(ip, c)
    }

    /// Opens, for the container with address `ip`, what its resolver's answer carried; returns
    /// once the elements are committed and read back (the answer goes to the container after).
    /// Answers that arrive while a transaction is being made go together in the next one.
    pub async fn learn(&self, ip: Ipv4Addr, answers: Vec<learned::Answer>) -> Result<Vec<learned::Learned>, NetError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.learn_queue.lock().unwrap_or_else(|e| e.into_inner()).push((ip, answers, tx));
        {
            let _g = self.lock.lock().await;
            let queued = std::mem::take(&mut *self.learn_queue.lock().unwrap_or_else(|e| e.into_inner()));
            if !queued.is_empty() {
                let mut items = vec![];
                let mut replies = vec![];
                for (ip, answers, tx) in queued {
                    match self.policy_of(ip) {
                        Some(c) => {
                            items.push((c, answers));
                            replies.push(tx);
                        }
                        None => {
                            let _ = tx.send(Ok(vec![]));
                        }
                    }
                }
                let shards = self.cfg.shards;
                let mut map = std::mem::take(&mut *self.learned.lock().unwrap_or_else(|e| e.into_inner()));
                let (r, map) = self
                    .blocking(move |ops| {
                        let r = learned::learn(ops, &mut map, shards, &items);
                        Ok((r, map))
                    })
                    .await?;
                *self.learned.lock().unwrap_or_else(|e| e.into_inner()) = map;
                tracing::debug!(answers = replies.len(), ok = r.is_ok(), "learned addresses committed");
                match r {
                    Ok(each) => {
                        for (tx, l) in replies.into_iter().zip(each) {
                            let _ = tx.send(Ok(l));
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        for tx in replies {
                            let _ = tx.send(Err(msg.clone()));
                        }
                    }
                }
            }
        }
        match rx.await {
            Ok(Ok(l)) => Ok(l),
            Ok(Err(m)) => Err(NetError::Verify(m)),
            Err(_) => Err(NetError::Verify("the learning transaction was dropped".into())),
        }
    }

    /// What the container with address `ip` has learned and still holds open.
    pub fn learned_of(&self, ip: Ipv4Addr) -> Vec<learned::Learned> {
        self.learned.lock().unwrap_or_else(|e| e.into_inner()).of(ip)
    }

    fn known_of(&self, ip: Ipv4Addr) -> Option<Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).get(&ip).cloned()
    }

    fn set_known(&self, ip: Ipv4Addr, k: Option<Known>) {
        let mut m = self.known.lock().unwrap_or_else(|e| e.into_inner());
        match k {
            Some(k) => m.insert(ip, k),
            None => m.remove(&ip),
        };
    }

    /// Start-up: makes the kernel hold the policy of `all` without an open window — either it
    /// already does, or the whole table is replaced in one transaction.
    pub async fn reconcile(&self, all: Vec<ContainerFirewall>) -> Result<Reconciled, NetError> {
        let _g = self.lock.lock().await;
        for c in &all {
            self.own(c);
        }
        let cfg = self.cfg.clone();
        let ips: Vec<Ipv4Addr> = all.iter().map(|c| c.ipv4).collect();
        let mut learned_map = std::mem::take(&mut *self.learned.lock().unwrap_or_else(|e| e.into_inner()));
        let (how, per, learned_map) = self
            .blocking(move |ops| {
                let t = std::time::Instant::now();
                let (batch, want, per) = elements::plan_each(&cfg, &all)?;
                let t_compile = t.elapsed();
                let current = ops.dump()?;
                let t_dump = t.elapsed();
                let mut keep_learned = vec![];
                if let Some(d) = current {
                    keep_learned = learned::from_dump(&d, &all, cfg.shards, &mut learned_map);
                    match d.verify(&want) {
                        Ok(()) => {
                            tracing::debug!(
                                compile_us = t_compile.as_micros() as u64,
                                dump_us = t_dump.as_micros() as u64,
                                "firewall verified in place"
                            );
                            return Ok((Reconciled::InPlace, per, learned_map));
                        }
                        Err(e) => info!(difference = %e, "firewall differs from the state store; rebuilding it"),
                    }
                }
                let mut batch = batch;
                batch.extend(keep_learned);
                ops.apply(&batch)?;
                let t_apply = t.elapsed();
                ops.dump()?.ok_or_else(|| NetError::Verify("the table is missing after the rebuild".into()))?.verify(&want)?;
                tracing::debug!(
                    compile_us = t_compile.as_micros() as u64,
                    dump_us = t_dump.as_micros() as u64,
                    apply_us = t_apply.as_micros() as u64,
                    verify_us = t.elapsed().as_micros() as u64,
                    "firewall rebuilt"
                );
                Ok((Reconciled::Rebuilt, per, learned_map))
            })
            .await?;
        *self.learned.lock().unwrap_or_else(|e| e.into_inner()) = learned_map;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.clear();
        known.extend(ips.into_iter().zip(per));
        Ok(how)
    }

    /// Makes the kernel hold `c`'s policy exactly: an element diff of its own elements, one
    /// transaction, read back.
    async fn sync(&self, c: &ContainerFirewall) -> Result<(), NetError> {
        let _g = self.lock.lock().await;
        self.own(c);
        let wanted = elements::of(c, self.cfg.shards)?;
        let (ip, ifname, known) = (c.ipv4, c.ifname(), self.known_of(c.ipv4));
        let w = wanted.clone();
        let shards = self.cfg.shards;
        let stale = self.stale(ip, Some(c));
        let r = self.blocking(move |ops| sync(ops, shards, ip, &ifname, known, stale, &w)).await;
        // After a failure the kernel may hold either: look it up in full next time.
        self.set_known(ip, r.is_ok().then_some(wanted));
        r
    }

    /// A new container: its elements, in one transaction. Its address has nothing in the table
    /// (the last holder's elements went, verified, with its delete; a rebuild from the state
    /// store covers a crash), so nothing is looked for beyond its own keys.
    pub async fn install(&self, c: &ContainerFirewall) -> Result<(), NetError> {
        {
            let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            known.entry(c.ipv4).or_default();
        }
        self.sync(c).await
    }

    /// A deleted container: all its elements, in one transaction. An absent container (already
    /// removed) is fine.
    pub async fn uninstall(&self, id: &str, ip: Option<Ipv4Addr>) -> Result<(), NetError> {
        let _g = self.lock.lock().await;
        self.events.forget(id);
        let ip = ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        {
            let mut o = self.owners.lock().unwrap_or_else(|e| e.into_inner());
            if o.get(&ip).is_some_and(|owner| owner.id == id) {
                o.remove(&ip);
            }
        }
        let ifname = names::host_ifname(id);
        let known = self.known_of(ip);
        let shards = self.cfg.shards;
        let stale = self.stale(ip, None);
        let r = self.blocking(move |ops| sync(ops, shards, ip, &ifname, known, stale, &BTreeMap::new())).await;
        self.set_known(ip, r.is_ok().then(BTreeMap::new));
        r
    }

    /// A changed container — a rule added or deleted, a reset to deny-all: its elements made
    /// exactly `c`'s, in one transaction.
    pub async fn update(&self, c: &ContainerFirewall) -> Result<(), NetError> {
        self.sync(c).await
    }

    /// The container's counters.
    pub async fn counters(&self, id: &str, ip: Option<Ipv4Addr>) -> Result<Counters, NetError> {
        let ip = ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let ifname = names::host_ifname(id);
        let mut known = self.known_of(ip).unwrap_or_default();
        // What its rules by name opened counts for them too (with what earlier elements of the
        // same address counted before a refresh replaced them).
        let mut carried: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for l in self.learned_of(ip) {
            let c = carried.entry(l.rule_id.clone()).or_default();
            (c.0, c.1) = (c.0 + l.carried.0, c.1 + l.carried.1);
            for (set, e) in l.elems {
                known.entry(set).or_default().push(e);
            }
        }
        let shards = self.cfg.shards;
        self.blocking(move |ops| {
            let cur = current_of(ops, ip, &ifname, &known, &BTreeMap::new())?;
            let s = elements::shard(ip, shards);
            let sum = |set: &str| cur.get(set).map(|v| v.iter().fold((0, 0), |a, e| (a.0 + e.packets, a.1 + e.bytes))).unwrap_or_default();
            let rules = |sets: &[String]| {
                let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
                for set in sets {
                    for (k, v) in elements::rule_counters(cur.get(set).map(Vec::as_slice).unwrap_or(&[])) {
                        let e = m.entry(k).or_default();
                        e.0 += v.0;
                        e.1 += v.1;
                    }
                }
                m
            };
            let mut egress = rules(&[compile::SET_EGRESS_ALLOW_POINTS.into(), compile::SET_EGRESS_DENY_POINTS.into()]);
            let mut ingress = rules(&[compile::SET_INGRESS_ALLOW_POINTS.into()]);
            // The shard's elements say by their key's first field which list they belong to.
            let shard: Vec<KernelElem> = cur.get(&compile::shard_set(s)).cloned().unwrap_or_default();
            let (into, out): (Vec<KernelElem>, Vec<KernelElem>) =
                shard.into_iter().partition(|e| e.elem.key.get(3) == Some(&compile::REGION_INGRESS_ALLOW));
            for (k, v) in carried {
                let e = egress.entry(k).or_default();
                (e.0, e.1) = (e.0 + v.0, e.1 + v.1);
            }
            for (m, part) in [(&mut egress, out), (&mut ingress, into)] {
                for (k, v) in elements::rule_counters(&part) {
                    let e = m.entry(k).or_default();
                    e.0 += v.0;
                    e.1 += v.1;
                }
            }
            Ok(Counters {
                egress,
                ingress,
                denied: sum(compile::SET_DENIED),
                spoofed: sum(compile::SET_SPOOFED),
                ingress_denied: sum(compile::SET_INGRESS_DENIED),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoody_net::compile::Op;
    use hoody_net::nft::recording::RecordingFirewall;
    use hoody_net::policy::{DenyAction, EgressPolicy};
    use hoody_net::rules::{Action, Direction, PortRange, Protocol, Rule, RuleSpec};

    fn cfg() -> TableConfig {
        TableConfig {
            subnet: "10.77.0.0/16".parse().unwrap(),
            uplink: None,
            deny_action: DenyAction::Reject,
            nflog_group: 1,
            log_rate: 10,
            shards: hoody_net::compile::MAX_SHARDS,
        }
    }

    fn rule(id: &str, dir: Direction, port: u16) -> Rule {
        Rule {
            id: id.into(),
            spec: RuleSpec {
                direction: dir,
                action: Action::Allow,
                protocol: Protocol::Tcp,
                peer: "203.0.113.10/32".parse().unwrap(),
                ports: Some(PortRange { from: port, to: port }),
                description: String::new(),
                fqdn: None,
            },
        }
    }

    fn comments(rec: &RecordingFirewall, set: &str) -> Vec<String> {
        rec.set_elems(set).unwrap().unwrap().into_iter().filter_map(|e| e.elem.comment).collect()
    }

    #[tokio::test]
    async fn learned_addresses_are_points_refreshed_only_when_worth_it_and_go_with_their_rule() {
        let rec = Arc::new(RecordingFirewall::new());
        let fw = Firewall::new(rec.clone(), cfg());
        let mut by_name = rule("n1", Direction::Egress, 443);
        by_name.spec.peer = hoody_net::rules::FQDN_PEER;
        by_name.spec.fqdn = Some("api.example.test".into());
        let mut ranged = by_name.clone();
        ranged.id = "n2".into();
        ranged.spec.ports = Some(PortRange { from: 8000, to: 8100 });
        let mut c = ContainerFirewall {
            id: "b".repeat(24),
            ipv4: "10.77.0.3".parse().unwrap(),
            egress_policy: EgressPolicy::Deny,
            dns: hoody_net::policy::DnsMode::Filtered,
            egress: vec![by_name, ranged],
            ingress: vec![],
        };
        fw.reconcile(vec![c.clone()]).await.unwrap();
        let answer = |rule: &str, t: u64| learned::Answer {
            rule_id: rule.into(),
            addr: "203.0.113.7".parse().unwrap(),
            name: "api.example.test".into(),
            timeout: std::time::Duration::from_secs(t),
            slack: std::time::Duration::from_secs(15),
        };
        let before = rec.transaction_count();
        fw.learn(c.ipv4, vec![answer("n1", 330), answer("n2", 330)]).await.unwrap();
        assert_eq!(rec.transaction_count(), before + 1, "one transaction for the answer");
        let points = rec.set_elems(compile::SET_EGRESS_LEARNED_POINTS).unwrap().unwrap();
        assert_eq!(points.len(), 1, "one port: a point, in the hash set");
        assert_eq!(points[0].elem.timeout_ms, Some(330_000));
        assert_eq!(points[0].elem.comment.as_deref(), Some("r:n1 api.example.test"));
        let shard = compile::shard_set(elements::shard(c.ipv4, cfg().shards));
        let ranges: Vec<_> =
            rec.set_elems(&shard).unwrap().unwrap().into_iter().filter(|e| elements::is_learned(&shard, &e.elem.key)).collect();
        assert_eq!(ranges.len(), 1, "a port range: an interval of the shard set");
        // The same answer again at once: open long enough, nothing to commit.
        let before = rec.transaction_count();
        fw.learn(c.ipv4, vec![answer("n1", 330)]).await.unwrap();
        assert_eq!(rec.transaction_count(), before, "no transaction for an address open long enough");
        // A longer answer is worth a refresh: deleted and added again in one transaction.
        fw.learn(c.ipv4, vec![answer("n1", 3630)]).await.unwrap();
        let last = rec.transactions.lock().unwrap().last().unwrap().clone();
        assert!(matches!(&last[..], [Op::DelElems { .. }, Op::AddElems { .. }]), "{last:?}");
        // Deleting a rule by name closes what it opened in the same transaction as the change.
        c.egress.remove(0);
        fw.update(&c).await.unwrap();
        assert!(rec.set_elems(compile::SET_EGRESS_LEARNED_POINTS).unwrap().unwrap().is_empty());
        assert_eq!(rec.set_elems(&shard).unwrap().unwrap().iter().filter(|e| elements::is_learned(&shard, &e.elem.key)).count(), 1);
        // Answers of two containers that arrive together are one transaction.
        let mut d = c.clone();
        d.id = "d".repeat(24);
        d.ipv4 = "10.77.0.4".parse().unwrap();
        d.egress = vec![{
            let mut r = rule("m1", Direction::Egress, 443);
            r.spec.peer = hoody_net::rules::FQDN_PEER;
            r.spec.fqdn = Some("api.example.test".into());
            r
        }];
        fw.reconcile(vec![c.clone(), d.clone()]).await.unwrap();
        let before = rec.transaction_count();
        let (a, b) = tokio::join!(fw.learn(d.ipv4, vec![answer("m1", 330)]), fw.learn(c.ipv4, vec![answer("n2", 1800)]));
        assert_eq!((a.unwrap().len(), b.unwrap().len()), (1, 1));
        assert!(rec.transaction_count() - before <= 2, "queued answers go together");
        let mut map = learned::LearnedMap::default();
        let before = rec.transaction_count();
        let both = learned::learn(
            rec.as_ref(),
            &mut map,
            cfg().shards,
            &[(c.clone(), vec![answer("n2", 3000)]), (d.clone(), vec![answer("m1", 3000)])],
        )
        .unwrap();
        assert_eq!((both[0].len(), both[1].len(), rec.transaction_count() - before), (1, 1, 1), "one transaction for both");
        // Deleting the container closes the rest.
        fw.uninstall(&c.id, Some(c.ipv4)).await.unwrap();
        assert!(
            rec.set_elems(&shard).unwrap().unwrap().iter().all(|e| !elements::is_learned(&shard, &e.elem.key)),
            "gone with the container"
        );
    }

    #[tokio::test]
    async fn every_change_is_one_element_diff_and_reset_clears_the_rules() {
        let rec = Arc::new(RecordingFirewall::new());
        let fw = Firewall::new(rec.clone(), cfg());
        let mut c = ContainerFirewall {
            id: "a".repeat(24),
            ipv4: "10.77.0.2".parse().unwrap(),
            egress_policy: EgressPolicy::Allow,
            dns: hoody_net::policy::DnsMode::Filtered,
            egress: vec![],
            ingress: vec![],
        };
        assert_eq!(fw.reconcile(vec![c.clone()]).await.unwrap(), Reconciled::Rebuilt);
        assert_eq!(fw.reconcile(vec![c.clone()]).await.unwrap(), Reconciled::InPlace, "a consistent table is left alone");
        assert_eq!(fw.owner_of(c.ipv4).as_deref(), Some(c.id.as_str()));
        for (i, port) in [443u16, 80, 22].into_iter().enumerate() {
            let r = rule(&format!("r{i}"), Direction::Egress, port);
            c.egress.push(r.clone());
            let before = rec.transaction_count();
            fw.update(&c).await.unwrap();
            assert_eq!(rec.transaction_count(), before + 1, "one transaction");
            let last = rec.transactions.lock().unwrap().last().unwrap().clone();
            assert!(last.iter().all(|o| matches!(o, Op::AddElems { .. } | Op::DelElems { .. })), "elements only: {last:?}");
        }
        let ing = rule("in1", Direction::Ingress, 8080);
        c.ingress.push(ing.clone());
        fw.update(&c).await.unwrap();
        assert_eq!(comments(&rec, "eap").len(), 3);
        assert_eq!(comments(&rec, "iap"), ["r:in1"]);
        c.egress.remove(1);
        fw.update(&c).await.unwrap();
        let mut left = comments(&rec, "eap");
        left.sort();
        assert_eq!(left, ["r:r0", "r:r2"]);
        // Reset: all rules gone and the policy is deny, in one transaction.
        let before = rec.transaction_count();
        c.egress.clear();
        c.ingress.clear();
        c.egress_policy = EgressPolicy::Deny;
        fw.update(&c).await.unwrap();
        assert_eq!(rec.transaction_count(), before + 1);
        assert!(comments(&rec, "eap").is_empty() && comments(&rec, "iap").is_empty());
        assert!(rec.set_elems("open").unwrap().unwrap().is_empty(), "deny policy: not open");
        assert_eq!(fw.reconcile(vec![c.clone()]).await.unwrap(), Reconciled::InPlace);
        fw.uninstall(&c.id, Some(c.ipv4)).await.unwrap();
        assert_eq!(fw.reconcile(vec![]).await.unwrap(), Reconciled::InPlace, "nothing of it is left");
        assert_eq!(fw.owner_of(c.ipv4), None);
        fw.uninstall(&c.id, Some(c.ipv4)).await.unwrap();
    }

    #[tokio::test]
    async fn a_neighbour_in_the_same_shard_is_not_touched() {
        let rec = Arc::new(RecordingFirewall::new());
        let fw = Firewall::new(rec.clone(), cfg());
        let mk = |id: char, ip: &str| ContainerFirewall {
            id: id.to_string().repeat(24),
            ipv4: ip.parse().unwrap(),
            egress_policy: EgressPolicy::Deny,
            dns: hoody_net::policy::DnsMode::Filtered,
            egress: vec![rule(&format!("{id}1"), Direction::Egress, 443)],
            ingress: vec![],
        };
        // The same shard (the last ten bits); their rules are single points, in the shared
        // hash set.
        let (mut a, b) = (mk('a', "10.77.0.7"), mk('b', "10.77.4.7"));
        assert_eq!(elements::shard(a.ipv4, cfg().shards), elements::shard(b.ipv4, cfg().shards));
        fw.reconcile(vec![a.clone(), b.clone()]).await.unwrap();
        a.egress.clear();
        fw.update(&a).await.unwrap();
        assert_eq!(comments(&rec, "eap"), ["r:b1"], "b's rule stays");
        assert_eq!(fw.reconcile(vec![a, b]).await.unwrap(), Reconciled::InPlace);
    }

    #[tokio::test]
    async fn a_refused_change_is_an_error_and_changes_nothing() {
        let rec = Arc::new(RecordingFirewall::new());
        let fw = Firewall::new(rec.clone(), cfg());
        let mut c = ContainerFirewall {
            id: "b".repeat(24),
            ipv4: "10.77.0.3".parse().unwrap(),
            egress_policy: EgressPolicy::Deny,
            dns: hoody_net::policy::DnsMode::Filtered,
            egress: vec![],
            ingress: vec![],
        };
        fw.reconcile(vec![c.clone()]).await.unwrap();
        let before = rec.dump().unwrap();
        rec.fail_next.store(true, std::sync::atomic::Ordering::SeqCst);
        let r = rule("x", Direction::Egress, 443);
        c.egress.push(r.clone());
        assert!(fw.update(&c).await.is_err());
        assert_eq!(rec.dump().unwrap(), before);
    }
}
