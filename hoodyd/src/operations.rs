//! Operations: long work answered at once with 202 and done in the background (image imports,
//! restores), followed with `GET /operations/{operation_id}` and on the event stream
//! (`operation.progress` at most twice a second, `operation.done`). They live in memory: a
//! restart forgets them (the work itself is crash-safe as when it is synchronous: an import
//! not finished is rolled back, a restore rolled forward), and finished ones are kept an hour.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoody_api::envelope::ErrorBody;
use hoody_api::events::{EventData, EventType};
use hoody_api::operations::{Operation, OperationKind, OperationResult, OperationStatus, Progress};

use crate::events::EventLog;

/// Finished operations are kept this long …
const KEEP_FOR: Duration = Duration::from_secs(3600);
/// … and this many at most.
const KEEP_DONE: usize = 1000;
/// `operation.progress` events of one operation come at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

struct Entry {
    op: Operation,
    /// The realms of the container it works on (none: administrators only).
    realm_ids: Vec<String>,
    cancel: Arc<AtomicBool>,
    started: Instant,
    finished: Option<Instant>,
}

pub struct Operations {
    entries: Mutex<HashMap<String, Entry>>,
    events: Arc<EventLog>,
    /// How long finished operations took, by kind and how they ended.
    durations: crate::metrics::histogram::HistogramVec,
}

/// Why a cancel was refused.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("operation {0:?} not found")]
    NotFound(String),
    #[error("operation {id:?} is {status}: only a running one can be cancelled")]
    Done { id: String, status: &'static str },
    #[error("a restore cannot be cancelled safely once it began (it is finished, or rolled forward after a crash)")]
    NotCancellable,
}

fn visible(e: &Entry, realms: &Option<Vec<String>>) -> bool {
    realms.as_ref().is_none_or(|mine| e.realm_ids.iter().any(|r| mine.contains(r)))
}

fn status_name(s: OperationStatus) -> &'static str {
    match s {
        OperationStatus::Running => "running",
        OperationStatus::Succeeded => "succeeded",
        OperationStatus::Failed => "failed",
        OperationStatus::Cancelled => "cancelled",
    }
}

/// An operation kind as the API names it (`image_import`).
fn kind_name(k: OperationKind) -> String {
    serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl Operations {
    /// How long finished operations took: by (kind, status).
    pub fn durations(&self) -> &crate::metrics::histogram::HistogramVec {
        &self.durations
    }

    pub fn new(events: Arc<EventLog>) -> Arc<Operations> {
        Arc::new(Operations {
            entries: Mutex::default(),
            events,
            durations: crate::metrics::histogram::HistogramVec::new(crate::metrics::histogram::OPERATION_BOUNDS),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a running operation of `kind` on `target` (of the container `on`: its id and
    /// realms), `total` bytes to read when known.
    pub fn start(
        self: &Arc<Self>,
        kind: OperationKind,
        target: &str,
        on: Option<(&str, &[String])>,
        total: Option<u64>,
    ) -> (Operation, Handle) {
        let op = Operation {
            id: crate::ids::new_id(),
            kind,
            status: OperationStatus::Running,
            container: on.map(|(id, _)| id.to_owned()),
            target: target.to_owned(),
            created_at: crate::time::now(),
            finished_at: None,
            progress: Progress { bytes: 0, total },
            result: None,
            error: None,
            error_status: None,
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let realm_ids = on.map(|(_, r)| r.to_vec()).unwrap_or_default();
        let mut m = self.lock();
        prune(&mut m);
        m.insert(op.id.clone(), Entry { op: op.clone(), realm_ids, cancel: cancel.clone(), started: Instant::now(), finished: None });
        drop(m);
        let handle = Handle {
            id: op.id.clone(),
            ops: self.clone(),
            cancel,
            bytes: Arc::new(AtomicU64::new(0)),
            last_event: Arc::new(Mutex::new(Instant::now())),
        };
        (op, handle)
    }

    pub fn get(&self, id: &str, realms: &Option<Vec<String>>) -> Option<Operation> {
        self.lock().get(id).filter(|e| visible(e, realms)).map(|e| e.op.clone())
    }

    /// Every visible operation, oldest first.
    pub fn list(&self, realms: &Option<Vec<String>>) -> Vec<Operation> {
        let mut v: Vec<Operation> = self.lock().values().filter(|e| visible(e, realms)).map(|e| e.op.clone()).collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        v
    }

    /// Asks a running import to stop (it ends `cancelled`, its staging removed, as a failed one).
    pub fn cancel(&self, id: &str, realms: &Option<Vec<String>>) -> Result<Operation, CancelError> {
        let m = self.lock();
        let e = m.get(id).filter(|e| visible(e, realms)).ok_or_else(|| CancelError::NotFound(id.to_owned()))?;
        if e.op.status.is_done() {
            return Err(CancelError::Done { id: id.to_owned(), status: status_name(e.op.status) });
        }
        if e.op.kind == OperationKind::SnapshotRestore {
            return Err(CancelError::NotCancellable);
        }
        e.cancel.store(true, Ordering::SeqCst);
        Ok(e.op.clone())
    }

    fn emit(&self, kind: EventType, op: &Operation, realm_ids: &[String], data: EventData) {
        let data = EventData { operation: Some(op.id.clone()), ..data };
        match &op.container {
            Some(c) => self.events.container(kind, c, realm_ids, data),
            None => self.events.global(kind, data),
        }
    }
}

fn prune(m: &mut HashMap<String, Entry>) {
    m.retain(|_, e| e.finished.is_none_or(|t| t.elapsed() < KEEP_FOR));
    let mut done: Vec<(Instant, String)> = m.iter().filter_map(|(k, e)| e.finished.map(|t| (t, k.clone()))).collect();
    if done.len() > KEEP_DONE {
        done.sort();
        for (_, k) in done.iter().take(done.len() - KEEP_DONE) {
            m.remove(k);
        }
    }
}

/// The worker's side of an operation.
#[derive(Clone)]
pub struct Handle {
    id: String,
    ops: Arc<Operations>,
    cancel: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    last_event: Arc<Mutex<Instant>>,
}

impl Handle {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// `n` more bytes done.
    pub fn advance(&self, n: u64) {
        let bytes = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        let mut m = self.ops.lock();
        let Some(e) = m.get_mut(&self.id) else { return };
        e.op.progress.bytes = bytes;
        let mut last = self.last_event.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= PROGRESS_EVERY {
            *last = Instant::now();
            let (op, realms) = (e.op.clone(), e.realm_ids.clone());
            drop(m);
            self.ops.emit(EventType::OperationProgress, &op, &realms, EventData { progress: Some(op.progress), ..Default::default() });
        }
    }

    /// Records how it ended; a failure after a cancel reads as cancelled.
    pub fn finish(&self, r: Result<OperationResult, (u16, ErrorBody)>) {
        let mut m = self.ops.lock();
        let Some(e) = m.get_mut(&self.id) else { return };
        e.op.finished_at = Some(crate::time::now());
        e.finished = Some(Instant::now());
        match r {
            Ok(res) => {
                e.op.status = OperationStatus::Succeeded;
                if let Some(t) = e.op.progress.total {
                    e.op.progress.bytes = e.op.progress.bytes.max(t);
                }
                e.op.result = Some(res);
            }
            Err((status, err)) => {
                e.op.status = if self.cancelled() { OperationStatus::Cancelled } else { OperationStatus::Failed };
                e.op.error = Some(err);
                e.op.error_status = Some(status);
            }
        }
        let (op, realms, took) = (e.op.clone(), e.realm_ids.clone(), e.started.elapsed());
        drop(m);
        self.ops.durations.observe(vec![kind_name(op.kind), status_name(op.status).to_owned()], took.as_secs_f64());
        let data = EventData { status: Some(status_name(op.status).to_owned()), progress: Some(op.progress), ..Default::default() };
        self.ops.emit(EventType::OperationDone, &op, &realms, data);
    }
}

/// A reader that reports what it read to an operation, and fails once it is cancelled.
pub struct Counting<R> {
    inner: R,
    handle: Handle,
}

impl<R> Counting<R> {
    pub fn new(inner: R, handle: Handle) -> Counting<R> {
        Counting { inner, handle }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.handle.cancelled() {
            return Err(std::io::Error::other("the operation was cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.handle.advance(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> (tempfile::TempDir, Arc<Operations>) {
        let dir = tempfile::tempdir().unwrap();
        let events = EventLog::open(&dir.path().join("events.db")).unwrap();
        (dir, Operations::new(events))
    }

    #[test]
    fn progress_finish_cancel_and_realms() {
        let (_d, ops) = ops();
        let realms = vec!["r1".to_owned()];
        let (op, h) = ops.start(OperationKind::SnapshotRestore, "s1", Some(("c1", &realms)), None);
        assert_eq!(ops.get(&op.id, &Some(vec!["r2".into()])), None, "another realm's");
        assert!(ops.get(&op.id, &Some(realms.clone())).is_some());
        assert!(matches!(ops.cancel(&op.id, &None), Err(CancelError::NotCancellable)));
        h.finish(Err((
            500,
            ErrorBody { code: hoody_api::envelope::ErrorCode::Internal, message: "x".into(), details: vec![], field: None },
        )));
        assert_eq!(ops.get(&op.id, &None).unwrap().status, OperationStatus::Failed);

        let (imp, h) = ops.start(OperationKind::ImageImport, "img", None, Some(10));
        assert_eq!(ops.get(&imp.id, &Some(realms.clone())), None, "imports are for administrators");
        let mut r = Counting::new(&b"0123456789"[..], h.clone());
        let mut buf = [0u8; 4];
        assert_eq!(r.read(&mut buf).unwrap(), 4);
        assert_eq!(ops.get(&imp.id, &None).unwrap().progress.bytes, 4);
        ops.cancel(&imp.id, &None).unwrap();
        assert!(r.read(&mut buf).is_err(), "a cancelled import's reader fails");
        h.finish(Err((
            500,
            ErrorBody { code: hoody_api::envelope::ErrorCode::Internal, message: "cancelled".into(), details: vec![], field: None },
        )));
        assert_eq!(ops.get(&imp.id, &None).unwrap().status, OperationStatus::Cancelled);
        assert!(matches!(ops.cancel(&imp.id, &None), Err(CancelError::Done { .. })));
        assert_eq!(ops.list(&None).len(), 2);
    }
}
