//! Completions that ask the daemon: container, image and snapshot names (`COMPLETE=bash
//! hoodyctl` prints the shell's registration; the shell then calls hoodyctl back for each
//! completion). The daemon is asked with a short deadline; without an answer there are none.

use std::time::Duration;

use clap_complete::CompletionCandidate;

use super::Client;

const DEADLINE: Duration = Duration::from_millis(1500);

/// Runs `f` against the daemon of `$HOODY_SOCKET` (or the default socket).
fn ask<F, Fut>(f: F) -> Vec<CompletionCandidate>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return vec![] };
    let names = rt.block_on(async { tokio::time::timeout(DEADLINE, f(Client::from_env(None))).await.unwrap_or_default() });
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// Container names (and ids, for the ones without a name match).
pub fn containers() -> Vec<CompletionCandidate> {
    ask(|c| async move { c.containers().await.map(|v| v.into_iter().map(|c| c.name).collect()).unwrap_or_default() })
}

pub fn images() -> Vec<CompletionCandidate> {
    ask(|c| async move { c.images().await.map(|v| v.into_iter().map(|i| i.name).collect()).unwrap_or_default() })
}

/// Container names, then the snapshot names of every container (the container is not known
/// to the completer: the names of all are offered).
pub fn containers_and_snapshots() -> Vec<CompletionCandidate> {
    ask(|c| async move {
        let Ok(all) = c.containers().await else { return vec![] };
        let mut names: Vec<String> = all.iter().map(|x| x.name.clone()).collect();
        for x in &all {
            if let Ok(snaps) = c.snapshots(&x.id).await {
                names.extend(snaps.into_iter().map(|s| s.name));
            }
        }
        names.sort();
        names.dedup();
        names
    })
}

/// Snapshot names of every container.
pub fn snapshots() -> Vec<CompletionCandidate> {
    ask(|c| async move {
        let Ok(all) = c.containers().await else { return vec![] };
        let mut names = vec![];
        for x in &all {
            if let Ok(snaps) = c.snapshots(&x.id).await {
                names.extend(snaps.into_iter().map(|s| s.name));
            }
        }
        names.sort();
        names.dedup();
        names
    })
}
