//! Checking the chain: every record carries the hash of the one before, and its own; the head
//! file remembers the last record synced, so a cut tail is noticed too.

use std::io::BufRead;

use serde::Serialize;

use super::record::{GENESIS, Record};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Broken {
    /// Line number in the log (1-based).
    pub line: usize,
    pub seq: Option<u64>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Report {
    pub ok: bool,
    pub records: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken: Option<Broken>,
}

/// Verifies a log; `head` is the (seq, hash) last recorded as synced, if known.
pub fn verify(log: impl BufRead, head: Option<(u64, String)>) -> Report {
    let mut prev = GENESIS.to_owned();
    let mut records = 0;
    let broken = |line, seq, reason: String| Report { ok: false, records: line - 1, first_broken: Some(Broken { line, seq, reason }) };
    for (n, line) in (1usize..).zip(log.lines()) {
        let expected_seq = n as u64;
        let Ok(line) = line else { return broken(n, None, "unreadable line".into()) };
        let r: Record = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => return broken(n, None, format!("not a record: {e}")),
        };
        if r.seq != expected_seq {
            return broken(n, Some(r.seq), format!("sequence {} where {expected_seq} was expected (a record was removed or moved)", r.seq));
        }
        if r.prev != prev {
            return broken(n, Some(r.seq), "does not follow the record before it (removed, moved or edited)".into());
        }
        let h = r.compute_hash();
        if r.hash.as_deref() != Some(h.as_str()) {
            return broken(n, Some(r.seq), "its content does not match its hash (edited)".into());
        }
        prev = h;
        records = n;
    }
    if let Some((seq, hash)) = head {
        if (records as u64) < seq {
            return Report {
                ok: false,
                records,
                first_broken: Some(Broken {
                    line: records + 1,
                    seq: Some(records as u64 + 1),
                    reason: format!("the log ends at record {records} but record {seq} was written (the tail was cut)"),
                }),
            };
        }
        if records as u64 == seq && prev != hash {
            return Report {
                ok: false,
                records,
                first_broken: Some(Broken {
                    line: records,
                    seq: Some(seq),
                    reason: "the last record is not the one that was written".into(),
                }),
            };
        }
    }
    Report { ok: true, records, first_broken: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<Record> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let mut r = Record {
                    seq,
                    time: format!("t{seq}"),
                    peer_uid: 0,
                    peer_pid: Some(1),
                    token_id: None,
                    realm_ids: vec![],
                    method: "GET".into(),
                    path: "/api/v1/containers".into(),
                    container: None,
                    status: 200,
                    outcome: "ok".into(),
                    duration_us: 5,
                    prev: prev.clone(),
                    hash: None,
                };
                let h = r.compute_hash();
                r.hash = Some(h.clone());
                prev = h;
                r
            })
            .collect()
    }

    fn text(rs: &[Record]) -> String {
        rs.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect()
    }

    #[test]
    fn clean_log_verifies() {
        let c = chain(5);
        let head = Some((5, c[4].hash.clone().unwrap()));
        assert_eq!(verify(text(&c).as_bytes(), head), Report { ok: true, records: 5, first_broken: None });
    }

    #[test]
    fn edits_removals_reorders_and_cut_tails_are_caught() {
        let c = chain(5);
        let mut edited = c.clone();
        edited[2].status = 500;
        assert_eq!(verify(text(&edited).as_bytes(), None).first_broken.unwrap().line, 3);
        let mut removed = c.clone();
        removed.remove(1);
        let b = verify(text(&removed).as_bytes(), None).first_broken.unwrap();
        assert_eq!((b.line, b.seq), (2, Some(3)));
        let mut moved = c.clone();
        moved.swap(1, 2);
        assert_eq!(verify(text(&moved).as_bytes(), None).first_broken.unwrap().line, 2);
        // Editing a record and fixing up its own hash still breaks the next link.
        let mut rehashed = c.clone();
        rehashed[1].status = 500;
        rehashed[1].hash = Some(rehashed[1].compute_hash());
        assert_eq!(verify(text(&rehashed).as_bytes(), None).first_broken.unwrap().line, 3);
        let head = Some((5, c[4].hash.clone().unwrap()));
        let b = verify(text(&c[..3]).as_bytes(), head).first_broken.unwrap();
        assert!(b.reason.contains("cut"), "{b:?}");
    }
}
