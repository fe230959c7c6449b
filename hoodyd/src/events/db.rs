//! The events' own SQLite file (`STATE_DIR/events.db`): WAL with `synchronous = NORMAL`. An
//! event is written (to the WAL, in the page cache) before anyone is sent it, so a `kill -9` of
//! the daemon loses none and the next daemon goes on from the highest seq. A power cut may lose
//! the last events written; the next daemon then reuses their seqs (the README says so). Kept
//! apart from the state database so that a burst of events never waits for its full-sync
//! commits, nor they for it.

use std::path::Path;

use hoody_api::events::{Event, EventData, EventType};
use rusqlite::{Connection, OptionalExtension, params};

pub(super) struct EventDb {
    conn: Connection,
}

#[derive(Debug, thiserror::Error)]
pub enum EventDbError {
    #[error("the events database")]
    Sql(#[from] rusqlite::Error),
    #[error("an event's record is not readable")]
    Json(#[from] serde_json::Error),
    #[error("starting the events' writer thread")]
    Thread(#[source] std::io::Error),
}

const SCHEMA: &[&str] = &[
    // 1: the events, by seq.
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        type TEXT NOT NULL,
        realm_ids TEXT NOT NULL,
        container TEXT,
        data TEXT NOT NULL
    );",
];

impl EventDb {
    pub(super) fn open(path: &Path) -> Result<EventDb, EventDbError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, step) in (0i64..).zip(SCHEMA).skip(version.max(0) as usize) {
            conn.execute_batch(step)?;
            conn.pragma_update(None, "user_version", i + 1)?;
        }
        Ok(EventDb { conn })
    }

    /// The highest seq written (0: none yet).
    pub(super) fn last_seq(&self) -> Result<u64, EventDbError> {
        Ok(self.conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// The lowest seq still held.
    pub(super) fn first_seq(&self) -> Result<Option<u64>, EventDbError> {
        let v: Option<i64> = self.conn.query_row("SELECT MIN(seq) FROM events", [], |r| r.get(0)).optional()?.flatten();
        Ok(v.map(|v| v as u64))
    }

    pub(super) fn insert(&mut self, events: &[Event]) -> Result<(), EventDbError> {
        let tx = self.conn.transaction()?;
        {
            let mut st =
                tx.prepare_cached("INSERT INTO events (seq, time, type, realm_ids, container, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
            for e in events {
                st.execute(params![
                    e.seq as i64,
                    e.time,
                    e.kind.as_str(),
                    serde_json::to_string(&e.realm_ids)?,
                    e.container,
                    serde_json::to_string(&e.data)?
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` events after `seq`, in order.
    pub(super) fn after(&self, seq: u64, limit: usize) -> Result<Vec<Event>, EventDbError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, time, type, realm_ids, container, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = st.query_map(params![seq as i64, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = vec![];
        for row in rows {
            let (seq, time, kind, realms, container, data) = row?;
            // A type this daemon no longer knows (written by a later one) is skipped.
            let Ok(kind) = kind.parse::<EventType>() else { continue };
            let data: EventData = serde_json::from_str(&data)?;
            out.push(Event { seq: seq as u64, time, kind, realm_ids: serde_json::from_str(&realms)?, container, data });
        }
        Ok(out)
    }

    /// Keeps the newest `keep` events.
    pub(super) fn prune(&mut self, keep: u64) -> Result<usize, EventDbError> {
        let last = self.last_seq()?;
        Ok(self.conn.execute("DELETE FROM events WHERE seq <= ?1", params![last.saturating_sub(keep) as i64])?)
    }
}
