//! Snapshot endpoints of a container.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::body::JsonBody;
use super::error::{ApiResult, data};
use super::query::Query;
use super::{AppState, Caller, view};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshot {
    /// The snapshot's name (`clean-slate`).
    #[serde(alias = "name")]
    pub alias: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// Compare with this snapshot instead of the live root.
    pub to: Option<String>,
}

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

pub async fn list(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(st.rt.list_snapshots(&c).await?))
}

pub async fn delete(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    st.rt.delete_snapshot(&c, &name).await?;
    Ok(data(serde_json::json!({ "name": name, "deleted": true })))
}

/// `PATCH …/snapshots/{name}`: restore the container to the snapshot.
pub async fn restore(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let c = st.rt.restore_snapshot(&c, &name).await?;
    Ok(data(serde_json::json!({ "restored": name, "container": view::container(&c, None) })))
}

pub async fn diff(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(st.rt.diff(&c, &name, q.to.as_deref()).await?))
}
