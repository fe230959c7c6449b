//! The container as the daemon knows it, and its lifecycle rules (the request bodies are
//! `hoody_api::containers`).

use hoody_api::envelope::ErrorCode;
use std::net::Ipv4Addr;

use crate::limits::{FieldError, Limits};
use crate::spec::IdMap;

pub use hoody_api::containers::{CreateContainer, Egress, SnapshotPolicy, Status, UpdateContainer};

/// The firewall's policy of an egress setting.
pub fn egress_policy(e: Egress) -> hoody_net::policy::EgressPolicy {
    match e {
        Egress::Deny => hoody_net::policy::EgressPolicy::Deny,
        Egress::Allow => hoody_net::policy::EgressPolicy::Allow,
    }
}

/// A lifecycle operation, for [`check_transition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
    Delete {
        force: bool,
    },
    /// Anything else that changes the container (update, snapshots, firewall, diff).
    Change,
}

/// Whether `action` is allowed in `status`; the error is the refusal (409): its code and message.
pub fn check_transition(status: Status, action: Action) -> Result<(), (ErrorCode, String)> {
    match (action, status) {
        (Action::Delete { .. }, Status::Deleting) => Ok(()),
        (_, Status::Deleting) => Err((ErrorCode::Conflict, "the container is being deleted".into())),
        (Action::Start, Status::Running) => Err((ErrorCode::AlreadyRunning, "the container is already running".into())),
        (Action::Stop, Status::Created | Status::Stopped) => Err((ErrorCode::NotRunning, "the container is not running".into())),
        (Action::Delete { force: false }, Status::Running) => {
            Err((ErrorCode::NeedsForce, "the container is running: stop it first or delete with ?force=true".into()))
        }
        _ => Ok(()),
    }
}

/// A container record.
#[derive(Clone, Debug, PartialEq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub realm_ids: Vec<String>,
    pub project_id: Option<String>,
    pub limits: Limits,
    pub egress: Egress,
    pub autostart: bool,
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub idmap: IdMap,
    pub ipv4: Option<Ipv4Addr>,
    pub status: Status,
    pub pid: Option<i32>,
    pub pid_start: Option<u64>,
    pub exit_code: Option<i32>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub snapshot_schedule: Option<String>,
    pub snapshot_expiry: Option<String>,
    /// Why the last attempt to delete it failed (status `deleting` only).
    pub error: Option<String>,
    /// What its resolver answers (`PATCH …/firewall {"dns": …}`).
    pub dns: hoody_net::policy::DnsMode,
}

pub const MAX_ARGS: usize = 4096;
pub const MAX_ARG_LEN: usize = 128 * 1024;

/// Validates a command line or environment list.
pub fn validate_strings(field: &str, v: &[String], env: bool) -> Result<(), FieldError> {
    if v.len() > MAX_ARGS {
        return Err(FieldError::new(field, format!("at most {MAX_ARGS} entries")));
    }
    for (i, s) in v.iter().enumerate() {
        if s.len() > MAX_ARG_LEN {
            return Err(FieldError::new(format!("{field}[{i}]"), format!("longer than {MAX_ARG_LEN} bytes")));
        }
        if s.contains('\0') {
            return Err(FieldError::new(format!("{field}[{i}]"), "contains a NUL byte"));
        }
        if env && s.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
            return Err(FieldError::new(format!("{field}[{i}]"), "must be KEY=VALUE"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use Action::*;
        use Status::*;
        assert!(check_transition(Created, Start).is_ok());
        assert!(check_transition(Stopped, Start).is_ok());
        assert!(check_transition(Running, Start).is_err());
        assert!(check_transition(Running, Stop).is_ok());
        assert!(check_transition(Stopped, Stop).is_err());
        assert!(check_transition(Created, Stop).is_err());
        assert!(check_transition(Running, Delete { force: false }).is_err());
        assert!(check_transition(Running, Delete { force: true }).is_ok());
        assert!(check_transition(Stopped, Delete { force: false }).is_ok());
        assert!(check_transition(Stopped, Restart).is_ok());
        assert!(check_transition(Running, Restart).is_ok());
    }

    #[test]
    fn strings() {
        validate_strings("command", &["/bin/sh".into(), "-c".into()], false).unwrap();
        assert_eq!(validate_strings("env", &["NOEQ".into()], true).unwrap_err().field, "env[0]");
        assert_eq!(validate_strings("env", &["=x".into()], true).unwrap_err().field, "env[0]");
        assert_eq!(validate_strings("command", &["a\0b".into()], false).unwrap_err().field, "command[0]");
    }

    #[test]
    fn create_request_refuses_unknown_fields() {
        let e = serde_json::from_str::<CreateContainer>(r#"{"name":"a","image":"b","bogus":1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `bogus`"));
    }
}
