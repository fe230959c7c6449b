//! What hoodyctl prints: the answer in the daemon's envelope (`--output json`) or a table for
//! people (`--output table`).

use hoody_api::client::ClientError;
use hoody_api::envelope::Data;
use serde::Serialize;
use serde_json::Value;

static ENVELOPE_ON_ERROR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a refusal is also printed as the daemon's error envelope on stdout (`--output json`
/// given explicitly).
pub fn envelope_on_error(on: bool) {
    ENVELOPE_ON_ERROR.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The daemon's refusal: its message and causes on stderr; with an explicit `--output json`
/// also the envelope on stdout, for programs. Returns the exit status of its class
/// ([`exit_status`]).
pub fn refused(status: hyper::StatusCode, error: &hoody_api::envelope::ErrorBody) -> i32 {
    eprintln!("hoodyctl: {}", error.text());
    if ENVELOPE_ON_ERROR.load(std::sync::atomic::Ordering::Relaxed) {
        let env = hoody_api::envelope::ErrorEnvelope { error: error.clone() };
        println!("{}", serde_json::to_string(&env).expect("serialises"));
    }
    exit_status(status)
}

/// hoodyctl's exit status by what went wrong (the man page lists them): 1 the daemon or the
/// host failed (5xx, or anything else), 2 usage (from the argument parser), 3 not found, 4 a
/// conflict with the state (409), 5 refused (400, 401, 403, 405, 408, 413, 422, 507),
/// 6 the daemon is unreachable. `exec` passes on its command's status instead.
pub fn exit_status(status: hyper::StatusCode) -> i32 {
    match status.as_u16() {
        404 => EXIT_NOT_FOUND,
        409 => EXIT_CONFLICT,
        400..=499 | 507 => EXIT_REFUSED,
        _ => EXIT_FAILED,
    }
}

pub const EXIT_FAILED: i32 = 1;
pub const EXIT_NOT_FOUND: i32 = 3;
pub const EXIT_CONFLICT: i32 = 4;
pub const EXIT_REFUSED: i32 = 5;
pub const EXIT_UNREACHABLE: i32 = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Json,
    Table,
}

/// Prints a typed answer: `{"data": …}` (JSON) or a table; the daemon's refusal on stderr,
/// exit status 1.
pub(crate) fn emit<T: Serialize>(out: Output, r: Result<T, ClientError>) -> anyhow::Result<i32> {
    let v = match r {
        Ok(v) => v,
        Err(ClientError::Api { status, error }) => {
            return Ok(refused(status, &error));
        }
        Err(e) => return Err(e.into()),
    };
    match out {
        Output::Json => println!("{}", serde_json::to_string(&Data { data: v })?),
        Output::Table => print!("{}", table(&serde_json::to_value(&v)?)),
    }
    Ok(0)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(o) => o.iter().map(|(k, v)| format!("{k}={}", field(k, v))).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// A field's value for people: byte counts (`bytes`, `…_bytes`) with a binary unit, times
/// (`…_at`, `time`) without their fraction and zone.
fn field(key: &str, v: &Value) -> String {
    match (v.as_u64(), v.as_str()) {
        (Some(b), _) if key == "bytes" || key.ends_with("_bytes") => human_size(b),
        (_, Some(t)) if key == "time" || key.ends_with("_at") => human_time(t),
        _ => cell(v),
    }
}

/// `12.5MiB`, `512B`.
pub fn human_size(b: u64) -> String {
    let units = [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    match units.iter().find(|(_, m)| b >= *m) {
        Some((u, m)) if b.is_multiple_of(*m) => format!("{}{u}", b / m),
        Some((u, m)) => format!("{:.1}{u}", b as f64 / *m as f64),
        None => format!("{b}B"),
    }
}

/// Columns shown for a kind of record, chosen by the fields the records have, in the order a
/// person reads them (the JSON's own order is alphabetical).
fn columns(first: &serde_json::Map<String, Value>) -> Vec<String> {
    let has = |k: &str| first.contains_key(k);
    let pick: &[&str] = if has("idmap") {
        &["id", "name", "status", "image", "ipv4", "pid", "created_at"]
    } else if has("driver") && has("files") {
        &["name", "driver", "files", "bytes", "created_at", "source"]
    } else if has("scheduled") && has("driver") {
        &["name", "created_at", "scheduled", "bytes", "paused_ms"]
    } else if has("started_by") {
        &["id", "status", "exit_code", "signal", "command", "started_at", "finished_at", "detached", "tty"]
    } else if has("scopes") {
        &["id", "realm_ids", "scopes", "description", "created_at", "expires_at"]
    } else if has("kind") && has("time") {
        &["time", "kind", "protocol", "source", "destination", "destination_port", "name", "type", "rule_id"]
    } else if has("seq") && has("prev") {
        &["seq", "time", "method", "path", "status", "outcome", "container", "peer_uid", "token_id", "duration_us"]
    } else if has("action") && has("packets") {
        &["id", "action", "protocol", "destination", "destination_fqdn", "source", "destination_port", "packets", "bytes", "description"]
    } else {
        return first.keys().cloned().collect();
    };
    pick.iter()
        .filter(|c| first.contains_key(**c) || !["destination_fqdn", "source", "destination"].contains(c))
        .map(|s| s.to_string())
        .collect()
}

/// An RFC 3339 time for people: `2026-12-03 18:08:41` (UTC, to the second).
fn human_time(s: &str) -> String {
    match (s.get(..10), s.get(11..19)) {
        (Some(d), Some(t)) if s.as_bytes().get(10) == Some(&b'T') => format!("{d} {t}"),
        _ => s.to_owned(),
    }
}

/// Renders the `data` of an envelope as a table (arrays) or key/value lines (objects).
pub fn table(data: &Value) -> String {
    let rows: Vec<&serde_json::Map<String, Value>> = match data {
        Value::Array(a) => a.iter().filter_map(|v| v.as_object()).collect(),
        Value::Object(o) => {
            let w = o.keys().map(|k| k.len()).max().unwrap_or(0);
            return o.iter().map(|(k, v)| format!("{k:<w$}  {}\n", field(k, v))).collect();
        }
        other => return format!("{}\n", cell(other)),
    };
    let Some(first) = rows.first() else {
        return "(none)\n".into();
    };
    let cols = columns(first);
    let grid: Vec<Vec<String>> = rows.iter().map(|r| cols.iter().map(|c| field(c, r.get(c).unwrap_or(&Value::Null))).collect()).collect();
    let widths: Vec<usize> =
        cols.iter().enumerate().map(|(i, c)| grid.iter().map(|r| r[i].len()).max().unwrap_or(0).max(c.len())).collect();
    let mut out = String::new();
    let line = |cells: Vec<String>| {
        cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect::<Vec<_>>().join("  ").trim_end().to_owned() + "\n"
    };
    out.push_str(&line(cols.iter().map(|c| c.to_uppercase()).collect()));
    for r in grid {
        out.push_str(&line(r));
    }
    out
}

/// `snapshots diff` for people: one line per path, `+` added, `~` modified (what), `-` deleted.
pub fn diff(d: &Value) -> String {
    let mut out = format!(
        "{} → {}: {} added, {} modified, {} deleted\n",
        cell(&d["from"]),
        cell(&d["to"]),
        cell(&d["added"]),
        cell(&d["modified"]),
        cell(&d["deleted"])
    );
    for c in d["changes"].as_array().into_iter().flatten() {
        let sign = match c["kind"].as_str() {
            Some("added") => "+",
            Some("deleted") => "-",
            _ => "~",
        };
        let what = c["what"].as_array().map(|w| w.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(",")).unwrap_or_default();
        out.push_str(&format!("{sign} {}{}\n", cell(&c["path"]), if what.is_empty() { String::new() } else { format!("  ({what})") }));
    }
    out
}

/// `firewall show` for people: the policy line, then egress and ingress rules with counters.
pub fn firewall(d: &Value) -> String {
    let mut out = format!(
        "container {}  interface {}  ipv4 {}\negress policy: {}  dns: {} (denied {} packets; spoofed {} packets)\n",
        cell(&d["container_id"]),
        cell(&d["interface"]),
        cell(&d["ipv4"]),
        cell(&d["policy"]),
        cell(&d["dns"]),
        cell(&d["denied"]["packets"]),
        cell(&d["spoofed"]["packets"])
    );
    for (title, key, peer) in [("egress rules", "egress", "destination"), ("ingress allow-list", "ingress", "source")] {
        out.push_str(&format!("\n{title}:\n"));
        let rows: Vec<Value> = d[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        serde_json::json!({"id": r["id"], "action": r["action"], "protocol": r["protocol"], peer: if r[peer].is_null() { r["destination_fqdn"].clone() } else { r[peer].clone() }, "port": r["destination_port"], "packets": r["packets"], "bytes": r["bytes"], "description": r["description"]})
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&table(&Value::Array(rows)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_read_in_a_persons_order_with_units_and_times() {
        let snaps = serde_json::json!([{"bytes": 3145728, "created_at": "2026-12-03T18:08:41.313Z", "driver": "btrfs", "name": "clean", "scheduled": false}]);
        let t = table(&snaps);
        let mut lines = t.lines();
        assert_eq!(lines.next().unwrap().split_whitespace().collect::<Vec<_>>(), ["NAME", "CREATED_AT", "SCHEDULED", "BYTES", "PAUSED_MS"]);
        assert_eq!(lines.next().unwrap().split_whitespace().collect::<Vec<_>>(), ["clean", "2026-12-03", "18:08:41", "false", "3MiB", "-"]);
    }

    #[test]
    fn exit_statuses_by_class() {
        use hyper::StatusCode as S;
        let got: Vec<i32> =
            [S::NOT_FOUND, S::CONFLICT, S::UNPROCESSABLE_ENTITY, S::FORBIDDEN, S::INSUFFICIENT_STORAGE, S::INTERNAL_SERVER_ERROR]
                .into_iter()
                .map(exit_status)
                .collect();
        assert_eq!(got, vec![3, 4, 5, 5, 5, 1]);
    }

    #[test]
    fn byte_counts_are_shown_with_units() {
        let v = serde_json::json!({"usage": {"disk_bytes": 13_107_200u64, "snapshots_bytes": 0, "inodes": 12}, "limits": {"disk_bytes": 1u64 << 30}});
        let t = table(&v);
        assert!(t.contains("disk_bytes=12.5MiB") && t.contains("snapshots_bytes=0B") && t.contains("inodes=12"), "{t}");
        assert!(t.contains("disk_bytes=1GiB"), "{t}");
    }

    #[test]
    fn containers_render_as_a_table() {
        let v: Value = serde_json::json!([{"id": "a1", "name": "web", "status": "running", "image": "busybox", "ipv4": null, "pid": 5, "created_at": "t", "idmap": {}}]);
        let t = table(&v);
        assert!(t.starts_with("ID  NAME  STATUS"), "{t}");
        assert!(t.contains("a1  web   running"), "{t}");
    }
}
