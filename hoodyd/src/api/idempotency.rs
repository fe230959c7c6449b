//! Safe retries: a mutating request that carries an `Idempotency-Key` is answered once. The
//! key is claimed in the state database before the request runs (so a concurrent retry gets
//! 409 `in_progress`), and the answer is kept there for 24 hours with a digest of the body as
//! far as the handler read it: a retry with the same request gets the first answer again
//! (marked `Idempotent-Replayed: true`), one with a different method, path, query or body gets
//! 422. Keys are per caller — the token, or the uid of an administrator — so one tenant's key
//! never returns another's answer.
//!
//! Not kept (the retry runs again): upgrades (exec streams), streamed answers, server errors
//! and 503s, 408 and 409 `in_progress` — answers about the moment, not about the request. A
//! request that a daemon crash interrupted has no answer; its key is free after the restart.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use sha2::{Digest, Sha256};

use super::body::BodyDeadline;
use super::error::{ApiError, ErrorCode};
use super::subject::AuditSubject;
use crate::store::{BodySeen, Claim, KeptAnswer, Store};

use hoody_api::paths::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED as REPLAYED};

/// An answer larger than this is not kept (the retry runs again).
const MAX_KEPT: usize = 8 << 20;

/// Headers of an answer that are not part of it (the guard and hyper set them anew).
const NOT_KEPT: &[&str] = &["x-request-id", "date", "connection", "transfer-encoding", "content-length"];

/// The keys and their answers.
pub struct Keys {
    store: Store,
    window: Duration,
    /// When expired answers were last dropped (unix seconds); every ten minutes at most.
    pruned: std::sync::atomic::AtomicI64,
}

impl Keys {
    /// At start: frees the keys of requests the last daemon did not answer, drops expired ones.
    pub fn open(store: Store, window: Duration) -> crate::store::Result<Keys> {
        let before = now() - window.as_secs() as i64;
        store.call_sync(|c| crate::store::prune_keys(c, before, true))?;
        Ok(Keys { store, window, pruned: now().into() })
    }

    /// Whether it is time to drop expired answers (true at most once in ten minutes).
    fn prune_due(&self) -> bool {
        use std::sync::atomic::Ordering;
        let (t, last) = (now(), self.pruned.load(Ordering::Relaxed));
        t - last >= 600 && self.pruned.compare_exchange(last, t, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    fn expired_before(&self) -> i64 {
        now() - self.window.as_secs() as i64
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The key of `req`, when it is one (1–255 visible ASCII characters).
fn key_of(req: &Request) -> Option<Result<String, ApiError>> {
    let v = req.headers().get(IDEMPOTENCY_KEY)?;
    let ok = v.to_str().ok().filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    Some(
        ok.map(str::to_owned)
            .ok_or_else(|| ApiError::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters").field("Idempotency-Key")),
    )
}

fn target(req: &Request) -> String {
    format!("{} {}", req.method(), req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"))
}

/// Runs `req` under its `Idempotency-Key`, if it has one and changes something.
pub async fn run(keys: &Keys, scope: String, req: Request, next: Next) -> Response {
    let key = match key_of(&req) {
        Some(Ok(k)) if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) => k,
        Some(Err(e)) => return e.into_response(),
        _ => return next.run(req).await,
    };
    let target = target(&req);
    let claim = {
        let (scope, key, target, before, prune) = (scope.clone(), key.clone(), target.clone(), keys.expired_before(), keys.prune_due());
        keys.store
            .call(move |c| {
                if prune {
                    crate::store::prune_keys(c, before, false)?;
                }
                crate::store::claim_key(c, &scope, &key, &target, now(), before)
            })
            .await
    };
    match claim {
        Err(e) => ApiError::from(crate::runtime::RuntimeError::from(e)).into_response(),
        Ok(Claim::Running { .. }) => {
            ApiError::state(ErrorCode::InProgress, "a request with this Idempotency-Key is still running; retry when it has been answered")
                .into_response()
        }
        Ok(Claim::Done(kept)) => replay(req, &target, *kept).await,
        Ok(Claim::New) => {
            let (req, seen) = watch_body(req);
            let response = next.run(req).await;
            keep(keys, scope, key, target, &seen, response).await
        }
    }
}

/// Answers a retry: the first answer when it is the same request, else 422.
async fn replay(req: Request, target: &str, kept: KeptAnswer) -> Response {
    let deadline = req.extensions().get::<BodyDeadline>().copied();
    let differs = || {
        ApiError::invalid("this Idempotency-Key was used with a different request (method, path, query or body); use a new key")
            .field("Idempotency-Key")
            .into_response()
    };
    if kept.target != target {
        return differs();
    }
    let same = match deadline {
        Some(BodyDeadline(at)) => match tokio::time::timeout_at(at, same_body(req.into_body(), &kept.body)).await {
            Ok(r) => r,
            Err(_) => {
                return ApiError::new(StatusCode::REQUEST_TIMEOUT, ErrorCode::RequestTimeout, "the request body did not arrive in time")
                    .into_response();
            }
        },
        None => same_body(req.into_body(), &kept.body).await,
    };
    match same {
        Ok(true) => {}
        Ok(false) => return differs(),
        Err(e) => return ApiError::bad_request(format!("reading the request body: {e}")).into_response(),
    }
    let mut r = Response::new(Body::from(kept.response));
    *r.status_mut() = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
    for (name, value) in &kept.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            r.headers_mut().append(n, v);
        }
    }
    r.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    if let Some(subject) = kept.subject.and_then(|s| serde_json::from_str::<AuditSubject>(&s).ok()) {
        r.extensions_mut().insert(subject);
    }
    r
}

/// Whether `body` begins as the first request's did (and, when that one was read to its end,
/// ends there too). Reads no more than that.
async fn same_body(mut body: Body, seen: &BodySeen) -> Result<bool, axum::Error> {
    let mut sha = Sha256::new();
    let mut left = seen.len;
    while left > 0 {
        let Some(frame) = body.frame().await.transpose()? else { return Ok(false) };
        let Ok(data) = frame.into_data() else { continue };
        let take = (data.len() as u64).min(left) as usize;
        sha.update(&data[..take]);
        left -= take as u64;
        if take < data.len() {
            // More than the first request's handler read: the same only when it stopped early.
            return Ok(!seen.complete && <[u8; 32]>::from(sha.finalize()) == seen.sha256);
        }
    }
    if <[u8; 32]>::from(sha.finalize()) != seen.sha256 {
        return Ok(false);
    }
    if seen.complete {
        while let Some(frame) = body.frame().await.transpose()? {
            if frame.data_ref().is_some_and(|d| !d.is_empty()) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// What a handler read of its body.
#[derive(Default)]
struct Seen {
    sha: Sha256,
    len: u64,
    complete: bool,
    /// The body broke off (the client went away): the answer is about that, not the request.
    failed: bool,
}

/// A body that hashes what its reader takes.
struct Watched {
    inner: Body,
    seen: Arc<Mutex<Seen>>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    seen.sha.update(d);
                    seen.len += d.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => seen.failed = true,
            Poll::Ready(None) => seen.complete = true,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn watch_body(req: Request) -> (Request, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (parts, body) = req.into_parts();
    let watched = Watched { inner: body, seen: seen.clone() };
    (Request::from_parts(parts, Body::new(watched)), seen)
}

/// Whether a retry should get this answer again.
fn worth_keeping(r: &Response) -> bool {
    let s = r.status();
    let about_the_moment = s == StatusCode::SWITCHING_PROTOCOLS
        || s.is_server_error()
        || s == StatusCode::REQUEST_TIMEOUT
        || s == StatusCode::TOO_MANY_REQUESTS
        || r.extensions().get::<ErrorCode>() == Some(&ErrorCode::InProgress);
    let sized = r.body().size_hint().exact().is_some_and(|n| n as usize <= MAX_KEPT);
    !about_the_moment && sized
}

/// Keeps the answer under the key (or frees the key), then gives it.
async fn keep(keys: &Keys, scope: String, key: String, target: String, seen: &Arc<Mutex<Seen>>, response: Response) -> Response {
    let broke_off = seen.lock().unwrap_or_else(|p| p.into_inner()).failed;
    if broke_off || !worth_keeping(&response) {
        let store = keys.store.clone();
        if let Err(e) = store.call(move |c| crate::store::release_key(c, &scope, &key)).await {
            tracing::warn!(error = %e, "an Idempotency-Key could not be freed");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_KEPT).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, format!("reading the answer: {e}"))
                .into_response();
        }
    };
    let body = {
        let s = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
        BodySeen { len: s.len, sha256: s.sha.finalize().into(), complete: s.complete }
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(n, _)| !NOT_KEPT.contains(&n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let subject = parts.extensions.get::<AuditSubject>().map(|s| serde_json::to_string(s).expect("a subject serialises"));
    let kept = KeptAnswer { target, body, status: parts.status.as_u16(), headers, response: bytes.to_vec(), subject };
    let store = keys.store.clone();
    // The answer leaves only once it is kept: a retry after a lost answer must find it.
    if let Err(e) = store.call(move |c| crate::store::keep_answer(c, &scope, &key, &kept)).await {
        return ApiError::from(crate::runtime::RuntimeError::from(e)).into_response();
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen_of(body: &[u8], complete: bool) -> BodySeen {
        BodySeen { len: body.len() as u64, sha256: Sha256::digest(body).into(), complete }
    }

    #[tokio::test]
    async fn a_retry_body_is_compared_as_far_as_the_first_was_read() {
        let full = seen_of(b"{\"name\":\"a\"}", true);
        assert!(same_body(Body::from("{\"name\":\"a\"}"), &full).await.unwrap());
        assert!(!same_body(Body::from("{\"name\":\"b\"}"), &full).await.unwrap());
        assert!(!same_body(Body::from("{\"name\":\"a\"} "), &full).await.unwrap());
        assert!(!same_body(Body::from("{\"name\""), &full).await.unwrap());
        // The first handler refused after four bytes: what came after them did not matter.
        let early = seen_of(b"abcd", false);
        assert!(same_body(Body::from("abcdefgh"), &early).await.unwrap());
        assert!(!same_body(Body::from("abcxefgh"), &early).await.unwrap());
        assert!(same_body(Body::from(""), &seen_of(b"", false)).await.unwrap());
    }

    #[test]
    fn streams_upgrades_and_in_progress_are_not_kept() {
        let json = |s: StatusCode| (s, axum::Json(serde_json::json!({}))).into_response();
        assert!(worth_keeping(&json(StatusCode::CREATED)));
        assert!(worth_keeping(&json(StatusCode::CONFLICT)));
        assert!(!worth_keeping(&json(StatusCode::INTERNAL_SERVER_ERROR)));
        assert!(!worth_keeping(&json(StatusCode::SWITCHING_PROTOCOLS)));
        let busy = ApiError::state(ErrorCode::InProgress, "busy").into_response();
        assert!(!worth_keeping(&busy));
        let stream = Response::new(Body::from_stream(futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from("x"))])));
        assert!(!worth_keeping(&stream));
    }
}
