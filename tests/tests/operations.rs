//! Long work in the background: an asynchronous import answered 202 before its body is all
//! sent, reporting progress, ending with the answer a synchronous import gives; a cancelled
//! import leaves nothing; an asynchronous restore; hoodyctl's --async and `operations wait`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use hoody_e2e::{Driver, World, eventually, run};
use serde_json::Value;

/// A tarball of a small tree and `mib` MiB of noise; its path.
fn tarball(w: &World, mib: usize) -> std::path::PathBuf {
    let tree = w.dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/hello"), "hello\n").unwrap();
    let noise: Vec<u8> = (0..mib << 20).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0]).collect();
    std::fs::write(tree.join("noise"), noise).unwrap();
    let tar = w.dir.join(format!("tree-{mib}.tar"));
    run("tar", &["-C", &tree.to_string_lossy(), "-cf", &tar.to_string_lossy(), "."]);
    tar
}

/// Sends `POST path` with `body`'s first `first` bytes; reads the answer's status and JSON
/// (which comes before the rest is sent); the stream, to send the rest on.
fn start_upload(w: &World, path: &str, body: &[u8], first: usize) -> (u16, Value, UnixStream) {
    let mut s = UnixStream::connect(&w.socket).unwrap();
    let head = format!("POST {path} HTTP/1.1\r\nHost: hoody\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body[..first]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code: u16 = status.split(' ').nth(1).unwrap().parse().unwrap();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length: ") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut json = vec![0u8; len];
    r.read_exact(&mut json).unwrap();
    (code, serde_json::from_slice(&json).unwrap(), s)
}

fn operation(w: &World, id: &str) -> Value {
    w.ok(&["operations", "get", id])
}

fn wait_done(w: &World, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let op = operation(w, id);
        if op["status"] != "running" {
            return op;
        }
        assert!(Instant::now() < deadline, "still running: {op}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_async_import_reports_progress_and_answers_as_a_sync_one() {
    let w = World::new(Driver::Btrfs);
    let tar = tarball(&w, 8);
    let body = std::fs::read(&tar).unwrap();
    let half = body.len() / 2;
    let (code, ans, mut s) = start_upload(&w, "/api/v1/images?name=bg&async=true", &body, half);
    assert_eq!(code, 202, "{ans}");
    let op = &ans["data"]["operation"];
    let id = op["id"].as_str().unwrap().to_owned();
    assert_eq!((op["kind"].as_str(), op["status"].as_str(), op["target"].as_str()), (Some("image_import"), Some("running"), Some("bg")));
    assert_eq!(op["progress"]["total"].as_u64(), Some(body.len() as u64));
    // Half the body sent: the operation has read some of it, not all, and runs on.
    eventually("the first half read", || operation(&w, &id)["progress"]["bytes"].as_u64().unwrap() > 0);
    let mid = operation(&w, &id);
    assert_eq!(mid["status"], "running", "{mid}");
    assert!(mid["progress"]["bytes"].as_u64().unwrap() <= half as u64, "{mid}");
    std::thread::sleep(Duration::from_millis(700));
    s.write_all(&body[half..]).unwrap();
    let done = wait_done(&w, &id);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"]["bytes"].as_u64(), Some(body.len() as u64));
    // The same archive imported synchronously answers the same.
    let sync = w.ok(&["images", "import", "fg", &tar.to_string_lossy()]);
    let bg = &done["result"];
    for k in ["files", "bytes", "driver"] {
        assert_eq!(bg[k], sync[k], "{k}: {bg} vs {sync}");
    }
    assert_eq!(bg["report"], sync["report"]);
    assert_eq!(w.ok(&["images", "get", "bg"])["bytes"], sync["bytes"]);
    // On a terminal hoodyctl runs an import as an operation and draws its progress line.
    let cmd = format!("{} images import tty {}", hoody_e2e::bin_dir().join("hoodyctl").display(), tar.display());
    let pty = std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).env("HOODY_SOCKET", &w.socket).output().unwrap();
    let text = String::from_utf8_lossy(&pty.stdout);
    assert!(pty.status.success() && text.contains("importing tty") && text.contains("\"name\":\"tty\""), "{text}");
    assert_eq!(w.ok(&["operations", "list"]).as_array().unwrap().len(), 2, "the terminal's import was an operation");
    // And the event stream told it: progress on the way, then done.
    let ev = w
        .hoodyctl()
        .args(["events", "--since", "0", "--type", "operation"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut ev = ev;
    let _ = ev.kill();
    let out = ev.wait_with_output().unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mine: Vec<&Value> = lines.iter().filter(|e| e["data"]["operation"] == id.as_str()).collect();
    assert!(mine.iter().any(|e| e["type"] == "operation.progress" && e["data"]["progress"]["bytes"].as_u64().unwrap() > 0), "{mine:?}");
    let last = mine.last().unwrap();
    assert_eq!((last["type"].as_str(), last["data"]["status"].as_str()), (Some("operation.done"), Some("succeeded")), "{mine:?}");
}

#[test]
fn a_cancelled_import_leaves_nothing_and_a_restore_runs_in_the_background() {
    let w = World::new(Driver::Overlay);
    let tar = tarball(&w, 4);
    let body = std::fs::read(&tar).unwrap();
    let (code, ans, mut s) = start_upload(&w, "/api/v1/images?name=gone&async=true", &body, body.len() / 3);
    assert_eq!(code, 202, "{ans}");
    let id = ans["data"]["operation"]["id"].as_str().unwrap().to_owned();
    eventually("some read", || operation(&w, &id)["progress"]["bytes"].as_u64().unwrap() > 0);
    let c = w.ok(&["operations", "cancel", &id]);
    assert_eq!(c["id"], id.as_str());
    let _ = s.write_all(&body[body.len() / 3..]);
    let done = wait_done(&w, &id);
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(w.ctl(&["images", "get", "gone"]).code, 3, "a cancelled import leaves no image");
    let images = w.storage_dir.join("images");
    let left: Vec<String> =
        std::fs::read_dir(&images).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["busybox"], "nothing of the cancelled import is left (no staging entry either)");
    assert_eq!(w.ctl(&["operations", "cancel", &id]).code, 4, "a finished operation is not cancelled again");

    // A restore in the background: hoodyctl --async prints the operation, `operations wait`
    // the restore's answer.
    w.ok(&["containers", "create", "--name", "app", "--image", "busybox", "--start"]);
    w.sh("app", "echo before > /mark");
    w.ok(&["snapshots", "create", "app", "--alias", "s1"]);
    w.sh("app", "echo after > /mark");
    let op = w.ok(&["snapshots", "restore", "app", "--name", "s1", "--async"]);
    assert_eq!((op["kind"].as_str(), op["target"].as_str()), (Some("snapshot_restore"), Some("s1")), "{op}");
    let result = w.ok(&["operations", "wait", op["id"].as_str().unwrap()]);
    assert_eq!(result["restored"], "s1", "{result}");
    assert_eq!(w.sh("app", "cat /mark").trim(), "before");
    assert_eq!(w.ctl(&["operations", "cancel", op["id"].as_str().unwrap()]).code, 4);
    // Refused at once as the synchronous request would be.
    let r = w.ctl(&["snapshots", "restore", "app", "--name", "nope", "--async"]);
    assert_eq!(r.code, 3, "{r:?}");
    let listed = w.ok(&["operations", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    // While a restore runs (its container ignores SIGTERM, so the stop takes the daemon's whole
    // --stop-timeout), a second one is refused at once, asynchronous or not: 409 in_progress,
    // not a 202 whose operation then fails.
    w.ok(&[
        "containers",
        "create",
        "--name",
        "stubborn",
        "--image",
        "busybox",
        "--start",
        "--",
        "sh",
        "-c",
        "trap '' TERM; while :; do sleep 1; done",
    ]);
    w.ok(&["snapshots", "create", "stubborn", "--alias", "s1"]);
    let first = w.ok(&["snapshots", "restore", "stubborn", "--name", "s1", "--async"]);
    std::thread::sleep(Duration::from_millis(300));
    let second = w.http().request("PATCH", "/containers/stubborn/snapshots/s1?async=true", b"");
    assert_eq!((second.status, second.json()["error"]["code"].as_str()), (409, Some("in_progress")), "{second:?}");
    let sync = w.ctl(&["snapshots", "restore", "stubborn", "--name", "s1"]);
    assert_eq!(sync.code, 4, "{sync:?}");
    assert_eq!(operation(&w, first["id"].as_str().unwrap())["status"], "running", "the first restore was not hurried");
    assert_eq!(wait_done(&w, first["id"].as_str().unwrap())["status"], "succeeded");
}
