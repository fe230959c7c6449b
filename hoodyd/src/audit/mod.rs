//! The audit trail: every request — allowed or denied — is appended, hash-chained, before its
//! answer is sent. A dedicated thread owns the file: it numbers and chains the records and
//! writes them at once (the request waits only for that); another syncs them in small batches,
//! recording the last synced record in a head file (see [`writer`]).

pub mod segments;
mod writer;

pub use hoody_api::audit::{read_head, record, verify};

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use record::{GENESIS, Record};
use tracing::warn;

pub struct AuditLog {
    /// `None`: records are discarded (benchmarks of the audit's own cost only).
    writer: Option<writer::Writer>,
    pub path: PathBuf,
    pub head_path: PathBuf,
}

/// The last record of a log: (seq, hash).
fn last_record(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, GENESIS.to_owned())),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(64 * 1024);
    f.seek(SeekFrom::Start(start))?;
    let mut tail = String::new();
    f.read_to_string(&mut tail)?;
    match tail.lines().rev().find(|l| !l.trim().is_empty()) {
        None => Ok((0, GENESIS.to_owned())),
        // A segment that holds only its anchor: the chain ends where the anchor says.
        Some(l) if segments::parse_anchor(l).is_some() => {
            let a = segments::parse_anchor(l).expect("checked");
            Ok((a.prev_seq, a.prev_hash))
        }
        Some(l) => {
            let r: Record =
                serde_json::from_str(l).map_err(|e| std::io::Error::other(format!("the last audit record is unreadable: {e}")))?;
            Ok((r.seq, r.hash.unwrap_or_default()))
        }
    }
}

fn write_head(path: &Path, seq: u64, hash: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(format!("{seq} {hash}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Number of the first record of the segment at `path`: after its anchor, or 1.
fn first_seq(path: &Path) -> u64 {
    let Ok(f) = File::open(path) else { return 1 };
    let mut first = String::new();
    let _ = BufReader::new(f).read_line(&mut first);
    segments::parse_anchor(first.trim()).map_or(1, |a| a.prev_seq + 1)
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the log in one file and starts its writer thread.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        Self::open_segmented(path, None)
    }

    /// Opens the log; with `retention`, in segments (see [`segments`]): an interrupted rotation
    /// is settled and the retention applied first.
    pub fn open_segmented(path: &Path, retention: Option<segments::Retention>) -> std::io::Result<AuditLog> {
        segments::finish_rotation(path)?;
        if let Some(r) = &retention {
            segments::enforce(path, r, std::time::SystemTime::now());
        }
        // The current segment went missing after a rotation: the chain goes on from the last
        // sealed one, in a new segment that says so.
        if !path.exists()
            && let Some(last) = segments::sealed(path).last()
        {
            let (seq, hash) = last_record(last)?;
            let line = segments::anchor_line(&segments::Anchor { prev_seq: seq, prev_hash: hash, time: crate::time::now() });
            let mut f = OpenOptions::new().append(true).create_new(true).mode(0o600).open(path)?;
            f.write_all(&line)?;
            f.sync_all()?;
        }
        let (seq, prev) = last_record(path)?;
        let head_path = path.with_extension("head");
        let file = OpenOptions::new().append(true).create(true).mode(0o600).open(path)?;
        let len = file.metadata()?.len();
        let rotation = retention.map(|retention| writer::Rotating { path: path.to_path_buf(), retention, first_seq: first_seq(path) });
        let writer = writer::Writer::start(file, seq, prev, len, head_path.clone(), rotation)?;
        Ok(AuditLog { writer: Some(writer), path: path.to_path_buf(), head_path })
    }

    /// A log that keeps nothing: only for measuring what the audit costs (`HOODY_BENCH_NO_AUDIT`).
    pub fn discarding(path: &Path) -> AuditLog {
        AuditLog { writer: None, path: path.to_path_buf(), head_path: path.with_extension("head") }
    }

    /// Appends a record (its seq, prev and hash are filled in); returns once it is written.
    pub async fn append(&self, r: Record) -> std::io::Result<u64> {
        match &self.writer {
            Some(w) => w.append(r).await,
            None => Ok(0),
        }
    }

    /// Syncs every written record and the head (at shutdown).
    pub async fn flush(self: &std::sync::Arc<Self>) -> std::io::Result<()> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.writer.as_ref().map_or(Ok(()), |w| w.flush())).await.map_err(std::io::Error::other)?
    }

    /// Reads records (oldest first, across segments) that pass `keep`.
    pub fn read(&self, mut keep: impl FnMut(&Record) -> bool) -> std::io::Result<Vec<Record>> {
        let mut out = vec![];
        for seg in segments::all(&self.path) {
            let f = match File::open(&seg) {
                Ok(f) => f,
                // Removed by the retention meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in BufReader::new(f).lines() {
                let line = line?;
                match serde_json::from_str::<Record>(&line) {
                    Ok(r) if keep(&r) => out.push(r),
                    Ok(_) => {}
                    Err(_) if segments::parse_anchor(&line).is_some() => {}
                    Err(e) => warn!(error = %e, "skipping an unreadable audit line"),
                }
            }
        }
        Ok(out)
    }

    /// Verifies the chain across every segment (see [`verify::verify_segments`]).
    pub fn verify(&self) -> std::io::Result<verify::Report> {
        verify::verify_segments(&segments::all(&self.path), read_head(&self.head_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str) -> Record {
        Record {
            seq: 0,
            time: "t".into(),
            peer_uid: 0,
            peer_pid: None,
            token_id: None,
            realm_ids: vec![],
            method: "GET".into(),
            path: path.into(),
            container: None,
            status: 200,
            outcome: "ok".into(),
            duration_us: 1,
            request_id: None,
            snapshot: None,
            rule_id: None,
            prev: String::new(),
            hash: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_make_one_durable_chain() {
        let d = tempfile::tempdir().unwrap();
        let log = std::sync::Arc::new(AuditLog::open(&d.path().join("audit.log")).unwrap());
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in 0..200 {
                        log.append(rec(&format!("/t{t}/{i}"))).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        log.flush().await.unwrap();
        let r = log.verify().unwrap();
        assert!(r.ok, "{r:?}");
        assert_eq!(r.records, 1600);
        assert_eq!(read_head(&log.head_path).map(|h| h.0), Some(1600), "a flush makes everything durable");
    }

    #[tokio::test]
    async fn chains_across_reopen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        {
            let log = std::sync::Arc::new(AuditLog::open(&p).unwrap());
            for i in 0..3 {
                assert_eq!(log.append(rec(&format!("/a/{i}"))).await.unwrap(), i + 1);
            }
            // Synced now, so this log's syncer cannot write its head after the next one's.
            log.flush().await.unwrap();
        }
        let log = AuditLog::open(&p).unwrap();
        assert_eq!(log.append(rec("/b")).await.unwrap(), 4, "numbering continues after a restart");
        // The background syncer moves the head within a few SYNC_EVERY periods; a loaded machine
        // may take longer, so wait for it (bounded) rather than for a fixed time.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while read_head(&log.head_path).map(|h| h.0) != Some(4) && std::time::Instant::now() < deadline {
            std::thread::sleep(writer::SYNC_EVERY);
        }
        let r = log.verify().unwrap();
        assert!(r.ok, "{r:?}");
        assert_eq!(r.records, 4);
        assert_eq!(read_head(&log.head_path).map(|h| h.0), Some(4), "the head follows the synced records");
        assert_eq!(log.read(|r| r.path.starts_with("/a")).unwrap().len(), 3);
    }

    #[tokio::test]
    async fn segments_chain_across_rotations_reopens_and_retention_and_a_removed_middle_one_is_caught() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        let keep_all = segments::Retention { segment_size: 2048, max_age: std::time::Duration::from_secs(1 << 30), max_space: u64::MAX };
        {
            let log = std::sync::Arc::new(AuditLog::open_segmented(&p, Some(keep_all)).unwrap());
            for i in 0..100 {
                log.append(rec(&format!("/p/{i}"))).await.unwrap();
            }
            log.flush().await.unwrap();
        }
        let sealed = segments::sealed(&p);
        assert!(sealed.len() >= 5, "{sealed:?}");
        let log = std::sync::Arc::new(AuditLog::open_segmented(&p, Some(keep_all)).unwrap());
        assert_eq!(log.append(rec("/after-reopen")).await.unwrap(), 101);
        log.flush().await.unwrap();
        let r = log.verify().unwrap();
        assert!(r.ok, "{r:?}");
        assert_eq!((r.records, r.segments, r.retention_cut_before), (101, segments::all(&p).len(), None));
        assert_eq!(log.read(|_| true).unwrap().len(), 101, "every segment is read");
        drop(log);
        // The space bound removes the oldest segments: the rest still verifies, from the cut.
        let bounded = segments::Retention { max_space: 3 * 2400, ..keep_all };
        let log = AuditLog::open_segmented(&p, Some(bounded)).unwrap();
        let r = log.verify().unwrap();
        assert!(r.ok, "{r:?}");
        let cut = r.retention_cut_before.expect("a cut is reported");
        assert!(cut > 1 && r.records as u64 == 101 - cut + 1, "{r:?}");
        drop(log);
        // A segment taken out of the middle breaks the chain, naming where.
        let sealed = segments::sealed(&p);
        assert!(sealed.len() >= 3, "{sealed:?}");
        std::fs::remove_file(&sealed[1]).unwrap();
        let log = AuditLog::open_segmented(&p, Some(keep_all)).unwrap();
        let r = log.verify().unwrap();
        let b = r.first_broken.expect("the gap is found");
        assert!(b.reason.contains("missing"), "{b:?}");
        assert_eq!(b.segment.as_deref(), sealed[2].file_name().and_then(|n| n.to_str()));
    }

    #[test]
    fn an_interrupted_rotation_is_settled_at_start_up() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        // Step 4 interrupted: the new segment is only `.next`.
        std::fs::write(segments::next_name(&p), b"x").unwrap();
        segments::finish_rotation(&p).unwrap();
        assert!(p.exists() && !segments::next_name(&p).exists());
        // Step 3 never reached: `.next` beside the current file is dropped.
        std::fs::write(segments::next_name(&p), b"y").unwrap();
        segments::finish_rotation(&p).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
        assert!(!segments::next_name(&p).exists());
    }
}
