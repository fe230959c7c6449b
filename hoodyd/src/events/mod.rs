//! The event stream's source: every state change worth telling a control plane about is
//! emitted here, numbered, written to `events.db`, and only then published to the live
//! subscribers (so what a subscriber saw is what a resume after a restart finds).
//!
//! Emitting never blocks and never fails the operation that emits: the event goes to a queue
//! that a thread of its own drains, in batches of one transaction each. Publishing never waits
//! for a subscriber either: a subscriber that falls behind by more than the live channel holds is
//! sent a gap and dropped (see `api::events`).

mod db;
pub mod filter;

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use hoody_api::events::{Event, EventData, EventType};
use tokio::sync::broadcast;
use tracing::warn;

pub use db::EventDbError;

/// Events kept in `events.db` (the oldest go first).
const KEEP: u64 = 100_000;
/// Events a live subscriber may fall behind by before it is dropped.
const LIVE: usize = 4096;
/// Events written in one transaction at most.
const BATCH: usize = 512;

/// An event before it has its number and time.
struct Draft {
    kind: EventType,
    realm_ids: Vec<String>,
    container: Option<String>,
    data: EventData,
}

enum Msg {
    Event(Box<Draft>),
    /// Answered once everything queued before it is written and published.
    Flush(mpsc::Sender<()>),
}

pub struct EventLog {
    queue: mpsc::Sender<Msg>,
    live: broadcast::Sender<Arc<Published>>,
    /// For subscribers' backlogs (WAL: reads go on beside the writer).
    reader: Mutex<db::EventDb>,
}

impl EventLog {
    /// Opens (creating) `path` and starts its writer thread; seqs continue after the highest
    /// one in the file.
    pub fn open(path: &Path) -> Result<Arc<EventLog>, EventDbError> {
        let mut writer = db::EventDb::open(path)?;
        let reader = db::EventDb::open(path)?;
        let keep = crate::test_hooks::var("HOODY_EVENTS_KEEP").and_then(|v| v.to_str()?.parse().ok()).unwrap_or(KEEP);
        let (queue, rx) = mpsc::channel::<Msg>();
        let live_cap = crate::test_hooks::var("HOODY_EVENTS_LIVE").and_then(|v| v.to_str()?.parse().ok()).unwrap_or(LIVE);
        let (live, _) = broadcast::channel(live_cap);
        let mut next = writer.last_seq()? + 1;
        let publish = live.clone();
        std::thread::Builder::new()
            .name("hoody-events".into())
            .spawn(move || {
                let mut since_prune = 0usize;
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                    let mut events = vec![];
                    let mut flushed = vec![];
                    for m in batch {
                        match m {
                            Msg::Event(d) => {
                                events.push(Event {
                                    seq: next,
                                    time: crate::time::now(),
                                    kind: d.kind,
                                    realm_ids: d.realm_ids,
                                    container: d.container,
                                    data: d.data,
                                });
                                next += 1;
                            }
                            Msg::Flush(done) => flushed.push(done),
                        }
                    }
                    if !events.is_empty() {
                        if let Err(e) = writer.insert(&events) {
                            warn!(error = %crate::errors::chain(&e).join(": "), first = events[0].seq, n = events.len(), "could not write events");
                        }
                        since_prune += events.len();
                        for e in events {
                            let _ = publish.send(Arc::new(Published::new(e)));
                        }
                    }
                    if since_prune >= 1000.min(keep as usize).max(1) {
                        since_prune = 0;
                        if let Err(e) = writer.prune(keep) {
                            warn!(error = %crate::errors::chain(&e).join(": "), "could not prune old events");
                        }
                    }
                    for f in flushed {
                        let _ = f.send(());
                    }
                }
            })
            .map_err(EventDbError::Thread)?;
        Ok(Arc::new(EventLog { queue, live, reader: Mutex::new(reader) }))
    }

    /// Emits an event of the container `id` in `realm_ids`.
    pub fn container(&self, kind: EventType, id: &str, realm_ids: &[String], data: EventData) {
        self.send(Draft { kind, realm_ids: realm_ids.to_vec(), container: Some(id.to_owned()), data });
    }

    /// Emits an event of no container (administrators see it; realm tokens only `daemon.ready`).
    pub fn global(&self, kind: EventType, data: EventData) {
        self.send(Draft { kind, realm_ids: vec![], container: None, data });
    }

    fn send(&self, d: Draft) {
        let _ = self.queue.send(Msg::Event(Box::new(d)));
    }

    /// Waits (blocking) until everything emitted so far is written and published.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.queue.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.live.subscribe()
    }

    /// Streams subscribed now.
    pub fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    /// Up to `limit` written events after `seq`, and the lowest seq the file still holds
    /// (blocking: call it off the async workers).
    pub fn after(&self, seq: u64, limit: usize) -> Result<(Vec<Event>, Option<u64>), EventDbError> {
        let db = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        Ok((db.after(seq, limit)?, db.first_seq()?))
    }

    /// The highest seq written.
    pub fn last_seq(&self) -> Result<u64, EventDbError> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner()).last_seq()
    }
}

/// An event as published: with its NDJSON line, serialised once for every subscriber.
pub struct Published {
    pub event: Event,
    pub line: bytes::Bytes,
}

impl Published {
    fn new(event: Event) -> Published {
        let mut line = serde_json::to_vec(&event).expect("an event serialises");
        line.push(b'\n');
        Published { event, line: line.into() }
    }
}

impl std::ops::Deref for Published {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_written_before_published_and_continued_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let log = EventLog::open(&path).unwrap();
        let mut rx = log.subscribe();
        log.container(EventType::ContainerCreated, "c1", &["r1".into()], EventData { name: Some("app".into()), ..Default::default() });
        log.global(EventType::DaemonReady, EventData::default());
        log.flush();
        let first = rx.try_recv().unwrap();
        assert_eq!((first.seq, first.kind, first.container.as_deref()), (1, EventType::ContainerCreated, Some("c1")));
        assert_eq!(rx.try_recv().unwrap().seq, 2);
        let (written, oldest) = log.after(0, 10).unwrap();
        assert_eq!((written.len(), oldest), (2, Some(1)));
        assert_eq!(written[0], first.event, "what was published is what was written");
        assert_eq!(first.line, [serde_json::to_vec(&written[0]).unwrap(), b"\n".to_vec()].concat());
        drop(log);
        let again = EventLog::open(&path).unwrap();
        again.global(EventType::DaemonReady, EventData::default());
        again.flush();
        assert_eq!(again.last_seq().unwrap(), 3, "seqs go on across a reopen");
        assert_eq!(again.after(1, 10).unwrap().0.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    }
}
