//! Test hook `HOODY_ANSWER_LOG=FILE` (feature `test-hooks` only): every JSON answer is appended
//! to FILE as one line `{"method", "route", "status", "body"}` — `route` is the matched path
//! template (`/api/v1/containers/{id}`), absent for the fallback — so that the end-to-end suite
//! can check each answer it got against docs/openapi.json.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

fn file() -> Option<&'static PathBuf> {
    static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    FILE.get_or_init(|| crate::test_hooks::var("HOODY_ANSWER_LOG").filter(|v| !v.is_empty()).map(PathBuf::from)).as_ref()
}

pub async fn record(req: Request, next: Next) -> Response {
    let Some(path) = file() else { return next.run(req).await };
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let resp = next.run(req).await;
    let json = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // JSON answers are whole bodies (streams are text/plain or upgrades).
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| format!("not JSON: {e}").into());
    let mut line = serde_json::to_vec(&serde_json::json!({
        "method": method, "route": route, "status": parts.status.as_u16(), "body": body,
    }))
    .expect("serialises");
    line.push(b'\n');
    let path = path.clone();
    let _ = tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| f.write_all(&line))
    })
    .await;
    Response::from_parts(parts, Body::from(bytes))
}
