//! Container endpoints.

use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::body::JsonBody;
use super::error::{ApiResult, data};
use super::query::{Lifecycle, Query};
use super::{AppState, Caller, view};
use crate::model::{CreateRequest, Status};

pub async fn create(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<Lifecycle>,
    JsonBody(mut req): JsonBody<CreateRequest>,
) -> ApiResult<impl IntoResponse> {
    st.auth.check_create_realms(&caller, &mut req.realm_ids).await?;
    let c = st.rt.create(req, q.start).await?;
    Ok((StatusCode::CREATED, data(view::container(&c, None))))
}

pub async fn list(State(st): State<AppState>, Extension(caller): Extension<Caller>) -> ApiResult<impl IntoResponse> {
    let all = st.rt.list(&caller.filter).await?;
    Ok(data(all.iter().map(|c| view::container(c, None)).collect::<Vec<_>>()))
}

pub async fn get(State(st): State<AppState>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(view::container(&c, usage(&st, &c).await)))
}

/// The cgroup's numbers (while it runs) and the storage's (where the pool counts them).
async fn usage(st: &AppState, c: &crate::model::Container) -> Option<view::UsageView> {
    let cgroup = (c.status == Status::Running).then(|| st.rt.cgroups.usage(&c.id));
    let disk = st.rt.disk_usage(c).await;
    let log = st.rt.log_path(&c.id);
    let mut log_bytes = 0;
    for p in [crate::helper::shim::rotated(&log), log] {
        log_bytes += tokio::fs::symlink_metadata(&p).await.map(|m| m.len()).unwrap_or(0);
    }
    Some(view::UsageView { cgroup, disk, log_bytes })
}

fn timeout(q: &Lifecycle) -> Option<Duration> {
    q.timeout.map(Duration::from_secs)
}

pub async fn start(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(view::container(&st.rt.start(&c.id).await?, None)))
}

pub async fn stop(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<Lifecycle>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(view::container(&st.rt.stop(&c.id, timeout(&q)).await?, None)))
}

pub async fn restart(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<Lifecycle>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(view::container(&st.rt.restart(&c.id, timeout(&q)).await?, None)))
}

pub async fn update(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<crate::model::UpdateRequest>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let c = st.rt.update(&c.id, req).await?;
    Ok(data(view::container(&c, usage(&st, &c).await)))
}

pub async fn delete(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<Lifecycle>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let gone = st.rt.delete(&c.id, q.force).await?;
    Ok(data(serde_json::json!({ "id": gone.id, "name": gone.name, "deleted": true })))
}
