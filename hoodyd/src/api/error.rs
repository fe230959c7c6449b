//! The error envelope: `{"error": {"code", "message", "details": [causes…]}}` with a 4xx/5xx.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hoody_snapshot::StorageError;
use serde::Serialize;

pub use hoody_api::envelope::{Data, ErrorBody, ErrorCode, ErrorEnvelope};

use crate::cgroup::CgroupError;
use crate::limits::FieldError;
use crate::runtime::RuntimeError;
use crate::spec::FailureKind;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub details: Vec<String>,
    /// `invalid`: the JSON path or query parameter at fault.
    pub field: Option<String>,
    /// Refused for who the caller is (the audit log's outcome "denied"); never shown.
    pub denied: bool,
}

/// Marks a response the audit log records as denied.
#[derive(Clone, Copy, Debug)]
pub struct Denied;

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: vec![], field: None, denied: false }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::Invalid, m)
    }
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::Invalid, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, m)
    }
    pub fn too_large(m: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge, m)
    }
    pub(crate) fn internal(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = crate::errors::chain(e);
        let message = chain.remove(0);
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: ErrorCode::Internal,
            message,
            details: chain,
            field: None,
            denied: false,
        }
    }
    /// The status and envelope body, for an operation that failed in the background.
    pub fn body(&self) -> (u16, ErrorBody) {
        (self.status.as_u16(), self.envelope_body())
    }
    fn envelope_body(&self) -> ErrorBody {
        ErrorBody { code: self.code, message: self.message.clone(), details: self.details.clone(), field: self.field.clone() }
    }
    /// Names the JSON path or query parameter at fault.
    pub fn field(mut self, f: impl Into<String>) -> Self {
        self.field = Some(f.into());
        self
    }
    /// A refusal for the state the resource is in (409), with the code that says which.
    pub fn state(code: ErrorCode, m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, m)
    }
    /// Marks the error as a refusal for who the caller is.
    pub fn denied(mut self) -> Self {
        self.denied = true;
        self
    }
    /// Keeps the status and code, takes message and details from `e`'s chain.
    fn with_chain(mut self, e: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = crate::errors::chain(e);
        self.message = chain.remove(0);
        self.details = chain;
        self
    }
}

impl From<hoody_net::Invalid> for ApiError {
    fn from(e: hoody_net::Invalid) -> Self {
        ApiError::invalid(e.to_string())
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match e {
            AuthError::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, m).denied(),
            e @ AuthError::RealmNotFound(_) => ApiError::not_found(e.to_string()).denied(),
            e @ AuthError::TokenNotFound(_) => ApiError::not_found(e.to_string()),
            AuthError::Invalid(f) => f.into(),
            AuthError::Store(s) => RuntimeError::from(s).into(),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        let field = e.field.clone();
        ApiError::invalid(e.to_string()).field(field)
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match &e {
            RuntimeError::NotFound(_) | RuntimeError::Missing(_) | RuntimeError::ImageNotFound(_) => ApiError::not_found(e.to_string()),
            RuntimeError::Conflict(m) => ApiError::conflict(m.clone()),
            RuntimeError::State(code, m) => ApiError::state(*code, m.clone()),
            RuntimeError::Invalid(f) => ApiError::from(f.clone()),
            RuntimeError::Helper { kind: FailureKind::Exec, message, causes } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: ErrorCode::Invalid,
                message: format!("command: {message}"),
                details: causes.clone(),
                field: Some("command".into()),
                denied: false,
            },
            RuntimeError::Helper { message, causes, .. } => ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: ErrorCode::Internal,
                message: message.clone(),
                details: causes.clone(),
                field: None,
                denied: false,
            },
            RuntimeError::Cgroup(c @ CgroupError::MissingController { .. }) => ApiError::invalid("").with_chain(c),
            RuntimeError::Storage(s) => match s {
                StorageError::UnsafeEntry { .. } | StorageError::NotImportable(_) | StorageError::NotARootFs(_) => {
                    ApiError::invalid("").with_chain(s)
                }
                StorageError::Archive(_) => ApiError::bad_request("").with_chain(s),
                StorageError::ImageExists(_) | StorageError::ContainerExists(_) | StorageError::SnapshotExists(_) => {
                    ApiError::state(ErrorCode::AlreadyExists, "").with_chain(s)
                }
                StorageError::ImageNotFound(_) | StorageError::SnapshotNotFound(_) => ApiError::not_found("").with_chain(s),
                StorageError::QuotaExceeded(_) => {
                    ApiError::new(StatusCode::INSUFFICIENT_STORAGE, ErrorCode::QuotaExceeded, "").with_chain(s)
                }
                StorageError::QuotaUnsupported(_) => ApiError::invalid("").with_chain(s),
                _ => ApiError::internal(&e),
            },
            RuntimeError::Store(StoreError::NameTaken { .. } | StoreError::ImageTaken(_)) => {
                ApiError::state(ErrorCode::AlreadyExists, "").with_chain(&e)
            }
            RuntimeError::Firewall(hoody_net::NetError::Invalid(i)) => ApiError::invalid(i.to_string()),
            RuntimeError::Store(StoreError::RuleNotFound(_)) => ApiError::not_found(e.to_string()),
            RuntimeError::Store(StoreError::SnapshotTaken(_)) => ApiError::state(ErrorCode::AlreadyExists, e.to_string()),
            RuntimeError::Store(StoreError::IdsExhausted | StoreError::AddressesExhausted(_)) => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, ErrorCode::Exhausted, e.to_string())
            }
            _ => ApiError::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, message = %self.message, details = %self.details.join(": "), "request failed");
        }
        let body = ErrorEnvelope { error: self.envelope_body() };
        let mut r = (self.status, Json(body)).into_response();
        if self.denied {
            r.extensions_mut().insert(Denied);
        }
        r.extensions_mut().insert(self.code);
        r
    }
}

/// The member a serde message names (`unknown field \`foo\`, expected …` → `foo`).
pub fn named_field(msg: &str) -> Option<String> {
    let rest = msg.split_once("field `")?.1;
    Some(rest.split_once('`')?.0.to_owned())
}

/// Success envelope.
pub fn data<T: Serialize>(v: T) -> Json<Data<T>> {
    Json(Data { data: v })
}

pub type ApiResult<T> = Result<T, ApiError>;
