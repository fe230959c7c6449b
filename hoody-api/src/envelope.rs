//! The envelope of every JSON answer: `{"data": …}` with a 2xx status, or
//! `{"error": {"code", "message", "details": [causes…]}}` with a 4xx/5xx one. `code` is what a
//! program branches on.

use serde::{Deserialize, Serialize};

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Data<T> {
    pub data: T,
}

/// A failed answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// The cause chain, outermost first.
    #[serde(default)]
    pub details: Vec<String>,
    /// `invalid`: the JSON path (`limits.memory`) or query parameter (`?type`) at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    /// The message and its causes, for people.
    pub fn text(&self) -> String {
        let mut s = self.message.clone();
        for c in &self.details {
            s.push_str(&format!("\n  caused by: {c}"));
        }
        s
    }
}

/// Every code the daemon answers with (docs/API.md says when).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: no valid token where one is needed.
    Unauthorized,
    /// 403: the token lacks the scope, or the endpoint is for administrators.
    Forbidden,
    /// 404: no such resource (also one in a realm the caller cannot see).
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 408: the request body did not arrive in time.
    RequestTimeout,
    /// 409: a container, image or snapshot of that name exists already.
    AlreadyExists,
    /// 409: the container runs already (start).
    AlreadyRunning,
    /// 409: the container does not run (stop, exec, attach).
    NotRunning,
    /// 409: deleting a running container needs `?force=true`.
    NeedsForce,
    /// 409: something uses it (an image containers were created from).
    InUse,
    /// 409: the same work is under way (a restore of this container, a retry of a request
    /// still running, an exec still starting).
    InProgress,
    /// 409: some other state forbids it now (the container is being deleted, a name shared by
    /// containers of several realms, an operation that ended).
    Conflict,
    /// 413: a JSON body over the limit.
    PayloadTooLarge,
    /// 400: a body, query or path that does not parse (malformed JSON, an unknown field or
    /// query parameter); 422: well-formed but not acceptable. `field` names where.
    Invalid,
    /// 500: a failure of the host; `details` carries the cause chain.
    Internal,
    /// 503: over `--max-connections`.
    Unavailable,
    /// 503: the audit log cannot be written, so nothing is done.
    AuditUnavailable,
    /// 507: the state file system is below its reserve.
    InsufficientStorage,
    /// 507: a pool is used up (addresses, id ranges).
    Exhausted,
    /// 507: a snapshot does not fit in `limits.snapshots_disk`.
    QuotaExceeded,
    /// A code this version does not know (a newer daemon).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::AlreadyExists,
        ErrorCode::AlreadyRunning,
        ErrorCode::NotRunning,
        ErrorCode::NeedsForce,
        ErrorCode::InUse,
        ErrorCode::InProgress,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Invalid,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
        ErrorCode::AuditUnavailable,
        ErrorCode::InsufficientStorage,
        ErrorCode::Exhausted,
        ErrorCode::QuotaExceeded,
    ];

    /// As it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::AlreadyRunning => "already_running",
            ErrorCode::NotRunning => "not_running",
            ErrorCode::NeedsForce => "needs_force",
            ErrorCode::InUse => "in_use",
            ErrorCode::InProgress => "in_progress",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::AuditUnavailable => "audit_unavailable",
            ErrorCode::InsufficientStorage => "insufficient_storage",
            ErrorCode::Exhausted => "exhausted",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_written_as_they_are_named_and_unknown_ones_still_parse() {
        for c in ErrorCode::ALL {
            let wire = serde_json::to_string(&c).unwrap();
            assert_eq!(wire, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&wire).unwrap(), c);
        }
        let e: ErrorEnvelope = serde_json::from_str(r#"{"error":{"code":"from_the_future","message":"m"}}"#).unwrap();
        assert_eq!((e.error.code, e.error.details.len()), (ErrorCode::Unknown, 0));
    }
}
