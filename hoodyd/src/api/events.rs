//! `GET /events`: the event stream, newline-delimited JSON (`application/x-ndjson`), one
//! [`EventLine`] per line, until the client goes or the daemon stops.
//!
//! A subscriber is registered with the live channel before its backlog (`?since=`) is read
//! from `events.db`, and each event is sent once, in `seq` order: the backlog up to what is
//! written, then the live events after the last seq sent. What the window no longer holds is
//! a gap line first; a subscriber that falls behind the live channel gets a gap line naming
//! what it missed and the stream ends (it resumes with `?since=` its last seq).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::IntoResponse;
use hoody_api::events::{EventLine, Gap, GapType};
use hoody_api::query::EventsQuery;
use tokio::sync::broadcast::error::RecvError;

use super::error::{ApiError, ApiResult};
use super::query::Query;
use super::{AppState, Caller};
use crate::events::filter::Filter;
use crate::events::{EventDbError, EventLog};

static EVENTS_AFTER: header::HeaderName = header::HeaderName::from_static(hoody_api::paths::EVENTS_AFTER_HEADER);

/// Events read from the file at a time for a backlog.
const PAGE: usize = 500;

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    operation_id = "events",
    params(hoody_api::query::EventsQuery),
    responses((status = 200, description = "The event stream: one JSON object per line", content_type = "application/x-ndjson", body = EventLine))
)]
pub async fn events(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<EventsQuery>,
    gate: super::slots::StreamGate,
) -> ApiResult<impl IntoResponse> {
    let container = match &q.container {
        None => None,
        Some(c) => match st.rt.resolve(c, &caller.filter).await {
            Ok(found) => Some(found.id),
            // A container deleted since: its id still names its past events (which its realms
            // still guard).
            Err(_) if crate::ids::is_id(c) => Some(c.clone()),
            Err(e) => return Err(e.into()),
        },
    };
    let filter = Filter::new(caller.filter.realms.clone(), q.types.as_deref(), container).map_err(ApiError::bad_request)?;
    let log = st.rt.events().clone();
    let live = log.subscribe();
    let (start, after) = match q.since {
        Some(s) => (Phase::Backlog { after: s }, s),
        None => {
            let l = log.clone();
            let last =
                tokio::task::spawn_blocking(move || l.last_seq()).await.map_err(crate::runtime::RuntimeError::from)?.map_err(internal)?;
            (Phase::Live { last }, last)
        }
    };
    let slot = gate.begin()?;
    let shutdown = st.shutdown.subscribe();
    let state = Stream { log, live, filter, phase: start, first: true, shutdown, wrote: None };
    let body = futures::stream::unfold(state, |mut s| async move {
        let chunk = s.next().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), s))
    });
    let headers = [(header::CONTENT_TYPE, "application/x-ndjson".to_owned()), (EVENTS_AFTER.clone(), after.to_string())];
    Ok(([super::slots::CLOSE], headers, Body::from_stream(slot.hold(body))))
}

fn internal(e: EventDbError) -> ApiError {
    ApiError::internal(&e)
}

/// Live events taken into one write at most.
const DRAIN: usize = 1024;
/// A subscriber written to less than this long ago waits out the rest before its next write,
/// taking in whatever was published meanwhile: a quiet stream gets each event at once, a busy
/// one at most fifty writes a second instead of one per event (each write wakes the
/// subscriber; a hundred of them woken for every change would cost the daemon the CPU its
/// requests need).
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// NDJSON of `l`.
fn lines(l: &[EventLine]) -> Bytes {
    let mut out = Vec::new();
    for line in l {
        serde_json::to_writer(&mut out, line).expect("an event serialises");
        out.push(b'\n');
    }
    out.into()
}

enum Phase {
    /// Reading `events.db` after `after`.
    Backlog {
        after: u64,
    },
    /// Forwarding the live channel; `last` is the highest seq passed on (or skipped).
    Live {
        last: u64,
    },
    Done,
}

struct Stream {
    log: Arc<EventLog>,
    live: tokio::sync::broadcast::Receiver<Arc<crate::events::Published>>,
    filter: Filter,
    phase: Phase,
    first: bool,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// When this stream was last written to.
    wrote: Option<tokio::time::Instant>,
}

impl Stream {
    /// The next lines to send (`None`: the stream ends).
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            match self.phase {
                Phase::Done => return None,
                Phase::Backlog { after } => {
                    let log = self.log.clone();
                    let Ok(Ok((page, oldest))) = tokio::task::spawn_blocking(move || log.after(after, PAGE)).await else {
                        self.phase = Phase::Done;
                        return None;
                    };
                    let mut out = vec![];
                    if std::mem::take(&mut self.first)
                        && let Some(oldest) = oldest
                        && oldest > after + 1
                    {
                        out.push(EventLine::Gap(Gap { kind: GapType::Gap, from: after + 1, to: oldest - 1 }));
                    }
                    let last = page.last().map_or(after, |e| e.seq);
                    let full = page.len() == PAGE;
                    out.extend(page.into_iter().filter(|e| self.filter.admits(e)).map(|e| EventLine::Event(Box::new(e))));
                    self.phase = if full { Phase::Backlog { after: last } } else { Phase::Live { last } };
                    if !out.is_empty() {
                        return Some(lines(&out));
                    }
                }
                Phase::Live { last } => {
                    let first = tokio::select! {
                        r = self.live.recv() => r,
                        _ = self.shutdown.wait_for(|s| *s) => {
                            self.phase = Phase::Done;
                            return None;
                        }
                    };
                    if let Some(at) = self.wrote
                        && at.elapsed() < LINGER
                    {
                        tokio::time::sleep_until(at + LINGER).await;
                    }
                    // What else is published already goes in the same write: a busy daemon's
                    // subscribers take their events in few writes, each line serialised once.
                    let mut out = bytes::BytesMut::new();
                    let mut last = last;
                    let mut got = Some(first);
                    let mut taken = 0;
                    while let Some(r) = got.take() {
                        match r {
                            Ok(e) if e.seq <= last => {}
                            Ok(e) => {
                                last = e.seq;
                                if self.filter.admits(&e.event) {
                                    out.extend_from_slice(&e.line);
                                }
                            }
                            Err(RecvError::Lagged(_)) => {
                                // Too slow: what it missed, then the end.
                                let log = self.log.clone();
                                let to =
                                    tokio::task::spawn_blocking(move || log.last_seq()).await.ok().and_then(Result::ok).unwrap_or(last + 1);
                                self.phase = Phase::Done;
                                out.extend_from_slice(&lines(&[EventLine::Gap(Gap {
                                    kind: GapType::Gap,
                                    from: last + 1,
                                    to: to.max(last + 1),
                                })]));
                                return Some(out.freeze());
                            }
                            Err(RecvError::Closed) => {
                                self.phase = Phase::Done;
                                return (!out.is_empty()).then(|| out.freeze());
                            }
                        }
                        taken += 1;
                        if taken < DRAIN {
                            use tokio::sync::broadcast::error::TryRecvError;
                            got = match self.live.try_recv() {
                                Ok(e) => Some(Ok(e)),
                                Err(TryRecvError::Empty) => None,
                                Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                                Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                            };
                        }
                    }
                    self.phase = Phase::Live { last };
                    if !out.is_empty() {
                        self.wrote = Some(tokio::time::Instant::now());
                        return Some(out.freeze());
                    }
                }
            }
        }
    }
}
