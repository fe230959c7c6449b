//! Keeps `inet hoody` in force when something else changes it: another process's nftables
//! commit that touches our table (`nft flush ruleset` from `nftables.service`, an
//! administrator's `nft delete table inet hoody`, a stray rule) makes the daemon verify the
//! table against the state store and rebuild it in one transaction if it differs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hoody_net::nft::monitor::{TableChange, TableMonitor, is_own_thread};
use tracing::{info, warn};

use super::Runtime;
use crate::firewall::Reconciled;

/// Commits that arrive this close together are one repair.
const SETTLE: Duration = Duration::from_millis(10);

/// Reads the monitor on a dedicated thread (blocking netlink reads) and repairs on the runtime.
/// `monitor` is bound before the start-up reconciliation, so nothing between the two is missed.
pub fn spawn(monitor: TableMonitor, rt: Arc<Runtime>, proc_root: PathBuf) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<TableChange>();
    let reader = std::thread::Builder::new().name("hoodyd-nftwatch".into()).spawn(move || {
        let mut monitor = monitor;
        loop {
            match monitor.wait() {
                Ok(changes) => {
                    for c in changes {
                        let foreign = match &c {
                            TableChange::Commit { pid, .. } => !is_own_thread(&proc_root, *pid),
                            TableChange::Overrun => true,
                        };
                        if foreign && tx.send(c).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "the nftables monitor failed; foreign changes to the table go unnoticed until restart");
                    return;
                }
            }
        }
    });
    if let Err(e) = reader {
        warn!(error = %e, "could not start the nftables monitor");
        return;
    }
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            tokio::time::sleep(SETTLE).await;
            let mut more = 0;
            while rx.try_recv().is_ok() {
                more += 1;
            }
            let who = match &first {
                TableChange::Commit { pid, comm } => format!("{comm} (thread {pid})"),
                TableChange::Overrun => "unknown (notifications lost)".into(),
            };
            let t = std::time::Instant::now();
            repair(&rt, &who, more).await;
            info!(by = %who, elapsed_ms = t.elapsed().as_millis() as u64, "firewall checked after a foreign change");
        }
    });
}

/// Verifies and, if needed, rebuilds; again until the kernel matches, since a container may be
/// created while the policy is read.
async fn repair(rt: &Arc<Runtime>, who: &str, more: usize) {
    for attempt in 0..3 {
        match rt.reconcile_firewall().await {
            Ok(Reconciled::InPlace) => return,
            Ok(Reconciled::Rebuilt) => {
                warn!(by = %who, further_commits = more, attempt, "another process changed table inet hoody; rebuilt it from the state store");
                let data = hoody_api::events::EventData { reason: Some(format!("changed by {who}")), ..Default::default() };
                rt.events().global(hoody_api::events::EventType::FirewallTableRepaired, data);
            }
            Err(e) => {
                warn!(by = %who, error = %crate::errors::chain(&e).join(": "), "could not restore table inet hoody");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
