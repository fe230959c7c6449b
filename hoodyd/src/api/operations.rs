//! `GET /operations`, `GET /operations/{operation_id}`, `DELETE /operations/{operation_id}`:
//! following (and cancelling) the background work that `?async=true` began.

use axum::extract::{Extension, Path, State};
use axum::response::IntoResponse;

use super::error::{ApiError, ApiResult, data};
use super::{AppState, Caller};
use crate::operations::CancelError;

#[utoipa::path(
    get,
    path = "/api/v1/operations",
    tag = "operations",
    operation_id = "operation_list",
    responses((status = 200, description = "The operations the caller may see, oldest first (finished ones are kept an hour)", body = hoody_api::envelope::Data<Vec<hoody_api::operations::Operation>>))
)]
pub async fn list(State(st): State<AppState>, Extension(caller): Extension<Caller>) -> ApiResult<impl IntoResponse> {
    Ok(data(st.operations.list(&caller.filter.realms)))
}

#[utoipa::path(
    get,
    path = "/api/v1/operations/{operation_id}",
    tag = "operations",
    operation_id = "operation_get",
    params(("operation_id" = String, Path, description = "Operation id")),
    responses((status = 200, description = "The operation: its status, progress, and once done its result or error", body = hoody_api::envelope::Data<hoody_api::operations::Operation>))
)]
pub async fn get(State(st): State<AppState>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    st.operations.get(&id, &caller.filter.realms).map(data).ok_or_else(|| ApiError::not_found(format!("operation {id:?} not found")))
}

#[utoipa::path(
    delete,
    path = "/api/v1/operations/{operation_id}",
    tag = "operations",
    operation_id = "operation_cancel",
    params(("operation_id" = String, Path, description = "Operation id")),
    responses((status = 200, description = "Cancelling: a running import stops and ends `cancelled` (what it wrote removed); a restore cannot be cancelled (409)", body = hoody_api::envelope::Data<hoody_api::operations::Operation>))
)]
pub async fn cancel(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    match st.operations.cancel(&id, &caller.filter.realms) {
        Ok(op) => Ok(data(op)),
        Err(e @ CancelError::NotFound(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e) => Err(ApiError::conflict(e.to_string())),
    }
}
