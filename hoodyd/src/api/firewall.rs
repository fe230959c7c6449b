//! Firewall endpoints of a container.

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hoody_api::common::Deleted;
use hoody_api::firewall::FirewallPatch as PatchRequest;
use hoody_api::query::FirewallEventsQuery as EventsQuery;
use hoody_net::rules::{Direction, EgressRequest, IngressRequest, ValidateRule};

use super::body::JsonBody;
use super::error::{ApiResult, data};
use super::subject::AuditSubject;
use super::{AppState, Caller};

#[utoipa::path(
    get,
    path = "/api/v1/containers/{id}/firewall",
    tag = "firewall",
    operation_id = "firewall_show",
    params(("id" = String, Path, description = "Container id or name")),
    responses((status = 200, description = "Rules in order, with counters", body = hoody_api::envelope::Data<hoody_api::firewall::Firewall>))
)]
pub async fn show(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(st.rt.show_firewall(&c).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/containers/{id}/firewall/reset",
    tag = "firewall",
    operation_id = "firewall_reset",
    params(("id" = String, Path, description = "Container id or name")),
    responses((status = 200, description = "No rules, policy deny", body = hoody_api::envelope::Data<hoody_api::firewall::Firewall>))
)]
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

#[utoipa::path(
    patch,
    path = "/api/v1/containers/{id}/firewall",
    tag = "firewall",
    operation_id = "firewall_patch",
    params(("id" = String, Path, description = "Container id or name")),
    request_body = hoody_api::firewall::FirewallPatch,
    responses((status = 200, description = "The firewall as changed", body = hoody_api::envelope::Data<hoody_api::firewall::Firewall>))
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/containers/{id}/firewall/egress",
    tag = "firewall",
    operation_id = "firewall_egress_add",
    params(("id" = String, Path, description = "Container id or name")),
    request_body = hoody_api::firewall::EgressRule,
    responses((status = 201, description = "Appended", body = hoody_api::envelope::Data<hoody_api::firewall::Rule>))
)]
pub async fn add_egress(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<EgressRequest>,
) -> ApiResult<impl IntoResponse> {
    let spec = req.validate()?;
    let c = st.rt.resolve(&id, &caller.filter).await?;
    made_rule(st.rt.add_rule(&c, spec).await?, &c.id)
}

/// A created rule's answer, naming the rule for its audit record.
fn made_rule(rule: hoody_api::firewall::Rule, container: &str) -> ApiResult<Response> {
    let subject = AuditSubject { container: container.to_owned(), rule_id: Some(rule.id.clone()), ..Default::default() };
    let mut answer = (StatusCode::CREATED, data(rule)).into_response();
    answer.extensions_mut().insert(subject);
    Ok(answer)
}

#[utoipa::path(
    post,
    path = "/api/v1/containers/{id}/firewall/ingress",
    tag = "firewall",
    operation_id = "firewall_ingress_add",
    params(("id" = String, Path, description = "Container id or name")),
    request_body = hoody_api::firewall::IngressRule,
    responses((status = 201, description = "Appended", body = hoody_api::envelope::Data<hoody_api::firewall::Rule>))
)]
pub async fn add_ingress(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<IngressRequest>,
) -> ApiResult<impl IntoResponse> {
    let spec = req.validate()?;
    let c = st.rt.resolve(&id, &caller.filter).await?;
    made_rule(st.rt.add_rule(&c, spec).await?, &c.id)
}

async fn delete(
    st: AppState,
    caller: Caller,
    id: String,
    rule: String,
    dir: Direction,
) -> ApiResult<axum::Json<super::error::Data<Deleted>>> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    st.rt.delete_rule(&c, &rule, dir).await?;
    Ok(data(Deleted::id(rule)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/containers/{id}/firewall/egress/{rule_id}",
    tag = "firewall",
    operation_id = "firewall_egress_delete",
    params(("id" = String, Path, description = "Container id or name"), ("rule_id" = String, Path, description = "Rule id")),
    responses((status = 200, description = "Deleted", body = hoody_api::envelope::Data<hoody_api::common::Deleted>))
)]
pub async fn delete_egress(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, rule)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    delete(st, caller, id, rule, Direction::Egress).await
}

#[utoipa::path(
    delete,
    path = "/api/v1/containers/{id}/firewall/ingress/{rule_id}",
    tag = "firewall",
    operation_id = "firewall_ingress_delete",
    params(("id" = String, Path, description = "Container id or name"), ("rule_id" = String, Path, description = "Rule id")),
    responses((status = 200, description = "Deleted", body = hoody_api::envelope::Data<hoody_api::common::Deleted>))
)]
pub async fn delete_ingress(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, rule)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    delete(st, caller, id, rule, Direction::Ingress).await
}

#[utoipa::path(
    get,
    path = "/api/v1/containers/{id}/firewall/events",
    tag = "firewall",
    operation_id = "firewall_events",
    params(("id" = String, Path, description = "Container id or name"), hoody_api::query::FirewallEventsQuery),
    responses((status = 200, description = "Most recent first (at most 256)", body = hoody_api::envelope::Data<Vec<hoody_api::firewall::FirewallEvent>>))
)]
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
    let mut ev = st.rt.firewall_events(&c.id);
    ev.retain(|e| q.kind.as_deref().is_none_or(|k| e.kind == k));
    Ok(data(ev))
}
