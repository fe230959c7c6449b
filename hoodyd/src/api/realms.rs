//! Realms and tokens (administrators create; a token sees its own realms).

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::body::{JsonBody, MAX_JSON_BODY, parse, read_capped};
use super::error::{ApiResult, data};
use super::{AppState, Caller};
use crate::auth::manage::{CreateRealm, CreateToken};

#[utoipa::path(
    get,
    path = "/api/v1/realms",
    tag = "realms",
    operation_id = "realm_list",
    responses((status = 200, description = "The realms the caller sees", body = hoody_api::envelope::Data<hoody_api::realms::Realms>))
)]
pub async fn list(State(st): State<AppState>, Extension(caller): Extension<Caller>) -> ApiResult<impl IntoResponse> {
    let realms = st.auth.list_realms(&caller).await?;
    let ids: Vec<&str> = realms.iter().map(|r| r.id.as_str()).collect();
    Ok(data(hoody_api::realms::Realms { realm_ids: ids.into_iter().map(str::to_owned).collect(), realms }))
}

/// `POST /realms`, with an optional body `{"description": …}`.
#[utoipa::path(
    post,
    path = "/api/v1/realms",
    tag = "realms",
    operation_id = "realm_create",
    request_body(content = Option<hoody_api::realms::CreateRealm>, description = "Optional"),
    responses((status = 201, description = "Created", body = hoody_api::envelope::Data<hoody_api::realms::Realm>))
)]
pub async fn create(State(st): State<AppState>, req: axum::extract::Request) -> ApiResult<impl IntoResponse> {
    let bytes = read_capped(req, MAX_JSON_BODY).await?;
    let req: CreateRealm = if bytes.iter().all(u8::is_ascii_whitespace) { CreateRealm::default() } else { parse(&bytes)? };
    Ok((StatusCode::CREATED, data(st.auth.create_realm(req).await?)))
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "realms",
    operation_id = "token_create",
    request_body = hoody_api::realms::CreateToken,
    responses((status = 201, description = "Created; the only answer that carries its secret", body = hoody_api::envelope::Data<hoody_api::realms::IssuedToken>))
)]
pub async fn create_token(State(st): State<AppState>, JsonBody(req): JsonBody<CreateToken>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, data(st.auth.create_token(req).await?)))
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "realms",
    operation_id = "token_list",
    params(hoody_api::query::TokensQuery),
    responses((status = 200, description = "Every token (never a secret), oldest first (the next page's cursor in X-Next-Cursor)", body = hoody_api::envelope::Data<Vec<hoody_api::realms::Token>>))
)]
pub async fn list_tokens(
    State(st): State<AppState>,
    super::query::Query(q): super::query::Query<hoody_api::query::TokensQuery>,
) -> ApiResult<axum::response::Response> {
    let all: Vec<_> = st
        .auth
        .list_tokens()
        .await?
        .iter()
        .map(|t| t.view())
        .filter(|t| q.realm.as_ref().is_none_or(|r| t.realm_ids.contains(r)))
        .collect();
    let (page, next) = super::pages::page(all, |t| super::pages::key(&t.created_at, &t.id), q.after.as_deref(), q.limit)?;
    Ok(super::pages::answer(page, next))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "realms",
    operation_id = "token_delete",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, description = "Revoked", body = hoody_api::envelope::Data<hoody_api::common::Deleted>))
)]
pub async fn delete_token(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    st.auth.delete_token(&id).await?;
    Ok(data(hoody_api::common::Deleted::id(id)))
}
