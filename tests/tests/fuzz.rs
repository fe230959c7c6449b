//! Property tests against a real daemon: arbitrary and mangled bodies for the requests that
//! carry the most input (create, firewall rules, tokens, realms), and arbitrary paths, methods
//! and queries. Whatever arrives, the daemon answers — success or a 4xx, never a 5xx, never a
//! dropped connection — and it is still healthy, with an unbroken audit chain, at the end.

use hoody_e2e::http::{Http, Reply};
use hoody_e2e::{Driver, World, tail};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

/// Any JSON value: odd strings (control characters, long, non-ASCII), huge and negative
/// numbers, nesting.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        ".{0,40}".prop_map(Value::String),
        "[a-z0-9/.:-]{0,30}".prop_map(Value::String),
        (1usize..5000).prop_map(|n| Value::String("x".repeat(n))),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid body with some fields replaced, removed or added.
fn mangled(template: Value) -> impl Strategy<Value = Value> {
    let keys: Vec<String> = template.as_object().expect("an object").keys().cloned().collect();
    let n = keys.len();
    prop::collection::vec((0..n + 1, prop::option::of(any_json()), "[a-z_]{1,12}"), 0..4).prop_map(move |edits| {
        let mut m: Map<String, Value> = template.as_object().unwrap().clone();
        for (i, v, extra) in edits {
            match (keys.get(i), v) {
                (Some(k), Some(v)) => {
                    m.insert(k.clone(), v);
                }
                (Some(k), None) => {
                    m.remove(k);
                }
                (None, v) => {
                    m.insert(extra, v.unwrap_or(Value::Null));
                }
            }
        }
        Value::Object(m)
    })
}

/// Bodies: mangled templates, arbitrary JSON, and raw bytes.
fn bodies(template: Value) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => mangled(template).prop_map(|v| serde_json::to_vec(&v).unwrap()),
        2 => any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ]
}

/// Gives each body its own name (the templates' `"fz"`), so that valid ones are created rather
/// than refused as duplicates.
fn named(body: Vec<u8>, name: String) -> Vec<u8> {
    match String::from_utf8(body) {
        Ok(s) => s.replace("\"fz\"", &format!("\"{name}\"")).into_bytes(),
        Err(e) => e.into_bytes(),
    }
}

fn check(r: &Reply, what: &str) -> Result<u16, TestCaseError> {
    prop_assert!(r.status >= 200 && r.status < 500, "{what}: {} {}", r.status, r.body);
    if r.status >= 400 {
        let v: Value =
            serde_json::from_str(&r.body).map_err(|e| TestCaseError::fail(format!("{what}: not an error envelope ({e}): {}", r.body)))?;
        prop_assert!(v["error"]["message"].is_string(), "{what}: {}", r.body);
    }
    Ok(r.status)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

/// Runs `cases` cases of `f`, which answers the status it got; both successes and refusals
/// must have happened (a fuzzer that only ever hits one of them tests little).
fn run<S: Strategy>(w: &World, name: &str, cases: u32, s: S, f: impl Fn(S::Value) -> Result<u16, TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    let r = runner(cases).run(&s, |v| {
        let status = f(v)?;
        *seen.borrow_mut().entry(status).or_default() += 1;
        Ok(())
    });
    if let Err(e) = r {
        panic!("{name}: {e}\n--- daemon log tail ---\n{}", tail(&w.daemon_log(), 30));
    }
    let seen = seen.into_inner();
    eprintln!("{name}: statuses {seen:?}");
    assert!(seen.keys().any(|s| *s < 300) && seen.keys().any(|s| *s >= 400), "{name}: only {seen:?}");
}

#[test]
fn no_input_makes_the_daemon_fail_or_fall_over() {
    let w = World::new(Driver::Btrfs);
    let h: Http = w.http();
    let realm = w.ok(&["realms", "create"])["id"].as_str().unwrap().to_owned();
    let target =
        w.ok(&["containers", "create", "--name", "target", "--image", "busybox", "--realm", &realm])["id"].as_str().unwrap().to_owned();

    let create = json!({
        "name": "fz", "image": "busybox", "realm_ids": [realm], "project_id": "p",
        "egress": "deny", "autostart": false,
        "command": ["/bin/sh"], "env": ["A=B"], "snapshots": {"schedule": "daily", "expiry": "7d"}
    });
    let queries = prop_oneof![
        6 => Just(""),
        1 => prop::sample::select(vec!["?start=false", "?force=true", "?bogus=1", "?start=perhaps", "?timeout=-1"]),
    ];
    let name = "[a-z][a-z0-9]{0,14}";
    run(&w, "create", 250, (bodies(create), name, queries), |(body, name, q)| {
        check(&h.request("POST", &format!("/containers{q}"), &named(body, name)), "create")
    });

    let egress =
        json!({"action": "allow", "protocol": "tcp", "destination": "203.0.113.10/32", "destination_port": "443", "description": "d"});
    let ingress = json!({"protocol": "udp", "source": "198.51.100.0/24", "destination_port": "53-60", "description": "d"});
    let rules = prop_oneof![bodies(egress).prop_map(|b| ("egress", b)), bodies(ingress).prop_map(|b| ("ingress", b))];
    run(&w, "firewall rules", 250, rules, |(dir, body)| {
        check(&h.request("POST", &format!("/containers/{target}/firewall/{dir}"), &body), "firewall rule")
    });

    let token =
        json!({"realm_ids": [realm], "scopes": ["exec", "containers:read"], "description": "d", "expires_at": "2099-01-01T00:00:00Z"});
    run(&w, "tokens", 200, bodies(token), |body| check(&h.request("POST", "/tokens", &body), "token"));
    run(&w, "realms", 60, bodies(json!({"description": "d"})), |body| check(&h.request("POST", "/realms", &body), "realm"));
    let snapshot = json!({"alias": "fz"});
    run(&w, "snapshots", 60, (bodies(snapshot), name), |(body, name)| {
        check(&h.request("POST", &format!("/containers/{target}/snapshots"), &named(body, name)), "snapshot")
    });

    // Arbitrary paths, methods and queries (percent-encoded), as an administrator and as a token.
    let (_, tok) = {
        let t = w.ok(&["tokens", "create", "--realm", &realm]);
        (t["id"].clone(), t["token"].as_str().unwrap().to_owned())
    };
    let words = vec![
        "containers",
        "firewall",
        "egress",
        "ingress",
        "snapshots",
        "tokens",
        "realms",
        "audit",
        "images",
        "logs",
        "diff",
        "verify",
        "events",
        "reset",
        "health",
        "metrics",
        "target",
        "busybox",
        "..",
        ".",
        "",
    ];
    let segment = prop_oneof![
        3 => prop::sample::select(words).prop_map(str::to_owned),
        1 => Just(target.clone()),
        2 => ".{0,20}".prop_map(|s| s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()),
    ];
    let method = prop::sample::select(vec!["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"]);
    let query =
        prop_oneof![Just(String::new()), "[a-z]{1,8}=[a-zA-Z0-9%]{0,12}".prop_map(|q| format!("?{q}")), Just("?since=1h&limit=0".into())];
    // Mostly arbitrary requests; some well-formed reads, so that answers of every kind happen.
    let t = target.clone();
    let valid: Vec<Vec<String>> = [
        vec!["containers"],
        vec!["containers", &t],
        vec!["containers", &t, "firewall"],
        vec!["containers", &t, "firewall", "events"],
        vec!["containers", &t, "snapshots"],
        vec!["containers", &t, "logs"],
        vec!["realms"],
        vec!["audit"],
        vec!["images"],
        vec!["health"],
    ]
    .iter()
    .map(|v| v.iter().map(|s| s.to_string()).collect())
    .collect();
    let request = prop_oneof![
        4 => (method, prop::collection::vec(segment, 1..6)),
        1 => prop::sample::select(valid).prop_map(|segs| ("GET", segs)),
    ];
    let paths = (request, query, any::<bool>(), bodies(json!({"x": 1})));
    let as_token = h.with_token(&tok);
    run(&w, "paths", 500, paths, |((m, segs), q, with_token, body)| {
        // Never start or restart: a fuzzer's containers are not the point here.
        prop_assume!(!segs.iter().any(|s| s == "start" || s == "restart" || s == "exec"));
        let path = format!("/{}{q}", segs.join("/"));
        let client = if with_token { &as_token } else { &h };
        let r = client.request(m, &path, &body);
        prop_assert!(r.status != 0, "{m} {path}: no answer (connection dropped)");
        // HEAD answers have no body to check.
        if m != "HEAD" {
            check(&r, &format!("{m} {path}"))
        } else {
            prop_assert!(r.status < 500, "{m} {path}: {}", r.status);
            Ok(r.status)
        }
    });

    assert_eq!(h.get("/health").status, 200, "the daemon did not survive");
    let v = w.ctl(&["audit", "--verify"]);
    assert_eq!(v.code, 0, "the audit chain broke under fuzzing: {v:?}");
}
