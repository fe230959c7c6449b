//! Who may do what: realms and their tokens, scopes, revocation and expiry, who may connect to
//! the socket at all, and the audit trail that records every request and notices tampering.

use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hoody_api::common::Port;
use hoody_api::containers::CreateContainer;
use hoody_api::envelope::ErrorCode;
use hoody_api::firewall::EgressRule;
use hoody_api::query::AuditQuery;
use hoody_e2e::http::{Http, Reply};
use hoody_e2e::{Ctl, Driver, World, sys, tail};
use serde_json::{Value, json};

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}")).to_owned()
}

fn new_realm(w: &World) -> String {
    s(&w.ok(&["realms", "create", "--description", "a tenant"]), "id")
}

/// A token for `realms` with `scopes` (none = all): (token id, the secret string).
fn new_token(w: &World, realms: &[&str], scopes: &[&str], extra: &[&str]) -> (String, String) {
    let mut args = vec!["tokens", "create"];
    for r in realms {
        args.extend(["--realm", r]);
    }
    for sc in scopes {
        args.extend(["--scope", sc]);
    }
    args.extend_from_slice(extra);
    let t = w.ok(&args);
    (s(&t, "id"), s(&t, "token"))
}

/// hoodyctl presenting `token`.
fn ctl_as(w: &World, token: &str, args: &[&str]) -> Ctl {
    let out = w.hoodyctl().env("HOODY_TOKEN", token).args(args).stdin(Stdio::null()).output().expect("hoodyctl");
    Ctl {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// Drops what changes by itself (usage, counters) from a JSON document.
fn stable(mut v: Value) -> Value {
    match &mut v {
        Value::Object(m) => {
            for k in ["usage", "packets", "bytes"] {
                m.remove(k);
            }
            for x in m.values_mut() {
                *x = stable(x.take());
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                *x = stable(x.take());
            }
        }
        _ => {}
    }
    v
}

/// Everything an administrator can see of a container.
fn everything(w: &World, id: &str) -> Value {
    json!({
        "container": stable(w.ok(&["containers", "get", id])),
        "firewall": stable(w.ok(&["firewall", "show", "-c", id])),
        "snapshots": stable(w.ok(&["snapshots", "list", "-c", id])),
    })
}

fn audit(w: &World) -> Vec<Value> {
    w.ok(&["audit", "--limit", "10000"]).as_array().expect("records").clone()
}

/// Every request on a named container, as (method, path under the container, body).
fn container_requests(rule: &str) -> Vec<(&'static str, String, String)> {
    let egress = r#"{"action":"allow","protocol":"tcp","destination":"203.0.113.10/32","destination_port":"443"}"#;
    let ingress = r#"{"protocol":"tcp","source":"198.51.100.0/24"}"#;
    [
        ("GET", "", ""),
        ("PATCH", "", r#"{"autostart":true}"#),
        ("DELETE", "?force=true", ""),
        ("POST", "/start", ""),
        ("POST", "/stop", ""),
        ("POST", "/restart", ""),
        ("POST", "/exec", r#"{"command":["rm","-rf","/"]}"#),
        ("GET", "/logs", ""),
        ("GET", "/firewall", ""),
        ("POST", "/firewall/reset", ""),
        ("GET", "/firewall/events", ""),
        ("POST", "/firewall/egress", egress),
        ("DELETE", &format!("/firewall/egress/{rule}"), ""),
        ("POST", "/firewall/ingress", ingress),
        ("DELETE", "/firewall/ingress/aaaaaaaaaaaaaaaaaaaaaaaa", ""),
        ("POST", "/snapshots", r#"{"alias":"evil"}"#),
        ("GET", "/snapshots", ""),
        ("DELETE", "/snapshots/base", ""),
        ("PATCH", "/snapshots/base", ""),
        ("GET", "/snapshots/base/diff", ""),
        ("PATCH", "", r#"{"not":"even valid"}"#),
        ("POST", "/firewall/egress", "{broken json"),
    ]
    .into_iter()
    .map(|(m, p, b)| (m, p.to_string(), b.to_string()))
    .collect()
}

#[test]
fn a_realm_token_cannot_see_or_touch_another_realm() {
    let w = World::new(Driver::Btrfs);
    let (ra, rb) = (new_realm(&w), new_realm(&w));
    let (ta_id, ta) = new_token(&w, &[&ra], &[], &[]);
    let (tb_id, tb) = new_token(&w, &[&rb], &[], &[]);
    let ha = w.http().with_token(&ta);

    // Each tenant creates in its own realm with its own token (the realm defaults to the token's).
    let named = |name: &str| CreateContainer { name: name.into(), image: "busybox".into(), ..Default::default() };
    let ca = w.api_as(&ta, async |c| c.create_container(&named("alpha"), true).await).expect("alpha");
    assert_eq!(ca.realm_ids, vec![ra.clone()]);
    let b = w.api_as(&tb, async |c| c.create_container(&named("bravo"), true).await).expect("bravo").id;
    let allow = EgressRule {
        action: "allow".into(),
        protocol: Some("tcp".into()),
        destination: Some("203.0.113.10/32".into()),
        destination_fqdn: None,
        destination_port: Some(Port::Text("443".into())),
        description: None,
    };
    let rule = w.api_as(&tb, async |c| c.add_egress(&b, &allow).await).expect("rule").id;
    w.api_as(&tb, async |c| c.create_snapshot(&b, "base").await).expect("snapshot");
    w.sh(&b, "echo tenant-b-secret > /data.txt");
    let before = everything(&w, &b);

    // Tenant A, by id and by name, on every endpoint: the answer of a container that does not exist.
    let mut denials = 0;
    for (target, absent) in [(b.as_str(), "ffffffffffffffffffffffff"), ("bravo", "charlie")] {
        for (method, sub, body) in container_requests(&rule) {
            let got = ha.request(method, &format!("/containers/{target}{sub}"), body.as_bytes());
            let none = ha.request(method, &format!("/containers/{absent}{sub}"), body.as_bytes());
            assert_eq!(got.status, 404, "{method} {target}{sub}: {got:?}");
            assert_eq!(got.body.replace(target, "X"), none.body.replace(absent, "X"), "{method} {sub}: the answer tells them apart");
            denials += 1;
        }
    }
    // Lists never include it; creating in realm B is refused like an unknown realm.
    let names: Vec<String> = w.api_as(&ta, async |c| c.containers().await).expect("list").into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["alpha"]);
    let mole = CreateContainer { realm_ids: vec![rb.clone()], ..named("mole") };
    let into_b = w.api_as(&ta, async |c| c.create_container(&mole, false).await).unwrap_err();
    assert_eq!(into_b.code(), Some(ErrorCode::NotFound), "{into_b:?}");
    denials += 1;
    assert_eq!(w.api_as(&ta, async |c| c.realms().await).expect("realms").realm_ids, vec![ra.clone()]);
    // Nor through hoodyctl.
    let c = ctl_as(&w, &ta, &["exec", "-c", &b, "--", "cat", "/data.txt"]);
    assert_ne!(c.code, 0);
    assert!(c.stderr.contains("not found") && !c.stdout.contains("secret"), "{c:?}");
    denials += 1;
    let c = ctl_as(&w, &ta, &["snapshots", "restore", "-c", "bravo", "--name", "base"]);
    assert_ne!(c.code, 0, "{c:?}");
    denials += 1;

    // B is exactly as it was, and still works for its own tenant.
    assert_eq!(everything(&w, &b), before, "realm B's container changed");
    assert_eq!(w.sh(&b, "cat /data.txt").trim(), "tenant-b-secret");
    assert!(w.api_as(&tb, async |c| c.container(&b).await).is_ok());

    // Each denial is in the audit log, as a denial by A's token.
    let records = audit(&w);
    let denied: Vec<&Value> = records.iter().filter(|r| r["token_id"] == json!(ta_id) && r["outcome"] == "denied").collect();
    assert_eq!(denied.len(), denials, "denials recorded: {denied:#?}");
    assert!(denied.iter().all(|r| r["status"] == 404 && r["realm_ids"] == json!([ra])), "{denied:#?}");
    // A's token reads only records of realm A, which never name B's container.
    let own = w.api_as(&ta, async |c| c.audit(&AuditQuery { limit: Some(10_000), ..Default::default() }).await).expect("audit");
    assert!(!own.is_empty());
    assert!(own.iter().all(|r| r.realm_ids == [ra.clone()]), "A sees records of other realms");
    assert!(own.iter().all(|r| r.token_id.as_ref() != Some(&tb_id)), "A sees B's requests");
    assert!(
        own.iter().filter(|r| r.path.contains(&b)).all(|r| r.token_id.as_ref() == Some(&ta_id) && r.status == 404),
        "A sees what was done to B's container"
    );
    assert!(!records.iter().any(|r| r["token_id"] == json!(tb_id) && r["outcome"] == "denied"));
    // An administrator's view of B's container names B's id and realm.
    let about_b = w.ok(&["audit", "-c", &b]);
    assert!(about_b.as_array().unwrap().iter().any(|r| r["token_id"].is_null() && r["realm_ids"] == json!([rb])), "{about_b:#}");
}

#[test]
fn scopes_revocation_and_expiry() {
    let w = World::new(Driver::Overlay);
    let r = new_realm(&w);
    let c = s(&w.ok(&["containers", "create", "--name", "work", "--image", "busybox", "--realm", &r, "--start"]), "id");
    let h = w.http();
    let (ro_id, ro) = new_token(&w, &[&r], &["containers:read"], &[]);
    let (_, exec) = new_token(&w, &[&r], &["exec"], &[]);
    let (_, fw) = new_token(&w, &[&r], &["firewall:write"], &[]);
    let (_, snap) = new_token(&w, &[&r], &["snapshots:write"], &[]);
    let (_, write) = new_token(&w, &[&r], &["containers:write", "containers:read"], &[]);

    let egress = r#"{"action":"allow","protocol":"tcp","destination":"203.0.113.10/32"}"#;
    let cases: Vec<(&str, &str, String, String)> = vec![
        // (token, method, path, body)
        (&ro, "GET", format!("/containers/{c}"), String::new()),
        (&ro, "GET", format!("/containers/{c}/firewall"), String::new()),
        (&ro, "GET", format!("/containers/{c}/snapshots"), String::new()),
        (&fw, "POST", format!("/containers/{c}/firewall/egress"), egress.into()),
        (&snap, "POST", format!("/containers/{c}/snapshots"), r#"{"alias":"s1"}"#.into()),
        (&write, "POST", format!("/containers/{c}/restart"), String::new()),
        (&write, "POST", "/containers".into(), r#"{"name":"second","image":"busybox"}"#.into()),
        (&exec, "POST", format!("/containers/{c}/exec"), r#"{"command":["true"]}"#.into()),
    ];
    for (tok, method, path, body) in &cases {
        let got = h.with_token(tok).request(method, path, body.as_bytes());
        assert!(got.status < 300, "{method} {path} with its scope: {got:?}");
    }
    let forbidden: Vec<(&str, &str, String, String)> = vec![
        (&ro, "POST", format!("/containers/{c}/stop"), String::new()),
        (&ro, "POST", format!("/containers/{c}/exec"), r#"{"command":["true"]}"#.into()),
        (&ro, "POST", format!("/containers/{c}/firewall/egress"), egress.into()),
        (&ro, "POST", format!("/containers/{c}/firewall/reset"), String::new()),
        (&ro, "POST", format!("/containers/{c}/snapshots"), r#"{"alias":"s2"}"#.into()),
        (&ro, "DELETE", format!("/containers/{c}/snapshots/s1"), String::new()),
        (&ro, "DELETE", format!("/containers/{c}?force=true"), String::new()),
        (&ro, "POST", "/containers".into(), r#"{"name":"third","image":"busybox"}"#.into()),
        (&exec, "GET", format!("/containers/{c}"), String::new()),
        (&fw, "POST", format!("/containers/{c}/stop"), String::new()),
        (&snap, "POST", format!("/containers/{c}/firewall/reset"), String::new()),
        (&write, "POST", format!("/containers/{c}/exec"), r#"{"command":["true"]}"#.into()),
        // Administrators only, whatever the scopes.
        (&write, "POST", "/tokens".into(), format!(r#"{{"realm_ids":["{r}"]}}"#)),
        (&write, "GET", "/tokens".into(), String::new()),
        (&write, "POST", "/realms".into(), String::new()),
        (&write, "GET", "/audit/verify".into(), String::new()),
        (&write, "GET", "/metrics".into(), String::new()),
        (&write, "POST", "/images?name=x".into(), String::new()),
    ];
    for (tok, method, path, body) in &forbidden {
        let got = h.with_token(tok).request(method, path, body.as_bytes());
        assert_eq!(got.status, 403, "{method} {path}: {got:?}");
    }
    assert_eq!(w.ok(&["containers", "get", &c])["status"], "running", "a forbidden request changed something");
    let exec_out = ctl_as(&w, &exec, &["exec", "-c", "work", "--", "echo", "scoped"]);
    assert_eq!((exec_out.code, exec_out.stdout.trim()), (0, "scoped"), "{exec_out:?}");

    // Revocation takes effect on the next request.
    assert_eq!(h.with_token(&ro).get("/containers").status, 200);
    w.ok(&["tokens", "delete", &ro_id]);
    let gone = h.with_token(&ro).get("/containers");
    assert_eq!(gone.status, 401, "{gone:?}");
    assert!(!w.ok(&["tokens", "list"]).as_array().unwrap().iter().any(|t| t["id"] == json!(ro_id)));
    // So does expiry.
    let (_, brief) = new_token(&w, &[&r], &[], &["--expires-in", "2s"]);
    assert_eq!(h.with_token(&brief).get("/containers").status, 200);
    std::thread::sleep(Duration::from_millis(2500));
    let late = h.with_token(&brief).get("/containers");
    assert_eq!(late.status, 401, "{late:?}");
    assert!(late.message().contains("expired"), "{late:?}");
    // Malformed and forged tokens.
    // The forgery changes the secret's last character (to one it is not).
    let last = if write.ends_with('0') { '1' } else { '0' };
    for bad in ["nonsense", &format!("{}{last}", &write[..write.len() - 1]), &ro] {
        assert_eq!(h.with_token(bad).get("/containers").status, 401, "{bad}");
    }

    let records = audit(&w);
    let refused = records.iter().filter(|r| r["outcome"] == "denied").count();
    assert_eq!(refused, forbidden.len() + 5, "403s and 401s are recorded as denials");
}

#[test]
fn who_may_connect_and_who_is_an_administrator() {
    // Socket group 64242, administrators 64243; the users below exist only as numbers.
    let w = World::with_flags(Driver::Overlay, &["--socket-group", "64242", "--admin-group", "64243"]);
    let meta = std::fs::metadata(&w.socket).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.uid(), meta.gid()), (0o660, 0, 64242));
    let as_user = |uid: u32, gid: u32, groups: &[u32], token: Option<&str>, args: &[&str]| -> Ctl {
        let mut cmd = w.hoodyctl();
        cmd.args(args).stdin(Stdio::null());
        if let Some(t) = token {
            cmd.env("HOODY_TOKEN", t);
        }
        sys::as_user(&mut cmd, uid, gid, groups);
        let out = cmd.output().expect("hoodyctl");
        Ctl {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    };
    // Neither in the socket group nor root: cannot connect at all.
    let c = as_user(64250, 64250, &[], None, &["health"]);
    assert_ne!(c.code, 0);
    assert!(c.stderr.contains("Permission denied"), "{c:?}");
    // In the group, without a token: 401.
    let c = as_user(64251, 64242, &[], None, &["containers", "list"]);
    assert_ne!(c.code, 0);
    assert!(c.stderr.contains("token is required"), "{c:?}");
    // With a token: its realm only.
    let r = new_realm(&w);
    w.ok(&["containers", "create", "--name", "theirs", "--image", "busybox", "--realm", &r]);
    w.ok(&["containers", "create", "--name", "admins", "--image", "busybox"]);
    let (_, t) = new_token(&w, &[&r], &["containers:read"], &[]);
    let c = as_user(64251, 64242, &[], Some(&t), &["containers", "list"]);
    assert_eq!(c.code, 0, "{c:?}");
    let names: Vec<String> = c.json()["data"].as_array().unwrap().iter().map(|x| s(x, "name")).collect();
    assert_eq!(names, ["theirs"]);
    // Members of the admin group (primary or supplementary) are administrators without a token.
    for (gid, groups) in [(64243, vec![64242]), (64252, vec![64242, 64243])] {
        let c = as_user(64252, gid, &groups, None, &["tokens", "list"]);
        assert_eq!(c.code, 0, "gid {gid} groups {groups:?}: {c:?}");
        assert_eq!(c.json()["data"].as_array().unwrap().len(), 1);
    }
    // The audit log knows who called.
    let records = audit(&w);
    assert!(records.iter().any(|r| r["peer_uid"] == 64251 && r["status"] == 401 && r["outcome"] == "denied"), "{records:#?}");
    assert!(records.iter().any(|r| r["peer_uid"] == 64252 && r["status"] == 200 && r["path"] == "/api/v1/tokens"));
}

fn verify_file(w: &World, path: &std::path::Path) -> Ctl {
    w.ctl(&["audit", "--verify", "--file", &path.to_string_lossy()])
}

#[test]
fn the_audit_chain_detects_edits_removals_reorders_and_cuts() {
    let mut w = World::new(Driver::Overlay);
    let h = w.http();
    let r = new_realm(&w);
    let (_, t) = new_token(&w, &[&r], &[], &[]);
    let c = s(&h.with_token(&t).post("/containers", r#"{"name":"x","image":"busybox"}"#).json()["data"], "id");
    assert_eq!(h.with_token("hdy_bogus").get("/containers").status, 401);
    assert_eq!(h.get("/containers/nope").status, 404);
    assert_eq!(h.post("/containers", "{").status, 400);
    // Each answer left only after its record: the last request is already in the log.
    let recs = audit(&w);
    let last = recs.last().unwrap();
    assert_eq!(
        (last["method"].as_str(), last["path"].as_str(), last["status"].as_u64()),
        (Some("POST"), Some("/api/v1/containers"), Some(400))
    );
    let created = recs
        .iter()
        .find(|x| x["container"] == c.as_str() && x["status"] == 201 && x["token_id"].is_string())
        .expect("the create names its container");
    assert_eq!(created["realm_ids"], json!([r]));
    assert!(
        w.ok(&["audit", "-c", &c]).as_array().unwrap().iter().any(|x| x["status"] == 201 && x["method"] == "POST"),
        "audit -c finds the create"
    );
    assert!(recs.iter().all(|x| x["time"].is_string() && x["peer_uid"] == 0 && x["duration_us"].is_u64() && x["hash"].is_string()));
    assert!(w.ok(&["audit", "-c", &c]).as_array().is_some());
    let log_path = w.state_dir.join("audit.log");
    let text = std::fs::read_to_string(&log_path).unwrap();
    let secret = t.rsplit('_').next().unwrap();
    assert!(!text.contains(secret) && !text.contains("Bearer"), "a secret reached the audit log");

    let ok = w.ctl(&["audit", "--verify"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(ok.json()["data"]["ok"], true);

    // Offline checks of tampered copies.
    w.stop_daemon();
    let lines: Vec<String> = std::fs::read_to_string(&log_path).unwrap().lines().map(str::to_owned).collect();
    assert!(lines.len() >= 8, "{} records", lines.len());
    let dir = w.dir.join("tamper");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, ls: &[String]| {
        let p = dir.join(format!("{name}.log"));
        std::fs::write(&p, ls.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        std::fs::copy(w.state_dir.join("audit.head"), p.with_extension("head")).unwrap();
        p
    };
    let clean = verify_file(&w, &write("clean", &lines));
    assert_eq!(clean.code, 0, "{clean:?}");
    let mut edited = lines.clone();
    edited[2] = edited[2].replace("\"status\":", "\"status\":1");
    let mut removed = lines.clone();
    removed.remove(1);
    let mut moved = lines.clone();
    moved.swap(3, 4);
    let cut = lines[..lines.len() - 2].to_vec();
    for (name, ls, line, why) in [
        ("edited", edited, 3, "edited"),
        ("removed", removed, 2, "removed"),
        ("moved", moved, 4, "moved"),
        ("cut", cut, lines.len() - 1, "cut"),
    ] {
        let c = verify_file(&w, &write(name, &ls));
        assert_eq!(c.code, 1, "{name}: {c:?}");
        assert!(c.stderr.contains(&format!("line {line}")) && c.stderr.contains(why), "{name}: {}", c.stderr);
        assert_eq!(c.json()["data"]["first_broken"]["line"], line, "{name}");
    }

    // Through the daemon: numbering continues after a restart, and a live edit is caught.
    w.start_daemon();
    assert_eq!(w.ctl(&["audit", "--verify"]).code, 0);
    let mut live = std::fs::read_to_string(&log_path).unwrap();
    live = live.replacen("\"peer_uid\":0", "\"peer_uid\":1", 1);
    std::fs::write(&log_path, live).unwrap();
    let c = w.ctl(&["audit", "--verify"]);
    assert_eq!(c.code, 1, "{c:?}\n{}", tail(&w.daemon_log(), 20));
    assert!(c.stderr.contains("line 1"), "{c:?}");
}

/// Many concurrent callers with tokens: the log stays one unbroken chain.
#[test]
fn concurrent_requests_keep_one_chain() {
    let w = World::new(Driver::Overlay);
    let r = new_realm(&w);
    let (_, t) = new_token(&w, &[&r], &[], &[]);
    w.ok(&["containers", "create", "--name", "one", "--image", "busybox", "--realm", &r]);
    let start = Instant::now();
    std::thread::scope(|sc| {
        for i in 0..8 {
            let h: Http = w.http().with_token(&t);
            sc.spawn(move || {
                for j in 0..40 {
                    let got: Reply = if (i + j) % 3 == 0 { h.get("/containers/nope") } else { h.get("/containers/one") };
                    assert!(got.status == 200 || got.status == 404, "{got:?}");
                }
            });
        }
    });
    let elapsed = start.elapsed();
    let c = w.ctl(&["audit", "--verify"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(c.json()["data"]["records"].as_u64().unwrap() >= 320, "{c:?} after {elapsed:?}");
}
