//! Who may hold a connection: a global cap (`--max-connections`) with room kept for
//! administrators, a cap per peer uid for everyone else (`--max-connections-per-peer`), and a
//! cap of its own for long-lived streams (`--max-streams`: exec, `logs --follow`, events). A
//! request that becomes a stream gives its connection slot back and holds a stream slot as
//! long as the stream lasts, so a thousand followers never keep anyone from a request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{ApiError, ErrorCode};

/// The caps.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    pub connections: usize,
    pub per_peer: usize,
    pub streams: usize,
}

impl Caps {
    /// Connections only administrators may take: an eighth of the whole, at least one when
    /// there are two or more.
    fn admin_room(&self) -> usize {
        if self.connections >= 2 { (self.connections / 8).max(1) } else { 0 }
    }
}

#[derive(Default)]
struct Open {
    total: usize,
    by_uid: HashMap<u32, usize>,
}

/// The connections and streams open now.
pub struct Slots {
    caps: Caps,
    open: Mutex<Open>,
    streams: Arc<Semaphore>,
}

/// Why a connection was not taken in.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Full,
    PeerFull { uid: u32, limit: usize },
}

impl Refused {
    pub fn message(&self) -> String {
        match self {
            Refused::Full => "too many open connections".to_owned(),
            Refused::PeerFull { uid, limit } => format!("too many open connections from uid {uid} (at most {limit})"),
        }
    }
}

impl Slots {
    pub fn new(caps: Caps) -> Arc<Slots> {
        Arc::new(Slots { caps, open: Mutex::default(), streams: Arc::new(Semaphore::new(caps.streams)) })
    }

    /// Takes a connection of `uid` in, or says why not. Administrators may use the whole cap
    /// and are not counted per peer (they are the control plane); others stop short of the
    /// administrators' room and at their own cap.
    pub fn admit(self: &Arc<Self>, uid: u32, admin: bool) -> Result<ConnSlot, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let limit = if admin { self.caps.connections } else { self.caps.connections - self.caps.admin_room() };
        if open.total >= limit {
            return Err(Refused::Full);
        }
        if !admin {
            let mine = open.by_uid.entry(uid).or_default();
            if *mine >= self.caps.per_peer {
                return Err(Refused::PeerFull { uid, limit: self.caps.per_peer });
            }
            *mine += 1;
        }
        open.total += 1;
        Ok(ConnSlot { slots: self.clone(), uid: (!admin).then_some(uid), released: AtomicBool::new(false) })
    }

    /// Connections open now (streams not counted).
    pub fn connections(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// Streams open now.
    pub fn streams(&self) -> usize {
        self.caps.streams - self.streams.available_permits()
    }

    fn release(&self, uid: Option<u32>) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(u) = uid
            && let Some(n) = open.by_uid.get_mut(&u)
        {
            *n -= 1;
            if *n == 0 {
                open.by_uid.remove(&u);
            }
        }
    }
}

/// A connection's place, given back when the connection ends or becomes a stream.
pub struct ConnSlot {
    slots: Arc<Slots>,
    uid: Option<u32>,
    released: AtomicBool,
}

impl ConnSlot {
    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.slots.release(self.uid);
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// A stream's place, held by the stream (its body, its upgraded connection) until it ends.
pub struct StreamSlot {
    _permit: OwnedSemaphorePermit,
}

impl StreamSlot {
    /// `body`, holding this slot until it ends or is dropped.
    pub fn hold<S: futures::Stream>(self, body: S) -> impl futures::Stream<Item = S::Item> {
        use futures::StreamExt;
        body.map(move |item| {
            let _held = &self;
            item
        })
    }
}

/// The header a stream's answer carries: its connection is not counted any more, so it ends
/// with the stream.
pub const CLOSE: (axum::http::HeaderName, axum::http::HeaderValue) =
    (axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));

/// What a handler needs to turn its request into a stream: the caps and the connection's slot
/// (set on each request by the server).
pub struct StreamGate {
    slots: Arc<Slots>,
    conn: Option<Arc<ConnSlot>>,
}

impl StreamGate {
    /// Takes a stream slot and gives the connection's back (503 `unavailable` when every
    /// stream slot is taken). The answer must close its connection after the stream
    /// (`Connection: close`): the connection no longer counts.
    pub fn begin(&self) -> Result<StreamSlot, ApiError> {
        let permit = self.slots.streams.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                format!("too many open streams (at most {}: exec, logs --follow, events)", self.slots.caps.streams),
            )
        })?;
        if let Some(c) = &self.conn {
            c.release();
        }
        Ok(StreamSlot { _permit: permit })
    }
}

impl FromRequestParts<super::AppState> for StreamGate {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &super::AppState) -> Result<Self, Self::Rejection> {
        Ok(StreamGate { slots: st.slots.clone(), conn: parts.extensions.get::<Arc<ConnSlot>>().cloned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_stops_at_its_cap_and_the_administrators_room_stays_free() {
        let slots = Slots::new(Caps { connections: 16, per_peer: 4, streams: 2 });
        let mine: Vec<ConnSlot> = (0..4).map(|_| slots.admit(1000, false).unwrap()).collect();
        assert_eq!(slots.admit(1000, false).err(), Some(Refused::PeerFull { uid: 1000, limit: 4 }));
        // Others fill up to the room kept for administrators (16 / 8 = 2).
        let others: Vec<ConnSlot> = (0..10).map(|i| slots.admit(2000 + i, false).unwrap()).collect();
        assert_eq!(slots.admit(3000, false).err(), Some(Refused::Full));
        let admins: Vec<ConnSlot> = (0..2).map(|_| slots.admit(0, true).unwrap()).collect();
        assert_eq!(slots.admit(0, true).err(), Some(Refused::Full));
        assert_eq!(slots.connections(), 16);
        drop(mine);
        assert!(slots.admit(1000, false).is_ok());
        drop((others, admins));
        assert_eq!(slots.connections(), 0);
    }

    #[test]
    fn a_stream_gives_its_connection_back_and_holds_a_stream_slot() {
        let slots = Slots::new(Caps { connections: 2, per_peer: 1, streams: 1 });
        let conn = Arc::new(slots.admit(1000, false).unwrap());
        assert!(slots.admit(1000, false).is_err());
        let gate = StreamGate { slots: slots.clone(), conn: Some(conn.clone()) };
        let stream = gate.begin().unwrap();
        assert_eq!((slots.connections(), slots.streams()), (0, 1));
        assert!(slots.admit(1000, false).is_ok(), "the peer's slot is free again");
        assert_eq!(gate.begin().err().map(|e| e.code), Some(ErrorCode::Unavailable));
        drop(conn);
        assert_eq!(slots.connections(), 0, "released once only");
        drop(stream);
        assert_eq!(slots.streams(), 0);
    }
}
