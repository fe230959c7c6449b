//! Realms and tokens (administrators create; a token sees its own realms).

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::body::{JsonBody, MAX_JSON_BODY, parse, read_capped};
use super::error::{ApiResult, data};
use super::{AppState, Caller};
use crate::auth::manage::{CreateRealm, CreateToken};

pub async fn list(State(st): State<AppState>, Extension(caller): Extension<Caller>) -> ApiResult<impl IntoResponse> {
    let realms = st.auth.list_realms(&caller).await?;
    let ids: Vec<&str> = realms.iter().map(|r| r.id.as_str()).collect();
    Ok(data(serde_json::json!({ "realm_ids": ids, "realms": realms })))
}

/// `POST /realms`, with an optional body `{"description": …}`.
pub async fn create(State(st): State<AppState>, req: axum::extract::Request) -> ApiResult<impl IntoResponse> {
    let bytes = read_capped(req, MAX_JSON_BODY).await?;
    let req: CreateRealm = if bytes.iter().all(u8::is_ascii_whitespace) { CreateRealm::default() } else { parse(&bytes)? };
    Ok((StatusCode::CREATED, data(st.auth.create_realm(req).await?)))
}

pub async fn create_token(State(st): State<AppState>, JsonBody(req): JsonBody<CreateToken>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, data(st.auth.create_token(req).await?)))
}

pub async fn list_tokens(State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(data(st.auth.list_tokens().await?))
}

pub async fn delete_token(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    st.auth.delete_token(&id).await?;
    Ok(data(serde_json::json!({ "id": id, "deleted": true })))
}
