//! The state file system keeps a reserve (issue 14, third part): below `--state-reserve`,
//! requests that change anything answer 507 while reads (and their audit records) go on; when
//! not even an audit record fits, the answer is 503, never an unaudited one; a stop is answered
//! as done only once it is recorded; service resumes by itself when space returns, with the
//! database and the audit chain intact.

use hoody_api::client::ClientError;
use hoody_api::containers::CreateContainer;
use hoody_api::envelope::ErrorCode;
use std::io::Write;

use hoody_e2e::{Driver, World};

fn free(w: &World) -> u64 {
    let v = nix::sys::statvfs::statvfs(&w.state_dir).unwrap();
    v.blocks_available() as u64 * v.fragment_size() as u64
}

/// Grows `path` until the file system has at most `leave` bytes free (or is full).
fn fill_to(w: &World, path: &std::path::Path, leave: u64) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    let chunk = vec![0x5au8; 64 << 10];
    while free(w) > leave {
        let want = ((free(w) - leave) as usize).min(chunk.len());
        if f.write_all(&chunk[..want.max(1)]).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
}

#[test]
fn below_the_reserve_changes_are_refused_reads_go_on_and_service_resumes() {
    let w = World::with_state_fs(Driver::Overlay, "96m", &["--state-reserve", "32MiB"]);
    let keep = w.running("keep")["id"].as_str().unwrap().to_owned();
    let filler = w.state_dir.join("filler");
    fill_to(&w, &filler, 16 << 20);
    // Below the reserve: creating, starting, changing are refused with 507, saying why.
    let r = w.ctl(&["containers", "create", "--name", "late", "--image", "busybox"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("reserve"), "{r:?}");
    let late = CreateContainer { name: "late".into(), image: "busybox".into(), ..Default::default() };
    let e = w.api(async |c| c.create_container(&late, false).await).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InsufficientStorage), "{e:?}");
    let e = w.api(async |c| c.create_snapshot(&keep, "s").await).unwrap_err();
    assert!(matches!(e, ClientError::Api { status, .. } if status.as_u16() == 507), "{e:?}");
    // Reads go on, and are audited.
    assert_eq!(w.ok(&["containers", "get", &keep])["status"], "running");
    let before = w.ok(&["audit", "--newest", "--limit", "1"]);
    assert!(before.to_string().contains(&keep) || before["data"].is_array(), "{before}");
    // A stop (it frees, it does not fill) is done and recorded.
    w.ok(&["containers", "stop", "--timeout", "0", &keep]);
    assert_eq!(w.ok(&["containers", "get", &keep])["status"], "stopped");
    // Completely full: not even an audit record fits, so nothing is answered but 503.
    // (The audit log's last page may still take a few records.)
    fill_to(&w, &filler, 0);
    let mut answered = 0;
    let refused = loop {
        let r = w.http().get("/containers");
        match r.status {
            200 => answered += 1,
            503 => break r,
            other => panic!("{other}: {r:?}"),
        }
        assert!(answered < 1000, "1,000 reads answered on a full state file system: their audit records cannot all be there");
    };
    assert_eq!(refused.json()["error"]["code"], "audit_unavailable", "{refused:?}");
    // Space returns: service resumes by itself, the chain is intact.
    std::fs::remove_file(&filler).unwrap();
    let c = w.ok(&["containers", "create", "--name", "late", "--image", "busybox", "--start"]);
    assert_eq!(c["status"], "running");
    let v = w.ok(&["audit", "--verify"]);
    assert_eq!(v["ok"], true, "{v}");
    w.ok(&["containers", "start", &keep]);
}
