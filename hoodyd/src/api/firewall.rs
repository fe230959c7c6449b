//! Firewall endpoints of a container.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hoody_net::rules::{Direction, EgressRequest, IngressRequest};

use super::body::JsonBody;
use super::error::{ApiResult, data};
use super::{AppState, Caller};

pub async fn show(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(st.rt.show_firewall(&c).await?))
}

pub async fn reset(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    st.rt.reset_firewall(&c).await?;
    let c = st.rt.get(&c.id).await?;
    Ok(data(st.rt.show_firewall(&c).await?))
}

/// Body of `PATCH /containers/{id}/firewall`: each field keeps its value unless given.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchRequest {
    pub policy: Option<String>,
    pub dns: Option<String>,
}

pub async fn patch(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PatchRequest>,
) -> ApiResult<impl IntoResponse> {
    let invalid = |field: &str, e: String| hoody_net::error::Invalid::new(field, e);
    let policy = req.policy.as_deref().map(str::parse::<crate::model::Egress>).transpose().map_err(|e| invalid("policy", e))?;
    let dns = req.dns.as_deref().map(str::parse::<hoody_net::policy::DnsMode>).transpose().map_err(|e| invalid("dns", e))?;
    let c = st.rt.resolve(&id, &caller.filter).await?;
    st.rt.patch_firewall(&c, policy, dns).await?;
    let c = st.rt.get(&c.id).await?;
    Ok(data(st.rt.show_firewall(&c).await?))
}

pub async fn add_egress(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<EgressRequest>,
) -> ApiResult<impl IntoResponse> {
    let spec = req.validate()?;
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok((StatusCode::CREATED, data(st.rt.add_rule(&c, spec).await?)))
}

pub async fn add_ingress(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<IngressRequest>,
) -> ApiResult<impl IntoResponse> {
    let spec = req.validate()?;
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok((StatusCode::CREATED, data(st.rt.add_rule(&c, spec).await?)))
}

async fn delete(
    st: AppState,
    caller: Caller,
    id: String,
    rule: String,
    dir: Direction,
) -> ApiResult<axum::Json<super::error::Data<serde_json::Value>>> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    st.rt.delete_rule(&c, &rule, dir).await?;
    Ok(data(serde_json::json!({ "id": rule, "deleted": true })))
}

pub async fn delete_egress(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, rule)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    delete(st, caller, id, rule, Direction::Egress).await
}

pub async fn delete_ingress(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, rule)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    delete(st, caller, id, rule, Direction::Ingress).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// denied, dns or allowed; all when absent.
    pub kind: Option<String>,
}

pub async fn events(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    super::query::Query(q): super::query::Query<EventsQuery>,
) -> ApiResult<impl IntoResponse> {
    if let Some(k) = q.kind.as_deref()
        && !["denied", "dns", "allowed"].contains(&k)
    {
        return Err(hoody_net::error::Invalid::new("kind", format!("{k:?} is not an event kind (denied, dns, allowed)")).into());
    }
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let mut ev = st.rt.firewall.events.recent(&c.id);
    ev.retain(|e| q.kind.as_deref().is_none_or(|k| e.kind == k));
    Ok(data(ev))
}
