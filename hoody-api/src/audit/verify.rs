//! Checking the chain: every record carries the hash of the one before, and its own; the head
//! file remembers the last record synced, so a cut tail is noticed too.

use std::io::BufRead;

use serde::Serialize;

use super::record::{GENESIS, Record};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Broken {
    /// Line number in its segment (1-based).
    pub line: usize,
    pub seq: Option<u64>,
    pub reason: String,
    /// The segment file, when the log is in segments.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub segment: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub ok: bool,
    pub records: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken: Option<Broken>,
    /// Segments checked.
    #[serde(default)]
    pub segments: usize,
    /// The history begins with this record: the ones before were removed by the retention
    /// (the oldest remaining segment's anchor says where it was cut).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retention_cut_before: Option<u64>,
}

/// Where the chain stands while segments are checked in order.
struct Walk {
    prev: String,
    next_seq: u64,
    records: usize,
    segments: usize,
    cut: Option<u64>,
}

impl Walk {
    fn new() -> Walk {
        Walk { prev: GENESIS.to_owned(), next_seq: 1, records: 0, segments: 0, cut: None }
    }

    fn report(&self, first_broken: Option<Broken>) -> Report {
        Report { ok: first_broken.is_none(), records: self.records, first_broken, segments: self.segments, retention_cut_before: self.cut }
    }

    /// Checks one segment; `name` for reports.
    fn segment(&mut self, log: impl BufRead, name: Option<&str>) -> Result<(), Broken> {
        let first_segment = self.segments == 0;
        self.segments += 1;
        let broken = |line, seq, reason: String| Broken { line, seq, reason, segment: name.map(str::to_owned) };
        for (n, line) in (1usize..).zip(log.lines()) {
            let Ok(line) = line else { return Err(broken(n, None, "unreadable line".into())) };
            if n == 1
                && let Some(a) = super::segments::parse_anchor(&line)
            {
                if first_segment {
                    // The oldest segment left: what came before was removed by the retention.
                    self.cut = (a.prev_seq > 0).then_some(a.prev_seq + 1);
                    self.prev = a.prev_hash;
                    self.next_seq = a.prev_seq + 1;
                } else if a.prev_seq + 1 != self.next_seq {
                    return Err(broken(
                        n,
                        Some(a.prev_seq + 1),
                        format!(
                            "this segment follows record {} but the segment before it ends with record {}: records {}..{} are missing (a segment was removed)",
                            a.prev_seq,
                            self.next_seq - 1,
                            self.next_seq.min(a.prev_seq + 1),
                            a.prev_seq.max(self.next_seq - 1)
                        ),
                    ));
                } else if a.prev_hash != self.prev {
                    return Err(broken(n, Some(a.prev_seq + 1), "the segment's anchor does not continue the chain (edited)".into()));
                }
                continue;
            }
            if n == 1 && !first_segment {
                return Err(broken(n, None, "the segment does not start with an anchor".into()));
            }
            let r: Record = match serde_json::from_str(&line) {
                Ok(r) => r,
                Err(e) => return Err(broken(n, None, format!("not a record: {e}"))),
            };
            if r.seq != self.next_seq {
                return Err(broken(
                    n,
                    Some(r.seq),
                    format!("sequence {} where {} was expected (a record was removed or moved)", r.seq, self.next_seq),
                ));
            }
            if r.prev != self.prev {
                return Err(broken(n, Some(r.seq), "does not follow the record before it (removed, moved or edited)".into()));
            }
            let h = r.compute_hash();
            if r.hash.as_deref() != Some(h.as_str()) {
                return Err(broken(n, Some(r.seq), "its content does not match its hash (edited)".into()));
            }
            self.prev = h;
            self.next_seq += 1;
            self.records += 1;
        }
        Ok(())
    }

    /// The head file names the last record synced: the log must reach it, with that hash.
    fn head(&self, head: Option<(u64, String)>) -> Option<Broken> {
        let (seq, hash) = head?;
        let last = self.next_seq - 1;
        if last < seq {
            return Some(Broken {
                line: self.records + 1,
                seq: Some(last + 1),
                reason: format!("the log ends at record {last} but record {seq} was written (the tail was cut)"),
                segment: None,
            });
        }
        if last == seq && self.prev != hash {
            return Some(Broken {
                line: self.records,
                seq: Some(seq),
                reason: "the last record is not the one that was written".into(),
                segment: None,
            });
        }
        None
    }
}

/// Verifies a log in one file; `head` is the (seq, hash) last recorded as synced, if known.
pub fn verify(log: impl BufRead, head: Option<(u64, String)>) -> Report {
    let mut w = Walk::new();
    if let Err(b) = w.segment(log, None) {
        return w.report(Some(b));
    }
    let b = w.head(head);
    w.report(b)
}

/// Verifies a log in segments (oldest first), across their anchors.
pub fn verify_segments(paths: &[std::path::PathBuf], head: Option<(u64, String)>) -> std::io::Result<Report> {
    let mut w = Walk::new();
    for p in paths {
        let f = match std::fs::File::open(p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Err(b) = w.segment(std::io::BufReader::new(f), name.as_deref()) {
            return Ok(w.report(Some(b)));
        }
    }
    let b = w.head(head);
    Ok(w.report(b))
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
                    request_id: None,
                    snapshot: None,
                    rule_id: None,
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
        assert_eq!(
            verify(text(&c).as_bytes(), head),
            Report { ok: true, records: 5, first_broken: None, segments: 1, retention_cut_before: None }
        );
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
