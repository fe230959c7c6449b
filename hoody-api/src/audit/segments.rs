//! Names and anchors of the audit log's segments (the reading side; the daemon seals and
//! removes them). `audit.log` is the one being written; a sealed one is
//! `audit.log.<first seq, 20 digits>` and begins with an anchor line carrying the sequence number
//! and hash of the record before it, so the chain runs on across files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The first line of every segment but the first ever written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// The record before this segment's first: its number and hash.
    pub prev_seq: u64,
    pub prev_hash: String,
    pub time: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorLine {
    anchor: Anchor,
}

pub fn parse_anchor(line: &str) -> Option<Anchor> {
    serde_json::from_str::<AnchorLine>(line).ok().map(|a| a.anchor)
}

pub fn anchor_line(a: &Anchor) -> Vec<u8> {
    let mut v = serde_json::to_vec(&AnchorLine { anchor: a.clone() }).expect("anchors serialise");
    v.push(b'\n');
    v
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn sealed_name(path: &Path, first_seq: u64) -> PathBuf {
    with_suffix(path, &format!(".{first_seq:020}"))
}

pub fn next_name(path: &Path) -> PathBuf {
    with_suffix(path, ".next")
}

/// Sealed segments, oldest first.
pub fn sealed(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else { return vec![] };
    let prefix = format!("{name}.");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix(&prefix))
                        .is_some_and(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every segment, oldest first: the sealed ones, then the current one (if it exists).
pub fn all(path: &Path) -> Vec<PathBuf> {
    let mut v = sealed(path);
    if path.exists() {
        v.push(path.to_path_buf());
    }
    v
}
