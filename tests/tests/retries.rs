//! Safe retries: a create with `?start=true` whose start fails leaves nothing behind, so the
//! same request again is a fresh create (not a 409 on a half-made container).

use hoody_e2e::{Driver, World, consistency};

#[test]
fn a_create_whose_start_fails_leaves_nothing() {
    let w = World::with_net(Driver::Btrfs);
    let before = consistency::objects(&w);
    let r = w.ctl(&["containers", "create", "--name", "doomed", "--image", "busybox", "--start", "--", "/no/such/program"]);
    assert_eq!(r.code, 5, "the start's refusal is the answer: {r:?}");
    assert!(r.stderr.contains("/no/such/program"), "{r:?}");
    assert_eq!(w.ok(&["containers", "list"]), serde_json::json!([]), "no container row");
    assert_eq!(consistency::objects(&w), before, "no storage, cgroup, veth, firewall element or state directory left");
    consistency::consistent(&w, "after a failed create-and-start");
    // The same request again (now with a program that exists) is a fresh create: the name, the
    // address and the id range are free.
    let c = w.ok(&["containers", "create", "--name", "doomed", "--image", "busybox", "--start"]);
    assert_eq!(c["status"], "running", "{c}");
    let ip = c["ipv4"].as_str().unwrap();
    assert!(ip.ends_with(".1"), "the first address of the pool again: {ip}");
}

/// One request with `headers` over a connection of its own: (status, the answer's headers in
/// lowercase).
fn raw(w: &World, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&w.socket).unwrap();
    let req = format!(
        "{method} /api/v1{path} HTTP/1.1\r\nHost: hoody\r\nConnection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    (status, out.split("\r\n\r\n").next().unwrap().to_ascii_lowercase())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[test]
fn every_answer_carries_its_request_id_and_every_record_names_its_container() {
    let w = World::new(Driver::Overlay);
    // The caller's id is kept; without one the daemon gives one; a nonsensical one is replaced.
    let (status, head) = raw(&w, "POST", "/containers", "X-Request-Id: create-app-1\r\n", r#"{"name": "app", "image": "busybox"}"#);
    assert_eq!((status, header(&head, "x-request-id")), (201, Some("create-app-1")), "{head}");
    let (_, head) = raw(&w, "GET", "/containers/app", "", "");
    let given = header(&head, "x-request-id").expect("an id when none was sent").to_owned();
    assert_eq!(given.len(), 24, "{given}");
    let (_, head) = raw(&w, "GET", "/health", &format!("X-Request-Id: {}\r\n", "x".repeat(200)), "");
    assert_ne!(header(&head, "x-request-id").map(str::len), Some(200), "an overlong id is replaced");
    // A refused create (the name is taken) and one that fails validation name the container too.
    let (status, _) = raw(&w, "POST", "/containers", "X-Request-Id: create-app-2\r\n", r#"{"name": "app", "image": "busybox"}"#);
    assert_eq!(status, 409);
    let (status, _) = raw(&w, "POST", "/containers", "X-Request-Id: create-bad\r\n", r#"{"name": "bad", "image": "nope"}"#);
    assert_eq!(status, 422);
    // `hoodyctl audit -c NAME` finds them, each with its request id.
    let id = w.ok(&["containers", "get", "app"])["id"].as_str().unwrap().to_owned();
    let records = w.ok(&["audit", "-c", "app"]);
    let rid = |r: &serde_json::Value| r["request_id"].as_str().unwrap_or_default().to_owned();
    let of_app: Vec<String> = records.as_array().unwrap().iter().map(rid).collect();
    assert!(
        of_app.contains(&"create-app-1".to_owned()) && of_app.contains(&"create-app-2".to_owned()) && of_app.contains(&given),
        "{records:#}"
    );
    let created = records.as_array().unwrap().iter().find(|r| rid(r) == "create-app-1").unwrap();
    assert_eq!((created["container"].as_str(), created["status"].as_u64()), (Some(id.as_str()), Some(201)), "the create names the new id");
    let bad = w.ok(&["audit", "-c", "bad"]);
    assert!(bad.as_array().unwrap().iter().any(|r| rid(r) == "create-bad" && r["status"] == 422), "{bad:#}");
    assert!(w.ok(&["audit", "--verify"])["ok"].as_bool().unwrap(), "the chain verifies with the new member");
}
