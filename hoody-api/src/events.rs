//! The event stream, `GET /events`: newline-delimited JSON, one [`EventLine`] per line, in the
//! order of `seq`. `?since=SEQ` resumes after the event a subscriber saw last; what the
//! daemon's window no longer holds is reported as a [`Gap`].

use serde::{Deserialize, Serialize};

/// What happened. The part before the dot is its class (`container`, `exec`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventType {
    #[serde(rename = "container.created")]
    ContainerCreated,
    #[serde(rename = "container.started")]
    ContainerStarted,
    #[serde(rename = "container.exited")]
    ContainerExited,
    #[serde(rename = "container.stopped")]
    ContainerStopped,
    #[serde(rename = "container.updated")]
    ContainerUpdated,
    #[serde(rename = "container.deleted")]
    ContainerDeleted,
    #[serde(rename = "exec.started")]
    ExecStarted,
    #[serde(rename = "exec.exited")]
    ExecExited,
    #[serde(rename = "snapshot.created")]
    SnapshotCreated,
    #[serde(rename = "snapshot.restored")]
    SnapshotRestored,
    #[serde(rename = "snapshot.deleted")]
    SnapshotDeleted,
    #[serde(rename = "snapshot.expired")]
    SnapshotExpired,
    #[serde(rename = "image.imported")]
    ImageImported,
    #[serde(rename = "image.deleted")]
    ImageDeleted,
    #[serde(rename = "firewall.changed")]
    FirewallChanged,
    #[serde(rename = "firewall.denied")]
    FirewallDenied,
    #[serde(rename = "firewall.table_repaired")]
    FirewallTableRepaired,
    #[serde(rename = "operation.progress")]
    OperationProgress,
    #[serde(rename = "operation.done")]
    OperationDone,
    #[serde(rename = "daemon.ready")]
    DaemonReady,
}

impl EventType {
    pub const ALL: &'static [EventType] = &[
        EventType::ContainerCreated,
        EventType::ContainerStarted,
        EventType::ContainerExited,
        EventType::ContainerStopped,
        EventType::ContainerUpdated,
        EventType::ContainerDeleted,
        EventType::ExecStarted,
        EventType::ExecExited,
        EventType::SnapshotCreated,
        EventType::SnapshotRestored,
        EventType::SnapshotDeleted,
        EventType::SnapshotExpired,
        EventType::ImageImported,
        EventType::ImageDeleted,
        EventType::FirewallChanged,
        EventType::FirewallDenied,
        EventType::FirewallTableRepaired,
        EventType::OperationProgress,
        EventType::OperationDone,
        EventType::DaemonReady,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ContainerCreated => "container.created",
            EventType::ContainerStarted => "container.started",
            EventType::ContainerExited => "container.exited",
            EventType::ContainerStopped => "container.stopped",
            EventType::ContainerUpdated => "container.updated",
            EventType::ContainerDeleted => "container.deleted",
            EventType::ExecStarted => "exec.started",
            EventType::ExecExited => "exec.exited",
            EventType::SnapshotCreated => "snapshot.created",
            EventType::SnapshotRestored => "snapshot.restored",
            EventType::SnapshotDeleted => "snapshot.deleted",
            EventType::SnapshotExpired => "snapshot.expired",
            EventType::ImageImported => "image.imported",
            EventType::ImageDeleted => "image.deleted",
            EventType::FirewallChanged => "firewall.changed",
            EventType::FirewallDenied => "firewall.denied",
            EventType::FirewallTableRepaired => "firewall.table_repaired",
            EventType::OperationProgress => "operation.progress",
            EventType::OperationDone => "operation.done",
            EventType::DaemonReady => "daemon.ready",
        }
    }
}

impl EventType {
    /// `container` of `container.exited`.
    pub fn class(self) -> &'static str {
        self.as_str().split_once('.').map_or(self.as_str(), |(c, _)| c)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == s).ok_or_else(|| format!("{s:?} is not an event type"))
    }
}

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Increases by one with every event of this daemon's state directory, across restarts.
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The realms of the container it concerns (a realm token sees only its realms' events).
    pub realm_ids: Vec<String>,
    /// The id of the container it concerns, if it concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub data: EventData,
}

/// What an event says beyond its type; each type fills the members that apply to it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventData {
    /// The container's name (container.*), the image's (image.*).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// container.exited, exec.exited: the exit status, when the process exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// … or the signal that ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// container.exited: whether the kernel's OOM killer killed a process of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_killed: Option<bool>,
    /// exec.*: the exec instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_id: Option<String>,
    /// exec.started: its command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// snapshot.*: the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// container.created: its image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// container.created of a fork: the container it was forked from (the snapshot is in
    /// `snapshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// firewall.changed: what changed (`egress_rule_added`, `egress_rule_deleted`,
    /// `ingress_rule_added`, `ingress_rule_deleted`, `patched`, `reset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// firewall.changed: the rule added or deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// firewall.denied: where the container tried to go (`203.0.113.7:443/tcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// firewall.denied: attempts this line stands for (the stream sends at most a few a second
    /// per container; the rest are counted into the next line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// container.updated: the members the update changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// operation.*: the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// operation.done: `succeeded`, `failed` or `cancelled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// operation.progress: how far it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<crate::operations::Progress>,
    /// container.stopped: `api` (a stop request), `shutdown` (the host's), `restore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `"gap"`: the only type of a [`Gap`] line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum GapType {
    Gap,
}

/// Events `from`..=`to` are not in the stream: the daemon's window no longer holds them (the
/// subscriber resumed too late), or the subscriber read too slowly and is dropped after this
/// line (it resumes with `?since=` its last seq).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Gap {
    #[serde(rename = "type")]
    pub kind: GapType,
    pub from: u64,
    pub to: u64,
}

/// A line of the event stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum EventLine {
    Gap(Gap),
    Event(Box<Event>),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type's wire name is the one `as_str` gives, and reads back.
    #[test]
    fn wire_names() {
        for t in EventType::ALL {
            let wire = serde_json::to_string(t).unwrap();
            assert_eq!(wire, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<EventType>(&wire).unwrap(), *t);
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), *t);
        }
        assert_eq!(EventType::ContainerExited.class(), "container");
    }
}
