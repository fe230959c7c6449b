//! The HTTP/JSON API under `/api/v1`.

pub mod body;
pub mod containers;
pub mod error;
pub mod exec;
pub mod firewall;
pub mod images;
pub mod logs;
pub mod query;
pub mod server;
pub mod snapshots;
pub mod system;
pub mod view;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use crate::runtime::Runtime;
use crate::store::ContainerFilter;
use error::ApiError;
use server::Peer;

/// Facts about the daemon reported by `/health`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DaemonInfo {
    pub version: &'static str,
    pub storage_driver: String,
    pub storage_dir: String,
    pub state_dir: String,
    pub cgroup_root: String,
    pub controllers: Vec<String>,
}

#[derive(Clone)]
pub struct AppState {
    pub rt: Arc<Runtime>,
    pub started: Instant,
    pub info: Arc<DaemonInfo>,
}

/// What the caller may see: administrators everything.
#[derive(Clone, Debug)]
pub struct Caller {
    pub peer: Peer,
    pub filter: ContainerFilter,
}

/// Identifies the caller. Root is the administrator (the control plane); realm-scoped tokens
/// for other callers are handled by the realms module.
async fn authenticate(mut req: Request, next: Next) -> Response {
    let Some(peer) = req.extensions().get::<Peer>().copied() else {
        return ApiError::forbidden("no peer credentials on this connection").into_response();
    };
    if peer.uid != 0 {
        return ApiError::forbidden(format!("uid {} may not use this socket: only root is an administrator", peer.uid)).into_response();
    }
    req.extensions_mut().insert(Caller { peer, filter: ContainerFilter::default() });
    next.run(req).await
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/health", get(system::health))
        .route("/api/v1/metrics", get(system::metrics))
        .route("/api/v1/containers", post(containers::create).get(containers::list))
        .route("/api/v1/containers/{id}", get(containers::get).delete(containers::delete).patch(containers::update))
        .route("/api/v1/containers/{id}/snapshots", post(snapshots::create).get(snapshots::list))
        .route("/api/v1/containers/{id}/snapshots/{name}", delete(snapshots::delete).patch(snapshots::restore))
        .route("/api/v1/containers/{id}/snapshots/{name}/diff", get(snapshots::diff))
        .route("/api/v1/containers/{id}/start", post(containers::start))
        .route("/api/v1/containers/{id}/stop", post(containers::stop))
        .route("/api/v1/containers/{id}/restart", post(containers::restart))
        .route("/api/v1/containers/{id}/exec", post(exec::exec))
        .route("/api/v1/containers/{id}/logs", get(logs::logs))
        .route("/api/v1/containers/{id}/firewall", get(firewall::show))
        .route("/api/v1/containers/{id}/firewall/reset", post(firewall::reset))
        .route("/api/v1/containers/{id}/firewall/events", get(firewall::events))
        .route("/api/v1/containers/{id}/firewall/egress", post(firewall::add_egress))
        .route("/api/v1/containers/{id}/firewall/egress/{rule_id}", delete(firewall::delete_egress))
        .route("/api/v1/containers/{id}/firewall/ingress", post(firewall::add_ingress))
        .route("/api/v1/containers/{id}/firewall/ingress/{rule_id}", delete(firewall::delete_ingress))
        .route("/api/v1/images", post(images::import).get(images::list))
        .route("/api/v1/images/{name}", get(images::get).delete(images::delete))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(authenticate))
        .with_state(state)
}
