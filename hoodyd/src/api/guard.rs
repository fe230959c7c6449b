//! The gate every request passes: who is calling (peer credentials, bearer token), whether it
//! may do this (scopes, administrators), whether the container it names is one it may see — and,
//! whatever the answer, an audit record appended before the answer leaves.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::{error, warn};

use super::AppState;
use super::body::BodyDeadline;
use super::error::{ApiError, Denied};
use super::server::Peer;
use crate::audit::record::Record;
use crate::auth::Caller;
use crate::auth::scopes::{self, Need};
use crate::runtime::RuntimeError;

use super::subject::AuditSubject;

/// The header that ties an answer to its audit record.
pub const REQUEST_ID: &str = "x-request-id";

/// The caller's `X-Request-Id` when it is a sensible one (1–128 visible ASCII characters), else
/// a fresh id.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(crate::ids::new_id)
}

/// What the gate learnt about a request, for its audit record.
#[derive(Default)]
struct Seen {
    token_id: Option<String>,
    realm_ids: Vec<String>,
    container: Option<String>,
    snapshot: Option<String>,
    rule_id: Option<String>,
    /// The request was refused for who the caller is (401, 403, 404 for another realm's
    /// container).
    denied: bool,
}

/// Outcome of a request as the audit log names it.
fn outcome(status: StatusCode, denied: bool) -> &'static str {
    if denied && (status.is_client_error()) {
        "denied"
    } else if status.is_server_error() {
        "server_error"
    } else if status.is_client_error() {
        "client_error"
    } else {
        "ok"
    }
}

/// Decides and answers the request, noting in `seen` what the audit record needs.
async fn decide(st: &AppState, peer: Peer, mut req: Request, next: Next, seen: &mut Seen) -> Response {
    let authz = req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned());
    let caller = match st.auth.identify(peer, authz.as_deref()).await {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    seen.token_id = caller.token.as_ref().map(|t| t.id.clone());
    if let Some(t) = &caller.token {
        seen.realm_ids.clone_from(&t.realms);
    }
    match scopes::need(req.method(), req.uri().path()) {
        Need::Admin if !caller.is_admin() => {
            return ApiError::forbidden("administrators only: tokens may not do this").denied().into_response();
        }
        Need::Scope(s) if !caller.has(s) => {
            return ApiError::forbidden(format!("the token lacks the scope {}", s.as_str())).denied().into_response();
        }
        _ => {}
    }
    if let Some(r) = scopes::container_ref(req.uri().path()) {
        let found = match st.auth.locate(r).await {
            Ok(f) => f,
            Err(e) => return ApiError::from(e).into_response(),
        };
        let visible: Vec<&(String, Vec<String>)> = found.iter().filter(|(_, realms)| caller.may_see(realms)).collect();
        seen.container = Some(match visible.as_slice() {
            [(id, _)] => id.clone(),
            _ => r.to_owned(),
        });
        // Unknown and invisible containers get the same answer, before anything else about the
        // request (its body, its query) is looked at, so the answer cannot tell them apart.
        let unknown = || ApiError::from(RuntimeError::NotFound(r.to_owned()));
        if found.is_empty() {
            return unknown().into_response();
        }
        if caller.is_admin() {
            let mut realms: Vec<String> = visible.iter().flat_map(|(_, rs)| rs.iter().cloned()).collect();
            realms.sort();
            realms.dedup();
            seen.realm_ids = realms;
        } else if visible.is_empty() && !found.is_empty() {
            // Another realm's container: the very answer a container that does not exist gets.
            return unknown().denied().into_response();
        }
    }
    // Keys are the caller's own: the token's, or an administrator's uid's.
    let scope = match &caller.token {
        Some(t) => format!("token:{}", t.id),
        None => format!("uid:{}", caller.peer.uid),
    };
    req.extensions_mut().insert::<Caller>(caller);
    req.extensions_mut().insert(BodyDeadline(tokio::time::Instant::now() + st.request_timeout));
    super::idempotency::run(&st.keys, scope, req, next).await
}

/// Refuses a request that would change state while the state file system has less free space
/// than the reserve: the database, the audit log and the console logs live there, and what is
/// left is kept for recording answers (reads, refusals) and for the daemon's own bookkeeping.
/// Checked on every such request, so service resumes as soon as space returns.
/// What frees space or stops work stays allowed: deletes, stops and the daemon's shutdown.
fn below_reserve(st: &AppState, method: &axum::http::Method, path: &str) -> Option<ApiError> {
    use axum::http::Method;
    let relieves = *method == Method::DELETE || path.ends_with("/stop") || path.ends_with("/system/shutdown");
    if st.state_reserve == 0 || matches!(*method, Method::GET | Method::HEAD) || relieves {
        return None;
    }
    let vfs = nix::sys::statvfs::statvfs(&st.state_dir).ok()?;
    let free = vfs.blocks_available() as u64 * vfs.fragment_size() as u64;
    (free < st.state_reserve).then(|| {
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            crate::api::error::ErrorCode::InsufficientStorage,
            format!(
                "the state file system ({}) has {} free, below the reserve of {}: nothing can be changed until space is freed there",
                st.state_dir.display(),
                crate::limits::format_size(free),
                crate::limits::format_size(st.state_reserve)
            ),
        )
    })
}

pub async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let time = crate::time::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_owned());
    let metric_method = method.clone();
    let request_id = request_id(&req);
    let mut seen = Seen::default();
    let (peer_uid, peer_pid, response) = match req.extensions().get::<Peer>().copied() {
        None => (u32::MAX, None, ApiError::forbidden("no peer credentials on this connection").denied().into_response()),
        Some(peer) => match below_reserve(&st, req.method(), &path) {
            Some(e) => (peer.uid, peer.pid, e.into_response()),
            None => (peer.uid, peer.pid, decide(&st, peer, req, next, &mut seen).await),
        },
    };
    let status = response.status();
    seen.denied = response.extensions().get::<Denied>().is_some();
    seen.snapshot = crate::auth::scopes::snapshot_ref(&path).map(str::to_owned);
    seen.rule_id = crate::auth::scopes::rule_ref(&path).map(str::to_owned);
    if let Some(subject) = response.extensions().get::<AuditSubject>() {
        seen.container.get_or_insert_with(|| subject.container.clone());
        if seen.snapshot.is_none() {
            seen.snapshot.clone_from(&subject.snapshot);
        }
        if seen.rule_id.is_none() {
            seen.rule_id.clone_from(&subject.rule_id);
        }
        if seen.realm_ids.is_empty() {
            seen.realm_ids.clone_from(&subject.realm_ids);
        }
    }
    let record = Record {
        seq: 0,
        time,
        peer_uid,
        peer_pid,
        outcome: outcome(status, seen.denied).to_owned(),
        token_id: seen.token_id,
        realm_ids: seen.realm_ids,
        method,
        path,
        container: seen.container,
        snapshot: seen.snapshot,
        rule_id: seen.rule_id,
        status: status.as_u16(),
        duration_us: started.elapsed().as_micros() as u64,
        request_id: Some(request_id.clone()),
        prev: String::new(),
        hash: None,
    };
    if record.outcome == "denied" {
        warn!(uid = peer_uid, token = record.token_id.as_deref(), method = %record.method, path = %record.path, status = record.status, "request denied");
    }
    let mut response = match st.audit.append(record).await {
        Ok(_) => response,
        Err(e) => {
            // No answer leaves without its record.
            error!(error = %e, "the audit log cannot be written; refusing the request");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                crate::api::error::ErrorCode::AuditUnavailable,
                format!("the audit log cannot be written: {e}"),
            )
            .into_response()
        }
    };
    // Unmatched paths are one route: a scanner's paths must not become label values.
    st.metrics.request(route.as_deref().unwrap_or("unmatched"), &metric_method, status.as_u16(), started.elapsed().as_secs_f64());
    if let Ok(v) = header::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        assert_eq!(outcome(StatusCode::OK, false), "ok");
        assert_eq!(outcome(StatusCode::SWITCHING_PROTOCOLS, false), "ok");
        assert_eq!(outcome(StatusCode::NOT_FOUND, false), "client_error");
        assert_eq!(outcome(StatusCode::NOT_FOUND, true), "denied");
        assert_eq!(outcome(StatusCode::UNAUTHORIZED, true), "denied");
        assert_eq!(outcome(StatusCode::INTERNAL_SERVER_ERROR, false), "server_error");
    }
}
