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

/// `[ID] THING`: with `-c ID` given, the container's snapshots; else container names and the
/// snapshot names of every container.
pub fn containers_and_snapshots() -> Vec<CompletionCandidate> {
    if container_named().is_some() {
        return snapshots();
    }
    let mut all = containers();
    all.extend(snapshots());
    all
}

/// The container the command line being completed names with `-c ID` / `--container ID`
/// (the shell passes the words after `--`).
fn container_named() -> Option<String> {
    let words: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    words.iter().enumerate().find_map(|(i, w)| match w.as_str() {
        "-c" | "--container" => words.get(i + 1).filter(|v| !v.is_empty()).cloned(),
        w => w.strip_prefix("--container=").filter(|v| !v.is_empty()).map(str::to_owned),
    })
}

/// Snapshot names: of the container the command line names, else of every container.
pub fn snapshots() -> Vec<CompletionCandidate> {
    let only = container_named();
    ask(|c| async move {
        let ids = match only {
            Some(id) => vec![id],
            None => c.containers().await.map(|v| v.into_iter().map(|x| x.id).collect()).unwrap_or_default(),
        };
        let mut names = vec![];
        for id in &ids {
            if let Ok(snaps) = c.snapshots(id).await {
                names.extend(snaps.into_iter().map(|s| s.name));
            }
        }
        names.sort();
        names.dedup();
        names
    })
}
