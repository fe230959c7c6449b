//! The audit log in segments: `audit.log` is the one being written; when it reaches the segment
//! size it is sealed as `audit.log.<first seq, 20 digits>` and a new one begins with an anchor
//! line carrying the sequence number and hash of the record before it, so the chain runs on
//! across files and a segment still verifies once the ones before it are gone. Sealed segments
//! are removed oldest first once older than the retention, or when they take more than the
//! audit space bound; removing any but the oldest breaks the chain where it happened.
//!
//! Rotation, in steps: (1) the current file is synced, (2) `audit.log.next` is written with the
//! anchor and synced, (3) `audit.log` is renamed to its sealed name, (4) `audit.log.next` to
//! `audit.log`, (5) the directory is synced. At start-up a `.next` with no `audit.log` beside
//! it is step 4 interrupted (finished); a `.next` beside `audit.log` is step 3 never reached
//! (removed).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use hoody_api::audit::segments::{Anchor, all, anchor_line, next_name, parse_anchor, sealed, sealed_name};

/// When segments are sealed and removed.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub segment_size: u64,
    pub max_age: Duration,
    /// Bytes all sealed segments may take together.
    pub max_space: u64,
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// Settles an interrupted rotation (see the module's steps).
pub fn finish_rotation(path: &Path) -> std::io::Result<()> {
    let next = next_name(path);
    if !next.exists() {
        return Ok(());
    }
    if path.exists() {
        std::fs::remove_file(&next)?;
    } else {
        std::fs::rename(&next, path)?;
    }
    sync_dir(path)
}

/// Seals `current` (its records 1.. of this segment start at `first_seq`) and returns the new
/// current file, which holds only the anchor after `(seq, hash)`, and its length.
pub fn rotate(path: &Path, current: &std::fs::File, first_seq: u64, seq: u64, hash: &str) -> std::io::Result<(std::fs::File, u64)> {
    current.sync_data()?;
    let next = next_name(path);
    let line = anchor_line(&Anchor { prev_seq: seq, prev_hash: hash.to_owned(), time: crate::time::now() });
    let mut f = std::fs::OpenOptions::new().append(true).create(true).truncate(false).mode(0o600).open(&next)?;
    f.set_len(0)?;
    f.write_all(&line)?;
    f.sync_all()?;
    std::fs::rename(path, sealed_name(path, first_seq))?;
    std::fs::rename(&next, path)?;
    sync_dir(path)?;
    Ok((f, line.len() as u64))
}

/// Removes sealed segments older than the retention (by their last write), then the oldest
/// while they take more than the space bound. Returns the removed names.
pub fn enforce(path: &Path, r: &Retention, now: SystemTime) -> Vec<PathBuf> {
    let mut removed = vec![];
    let mut segs: Vec<(PathBuf, u64, SystemTime)> =
        sealed(path).into_iter().filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m.len(), m.modified().unwrap_or(now)))).collect();
    let mut total: u64 = segs.iter().map(|s| s.1).sum();
    while let Some((p, len, mtime)) = segs.first().cloned() {
        let old = now.duration_since(mtime).unwrap_or_default() > r.max_age;
        if !old && total <= r.max_space {
            break;
        }
        if std::fs::remove_file(&p).is_ok() {
            tracing::info!(segment = %p.display(), reason = if old { "retention" } else { "space bound" }, "audit segment removed");
            removed.push(p);
        }
        total -= len;
        segs.remove(0);
    }
    if !removed.is_empty() {
        let _ = sync_dir(path);
    }
    removed
}
