//! A recording double of [`FirewallOps`]: keeps every transaction and interprets it on an
//! in-memory table with the kernel's rules (a transaction applies wholly or not at all; a rule
//! needs its chain and the chains and sets it names; an element needs its set; deleting an absent
//! element or adding a different one under an existing key is refused; …).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{FirewallOps, KernelElem, KernelRule, TableDump};
use crate::compile::{Elem, Expr, Op, Verdict};
use crate::error::{NetError, Result};

#[derive(Clone, Debug, Default)]
struct Model {
    table: Option<Table>,
}

type ElemKey = (Vec<u8>, Option<Vec<u8>>);

#[derive(Clone, Debug, Default)]
struct Table {
    chains: BTreeMap<String, Vec<(u64, String, Vec<Expr>)>>,
    sets: BTreeMap<String, BTreeMap<ElemKey, Elem>>,
    next_handle: u64,
}

#[derive(Default)]
pub struct RecordingFirewall {
    model: Mutex<Model>,
    /// Every transaction that was submitted, applied or not.
    pub transactions: Mutex<Vec<Vec<Op>>>,
    /// When set, the next transaction is refused (as a kernel would refuse a bad batch).
    pub fail_next: AtomicBool,
}

fn refuse(why: String) -> NetError {
    NetError::Rejected { ops: 0, source: std::io::Error::other(why) }
}

impl Table {
    fn apply(&mut self, op: &Op) -> std::result::Result<(), String> {
        match op {
            Op::AddTable | Op::DelTable => unreachable!("handled on the model"),
            Op::AddBaseChain { name, .. } => {
                self.chains.entry(name.to_string()).or_default();
            }
            Op::AddChain(n) => {
                self.chains.entry(n.clone()).or_default();
            }
            Op::AddSet { name, .. } => {
                self.sets.entry(name.clone()).or_default();
            }
            Op::AddRule { chain, rule } => {
                for e in &rule.exprs {
                    match e {
                        Expr::Verdict(Verdict::Goto(c)) if !self.chains.contains_key(c) => return Err(format!("goto: no chain {c}")),
                        Expr::Lookup { set, .. } | Expr::ShardVmap { map: set, .. } | Expr::Meter { set, .. }
                            if !self.sets.contains_key(*set) =>
                        {
                            return Err(format!("lookup: no set {set}"));
                        }
                        Expr::ShardLookup { set, .. } if !self.sets.contains_key(set) => return Err(format!("lookup: no set {set}")),
                        _ => {}
                    }
                }
                self.next_handle += 1;
                let h = self.next_handle;
                self.chains.get_mut(chain).ok_or(format!("no chain {chain}"))?.push((h, rule.comment.clone(), rule.exprs.clone()));
            }
            Op::AddElems { set, elems } => {
                let s = self.sets.get_mut(set).ok_or(format!("no set {set}"))?;
                for e in elems {
                    if let Some(c) = &e.goto
                        && !self.chains.contains_key(c)
                    {
                        return Err(format!("map element: no chain {c}"));
                    }
                    let k = (e.key.clone(), e.key_end.clone());
                    match s.get(&k) {
                        Some(old) if old != e => return Err(format!("set {set}: a different element exists under {k:?}")),
                        _ => {
                            s.insert(k, e.clone());
                        }
                    }
                }
            }
            Op::DelElems { set, elems } => {
                let s = self.sets.get_mut(set).ok_or(format!("no set {set}"))?;
                for e in elems {
                    s.remove(&(e.key.clone(), e.key_end.clone())).ok_or(format!("set {set}: no element {:?}", e.key))?;
                }
            }
        }
        Ok(())
    }
}

impl RecordingFirewall {
    pub fn new() -> Self {
        Self::default()
    }

    /// The expressions of every rule in `chain`, in order.
    pub fn exprs(&self, chain: &str) -> Vec<Vec<Expr>> {
        let m = self.model.lock().expect("poisoned");
        m.table.as_ref().and_then(|t| t.chains.get(chain)).map(|r| r.iter().map(|(_, _, e)| e.clone()).collect()).unwrap_or_default()
    }

    /// Number of submitted transactions.
    pub fn transaction_count(&self) -> usize {
        self.transactions.lock().expect("poisoned").len()
    }
}

fn kernel_elem(e: &Elem) -> KernelElem {
    KernelElem { elem: e.clone(), packets: 0, bytes: 0, expires_ms: e.timeout_ms }
}

impl FirewallOps for RecordingFirewall {
    fn apply(&self, ops: &[Op]) -> Result<()> {
        self.transactions.lock().expect("poisoned").push(ops.to_vec());
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(refuse("injected failure".into()));
        }
        let mut m = self.model.lock().expect("poisoned");
        let mut next = m.clone();
        for op in ops {
            match op {
                Op::AddTable => {
                    next.table.get_or_insert_with(Table::default);
                }
                Op::DelTable => {
                    next.table.take().ok_or_else(|| refuse("delete: no table".into()))?;
                }
                other => next.table.as_mut().ok_or_else(|| refuse("no table".into()))?.apply(other).map_err(refuse)?,
            }
        }
        *m = next;
        Ok(())
    }

    fn dump(&self) -> Result<Option<TableDump>> {
        let m = self.model.lock().expect("poisoned");
        Ok(m.table.as_ref().map(|t| TableDump {
            chains: t
                .chains
                .iter()
                .map(|(n, r)| {
                    (n.clone(), r.iter().map(|(h, c, _)| KernelRule { handle: *h, comment: c.clone(), packets: 0, bytes: 0 }).collect())
                })
                .collect(),
            sets: t.sets.iter().map(|(n, s)| (n.clone(), s.values().map(kernel_elem).collect())).collect(),
        }))
    }

    fn set_elems(&self, set: &str) -> Result<Option<Vec<KernelElem>>> {
        let m = self.model.lock().expect("poisoned");
        Ok(m.table.as_ref().and_then(|t| t.sets.get(set)).map(|s| s.values().map(kernel_elem).collect()))
    }

    fn get_elems(&self, set: &str, probes: &[Elem]) -> Result<Vec<KernelElem>> {
        let m = self.model.lock().expect("poisoned");
        let Some(s) = m.table.as_ref().and_then(|t| t.sets.get(set)) else { return Ok(vec![]) };
        // As the kernel: the element whose interval holds the probe's start key.
        let holds = |e: &Elem, k: &[u8]| match &e.key_end {
            None => e.key == k,
            // Field by field (32 bits each), as a concatenated interval set matches.
            Some(end) => {
                k.len() == e.key.len()
                    && (0..k.len() / 4)
                        .all(|f| e.key[f * 4..f * 4 + 4] <= k[f * 4..f * 4 + 4] && k[f * 4..f * 4 + 4] <= end[f * 4..f * 4 + 4])
            }
        };
        Ok(probes.iter().filter_map(|p| s.values().find(|e| holds(e, &p.key))).map(kernel_elem).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elements;
    use crate::policy::*;

    fn cfg() -> TableConfig {
        TableConfig {
            subnet: "10.77.0.0/16".parse().unwrap(),
            uplink: None,
            deny_action: DenyAction::Reject,
            nflog_group: 1,
            log_rate: 10,
            shards: crate::compile::MAX_SHARDS,
        }
    }

    fn ctr(id: &str, n: u8) -> ContainerFirewall {
        ContainerFirewall {
            id: id.into(),
            ipv4: std::net::Ipv4Addr::new(10, 77, 0, n),
            egress_policy: EgressPolicy::Deny,
            dns: crate::policy::DnsMode::Filtered,
            egress: vec![],
            ingress: vec![],
        }
    }

    #[test]
    fn a_full_rebuild_verifies_and_a_container_is_an_element_diff() {
        let fw = RecordingFirewall::new();
        let (a, b) = (ctr(&"a".repeat(24), 1), ctr(&"b".repeat(24), 2));
        let (ops, x) = elements::plan(&cfg(), std::slice::from_ref(&a)).unwrap();
        fw.apply(&ops).unwrap();
        fw.dump().unwrap().unwrap().verify(&x).unwrap();
        let add = elements::diff(&Default::default(), &elements::of(&b, crate::compile::MAX_SHARDS).unwrap());
        assert!(add.iter().all(|o| matches!(o, Op::AddElems { .. })), "a new container adds elements only");
        fw.apply(&add).unwrap();
        fw.dump().unwrap().unwrap().verify(&elements::plan(&cfg(), &[a.clone(), b.clone()]).unwrap().1).unwrap();
        fw.apply(&elements::diff(&elements::of(&a, crate::compile::MAX_SHARDS).unwrap(), &Default::default())).unwrap();
        fw.dump().unwrap().unwrap().verify(&elements::plan(&cfg(), std::slice::from_ref(&b)).unwrap().1).unwrap();
    }

    #[test]
    fn a_refused_transaction_changes_nothing() {
        let fw = RecordingFirewall::new();
        let a = ctr(&"a".repeat(24), 1);
        fw.apply(&elements::plan(&cfg(), std::slice::from_ref(&a)).unwrap().0).unwrap();
        let before = fw.dump().unwrap();
        // Deleting an element that is not there is refused, with the rest of the batch.
        let b = ctr(&"b".repeat(24), 2);
        let mut bad = elements::diff(&Default::default(), &elements::of(&b, crate::compile::MAX_SHARDS).unwrap());
        bad.extend(elements::diff(&elements::of(&b, crate::compile::MAX_SHARDS).unwrap(), &Default::default()));
        bad.extend(elements::diff(&elements::of(&b, crate::compile::MAX_SHARDS).unwrap(), &Default::default()));
        assert!(fw.apply(&bad).is_err());
        assert_eq!(fw.dump().unwrap(), before);
        fw.fail_next.store(true, Ordering::SeqCst);
        assert!(fw.apply(&elements::diff(&Default::default(), &elements::of(&b, crate::compile::MAX_SHARDS).unwrap())).is_err());
        assert_eq!(fw.dump().unwrap(), before);
    }

    #[test]
    fn verify_notices_a_missing_element() {
        let fw = RecordingFirewall::new();
        let a = ctr(&"a".repeat(24), 1);
        let (ops, x) = elements::plan(&cfg(), std::slice::from_ref(&a)).unwrap();
        fw.apply(&ops).unwrap();
        let ctr_elem = elements::of(&a, crate::compile::MAX_SHARDS).unwrap()[crate::compile::SET_CTR].clone();
        fw.apply(&[Op::DelElems { set: crate::compile::SET_CTR.into(), elems: ctr_elem }]).unwrap();
        let err = fw.dump().unwrap().unwrap().verify(&x).unwrap_err();
        assert!(err.to_string().contains("set ctr lacks"), "{err}");
    }
}
