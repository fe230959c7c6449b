//! The two threads behind the audit log. The writer numbers, chains and appends records —
//! everything waiting at that moment in one write — and answers each request as soon as its
//! record is in the file. The syncer makes the file durable in small batches and then records
//! the last durable record in the head file; a request never waits for a sync.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::error;

use super::record::Record;
use super::write_head;

/// Records written before the syncer syncs the file, at most.
pub const SYNC_BATCH: u64 = 64;
/// Time a written record may wait for its sync, at most.
pub const SYNC_EVERY: Duration = Duration::from_millis(20);
/// Records appended in one write, at most.
const WRITE_BATCH: usize = 256;

pub type Ack = oneshot::Sender<std::io::Result<u64>>;

pub enum Msg {
    Append(Box<Record>, Ack),
    /// Sync everything written so far and update the head, then answer.
    Flush(oneshot::Sender<std::io::Result<()>>),
}

enum SyncMsg {
    /// Records up to `seq` (whose hash is given) are in the file.
    Written(u64, String),
    Flush(oneshot::Sender<std::io::Result<()>>),
}

/// The chain's state in the writer: the last record's number and hash, the file's length.
pub struct Tail {
    pub seq: u64,
    pub prev: String,
    pub len: u64,
}

pub fn spawn(file: File, tail: Tail, head: PathBuf) -> std::io::Result<mpsc::Sender<Msg>> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let (sync_tx, sync_rx) = mpsc::channel::<SyncMsg>();
    let durable = file.try_clone()?;
    let synced = tail.seq;
    std::thread::Builder::new().name("hoodyd-audit".into()).spawn(move || write_loop(rx, file, tail, sync_tx))?;
    std::thread::Builder::new().name("hoodyd-audit-sync".into()).spawn(move || sync_loop(sync_rx, durable, head, synced))?;
    Ok(tx)
}

/// Nice value of the writer: every answer waits on it, so it must not queue behind the very
/// clients it serves for a time slice.
const WRITER_NICE: i32 = -10;

fn write_loop(rx: mpsc::Receiver<Msg>, mut file: File, mut t: Tail, sync_tx: mpsc::Sender<SyncMsg>) {
    if let Err(e) = crate::helper::sys::set_thread_nice(WRITER_NICE) {
        tracing::debug!(error = %e, "the audit writer keeps the default priority");
    }
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH
            && let Ok(m) = rx.try_recv()
        {
            batch.push(m);
        }
        let (start_seq, start_prev) = (t.seq, t.prev.clone());
        let mut buf = Vec::new();
        let mut acks = Vec::new();
        let mut flushes = Vec::new();
        for m in batch {
            match m {
                Msg::Append(mut r, ack) => {
                    t.seq += 1;
                    r.seq = t.seq;
                    r.prev = std::mem::take(&mut t.prev);
                    t.prev = r.seal_into(&mut buf);
                    acks.push((t.seq, ack));
                }
                Msg::Flush(done) => flushes.push(done),
            }
        }
        if !buf.is_empty() {
            match file.write_all(&buf) {
                Ok(()) => {
                    t.len += buf.len() as u64;
                    let _ = sync_tx.send(SyncMsg::Written(t.seq, t.prev.clone()));
                    for (seq, ack) in acks {
                        let _ = ack.send(Ok(seq));
                    }
                }
                Err(e) => {
                    // Leave no torn record behind: the chain goes on from the last whole one.
                    error!(error = %e, "audit log write failed");
                    let _ = file.set_len(t.len);
                    (t.seq, t.prev) = (start_seq, start_prev);
                    for (_, ack) in acks {
                        let _ = ack.send(Err(std::io::Error::new(e.kind(), e.to_string())));
                    }
                }
            }
        }
        for done in flushes {
            let _ = sync_tx.send(SyncMsg::Flush(done));
        }
    }
}

fn sync_loop(rx: mpsc::Receiver<SyncMsg>, file: File, head: PathBuf, mut synced: u64) {
    let mut pending: Option<(u64, String)> = None;
    let mut since: Option<Instant> = None;
    let sync = |pending: &mut Option<(u64, String)>, since: &mut Option<Instant>, synced: &mut u64| -> std::io::Result<()> {
        let Some((seq, hash)) = pending.take() else { return Ok(()) };
        *since = None;
        file.sync_data()?;
        write_head(&head, seq, &hash)?;
        *synced = seq;
        Ok(())
    };
    loop {
        let wait = since.map(|t| SYNC_EVERY.saturating_sub(t.elapsed())).unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(wait) {
            Ok(SyncMsg::Written(seq, hash)) => {
                pending = Some((seq, hash));
                since.get_or_insert_with(Instant::now);
            }
            Ok(SyncMsg::Flush(done)) => {
                let _ = done.send(sync(&mut pending, &mut since, &mut synced));
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Err(e) = sync(&mut pending, &mut since, &mut synced) {
                    error!(error = %e, "audit log sync failed");
                }
                return;
            }
        }
        let due = since.is_some_and(|t| t.elapsed() >= SYNC_EVERY) || pending.as_ref().is_some_and(|(seq, _)| seq - synced >= SYNC_BATCH);
        if due && let Err(e) = sync(&mut pending, &mut since, &mut synced) {
            error!(error = %e, "audit log sync failed");
        }
    }
}
