//! Appending to the chain, and making it durable.
//!
//! A record is numbered, chained and written under one lock, which is held only for that — a
//! page-cache append of a few hundred bytes, microseconds — and never while a write could block:
//! some file systems (btrfs) hold writers for the whole of an fsync, so nothing is written while
//! the syncer syncs. A request therefore appends its own record, on its own thread, unless a
//! sync is running; then the record goes to the writer thread, whose job is to wait for the sync
//! to end. The syncer makes the file durable in small batches (at most [`SYNC_BATCH`] records, or
//! [`SYNC_EVERY`] after the first unsynced one) and then, with appends already going on again,
//! records the last durable record in the head file; no request waits for a sync unless it
//! arrives during one, and then only for the log's own sync.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::Thread;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::error;

use super::record::Record;
use super::write_head;

/// Records written before the syncer syncs the file, at most.
pub const SYNC_BATCH: u64 = 1024;
/// Time a written record may wait for its sync, at most.
pub const SYNC_EVERY: Duration = Duration::from_millis(100);

type Ack = oneshot::Sender<std::io::Result<u64>>;

/// The chain's end, and the file it is written to.
struct Chain {
    file: File,
    /// Number and hash of the last record written.
    seq: u64,
    prev: String,
    /// Length of the file up to the last whole record.
    len: u64,
    /// The line being written (kept to spare an allocation per record).
    line: Vec<u8>,
    /// The last record made durable.
    synced: u64,
    /// A sync is running: nothing is written until it ends.
    syncing: bool,
    /// Segments: where the log is and when to seal it (`None`: one file forever).
    rotation: Option<Rotating>,
}

/// The current segment, for sealing it (see [`super::segments`]).
pub struct Rotating {
    pub path: PathBuf,
    pub retention: super::segments::Retention,
    /// Number of the current segment's first record.
    pub first_seq: u64,
}

/// The chain and its signals.
struct Shared {
    chain: Mutex<Chain>,
    /// Signalled when a sync ends.
    sync_ended: Condvar,
    /// `Chain::syncing`, readable without the lock.
    syncing: AtomicBool,
}

impl Chain {
    /// Numbers, chains and writes `r`; a failed write is cut off so no torn record remains.
    fn append(&mut self, mut r: Record) -> std::io::Result<u64> {
        r.seq = self.seq + 1;
        r.prev = std::mem::take(&mut self.prev);
        self.line.clear();
        let hash = r.seal_into(&mut self.line);
        if let Err(e) = self.file.write_all(&self.line) {
            error!(error = %e, "audit log write failed");
            let _ = self.file.set_len(self.len);
            self.prev = r.prev;
            return Err(e);
        }
        self.len += self.line.len() as u64;
        self.seq = r.seq;
        self.prev = hash;
        self.rotate_if_full();
        Ok(self.seq)
    }

    /// Seals the current segment once it reaches the segment size and starts the next one,
    /// then applies the retention. Never fails an append: a rotation that cannot be done is
    /// logged and tried again with the next record.
    fn rotate_if_full(&mut self) {
        let Some(rot) = self.rotation.as_mut() else { return };
        if self.len < rot.retention.segment_size {
            return;
        }
        match super::segments::rotate(&rot.path, &self.file, rot.first_seq, self.seq, &self.prev) {
            Ok((file, len)) => {
                self.file = file;
                self.len = len;
                // The sealed segment was synced whole before it was sealed.
                self.synced = self.seq;
                rot.first_seq = self.seq + 1;
                super::segments::enforce(&rot.path, &rot.retention, std::time::SystemTime::now());
            }
            Err(e) => error!(error = %e, "could not seal the audit segment; retrying with the next record"),
        }
    }
}

pub struct Writer {
    shared: Arc<Shared>,
    /// Records handed to the writer thread.
    handoff: mpsc::Sender<(Box<Record>, Ack)>,
    syncer: Thread,
    /// One sync at a time (the syncer's and a flush's).
    sync_lock: Arc<Mutex<()>>,
    head: PathBuf,
}

fn lock(m: &Mutex<Chain>) -> std::sync::MutexGuard<'_, Chain> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Writer {
    /// Starts the threads of a log whose last record is `seq` with hash `prev`, `len` bytes long.
    pub fn start(file: File, seq: u64, prev: String, len: u64, head: PathBuf, rotation: Option<Rotating>) -> std::io::Result<Writer> {
        let shared = Arc::new(Shared {
            chain: Mutex::new(Chain { file, seq, prev, len, line: Vec::with_capacity(1024), synced: seq, syncing: false, rotation }),
            sync_ended: Condvar::new(),
            syncing: AtomicBool::new(false),
        });
        let sync_lock = Arc::new(Mutex::new(()));
        let (handoff, rx) = mpsc::channel::<(Box<Record>, Ack)>();
        let s = shared.clone();
        std::thread::Builder::new().name("hoodyd-audit".into()).spawn(move || {
            while let Ok((r, ack)) = rx.recv() {
                let mut c = lock(&s.chain);
                while c.syncing {
                    c = s.sync_ended.wait(c).unwrap_or_else(|p| p.into_inner());
                }
                let res = c.append(*r);
                drop(c);
                let _ = ack.send(res);
            }
        })?;
        let (s, l, h) = (shared.clone(), sync_lock.clone(), head.clone());
        let syncer = std::thread::Builder::new().name("hoodyd-audit-sync".into()).spawn(move || sync_loop(&s, &l, &h))?.thread().clone();
        Ok(Writer { shared, handoff, syncer, sync_lock, head })
    }

    /// Appends `r`; returns its number once it is in the file.
    pub async fn append(&self, r: Record) -> std::io::Result<u64> {
        // The lock is only ever held for an append that cannot block (or to flip `syncing`), so
        // waiting for it here is waiting for microseconds.
        if !self.shared.syncing.load(Ordering::Acquire)
            && let mut c = lock(&self.shared.chain)
            && !c.syncing
        {
            let res = c.append(r);
            // Wake the syncer for the first record of a batch, or a full batch.
            let wake = res.is_ok() && (c.seq == c.synced + 1 || c.seq - c.synced >= SYNC_BATCH);
            drop(c);
            if wake {
                self.syncer.unpark();
            }
            return res;
        }
        let (ack, wait) = oneshot::channel();
        self.handoff.send((Box::new(r), ack)).map_err(|_| std::io::Error::other("the audit writer has stopped"))?;
        let res = wait.await.map_err(|_| std::io::Error::other("the audit writer has stopped"))?;
        self.syncer.unpark();
        res
    }

    /// Makes every written record durable now (blocking: call from a blocking thread).
    pub fn flush(&self) -> std::io::Result<()> {
        sync_now(&self.shared, &self.sync_lock, &self.head)
    }
}

/// Syncs what is written and records it in the head file.
fn sync_now(s: &Shared, sync_lock: &Mutex<()>, head: &std::path::Path) -> std::io::Result<()> {
    let _one = sync_lock.lock().unwrap_or_else(|p| p.into_inner());
    let (seq, hash, file) = {
        let mut c = lock(&s.chain);
        if c.seq == c.synced {
            return Ok(());
        }
        // The segment being written now (a rotation replaces the file).
        let file = c.file.try_clone()?;
        c.syncing = true;
        s.syncing.store(true, Ordering::Release);
        (c.seq, c.prev.clone(), file)
    };
    let res = file.sync_data();
    // Appends wait only for the sync of the log itself; the head (a separate file) is written
    // after they resume (one sync at a time, so heads are written in order).
    let mut c = lock(&s.chain);
    c.syncing = false;
    s.syncing.store(false, Ordering::Release);
    if res.is_ok() {
        c.synced = seq;
    }
    drop(c);
    s.sync_ended.notify_all();
    res.and_then(|_| write_head(head, seq, &hash))
}

fn sync_loop(s: &Shared, sync_lock: &Mutex<()>, head: &std::path::Path) {
    let chain = &s.chain;
    loop {
        // Sleep until a record needs syncing, then let a batch gather (or fill up).
        let idle = {
            let c = lock(chain);
            c.seq == c.synced
        };
        if idle {
            std::thread::park();
            continue;
        }
        let due = std::time::Instant::now() + SYNC_EVERY;
        while std::time::Instant::now() < due {
            let c = lock(chain);
            if c.seq - c.synced >= SYNC_BATCH {
                break;
            }
            drop(c);
            std::thread::park_timeout(due.saturating_duration_since(std::time::Instant::now()));
        }
        if let Err(e) = sync_now(s, sync_lock, head) {
            error!(error = %e, "audit log sync failed");
            std::thread::sleep(SYNC_EVERY);
        }
    }
}
