//! Container endpoints.

use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::body::JsonBody;
use super::error::{ApiError, ApiResult, data};
use super::pages;
use super::query::{Lifecycle, Query};
use super::subject::AuditSubject;
use super::{AppState, Caller, view};
use crate::runtime::lifecycle::Fork;
use hoody_api::common::Deleted;
use hoody_api::containers::Usage;
use hoody_api::query::ContainersQuery;

use crate::model::{CreateContainer, Status};

#[utoipa::path(
    post,
    path = "/api/v1/containers",
    tag = "containers",
    operation_id = "container_create",
    params(hoody_api::query::Lifecycle),
    request_body = hoody_api::containers::CreateContainer,
    responses((status = 201, description = "Created (and started with ?start=true)", body = hoody_api::envelope::Data<hoody_api::containers::Container>))
)]
pub async fn create(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<Lifecycle>,
    JsonBody(mut req): JsonBody<CreateContainer>,
) -> Response {
    let asked = AuditSubject { container: req.name.clone(), realm_ids: req.realm_ids.clone(), ..Default::default() };
    let created = async {
        st.auth.check_create_realms(&caller, &mut req.realm_ids).await?;
        let fork = source(&st, &caller, &mut req).await?;
        Ok::<_, ApiError>(st.rt.create_from(req, q.start, fork).await?)
    };
    let (mut answer, subject) = match created.await {
        Ok(c) => {
            let subject = AuditSubject { container: c.id.clone(), realm_ids: c.realm_ids.clone(), ..Default::default() };
            ((StatusCode::CREATED, data(view::container(&c, None))).into_response(), subject)
        }
        Err(e) => (e.into_response(), asked),
    };
    answer.extensions_mut().insert(subject);
    answer
}

/// What `source` asks for: a fork of a snapshot of a container the caller may see (checked
/// before anything is made), or an image.
async fn source(st: &AppState, caller: &Caller, req: &mut hoody_api::containers::CreateContainer) -> Result<Option<Fork>, ApiError> {
    let Some(src) = req.source.take() else { return Ok(None) };
    if let Some(image) = src.image {
        if src.container.is_some() || src.snapshot.is_some() {
            return Err(ApiError::invalid("source is an image or a container's snapshot, not both").field("source"));
        }
        if !req.image.is_empty() && req.image != image {
            return Err(ApiError::invalid("image and source.image name different images").field("source.image"));
        }
        req.image = image;
        return Ok(None);
    }
    let (Some(container), Some(snapshot)) = (src.container, src.snapshot) else {
        return Err(
            ApiError::invalid("a fork names the container and its snapshot: {\"container\": ID, \"snapshot\": NAME}").field("source")
        );
    };
    let source = st.rt.resolve(&container, &caller.filter).await?;
    st.rt.snapshot_exists(&source, &snapshot).await?;
    Ok(Some(Fork { source, snapshot }))
}

#[utoipa::path(
    get,
    path = "/api/v1/containers",
    tag = "containers",
    operation_id = "container_list",
    params(hoody_api::query::ContainersQuery),
    responses((status = 200, description = "The containers the caller sees, oldest first (the next page's cursor in X-Next-Cursor)", body = hoody_api::envelope::Data<Vec<hoody_api::containers::Container>>))
)]
pub async fn list(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ContainersQuery>,
) -> ApiResult<Response> {
    let all: Vec<_> = st
        .rt
        .list(&caller.filter)
        .await?
        .into_iter()
        .filter(|c| q.status.is_none_or(|s| c.status == s))
        .filter(|c| q.realm.as_ref().is_none_or(|r| c.realm_ids.contains(r)))
        .filter(|c| q.image.as_ref().is_none_or(|i| &c.image == i))
        .collect();
    let (page, next) = pages::page(all, |c| pages::key(&c.created_at, &c.id), q.after.as_deref(), q.limit)?;
    Ok(pages::answer(page.iter().map(|c| view::container(c, None)).collect::<Vec<_>>(), next))
}

#[utoipa::path(
    get,
    path = "/api/v1/containers/{id}",
    tag = "containers",
    operation_id = "container_get",
    params(("id" = String, Path, description = "Container id or name")),
    responses((status = 200, description = "The container with its usage", body = hoody_api::envelope::Data<hoody_api::containers::Container>))
)]
pub async fn get(State(st): State<AppState>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(view::container(&c, usage(&st, &c).await)))
}

/// The cgroup's numbers (while it runs) and the storage's (where the pool counts them).
async fn usage(st: &AppState, c: &crate::model::Container) -> Option<Usage> {
    let cgroup = if c.status == Status::Running { st.rt.cgroup_usage(&c.id).await } else { None };
    let disk = st.rt.disk_usage(c).await;
    let log = st.rt.log_path(&c.id);
    let mut log_bytes = 0;
    for p in [crate::helper::shim::rotated(&log), log] {
        log_bytes += tokio::fs::symlink_metadata(&p).await.map(|m| m.len()).unwrap_or(0);
    }
    Some(view::usage(cgroup, disk, log_bytes))
}

fn timeout(q: &Lifecycle) -> Option<Duration> {
    q.timeout.map(Duration::from_secs)
}

#[utoipa::path(
    post,
    path = "/api/v1/containers/{id}/start",
    tag = "containers",
    operation_id = "container_start",
    params(("id" = String, Path, description = "Container id or name")),
    responses((status = 200, description = "Running", body = hoody_api::envelope::Data<hoody_api::containers::Container>))
)]
pub async fn start(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(view::container(&st.rt.start(&c.id).await?, None)))
}

#[utoipa::path(
    post,
    path = "/api/v1/containers/{id}/stop",
    tag = "containers",
    operation_id = "container_stop",
    params(("id" = String, Path, description = "Container id or name"), hoody_api::query::Lifecycle),
    responses((status = 200, description = "Stopped", body = hoody_api::envelope::Data<hoody_api::containers::Container>))
)]
pub async fn stop(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<Lifecycle>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(view::container(&st.rt.stop(&c.id, timeout(&q)).await?, None)))
}

#[utoipa::path(
    post,
    path = "/api/v1/containers/{id}/restart",
    tag = "containers",
    operation_id = "container_restart",
    params(("id" = String, Path, description = "Container id or name"), hoody_api::query::Lifecycle),
    responses((status = 200, description = "Running again", body = hoody_api::envelope::Data<hoody_api::containers::Container>))
)]
pub async fn restart(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<Lifecycle>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(view::container(&st.rt.restart(&c.id, timeout(&q)).await?, None)))
}

#[utoipa::path(
    patch,
    path = "/api/v1/containers/{id}",
    tag = "containers",
    operation_id = "container_update",
    params(("id" = String, Path, description = "Container id or name")),
    request_body = hoody_api::containers::UpdateContainer,
    responses((status = 200, description = "The container as changed", body = hoody_api::envelope::Data<hoody_api::containers::Container>))
)]
pub async fn update(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<crate::model::UpdateContainer>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let c = st.rt.update(&c.id, req).await?;
    Ok(data(view::container(&c, usage(&st, &c).await)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/containers/{id}",
    tag = "containers",
    operation_id = "container_delete",
    params(("id" = String, Path, description = "Container id or name"), hoody_api::query::Lifecycle),
    responses((status = 200, description = "Deleted", body = hoody_api::envelope::Data<hoody_api::common::Deleted>))
)]
pub async fn delete(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<Lifecycle>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let gone = st.rt.delete(&c.id, q.force).await?;
    Ok(data(Deleted { id: Some(gone.id), name: Some(gone.name), deleted: true }))
}
