//! What an answer's audit record names when the request's path does not say.

use serde::{Deserialize, Serialize};

/// Set on an answer about something its path does not name: a created container's id — or,
/// when the create was refused, the name it asked for — and its realms; a snapshot a create
/// named; a rule a create made. Its audit record then names them (`hoodyctl audit -c NAME`
/// finds creates and refusals too).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSubject {
    pub container: String,
    pub realm_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
}
