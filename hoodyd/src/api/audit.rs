//! `GET /audit` (administrators: every record; a token: its realms') and `GET /audit/verify`.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::response::IntoResponse;

use super::error::{ApiError, ApiResult, data};
use super::query::Query;
use super::{AppState, Caller};
use crate::audit::record::Record;

/// Records answered at most, and by default.
const MAX_LIMIT: usize = 10_000;
const DEFAULT_LIMIT: usize = 1_000;

use hoody_api::query::{AuditQuery, Order};

/// The earliest record time wanted, in the log's own format (which sorts as text).
fn since_bound(s: &str) -> Result<String, ApiError> {
    let t = match humantime::parse_rfc3339_weak(s) {
        Ok(t) => t,
        Err(_) => {
            let span = humantime::parse_duration(s)
                .map_err(|_| ApiError::bad_request(format!("since: {s:?} is neither an RFC 3339 time nor a span such as 15m")))?;
            std::time::SystemTime::now().checked_sub(span).unwrap_or(std::time::UNIX_EPOCH)
        }
    };
    Ok(humantime::format_rfc3339_millis(t).to_string())
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    operation_id = "audit_list",
    params(hoody_api::query::AuditQuery),
    responses((status = 200, description = "Records, oldest first", body = hoody_api::envelope::Data<Vec<hoody_api::audit::record::Record>>))
)]
pub async fn list(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::response::Response> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!("limit: must be 1 to {MAX_LIMIT}")));
    }
    let since = q.since.as_deref().map(since_bound).transpose()?;
    // A container is matched by what the records hold: its id (or the reference given, when
    // the request named none the caller could see).
    let mut container_keys: Vec<String> = vec![];
    if let Some(c) = &q.container {
        container_keys.push(c.clone());
        for (id, realms) in st.auth.locate(c).await? {
            if caller.may_see(&realms) {
                container_keys.push(id);
            }
        }
    }
    let realms = caller.token.as_ref().map(|t| t.realms.clone());
    let log = Arc::clone(&st.audit);
    let after = q.after;
    let records = tokio::task::spawn_blocking(move || {
        log.read(|r: &Record| {
            after.is_none_or(|a| r.seq > a)
                && since.as_ref().is_none_or(|s| r.time.as_str() >= s.as_str())
                && (container_keys.is_empty() || r.container.as_ref().is_some_and(|c| container_keys.contains(c)))
                && realms.as_ref().is_none_or(|rs| r.realm_ids.iter().any(|x| rs.contains(x)))
        })
    })
    .await
    .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, crate::api::error::ErrorCode::Internal, e.to_string()))?
    .map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            crate::api::error::ErrorCode::Internal,
            format!("reading the audit log: {e}"),
        )
    })?;
    // Oldest first, a page at a time; or the latest, newest first.
    Ok(match q.order.unwrap_or_default() {
        Order::Asc => {
            let more = records.len() > limit;
            let page: Vec<Record> = records.into_iter().take(limit).collect();
            let next = if more { page.last().map(|r| r.seq.to_string()) } else { None };
            super::pages::answer(page, next)
        }
        Order::Desc => {
            let skip = records.len().saturating_sub(limit);
            let page: Vec<Record> = records.into_iter().skip(skip).rev().collect();
            data(page).into_response()
        }
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "audit",
    operation_id = "audit_verify",
    responses((status = 200, description = "The hash chain checked", body = hoody_api::envelope::Data<hoody_api::audit::verify::Report>))
)]
pub async fn verify(State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    let log = Arc::clone(&st.audit);
    let report = tokio::task::spawn_blocking(move || log.verify())
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, crate::api::error::ErrorCode::Internal, e.to_string()))?
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                crate::api::error::ErrorCode::Internal,
                format!("reading the audit log: {e}"),
            )
        })?;
    Ok(data(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_times_and_spans() {
        assert_eq!(since_bound("2026-01-02T03:04:05Z").unwrap(), "2026-01-02T03:04:05.000Z");
        let recent = since_bound("15m").unwrap();
        assert!(recent.as_str() > "2026-01-01" && recent.ends_with('Z'), "{recent}");
        assert_eq!(since_bound("yesterday-ish").unwrap_err().status.as_u16(), 400);
    }
}
