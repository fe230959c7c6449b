//! Fail-closed routing for container traffic. The firewall table marks every packet that enters
//! from a container's interface ([`crate::compile::CONTAINER_MARK`], prerouting); two policy
//! routing rules route container traffic only when it carries the mark:
//!
//! ```text
//! ip rule add pref 50 from <subnet> fwmark CONTAINER_MARK lookup main
//! ip rule add pref 51 from <subnet> prohibit
//! ```
//!
//! While `inet hoody` is in the kernel every container packet carries the mark and is routed by
//! the main table. If the table is ever gone — `nft flush ruleset`, another tool's mistake, the
//! moment before hoodyd rebuilds it — nothing from a container is forwarded: routing answers
//! "prohibited" instead of passing it unfiltered and unmasqueraded. Addresses of the host itself
//! are looked up in the local table (preference 0) before these rules, so the failsafe covers
//! forwarded traffic (the internet, other hosts, other containers), not the host's own services.

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::route::RouteHeader;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use tracing::{debug, info};

use crate::addr::Ipv4Net;
use crate::error::{NetError, Result};
use crate::netlink::Rtnl;

/// Marked container traffic: the main table. After the local table (0), before main (32766).
pub const PREF_MARKED: u32 = 50;
/// Everything else from the container subnet: prohibited.
pub const PREF_PROHIBIT: u32 = 51;

/// One of our rules as the kernel lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailsafeRule {
    /// `pref 50 from <source> fwmark <mark> lookup main`
    Marked { source: Ipv4Net, mark: u32 },
    /// `pref 51 from <source> prohibit`
    Prohibit { source: Ipv4Net },
}

impl std::fmt::Display for FailsafeRule {
    /// As `ip rule` shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailsafeRule::Marked { source, mark } => write!(f, "{PREF_MARKED}: from {source} fwmark {mark:#x} lookup main"),
            FailsafeRule::Prohibit { source } => write!(f, "{PREF_PROHIBIT}: from {source} prohibit"),
        }
    }
}

/// The rules for `subnet`, in the order they are added (the route for marked traffic first, so
/// installing them never refuses marked traffic for a moment).
pub fn wanted(subnet: Ipv4Net, mark: u32) -> Vec<FailsafeRule> {
    vec![FailsafeRule::Marked { source: subnet, mark }, FailsafeRule::Prohibit { source: subnet }]
}

/// What to delete and what to add, given our rules in the kernel.
pub fn plan(existing: &[FailsafeRule], want: &[FailsafeRule]) -> (Vec<FailsafeRule>, Vec<FailsafeRule>) {
    let stale = existing.iter().filter(|r| !want.contains(r)).cloned().collect();
    let add = want.iter().filter(|r| !existing.contains(r)).cloned().collect();
    (stale, add)
}

/// Installs the rules for `subnet` and removes our rules for any other subnet (a changed
/// `--subnet`). Policy routing of the network namespace of the calling thread.
pub trait FailsafeOps {
    fn ensure(&mut self, subnet: Ipv4Net, mark: u32) -> Result<()>;
}

fn nl(op: &'static str) -> impl FnOnce(rtnetlink::Error) -> NetError {
    move |source| NetError::Netlink { op, iface: "ip rule (failsafe)".into(), source }
}

fn ours(m: &RuleMessage) -> Option<FailsafeRule> {
    let (mut pref, mut src, mut mark, mut table) = (None, None, None, u32::from(m.header.table));
    for a in &m.attributes {
        match a {
            RuleAttribute::Priority(p) => pref = Some(*p),
            RuleAttribute::Source(IpAddr::V4(s)) => src = Some(*s),
            RuleAttribute::FwMark(f) => mark = Some(*f),
            RuleAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    let source = Ipv4Net::new(src?, m.header.src_len)?;
    match (pref?, m.header.action) {
        (PREF_MARKED, RuleAction::ToTable) if table == u32::from(RouteHeader::RT_TABLE_MAIN) => {
            Some(FailsafeRule::Marked { source, mark: mark? })
        }
        (PREF_PROHIBIT, RuleAction::Prohibit) => Some(FailsafeRule::Prohibit { source }),
        _ => None,
    }
}

impl FailsafeOps for Rtnl {
    fn ensure(&mut self, subnet: Ipv4Net, mark: u32) -> Result<()> {
        let h = self.handle();
        let msgs: Vec<RuleMessage> =
            self.block_on(async move { h.rule().get(rtnetlink::IpVersion::V4).execute().try_collect().await }).map_err(nl("list rules"))?;
        let existing: Vec<(FailsafeRule, RuleMessage)> = msgs.into_iter().filter_map(|m| ours(&m).map(|r| (r, m))).collect();
        let want = wanted(subnet, mark);
        let (stale, add) = plan(&existing.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(), &want);
        for (r, m) in existing.into_iter().filter(|(r, _)| stale.contains(r)) {
            let h = self.handle();
            self.block_on(async move { h.rule().del(m).execute().await }).map_err(nl("delete rule"))?;
            info!(rule = %r, "removed a stale failsafe routing rule");
        }
        for r in &add {
            let h = self.handle();
            let req = h.rule().add().v4().source_prefix(subnet.addr, subnet.prefix);
            let req = match r {
                FailsafeRule::Marked { mark, .. } => {
                    let mut req = req
                        .priority(PREF_MARKED)
                        .fw_mark(*mark)
                        .table_id(u32::from(RouteHeader::RT_TABLE_MAIN))
                        .action(RuleAction::ToTable);
                    req.message_mut().attributes.push(RuleAttribute::FwMask(u32::MAX));
                    req
                }
                FailsafeRule::Prohibit { .. } => req.priority(PREF_PROHIBIT).action(RuleAction::Prohibit),
            };
            self.block_on(async move { req.execute().await }).map_err(nl("add rule"))?;
            info!(rule = %r, "failsafe routing rule added");
        }
        if add.is_empty() {
            debug!(source = %subnet, "failsafe routing rules in place");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn plan_adds_once_and_removes_other_subnets() {
        let want = wanted(net("10.77.0.0/16"), 7);
        assert_eq!(plan(&[], &want), (vec![], want.clone()), "the marked route before the prohibit");
        assert_eq!(plan(&want, &want), (vec![], vec![]));
        let old = wanted(net("10.78.0.0/16"), 7);
        let mut both = old.clone();
        both.extend(want.clone());
        assert_eq!(plan(&both, &want), (old, vec![]));
        let other_mark = vec![FailsafeRule::Marked { source: net("10.77.0.0/16"), mark: 8 }, want[1].clone()];
        assert_eq!(plan(&other_mark, &want), (vec![other_mark[0].clone()], vec![want[0].clone()]));
    }
}
