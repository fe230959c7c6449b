//! The HTTP/JSON API under `/api/v1`.

#[cfg(feature = "test-hooks")]
mod answer_log;
pub(crate) mod audit;
pub(crate) mod body;
pub(crate) mod containers;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod exec;
pub(crate) mod firewall;
pub(crate) mod guard;
pub(crate) mod idempotency;
pub(crate) mod images;
pub(crate) mod logs;
pub(crate) mod metrics;
pub mod openapi;
pub(crate) mod operations;
pub(crate) mod pages;
pub(crate) mod query;
pub(crate) mod realms;
pub(crate) mod server;
pub(crate) mod slots;
pub(crate) mod snapshots;
pub(crate) mod subject;
pub(crate) mod system;
pub(crate) mod view;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::middleware;
use axum::routing::{delete, get, post};

use crate::audit::AuditLog;
use crate::auth::Auth;
pub use crate::auth::Caller;
use crate::runtime::Runtime;
use error::ApiError;

pub use hoody_api::system::DaemonInfo;

#[derive(Clone)]
pub struct AppState {
    pub rt: Arc<Runtime>,
    pub started: Instant,
    pub info: Arc<DaemonInfo>,
    pub auth: Arc<Auth>,
    pub audit: Arc<AuditLog>,
    /// Time a request's body may take to arrive.
    pub request_timeout: std::time::Duration,
    /// Containers stopped at the same time by a host shutdown, at most.
    pub parallel: usize,
    /// The state file system and the free space kept on it (`--state-reserve`).
    pub state_dir: std::path::PathBuf,
    pub state_reserve: u64,
    /// Background work begun with `?async=true`.
    pub operations: std::sync::Arc<crate::operations::Operations>,
    /// Requests counted as they are answered.
    pub metrics: Arc<crate::metrics::ApiMetrics>,
    /// Open connections and streams, and their caps.
    pub slots: Arc<slots::Slots>,
    /// The answers kept for retries with an `Idempotency-Key`.
    pub keys: Arc<idempotency::Keys>,
    /// Flipped to true to stop serving and exit (`POST /system/shutdown`).
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        crate::api::error::ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .route("/api/v1/health", get(system::health))
        .route("/api/v1/openapi.json", get(system::openapi))
        .route("/api/v1/metrics", get(metrics::metrics))
        .route("/api/v1/system/shutdown", post(system::shutdown))
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/operations", get(operations::list))
        .route("/api/v1/operations/{operation_id}", get(operations::get).delete(operations::cancel))
        .route("/api/v1/containers", post(containers::create).get(containers::list))
        .route("/api/v1/containers/{id}", get(containers::get).delete(containers::delete).patch(containers::update))
        .route("/api/v1/containers/{id}/snapshots", post(snapshots::create).get(snapshots::list))
        .route("/api/v1/containers/{id}/snapshots/{name}", delete(snapshots::delete).patch(snapshots::restore))
        .route("/api/v1/containers/{id}/snapshots/{name}/diff", get(snapshots::diff))
        .route("/api/v1/containers/{id}/start", post(containers::start))
        .route("/api/v1/containers/{id}/stop", post(containers::stop))
        .route("/api/v1/containers/{id}/restart", post(containers::restart))
        .route("/api/v1/containers/{id}/exec", post(exec::exec))
        .route("/api/v1/containers/{id}/execs", get(exec::list))
        .route("/api/v1/containers/{id}/execs/{exec_id}", get(exec::get))
        .route("/api/v1/containers/{id}/execs/{exec_id}/attach", post(exec::attach))
        .route("/api/v1/containers/{id}/logs", get(logs::logs))
        .route("/api/v1/containers/{id}/firewall", get(firewall::show).patch(firewall::patch))
        .route("/api/v1/containers/{id}/firewall/reset", post(firewall::reset))
        .route("/api/v1/containers/{id}/firewall/events", get(firewall::events))
        .route("/api/v1/containers/{id}/firewall/egress", post(firewall::add_egress))
        .route("/api/v1/containers/{id}/firewall/egress/{rule_id}", delete(firewall::delete_egress))
        .route("/api/v1/containers/{id}/firewall/ingress", post(firewall::add_ingress))
        .route("/api/v1/containers/{id}/firewall/ingress/{rule_id}", delete(firewall::delete_ingress))
        .route("/api/v1/realms", post(realms::create).get(realms::list))
        .route("/api/v1/tokens", post(realms::create_token).get(realms::list_tokens))
        .route("/api/v1/tokens/{id}", delete(realms::delete_token))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/audit/verify", get(audit::verify))
        .route("/api/v1/images", post(images::import).get(images::list))
        .route("/api/v1/images/{name}", get(images::get).delete(images::delete))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard));
    #[cfg(feature = "test-hooks")]
    let router = router.layer(middleware::from_fn(answer_log::record));
    router.with_state(state)
}
