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

/// `[ID] THING`: once the command line names a container (`-c ID`, or an earlier word that is
/// one of the daemon's containers), its snapshots; else container names and the snapshot names of
/// every container.
pub fn containers_and_snapshots() -> Vec<CompletionCandidate> {
    names(true)
}

/// Snapshot names: of the container the command line names, else of every container.
pub fn snapshots() -> Vec<CompletionCandidate> {
    names(false)
}

/// The words of the command line being completed (the shell passes them after `--`), the
/// last one the word being completed.
fn words() -> Vec<String> {
    std::env::args().skip_while(|a| a != "--").skip(1).collect()
}

/// The container a command line names with `-c ID` / `--container ID`.
fn container_flag(words: &[String]) -> Option<String> {
    words.iter().enumerate().find_map(|(i, w)| match w.as_str() {
        "-c" | "--container" => words.get(i + 1).filter(|v| !v.is_empty()).cloned(),
        w => w.strip_prefix("--container=").filter(|v| !v.is_empty()).map(str::to_owned),
    })
}

/// Snapshot names of the container the command line names (by flag, or as an earlier word
/// that is a container's name or id); when it names none, those of every container, with the
/// container names too if `with_containers`.
fn names(with_containers: bool) -> Vec<CompletionCandidate> {
    let words = words();
    let flag = container_flag(&words);
    let before = words.len().saturating_sub(1);
    ask(|c| async move {
        let (named, mut out) = match flag {
            Some(id) => (vec![id], vec![]),
            None => {
                let all = c.containers().await.unwrap_or_default();
                let given = all.iter().find(|x| words[..before].iter().skip(1).any(|w| *w == x.name || *w == x.id));
                match given {
                    Some(x) => (vec![x.id.clone()], vec![]),
                    None => {
                        let names = if with_containers { all.iter().map(|x| x.name.clone()).collect() } else { vec![] };
                        (all.into_iter().map(|x| x.id).collect(), names)
                    }
                }
            }
        };
        let mut snaps = vec![];
        for id in &named {
            if let Ok(v) = c.snapshots(id).await {
                snaps.extend(v.into_iter().map(|s| s.name));
            }
        }
        snaps.sort();
        snaps.dedup();
        out.extend(snaps);
        out
    })
}
