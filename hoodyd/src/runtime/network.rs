//! Firewall operations of the API, and the network parts of start-up reconciliation.

use hoody_api::events::{EventData, EventType};
use std::sync::Arc;

use hoody_net::policy::{ContainerFirewall, EgressPolicy};
use hoody_net::rules::{Direction, MAX_RULES_PER_CONTAINER, Rule, RuleSpec};
use tracing::{info, warn};

use super::{Result, Runtime, RuntimeError, now};
use crate::limits::FieldError;
use crate::model::{Container, Egress};
use crate::store::{self, ContainerFilter, StoredRule};

pub use hoody_api::firewall::{Count, Firewall as FirewallView, Rule as RuleView};

fn view(r: &StoredRule, counters: Option<&(u64, u64)>) -> RuleView {
    let s = &r.rule.spec;
    let peer = Some(s.peer.to_string());
    RuleView {
        id: r.rule.id.clone(),
        action: s.action,
        protocol: s.protocol,
        destination: if s.direction == Direction::Egress && s.fqdn.is_none() { peer.clone() } else { None },
        destination_fqdn: s.fqdn.clone(),
        source: if s.direction == Direction::Ingress { peer } else { None },
        destination_port: s.ports.map(|p| p.to_string()),
        description: s.description.clone(),
        created_at: r.created_at.clone(),
        packets: counters.map(|c| c.0).unwrap_or(0),
        bytes: counters.map(|c| c.1).unwrap_or(0),
    }
}

impl Runtime {
    /// The firewall policy of a container from its record and rules.
    pub(crate) fn firewall_of(&self, c: &Container, rules: Vec<StoredRule>) -> ContainerFirewall {
        let (mut egress, mut ingress) = (vec![], vec![]);
        for r in rules {
            match r.rule.spec.direction {
                Direction::Egress => egress.push(r.rule),
                Direction::Ingress => ingress.push(r.rule),
            }
        }
        ContainerFirewall {
            id: c.id.clone(),
            ipv4: c.ipv4.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            egress_policy: match c.egress {
                Egress::Deny => EgressPolicy::Deny,
                Egress::Allow => EgressPolicy::Allow,
            },
            dns: c.dns,
            egress,
            ingress,
        }
    }

    async fn rules_of(&self, id: &str) -> Result<Vec<StoredRule>> {
        let key = id.to_owned();
        Ok(self.store.call(move |db| store::list_rules(db, &key)).await?)
    }

    /// Adds an egress rule or an ingress allow-list entry.
    pub async fn add_rule(&self, c: &Container, spec: RuleSpec) -> Result<RuleView> {
        self.refuse_deleting(c).await?;
        let _guard = self.lock(&c.id).await;
        let existing = self.rules_of(&c.id).await?;
        if existing.len() >= MAX_RULES_PER_CONTAINER {
            return Err(FieldError::new("rules", format!("a container has at most {MAX_RULES_PER_CONTAINER} rules")).into());
        }
        let stored = StoredRule { rule: Rule { id: crate::ids::new_id(), spec }, created_at: now() };
        // The record first, so a crash leaves the state store at least as permissive as the
        // kernel; a refused transaction takes the record back out.
        let (cid, r, at) = (c.id.clone(), stored.rule.clone(), stored.created_at.clone());
        self.store.call(move |db| store::insert_rule(db, &cid, &r, &at)).await?;
        // A crash here: the start-up reconcile rebuilds the table from the store (the rule is
        // in force, as a retry would have put it).
        super::lifecycle::fault("firewall-rule-recorded")?;
        let mut all = existing;
        all.push(stored.clone());
        let fw = self.firewall_of(c, all);
        if let Err(e) = self.firewall.update(&fw).await {
            let (cid, rid) = (c.id.clone(), stored.rule.id.clone());
            let _ = self.store.call(move |db| store::delete_rule(db, &cid, &rid)).await;
            return Err(e.into());
        }
        info!(container = %c.id, rule = %stored.rule.id, direction = %format!("{:?}", stored.rule.spec.direction).to_lowercase(), "firewall rule added");
        let change = match stored.rule.spec.direction {
            Direction::Egress => "egress_rule_added",
            Direction::Ingress => "ingress_rule_added",
        };
        self.emit(EventType::FirewallChanged, c, changed(change, Some(&stored.rule.id)));
        Ok(view(&stored, None))
    }

    /// Removes a rule; the kernel first, so a failure leaves the firewall stricter, not looser.
    pub async fn delete_rule(&self, c: &Container, rule_id: &str, direction: Direction) -> Result<()> {
        self.refuse_deleting(c).await?;
        let _guard = self.lock(&c.id).await;
        let mut rules = self.rules_of(&c.id).await?;
        let pos = rules
            .iter()
            .position(|r| r.rule.id == rule_id && r.rule.spec.direction == direction)
            .ok_or_else(|| RuntimeError::Missing(format!("{} rule {rule_id:?}", format!("{direction:?}").to_lowercase())))?;
        rules.remove(pos);
        self.firewall.update(&self.firewall_of(c, rules)).await?;
        // A crash here: the start-up reconcile rebuilds the table from the store (the rule,
        // whose removal was never answered, is back).
        super::lifecycle::fault("firewall-rule-removed")?;
        let (cid, rid) = (c.id.clone(), rule_id.to_owned());
        self.store.call(move |db| store::delete_rule(db, &cid, &rid)).await?;
        info!(container = %c.id, rule = %rule_id, "firewall rule deleted");
        let change = match direction {
            Direction::Egress => "egress_rule_deleted",
            Direction::Ingress => "ingress_rule_deleted",
        };
        self.emit(EventType::FirewallChanged, c, changed(change, Some(rule_id)));
        Ok(())
    }

    /// Egress back to deny-all, every rule removed.
    pub async fn reset_firewall(&self, c: &Container) -> Result<()> {
        self.refuse_deleting(c).await?;
        let _guard = self.lock(&c.id).await;
        let mut after = c.clone();
        after.egress = Egress::Deny;
        after.dns = hoody_net::policy::DnsMode::Filtered;
        self.firewall.update(&self.firewall_of(&after, vec![])).await?;
        let cid = c.id.clone();
        self.store.call(move |db| store::reset_firewall(db, &cid)).await?;
        info!(container = %c.id, "firewall reset to deny-all");
        self.emit(EventType::FirewallChanged, c, changed("reset", None));
        Ok(())
    }

    /// Changes the egress policy and/or the DNS mode; the kernel first, then the record (a
    /// crash between them: the start-up reconcile puts the recorded ones back).
    pub async fn patch_firewall(&self, c: &Container, policy: Option<Egress>, dns: Option<hoody_net::policy::DnsMode>) -> Result<()> {
        self.refuse_deleting(c).await?;
        let _guard = self.lock(&c.id).await;
        let mut after = self.get(&c.id).await?;
        after.egress = policy.unwrap_or(after.egress);
        after.dns = dns.unwrap_or(after.dns);
        let rules = self.rules_of(&c.id).await?;
        self.firewall.update(&self.firewall_of(&after, rules)).await?;
        let (cid, egress, mode) = (c.id.clone(), after.egress, after.dns);
        self.store.call(move |db| store::set_firewall_policy(db, &cid, egress, mode)).await?;
        info!(container = %c.id, policy = egress.as_str(), dns = mode.as_str(), "firewall policy changed");
        self.emit(EventType::FirewallChanged, c, changed("patched", None));
        Ok(())
    }

    pub async fn show_firewall(&self, c: &Container) -> Result<FirewallView> {
        let rules = self.rules_of(&c.id).await?;
        let k = self.firewall.counters(&c.id, c.ipv4).await?;
        let count = |c: (u64, u64)| Count { packets: c.0, bytes: c.1 };
        let (mut egress, mut ingress) = (vec![], vec![]);
        for r in &rules {
            match r.rule.spec.direction {
                Direction::Egress => egress.push(view(r, k.egress.get(&r.rule.id))),
                Direction::Ingress => ingress.push(view(r, k.ingress.get(&r.rule.id))),
            }
        }
        Ok(FirewallView {
            container_id: c.id.clone(),
            interface: hoody_net::names::host_ifname(&c.id),
            ipv4: c.ipv4.map(|a| a.to_string()),
            policy: c.egress.as_str().to_owned(),
            dns: c.dns.as_str().to_owned(),
            egress,
            ingress,
            denied: count(k.denied),
            spoofed: count(k.spoofed),
            ingress_denied: count(k.ingress_denied),
        })
    }

    /// Start-up: the kernel's table from the state store (in place when it already matches).
    pub async fn reconcile_firewall(&self) -> Result<crate::firewall::Reconciled> {
        let t = std::time::Instant::now();
        // A container being deleted has no firewall (removed before it was marked).
        let mut all = self.list(&ContainerFilter::default()).await?;
        all.retain(|c| c.status != crate::model::Status::Deleting);
        let mut rules = self.store.call(store::all_rules).await?;
        let mut fws: Vec<_> = all.iter().map(|c| self.firewall_of(c, rules.remove(&c.id).unwrap_or_default())).collect();
        if let Some(spec) = crate::test_hooks::var("HOODY_TEST_FIREWALL_ONLY") {
            let extra = crate::firewall::synthetic::containers(&spec.to_string_lossy(), self.firewall.cfg.subnet);
            let taken: std::collections::HashSet<_> = fws.iter().map(|c| c.ipv4).collect();
            fws.extend(extra.into_iter().filter(|c| !taken.contains(&c.ipv4)));
        }
        tracing::debug!(containers = fws.len(), load_us = t.elapsed().as_micros() as u64, "firewall policy loaded");
        Ok(self.firewall.reconcile(fws).await?)
    }

    /// Removes host interfaces of ours (`hv` + 8 hex) whose container is not running.
    /// Start-up: every running container's host end carries its source filter (containers
    /// started by an older hoodyd had none; one removed by hand is put back).
    pub async fn ensure_source_filters(self: &Arc<Self>) -> Result<usize> {
        let running: Vec<(String, std::net::Ipv4Addr)> = self
            .list(&ContainerFilter::default())
            .await?
            .iter()
            .filter(|c| self.running_init_pid(&c.id).is_some())
            .filter_map(|c| c.ipv4.map(|ip| (hoody_net::names::host_ifname(&c.id), ip)))
            .collect();
        let n = running.len();
        tokio::task::spawn_blocking(move || -> Result<(), hoody_net::NetError> {
            use hoody_net::netlink::LinkOps;
            let mut l = hoody_net::netlink::Rtnl::open()?;
            for (ifname, ip) in running {
                l.pin_source(&ifname, ip)?;
            }
            Ok(())
        })
        .await??;
        Ok(n)
    }

    /// The traffic counters of every container's host end, by interface name.
    pub async fn link_stats(&self) -> Result<std::collections::HashMap<String, hoody_net::netlink::LinkStats>> {
        let stats = tokio::task::spawn_blocking(|| -> Result<_, hoody_net::NetError> {
            use hoody_net::netlink::LinkOps;
            hoody_net::netlink::Rtnl::open()?.link_stats(hoody_net::names::IFACE_PREFIX)
        })
        .await??;
        Ok(stats.into_iter().collect())
    }

    pub async fn remove_stale_links(self: &Arc<Self>) -> Result<Vec<String>> {
        let running: Vec<String> = self
            .list(&ContainerFilter::default())
            .await?
            .iter()
            .filter(|c| self.running_init_pid(&c.id).is_some())
            .map(|c| hoody_net::names::host_ifname(&c.id))
            .collect();
        let removed = tokio::task::spawn_blocking(move || -> Result<Vec<String>, hoody_net::NetError> {
            use hoody_net::netlink::LinkOps;
            let mut l = hoody_net::netlink::Rtnl::open()?;
            let mut out = vec![];
            for name in l.links_with_prefix(hoody_net::names::IFACE_PREFIX)? {
                let ours = name.len() == 10 && name[2..].bytes().all(|b| b.is_ascii_hexdigit());
                if ours && !running.contains(&name) && l.delete_link(&name)? {
                    out.push(name);
                }
            }
            Ok(out)
        })
        .await??;
        for n in &removed {
            warn!(iface = %n, "removed a host interface of a container that is not running");
        }
        Ok(removed)
    }
}

/// The data of `firewall.changed`.
fn changed(change: &str, rule_id: Option<&str>) -> EventData {
    EventData { change: Some(change.to_owned()), rule_id: rule_id.map(str::to_owned), ..Default::default() }
}
