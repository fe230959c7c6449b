//! Liveness and metrics.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use super::error::{ApiResult, data};
use crate::model::Status;
use crate::store::ContainerFilter;

pub async fn health(State(st): State<AppState>) -> impl IntoResponse {
    data(serde_json::json!({
        "status": "ok",
        "uptime_seconds": st.started.elapsed().as_secs(),
        "daemon": &*st.info,
    }))
}

pub async fn metrics(State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    let all = st.rt.list(&ContainerFilter::default()).await?;
    let images = st.rt.list_images().await?;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP hoody_containers Containers known to the daemon, by status.\n# TYPE hoody_containers gauge");
    for s in [Status::Created, Status::Running, Status::Stopped] {
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
