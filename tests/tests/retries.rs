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
    // (The kernel tears a dead network namespace's veth down a moment later.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while consistency::objects(&w) != before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(consistency::objects(&w), before, "no storage, cgroup, veth, firewall element or state directory left");
    consistency::consistent(&w, "after a failed create-and-start");
    // The same request again (now with a program that exists) is a fresh create: the name, the
    // address and the id range are free.
    let c = w.ok(&["containers", "create", "--name", "doomed", "--image", "busybox", "--start"]);
    assert_eq!(c["status"], "running", "{c}");
    let ip = c["ipv4"].as_str().unwrap();
    assert!(ip.ends_with(".1"), "the first address of the pool again: {ip}");
}

/// One request with `headers` over a connection of its own: (status, the answer's head).
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
    (status, out.split("\r\n\r\n").next().unwrap().to_owned())
}

/// The value of the header `name` (lowercase) in `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.split_once(": ").filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
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
    // Records name the snapshot and the rule they concern: a create's from its answer or body,
    // the others' from their path.
    w.ok(&["snapshots", "create", "app", "--alias", "s1"]);
    let taken = w.ctl(&["snapshots", "create", "app", "--alias", "s1"]);
    assert_eq!(taken.code, 4);
    let rule = w.ok(&[
        "firewall",
        "egress",
        "create",
        "-c",
        "app",
        "--action",
        "allow",
        "--protocol",
        "tcp",
        "--destination",
        "203.0.113.10/32",
        "--destination-port",
        "443",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.ok(&["firewall", "egress", "delete", "-c", "app", &rule]);
    w.ok(&["snapshots", "delete", "app", "s1"]);
    let records = w.ok(&["audit", "-c", "app"]);
    let find = |method: &str, tail: &str, status: u64| {
        records
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["method"] == method && r["path"].as_str().unwrap().ends_with(tail) && r["status"] == status)
            .cloned()
    };
    for (method, tail, status) in [("POST", "/snapshots", 201), ("POST", "/snapshots", 409), ("DELETE", "/snapshots/s1", 200)] {
        let r = find(method, tail, status).unwrap_or_else(|| panic!("{method} {tail} {status}: {records:#}"));
        assert_eq!(r["snapshot"], "s1", "{r}");
    }
    for (method, tail, status) in [("POST", "/firewall/egress", 201), ("DELETE", &format!("/firewall/egress/{rule}") as &str, 200)] {
        let r = find(method, tail, status).unwrap_or_else(|| panic!("{method} {tail}: {records:#}"));
        assert_eq!(r["rule_id"].as_str(), Some(rule.as_str()), "{r}");
    }
    assert!(w.ok(&["audit", "--verify"])["ok"].as_bool().unwrap(), "the chain verifies with the new members");
}

/// `GET path`: (status, the answer's head, its JSON).
fn get(w: &World, path: &str) -> (u16, String, serde_json::Value) {
    let r = w.http().get(path);
    let (_, head) = raw(w, "GET", path, "", "");
    (r.status, head, serde_json::from_str(&r.body).unwrap_or_default())
}

#[test]
fn lists_filter_and_page_and_refuse_unknown_parameters() {
    let w = World::new(Driver::Overlay);
    for i in 0..5 {
        w.ok(&["containers", "create", "--name", &format!("c{i}"), "--image", "busybox"]);
    }
    w.ok(&["containers", "start", "c1"]);
    w.ok(&["containers", "start", "c3"]);
    // Filters.
    let (_, _, running) = get(&w, "/containers?status=running");
    let names: Vec<&str> = running["data"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["c1", "c3"]);
    let (_, _, none) = get(&w, "/containers?image=other");
    assert_eq!(none["data"], serde_json::json!([]));
    // Pages of two, oldest first, the cursor in X-Next-Cursor; together every container once.
    let mut seen = vec![];
    let mut path = "/containers?limit=2".to_owned();
    loop {
        let (status, head, v) = get(&w, &path);
        assert_eq!(status, 200, "{v}");
        seen.extend(v["data"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()));
        match header(&head, "x-next-cursor") {
            Some(c) => path = format!("/containers?limit=2&after={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4"]);
    // Unknown parameters and bad limits are refused, naming them.
    let r = w.http().get("/containers?colour=red");
    assert_eq!((r.status, r.json()["error"]["field"].as_str()), (400, Some("?colour")), "{r:?}");
    let r = w.http().get("/containers?limit=0");
    assert_eq!((r.status, r.json()["error"]["field"].as_str()), (400, Some("?limit")), "{r:?}");
    let r = w.http().get("/containers?status=exploded");
    assert_eq!(r.status, 400, "{r:?}");
    // Snapshots, images and tokens page the same way.
    for s in ["a", "b", "c"] {
        w.ok(&["snapshots", "create", "c0", "--alias", s]);
    }
    let (_, head, v) = get(&w, "/containers/c0/snapshots?limit=2");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let cursor = header(&head, "x-next-cursor").expect("a cursor").to_owned();
    let (_, head, v) = get(&w, &format!("/containers/c0/snapshots?limit=2&after={cursor}"));
    assert_eq!((v["data"][0]["name"].as_str(), header(&head, "x-next-cursor")), (Some("c"), None));
    let (_, _, v) = get(&w, "/images?limit=1");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (_, _, v) = get(&w, "/tokens?realm=aaaaaaaaaaaaaaaaaaaaaaaa");
    assert_eq!(v["data"], serde_json::json!([]));
    // The audit log: oldest first a page at a time, or the latest newest first.
    let (_, head, first) = get(&w, "/audit?limit=3");
    let seqs: Vec<u64> = first["data"].as_array().unwrap().iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");
    let next = header(&head, "x-next-cursor").expect("more records").to_owned();
    let (_, _, second) = get(&w, &format!("/audit?limit=3&after={next}"));
    assert_eq!(second["data"][0]["seq"].as_u64(), Some(seqs[2] + 1));
    let newest = w.ok(&["audit", "--newest", "--limit", "2"]);
    let n: Vec<u64> = newest.as_array().unwrap().iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(n[0] > n[1], "{n:?}");
    // hoodyctl: the same filters and pages; the next page's --after on stderr.
    let names =
        |v: &serde_json::Value| -> Vec<String> { v.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect() };
    assert_eq!(names(&w.ok(&["containers", "list", "--status", "running"])), ["c1", "c3"]);
    assert_eq!(names(&w.ok(&["containers", "list", "--image", "other"])), Vec::<String>::new());
    let mut seen = vec![];
    let mut args = vec!["containers".to_owned(), "list".into(), "--limit".into(), "2".into()];
    loop {
        let r = w.ctl(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(r.code, 0, "{r:?}");
        seen.extend(names(&r.json()["data"]));
        match r.stderr.split_once("--after ") {
            Some((_, c)) => {
                args.truncate(4);
                args.extend(["--after".into(), c.trim().to_owned()]);
            }
            None => break,
        }
    }
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4"]);
    let r = w.ctl(&["snapshots", "list", "c0", "--limit", "2"]);
    assert!(r.code == 0 && r.stderr.contains("more follow"), "{r:?}");
    assert_eq!(w.ctl(&["containers", "list", "--status", "exploded"]).code, 2, "refused before it is sent");
    assert_eq!(w.ok(&["images", "list", "--limit", "1"]).as_array().unwrap().len(), 1);
    assert_eq!(w.ok(&["tokens", "list", "--realm", "aaaaaaaaaaaaaaaaaaaaaaaa"]), serde_json::json!([]));
}

/// Sends the head of a request and `part` of its body, then waits: a request still running.
fn begun(w: &World, path: &str, headers: &str, len: usize, part: &str) -> std::os::unix::net::UnixStream {
    use std::io::Write;
    let mut s = std::os::unix::net::UnixStream::connect(&w.socket).unwrap();
    let req = format!(
        "POST /api/v1{path} HTTP/1.1\r\nHost: hoody\r\nConnection: close\r\n{headers}Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n{part}"
    );
    s.write_all(req.as_bytes()).unwrap();
    s
}

#[test]
fn a_retried_create_with_the_same_key_makes_one_container() {
    let mut w = World::new(Driver::Overlay);
    // Through hoodyctl: the same command twice with the same key prints the same container.
    let create = ["--idempotency-key", "create-app-7f3a", "containers", "create", "--name", "app", "--image", "busybox"];
    let first = w.ok(&create);
    let second = w.ok(&create);
    assert_eq!(first, second, "the retry's answer is the first one");
    let all = w.ok(&["containers", "list"]);
    assert_eq!(all.as_array().unwrap().len(), 1, "one container: {all:#}");
    // Through the socket: the retry is marked, carries its own request id, and its audit record
    // names the container the first one made.
    let body = r#"{"name": "web", "image": "busybox"}"#;
    let (status, head) = raw(&w, "POST", "/containers", "Idempotency-Key: k-web\r\nX-Request-Id: web-1\r\n", body);
    assert_eq!((status, header(&head, "idempotent-replayed")), (201, None), "{head}");
    let (status, head) = raw(&w, "POST", "/containers", "Idempotency-Key: k-web\r\nX-Request-Id: web-2\r\n", body);
    assert_eq!((status, header(&head, "idempotent-replayed"), header(&head, "x-request-id")), (201, Some("true"), Some("web-2")), "{head}");
    let web = w.ok(&["containers", "get", "web"])["id"].as_str().unwrap().to_owned();
    let records = w.ok(&["audit", "-c", "web"]);
    let retry = records.as_array().unwrap().iter().find(|r| r["request_id"] == "web-2").expect("the retry's record");
    assert_eq!((retry["container"].as_str(), retry["status"].as_u64()), (Some(web.as_str()), Some(201)), "{records:#}");
    // The same key with another body, path or method is refused naming the header; the
    // container is not made.
    let (status, _) = raw(&w, "POST", "/containers", "Idempotency-Key: k-web\r\n", r#"{"name": "other", "image": "busybox"}"#);
    assert_eq!(status, 422);
    let refused = w.ctl(&["--idempotency-key", "k-web", "containers", "create", "--name", "other", "--image", "busybox"]);
    assert_eq!(refused.code, 5, "{refused:?}");
    assert!(refused.stdout.contains("\"field\": \"Idempotency-Key\"") || refused.stderr.contains("Idempotency-Key"), "{refused:?}");
    assert_eq!(w.ctl(&["containers", "get", "other"]).code, 3, "no container from the refused retry");
    // An answer that is a refusal is kept too: the retry of a create whose name was taken
    // gets the same 409, even once the name is free.
    let taken = ["--idempotency-key", "k-taken", "containers", "create", "--name", "app", "--image", "busybox"];
    assert_eq!(w.ctl(&taken).code, 4);
    w.ok(&["containers", "delete", "app"]);
    assert_eq!(w.ctl(&taken).code, 4, "the first answer, not a second create");
    assert_eq!(w.ctl(&["containers", "get", "app"]).code, 3);
    // Keys are the caller's own: a token's "k-web" is not the administrator's.
    let realm = w.ok(&["realms", "create", "--description", "tenant"])["id"].as_str().unwrap().to_owned();
    let token = w.ok(&["tokens", "create", "--realm", &realm])["token"].as_str().unwrap().to_owned();
    let (status, _) = raw(
        &w,
        "POST",
        "/containers",
        &format!("Authorization: Bearer {token}\r\nIdempotency-Key: k-web\r\n"),
        &format!(r#"{{"name": "web", "image": "busybox", "realm_ids": ["{realm}"]}}"#),
    );
    assert_eq!(status, 201, "another caller's key of the same name is not consulted");
    // While the first request with a key runs, a retry is 409 in_progress; a first request
    // whose body broke off leaves the key free.
    let slow = begun(&w, "/images?name=slow", "Idempotency-Key: k-slow\r\n", 4096, "not yet all");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, head) = raw(&w, "POST", "/images?name=slow", "Idempotency-Key: k-slow\r\n", "");
    assert_eq!(status, 409, "{head}");
    drop(slow);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = raw(&w, "POST", "/images?name=slow", "Idempotency-Key: k-slow\r\n", "");
        if status != 409 {
            assert!((400..500).contains(&status), "the retry ran (the key was free again): {status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the key stays held after its request broke off");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Kept answers are in the state database: a restarted daemon gives them again.
    w.stop_daemon();
    w.start_daemon();
    assert_eq!(w.ok(&create), first, "the first answer after a restart");
    let (status, head) = raw(&w, "POST", "/containers", "Idempotency-Key: k-web\r\n", body);
    assert_eq!((status, header(&head, "idempotent-replayed")), (201, Some("true")), "{head}");
}
