//! Snapshot endpoints of a container.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::body::JsonBody;
use super::error::{ApiResult, data};
use super::query::Query;
use super::{AppState, Caller, view};

use hoody_api::common::Deleted;
use hoody_api::query::DiffQuery;
use hoody_api::snapshots::CreateSnapshot;

#[utoipa::path(
    post,
    path = "/api/v1/containers/{id}/snapshots",
    tag = "snapshots",
    operation_id = "snapshot_create",
    params(("id" = String, Path, description = "Container id or name")),
    request_body = hoody_api::snapshots::CreateSnapshot,
    responses((status = 201, description = "Taken", body = hoody_api::envelope::Data<hoody_api::snapshots::Snapshot>))
)]
pub async fn create(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CreateSnapshot>,
) -> ApiResult<impl IntoResponse> {
    crate::ids::validate_name("alias", &req.alias)?;
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok((StatusCode::CREATED, data(st.rt.create_snapshot(&c, &req.alias, false).await?)))
}

#[utoipa::path(
    get,
    path = "/api/v1/containers/{id}/snapshots",
    tag = "snapshots",
    operation_id = "snapshot_list",
    params(("id" = String, Path, description = "Container id or name")),
    responses((status = 200, description = "Oldest first", body = hoody_api::envelope::Data<Vec<hoody_api::snapshots::Snapshot>>))
)]
pub async fn list(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(st.rt.list_snapshots(&c).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/containers/{id}/snapshots/{name}",
    tag = "snapshots",
    operation_id = "snapshot_delete",
    params(("id" = String, Path, description = "Container id or name"), ("name" = String, Path, description = "Snapshot name")),
    responses((status = 200, description = "Deleted", body = hoody_api::envelope::Data<hoody_api::common::Deleted>))
)]
pub async fn delete(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    st.rt.delete_snapshot(&c, &name).await?;
    Ok(data(Deleted::name(name)))
}

/// `PATCH …/snapshots/{name}`: restore the container to the snapshot.
#[utoipa::path(
    patch,
    path = "/api/v1/containers/{id}/snapshots/{name}",
    tag = "snapshots",
    operation_id = "snapshot_restore",
    params(("id" = String, Path, description = "Container id or name"), ("name" = String, Path, description = "Snapshot name")),
    responses((status = 200, description = "Restored (a running container is stopped, restored and started again)", body = hoody_api::envelope::Data<hoody_api::containers::Restored>))
)]
pub async fn restore(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let c = st.rt.restore_snapshot(&c, &name).await?;
    Ok(data(hoody_api::containers::Restored { restored: name, container: view::container(&c, None) }))
}

#[utoipa::path(
    get,
    path = "/api/v1/containers/{id}/snapshots/{name}/diff",
    tag = "snapshots",
    operation_id = "snapshot_diff",
    params(("id" = String, Path, description = "Container id or name"), ("name" = String, Path, description = "Snapshot name"), hoody_api::query::DiffQuery),
    responses((status = 200, description = "What changed since the snapshot", body = hoody_api::envelope::Data<hoody_api::snapshots::Diff>))
)]
pub async fn diff(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(st.rt.diff(&c, &name, q.to.as_deref()).await?))
}
