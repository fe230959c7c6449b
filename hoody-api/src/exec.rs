//! Exec: the request of `POST /containers/{id}/exec` and the instances of
//! `GET /containers/{id}/execs[/{exec_id}]`.

use serde::{Deserialize, Serialize};

/// Body of `POST /containers/{id}/exec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub command: Vec<String>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// `uid` or `uid:gid` inside the container (default 0:0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cols: Option<u16>,
    /// Runs on without a client; its output is kept (bounded) with the instance.
    #[serde(default)]
    pub detach: bool,
    /// JSON mode: input, as text or base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin_base64: Option<String>,
    /// Seconds (fractions allowed) until the exec's cgroup is killed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// JSON mode and detached execs: bytes kept per stream; past it output is read and dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u64>,
    /// Seconds between SIGHUP and the kill when the client goes away (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_grace: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    Running,
    Exited,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartedBy {
    pub uid: u32,
    pub token_id: Option<String>,
}

/// An exec as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecView {
    pub id: String,
    pub container_id: String,
    pub command: Vec<String>,
    pub status: ExecStatus,
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub started_by: StartedBy,
    pub detached: bool,
    pub tty: bool,
    /// Killed because its timeout ran out.
    pub timed_out: bool,
}

/// Which streams were cut at `max_output_bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Truncated {
    pub stdout: bool,
    pub stderr: bool,
}

/// A stream's bytes: as `stdout` when they are UTF-8, else as `stdout_base64` (and the same for
/// stderr); the other field is then absent. All absent for an exec that keeps no output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Output {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncated>,
}

/// The answer of `POST /containers/{id}/exec` in JSON mode (no upgrade). Each stream is given
/// as text, or as `…_base64` when its bytes are not UTF-8 (the plain field is then absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecResult {
    pub id: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_base64: Option<String>,
    pub truncated: Truncated,
    pub timed_out: bool,
    pub duration_ms: u64,
}

/// `GET /containers/{id}/execs/{exec_id}`: the instance and, for a detached exec, the output
/// kept so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecDetail {
    #[serde(flatten)]
    pub exec: ExecView,
    #[serde(flatten)]
    pub output: Output,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_says_only_what_was_given_and_reads_back_the_same() {
        let r = ExecRequest { command: vec!["id".into()], timeout: Some(1.5), ..Default::default() };
        let wire = serde_json::to_value(&r).unwrap();
        assert_eq!(wire, serde_json::json!({"command": ["id"], "tty": false, "detach": false, "timeout": 1.5}));
        assert_eq!(serde_json::from_value::<ExecRequest>(wire).unwrap(), r);
        assert!(serde_json::from_str::<ExecRequest>(r#"{"command": ["id"], "bogus": 1}"#).is_err(), "unknown fields are refused");
    }
}
