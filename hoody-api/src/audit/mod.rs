//! The audit log's format: one JSON record per line, each carrying the hash of the one before
//! and its own ([`record`]), in segments ([`segments`]); checking the chain offline
//! ([`verify`]), so `hoodyctl audit --verify --file` needs no daemon code.

pub mod record;
pub mod segments;
pub mod verify;

use std::path::Path;

/// The head file: (seq, hash) of the last record synced.
pub fn read_head(path: &Path) -> Option<(u64, String)> {
    let s = std::fs::read_to_string(path).ok()?;
    let (seq, hash) = s.trim().split_once(' ')?;
    Some((seq.parse().ok()?, hash.to_owned()))
}
