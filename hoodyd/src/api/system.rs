//! Liveness and metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use super::error::{ApiResult, data};
use super::query::{Lifecycle, Query};

#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "system",
    operation_id = "health",
    responses((status = 200, description = "The daemon is up", body = hoody_api::envelope::Data<hoody_api::system::Health>))
)]
pub async fn health(State(st): State<AppState>) -> impl IntoResponse {
    data(hoody_api::system::Health {
        status: "ok".into(),
        uptime_seconds: st.started.elapsed().as_secs(),
        daemon: (*st.info).clone(),
        autostart: st.rt.autostart_report(),
    })
}

/// `GET /openapi.json`: the API's OpenAPI 3.1 document (the same for every caller).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "system",
    operation_id = "openapi",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object))
)]
pub async fn openapi() -> impl IntoResponse {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ([(header::CONTENT_TYPE, "application/json")], DOC.get_or_init(super::openapi::json).as_str())
}

/// `POST /system/shutdown[?timeout=S]`: the host is going down. Stops every container
/// gracefully (SIGTERM, `cgroup.kill` after the timeout), in parallel, then the daemon exits.
#[utoipa::path(
    post,
    path = "/api/v1/system/shutdown",
    tag = "system",
    operation_id = "system_shutdown",
    params(hoody_api::query::Lifecycle),
    responses((status = 200, description = "Every container stopped; the daemon exits", body = hoody_api::envelope::Data<hoody_api::system::ShutdownReport>))
)]
pub async fn shutdown(State(st): State<AppState>, Query(q): Query<Lifecycle>) -> ApiResult<impl IntoResponse> {
    let timeout = q.timeout.map(std::time::Duration::from_secs).unwrap_or(st.rt.stop_timeout());
    let report = st.rt.shutdown_all(timeout, st.parallel).await?;
    // Open requests (this one included) finish; then the daemon exits.
    let _ = st.shutdown.send(true);
    Ok(data(report))
}
