//! Liveness and metrics.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use super::error::{ApiResult, data};
use super::query::{Lifecycle, Query};
use crate::model::Status;
use crate::store::ContainerFilter;

pub async fn health(State(st): State<AppState>) -> impl IntoResponse {
    data(serde_json::json!({
        "status": "ok",
        "uptime_seconds": st.started.elapsed().as_secs(),
        "daemon": &*st.info,
        "autostart": st.rt.autostart_report(),
    }))
}

/// `POST /system/shutdown[?timeout=S]`: the host is going down. Stops every container
/// gracefully (SIGTERM, `cgroup.kill` after the timeout), in parallel, then the daemon exits.
pub async fn shutdown(State(st): State<AppState>, Query(q): Query<Lifecycle>) -> ApiResult<impl IntoResponse> {
    let timeout = q.timeout.map(std::time::Duration::from_secs).unwrap_or(st.rt.cfg.stop_timeout);
    let report = st.rt.shutdown_all(timeout, st.parallel).await?;
    // Open requests (this one included) finish; then the daemon exits.
    let _ = st.shutdown.send(true);
    Ok(data(report))
}

pub async fn metrics(State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    let all = st.rt.list(&ContainerFilter::default()).await?;
    let images = st.rt.list_images().await?;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP hoody_containers Containers known to the daemon, by status.\n# TYPE hoody_containers gauge");
    for s in [Status::Created, Status::Running, Status::Stopped, Status::Deleting] {
        let n = all.iter().filter(|c| c.status == s).count();
        let _ = writeln!(out, "hoody_containers{{status=\"{}\"}} {n}", s.as_str());
    }
    let _ = writeln!(out, "# HELP hoody_images Images in the storage pool.\n# TYPE hoody_images gauge\nhoody_images {}", images.len());
    let _ = writeln!(
        out,
        "# HELP hoody_uptime_seconds Seconds since the daemon started.\n# TYPE hoody_uptime_seconds counter\nhoody_uptime_seconds {}",
        st.started.elapsed().as_secs()
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
