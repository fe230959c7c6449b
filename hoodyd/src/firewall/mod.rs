//! The daemon's side of the firewall: keeps the kernel's `inet hoody` table in step with the
//! state store, one nftables transaction per change, verified after it is applied.

pub mod events;

use std::sync::Arc;

use hoody_net::compile::{self, Expected, Op};
use hoody_net::error::NetError;
use hoody_net::names;
use hoody_net::nft::{FirewallOps, KernelRule};
use hoody_net::policy::{ContainerFirewall, EgressPolicy, TableConfig};
use hoody_net::rules::{Direction, Rule};
use tracing::{info, warn};

pub use events::{Event, EventLog};

pub struct Firewall {
    ops: Arc<dyn FirewallOps>,
    pub cfg: TableConfig,
    /// One change at a time: positions (rule handles) are read and used under this lock.
    lock: tokio::sync::Mutex<()>,
    pub events: EventLog,
}

/// What start-up reconciliation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reconciled {
    /// The kernel already held exactly the policy: nothing was touched (counters kept).
    InPlace,
    /// The table was rebuilt from the state store in one transaction.
    Rebuilt,
}

impl Firewall {
    pub fn new(ops: Arc<dyn FirewallOps>, cfg: TableConfig) -> Arc<Firewall> {
        Arc::new(Firewall { ops, cfg, lock: tokio::sync::Mutex::new(()), events: EventLog::default() })
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

    /// Start-up: makes the kernel hold the policy of `all` without an open window — either it
    /// already does, or the whole table is replaced in one transaction.
    pub async fn reconcile(&self, all: Vec<ContainerFirewall>) -> Result<Reconciled, NetError> {
        let _g = self.lock.lock().await;
        let cfg = self.cfg.clone();
        self.blocking(move |ops| {
            let t = std::time::Instant::now();
            let (batch, want) = compile::plan(&cfg, &all);
            let t_compile = t.elapsed();
            let current = ops.dump()?;
            let t_dump = t.elapsed();
            if let Some(d) = current {
                match d.verify(&want, None) {
                    Ok(()) => {
                        tracing::debug!(
                            compile_us = t_compile.as_micros() as u64,
                            dump_us = t_dump.as_micros() as u64,
                            "firewall verified in place"
                        );
                        return Ok(Reconciled::InPlace);
                    }
                    Err(e) => info!(difference = %e, "firewall differs from the state store; rebuilding it"),
                }
            }
            ops.apply(&batch)?;
            let t_apply = t.elapsed();
            ops.dump()?.ok_or_else(|| NetError::Verify("the table is missing after the rebuild".into()))?.verify(&want, None)?;
            tracing::debug!(
                compile_us = t_compile.as_micros() as u64,
                dump_us = t_dump.as_micros() as u64,
                apply_us = t_apply.as_micros() as u64,
                verify_us = t.elapsed().as_micros() as u64,
                "firewall rebuilt"
            );
            Ok(Reconciled::Rebuilt)
        })
        .await
    }

    fn expected_for(&self, c: &ContainerFirewall) -> (Expected, Vec<String>) {
        let mut x = Expected::default();
        compile::expect_container(&mut x, &self.cfg, c);
        let chains = x.chains.keys().cloned().collect();
        (x, chains)
    }

    fn verify_chains(ops: &dyn FirewallOps, x: &Expected, chains: &[String]) -> Result<(), NetError> {
        let mut d = hoody_net::nft::TableDump::default();
        for c in chains {
            d.chains.insert(c.clone(), ops.chain(c)?);
        }
        // Map entries are checked at start-up and install; rule changes never touch them.
        let x = Expected {
            chains: x.chains.iter().filter(|(k, _)| chains.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
            maps: Default::default(),
        };
        d.verify(&x, Some(chains))
    }

    /// A new container: its chains and map entries, in one transaction.
    pub async fn install(&self, c: &ContainerFirewall) -> Result<(), NetError> {
        let _g = self.lock.lock().await;
        let (ops_list, (x, chains)) = (compile::install(&self.cfg, c), self.expected_for(c));
        self.blocking(move |ops| {
            ops.apply(&ops_list)?;
            Self::verify_chains(ops, &x, &chains)
        })
        .await
    }

    /// A deleted container: map entries, then chains, in one transaction. An absent container
    /// (already removed) is fine.
    pub async fn uninstall(&self, id: &str) -> Result<(), NetError> {
        let _g = self.lock.lock().await;
        let id = id.to_owned();
        self.events.forget(&id);
        self.blocking(move |ops| {
            if ops.chain(&names::egress_chain(&id))?.is_empty() && ops.chain(&names::ingress_chain(&id))?.is_empty() {
                return Ok(());
            }
            ops.apply(&compile::uninstall(&id))
        })
        .await
    }

    /// Adds `rule`, already part of `c` (its last rule in its direction), right before the
    /// policy of its chain.
    pub async fn add_rule(&self, c: &ContainerFirewall, rule: &Rule) -> Result<(), NetError> {
        let _g = self.lock.lock().await;
        let (chain, compiled) = match rule.spec.direction {
            Direction::Egress => (names::egress_chain(&c.id), compile::egress_rule(&c.id, rule)),
            Direction::Ingress => (names::ingress_chain(&c.id), compile::ingress_rule(rule)),
        };
        let (x, _) = self.expected_for(c);
        self.blocking(move |ops| {
            let current = ops.chain(&chain)?;
            let after = compile::insert_after(&current).ok_or_else(|| NetError::Verify(format!("chain {chain} has no policy rule")))?;
            ops.apply(&[Op::AddRule { chain: chain.clone(), rule: compiled, after: Some(after) }])?;
            Self::verify_chains(ops, &x, &[chain])
        })
        .await
    }

    /// Removes rule `rule_id` from `c`'s chains (`c` no longer lists it).
    pub async fn delete_rule(&self, c: &ContainerFirewall, rule_id: &str, direction: Direction) -> Result<(), NetError> {
        let _g = self.lock.lock().await;
        let chain = match direction {
            Direction::Egress => names::egress_chain(&c.id),
            Direction::Ingress => names::ingress_chain(&c.id),
        };
        let (x, _) = self.expected_for(c);
        let rule_id = rule_id.to_owned();
        self.blocking(move |ops| {
            let current = ops.chain(&chain)?;
            let handles: Vec<u64> =
                current.iter().filter(|r| compile::comment_rule_id(&r.comment) == Some(rule_id.as_str())).map(|r| r.handle).collect();
            if handles.is_empty() {
                warn!(chain = %chain, rule = %rule_id, "rule was already absent from the kernel");
            }
            let del: Vec<Op> = handles.into_iter().map(|handle| Op::DelRule { chain: chain.clone(), handle }).collect();
            ops.apply(&del)?;
            Self::verify_chains(ops, &x, &[chain])
        })
        .await
    }

    /// Back to deny-all: every rule removed and the deny policy, in one transaction.
    pub async fn reset(&self, c: &ContainerFirewall) -> Result<(), NetError> {
        let _g = self.lock.lock().await;
        let (x, chains) = self.expected_for(c);
        let id = c.id.clone();
        self.blocking(move |ops| {
            let (e, i) = (names::egress_chain(&id), names::ingress_chain(&id));
            let (ke, ki) = (ops.chain(&e)?, ops.chain(&i)?);
            let mut list = vec![];
            for (chain, rules) in [(&e, &ke), (&i, &ki)] {
                list.extend(
                    rules
                        .iter()
                        .filter(|r| compile::comment_kind(&r.comment) == "r")
                        .map(|r| Op::DelRule { chain: chain.clone(), handle: r.handle }),
                );
            }
            let deny = compile::policy_rule(&id, EgressPolicy::Deny);
            if let Some(p) = ke.iter().find(|r| compile::comment_kind(&r.comment) == "p")
                && p.comment != deny.comment
            {
                let last_guard = ke.iter().filter(|r| compile::comment_kind(&r.comment) == "g").map(|r| r.handle).next_back();
                list.push(Op::DelRule { chain: e.clone(), handle: p.handle });
                list.push(Op::AddRule { chain: e.clone(), rule: deny, after: last_guard });
            }
            ops.apply(&list)?;
            Self::verify_chains(ops, &x, &chains)
        })
        .await
    }

    /// Rules of the container's egress and ingress chains, with their counters.
    pub async fn counters(&self, id: &str) -> Result<(Vec<KernelRule>, Vec<KernelRule>), NetError> {
        let id = id.to_owned();
        self.blocking(move |ops| Ok((ops.chain(&names::egress_chain(&id))?, ops.chain(&names::ingress_chain(&id))?))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoody_net::nft::recording::RecordingFirewall;
    use hoody_net::policy::DenyAction;
    use hoody_net::rules::{Action, PortRange, Protocol, RuleSpec};

    fn cfg() -> TableConfig {
        TableConfig { subnet: "10.77.0.0/16".parse().unwrap(), uplink: None, deny_action: DenyAction::Reject, nflog_group: 1, log_rate: 10 }
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
            },
        }
    }

    #[tokio::test]
    async fn rules_land_in_order_before_the_policy_and_reset_clears_them() {
        let rec = Arc::new(RecordingFirewall::new());
        let fw = Firewall::new(rec.clone(), cfg());
        let mut c = ContainerFirewall {
            id: "a".repeat(24),
            ipv4: "10.77.0.2".parse().unwrap(),
            egress_policy: EgressPolicy::Allow,
            egress: vec![],
            ingress: vec![],
        };
        assert_eq!(fw.reconcile(vec![c.clone()]).await.unwrap(), Reconciled::Rebuilt);
        assert_eq!(fw.reconcile(vec![c.clone()]).await.unwrap(), Reconciled::InPlace, "a consistent table is left alone");
        for (i, port) in [443u16, 80, 22].into_iter().enumerate() {
            let r = rule(&format!("r{i}"), Direction::Egress, port);
            c.egress.push(r.clone());
            fw.add_rule(&c, &r).await.unwrap();
        }
        let ing = rule("in1", Direction::Ingress, 8080);
        c.ingress.push(ing.clone());
        fw.add_rule(&c, &ing).await.unwrap();
        let e = rec.chain(&names::egress_chain(&c.id)).unwrap();
        let ids: Vec<_> = e.iter().filter_map(|r| compile::comment_rule_id(&r.comment)).collect();
        assert_eq!(ids, ["r0", "r1", "r2"]);
        assert_eq!(compile::comment_kind(&e.last().unwrap().comment), "p");
        // Delete the middle one.
        c.egress.remove(1);
        fw.delete_rule(&c, "r1", Direction::Egress).await.unwrap();
        let ids: Vec<_> = rec
            .chain(&names::egress_chain(&c.id))
            .unwrap()
            .iter()
            .filter_map(|r| compile::comment_rule_id(&r.comment))
            .map(str::to_owned)
            .collect();
        assert_eq!(ids, ["r0", "r2"]);
        // Reset: all rules gone and the policy is deny, in one transaction.
        let before = rec.transaction_count();
        c.egress.clear();
        c.ingress.clear();
        c.egress_policy = EgressPolicy::Deny;
        fw.reset(&c).await.unwrap();
        assert_eq!(rec.transaction_count(), before + 1);
        fw.reconcile(vec![c.clone()]).await.unwrap();
        assert_eq!(fw.reconcile(vec![c]).await.unwrap(), Reconciled::InPlace);
    }

    #[tokio::test]
    async fn a_refused_change_is_an_error_and_changes_nothing() {
        let rec = Arc::new(RecordingFirewall::new());
        let fw = Firewall::new(rec.clone(), cfg());
        let mut c = ContainerFirewall {
            id: "b".repeat(24),
            ipv4: "10.77.0.3".parse().unwrap(),
            egress_policy: EgressPolicy::Deny,
            egress: vec![],
            ingress: vec![],
        };
        fw.reconcile(vec![c.clone()]).await.unwrap();
        let before = rec.dump().unwrap();
        rec.fail_next.store(true, std::sync::atomic::Ordering::SeqCst);
        let r = rule("x", Direction::Egress, 443);
        c.egress.push(r.clone());
        assert!(fw.add_rule(&c, &r).await.is_err());
        assert_eq!(rec.dump().unwrap(), before);
    }
}
