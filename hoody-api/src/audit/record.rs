//! One audit record, and its place in the hash chain.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as the server saw it. The field order is the serialised order, `hash` last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The snapshot the request concerns (its path's, or the one a create named). Records
    /// written before it existed have none (and hash as they did).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub snapshot: Option<String>,
    /// The firewall rule the request concerns (its path's, or the one a create made); likewise.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rule_id: Option<String>,
    pub status: u16,
    /// ok, client_error, denied, server_error.
    pub outcome: String,
    pub duration_us: u64,
    /// The request's `X-Request-Id` (the caller's, or the one the daemon gave it), also on the
    /// answer. Records written before it existed have none (and hash as they did).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request_id: Option<String>,
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
        hex_sha256(&serde_json::to_vec(&r).expect("records serialise"))
    }

    /// Seals a record whose `hash` is unset: appends its line (with the hash, which is the last
    /// field) to `out` and returns the hash — one serialisation instead of two.
    pub fn seal_into(&self, out: &mut Vec<u8>) -> String {
        debug_assert!(self.hash.is_none());
        let start = out.len();
        serde_json::to_writer(&mut *out, self).expect("records serialise");
        let h = hex_sha256(&out[start..]);
        out.pop(); // the closing brace
        out.extend_from_slice(b",\"hash\":\"");
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\"}\n");
        h
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_line_is_the_record_with_its_hash() {
        let r = Record {
            seq: 7,
            time: "2026-11-23T00:00:00.000Z".into(),
            peer_uid: 1000,
            peer_pid: Some(42),
            token_id: Some("t".into()),
            realm_ids: vec!["r".into()],
            method: "GET".into(),
            path: "/api/v1/containers/\"quoted\"".into(),
            container: None,
            status: 404,
            outcome: "denied".into(),
            duration_us: 3,
            request_id: None,
            snapshot: None,
            rule_id: None,
            prev: GENESIS.into(),
            hash: None,
        };
        let mut line = b"earlier line\n".to_vec();
        let h = r.seal_into(&mut line);
        let text = std::str::from_utf8(&line).unwrap();
        let (first, second) = text.split_once('\n').unwrap();
        assert_eq!(first, "earlier line");
        assert!(second.ends_with('\n'));
        let back: Record = serde_json::from_str(second.trim_end()).unwrap();
        assert_eq!(back.hash.as_deref(), Some(h.as_str()));
        assert_eq!(back.compute_hash(), h);
        assert_eq!(Record { hash: Some(h), ..r }, back);
    }
}
