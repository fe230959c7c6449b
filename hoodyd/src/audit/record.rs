//! One audit record, and its place in the hash chain.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub seq: u64,
    pub time: String,
    pub peer_uid: u32,
    pub peer_pid: Option<i32>,
    pub token_id: Option<String>,
    /// The caller's realms (a token), or those of the container an administrator touched.
    pub realm_ids: Vec<String>,
    pub method: String,
    pub path: String,
    pub container: Option<String>,
    pub status: u16,
    /// ok, client_error, denied, server_error.
    pub outcome: String,
    pub duration_us: u64,
    /// Hash of the previous record.
    pub prev: String,
    /// SHA-256 of this record with `hash` left out.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hash: Option<String>,
}

impl Record {
    /// The hash of the record's content (with `hash` cleared).
    pub fn compute_hash(&self) -> String {
        let mut r = self.clone();
        r.hash = None;
        let bytes = serde_json::to_vec(&r).expect("records serialise");
        Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
    }
}
