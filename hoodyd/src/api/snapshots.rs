//! Snapshot endpoints of a container.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::body::JsonBody;
use super::error::{ApiError, ApiResult, data};
use super::query::Query;
use super::subject::AuditSubject;
use super::{AppState, Caller, view};

use hoody_api::common::Deleted;
use hoody_api::containers::Restored;
use hoody_api::operations::{Accepted, OperationKind, OperationResult};
use hoody_api::query::{DiffQuery, PageQuery, RestoreQuery};
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
) -> Response {
    let made = async {
        crate::ids::validate_name("alias", &req.alias)?;
        let c = st.rt.resolve(&id, &caller.filter).await?;
        Ok::<_, ApiError>((StatusCode::CREATED, data(st.rt.create_snapshot(&c, &req.alias, false).await?)))
    };
    let mut answer = made.await.into_response();
    // Taken or refused, the record names the snapshot asked for.
    answer.extensions_mut().insert(AuditSubject { container: id, snapshot: Some(req.alias), ..Default::default() });
    answer
}

#[utoipa::path(
    get,
    path = "/api/v1/containers/{id}/snapshots",
    tag = "snapshots",
    operation_id = "snapshot_list",
    params(("id" = String, Path, description = "Container id or name"), hoody_api::query::PageQuery),
    responses((status = 200, description = "Oldest first (the next page's cursor in X-Next-Cursor)", body = hoody_api::envelope::Data<Vec<hoody_api::snapshots::Snapshot>>))
)]
pub async fn list(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Response> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let all = st.rt.list_snapshots(&c).await?;
    let (page, next) = super::pages::page(all, |s| super::pages::key(&s.created_at, &s.name), q.after.as_deref(), q.limit)?;
    Ok(super::pages::answer(page, next))
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
    params(hoody_api::query::RestoreQuery),
    responses(
        (status = 200, description = "Restored (a running container is stopped, restored and started again)", body = hoody_api::envelope::Data<hoody_api::containers::Restored>),
        (status = 202, description = "With ?async=true: the operation that restores (GET /operations/{operation_id})", body = hoody_api::envelope::Data<hoody_api::operations::Accepted>)
    )
)]
pub async fn restore(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<RestoreQuery>,
) -> ApiResult<Response> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    if q.in_background {
        // What the synchronous request would refuse at once is refused here too.
        st.rt.snapshot_exists(&c, &name).await?;
        let claim = st.rt.claim_restore(&c.id)?;
        let (op, handle) = st.operations.start(OperationKind::SnapshotRestore, &name, Some((&c.id, &c.realm_ids)), None);
        let rt = st.rt.clone();
        tokio::spawn(async move {
            let r = rt.restore_claimed(claim, &c, &name).await;
            let r = r.map(|c| OperationResult::Restored(Box::new(Restored { restored: name, container: view::container(&c, None) })));
            handle.finish(r.map_err(|e| ApiError::from(e).body()));
        });
        return Ok((StatusCode::ACCEPTED, data(Accepted { operation: op })).into_response());
    }
    let c = st.rt.restore_snapshot(&c, &name).await?;
    Ok(data(Restored { restored: name, container: view::container(&c, None) }).into_response())
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
