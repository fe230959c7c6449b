//! The seed's workflow exactly as the README's quick tour types it: the block that starts with
//! "# The seed's workflow" is read from README.md and each of its lines is run by /bin/sh, as a
//! user pasting it would, with hoodyctl on PATH and the world's socket in $HOODY_SOCKET. What
//! each line did is then checked against the kernel and the disk: the denied packet never
//! reached the server, the diff is exactly the agent's changes, the restored tree is the clean
//! one file for file, and the firewall is still closed.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use hoody_e2e::internet::Servers;
use hoody_e2e::{Driver, SERVER, World, bin_dir};
use serde_json::Value;

/// The lines of the README's seed-workflow block (comments and blank lines dropped).
fn tour() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).expect("README.md");
    let start = readme.find("# The seed's workflow").expect("the README has the seed's workflow in its quick tour");
    let block = &readme[start..];
    let block = &block[..block.find("\n\n").or_else(|| block.find("```")).expect("end of the block")];
    block.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

struct Ran {
    line: String,
    code: i32,
    out: String,
}

fn paste(w: &World, line: &str) -> Ran {
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir().display());
    let o = Command::new("/bin/sh")
        .args(["-c", line])
        .env_clear()
        .env("PATH", path)
        .env("HOODY_SOCKET", &w.socket)
        .stdin(Stdio::null())
        .output()
        .expect("/bin/sh");
    Ran {
        line: line.to_owned(),
        code: o.status.code().unwrap_or(-1),
        out: format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
    }
}

/// The tour's line whose command (without its trailing comment) starts with `prefix`; with a
/// trailing `$`, the one whose command is exactly the prefix.
fn step<'a>(ran: &'a [Ran], prefix: &str) -> &'a Ran {
    let command = |l: &str| l.split(" #").next().unwrap_or(l).trim().to_owned();
    let found = match prefix.strip_suffix('$') {
        Some(exact) => ran.iter().find(|r| command(&r.line) == exact),
        None => ran.iter().find(|r| command(&r.line).starts_with(prefix)),
    };
    found.unwrap_or_else(|| panic!("the tour has no line {prefix:?}"))
}

/// Every entry of a tree as the host sees it: type, mode, owner, size, content, link target.
fn manifest(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read_dir").flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let what = if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                let data = std::fs::read(&p).expect("read");
                let sum: u64 = data
                    .iter()
                    .enumerate()
                    .fold(1469598103934665603u64, |h, (i, b)| (h ^ u64::from(*b) ^ i as u64).wrapping_mul(1099511628211));
                format!("file {} {sum:x}", data.len())
            } else {
                "other".to_owned()
            };
            out.insert(rel, format!("{:o} {}:{} {what}", m.mode(), m.uid(), m.gid()));
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The container's tree as the host holds it: the btrfs root, or the overlay's upper layer.
fn tree(w: &World, id: &str) -> std::path::PathBuf {
    let base = w.storage_dir.join("containers").join(id);
    match w.driver {
        Driver::Btrfs => base.join("rootfs"),
        Driver::Overlay => {
            let upper = base.join("upper");
            assert!(upper.is_dir(), "the overlay driver keeps its upper layer at {}", upper.display());
            upper
        }
    }
}

fn the_seeds_workflow_as_the_readme_types_it(driver: Driver) {
    let w = World::with_net(driver);
    let net = Servers::start(w.inet(), &[&format!("{SERVER}:443")], &[]);
    let lines = tour();
    let mut ran = vec![];
    let mut clean = None;
    for line in &lines {
        let r = paste(&w, line);
        assert_eq!(r.code, if line.contains(" nc ") { 1 } else { 0 }, "`{line}`:\n{}", r.out);
        if line.starts_with("hoodyctl snapshots create") {
            let id = w.ok(&["containers", "get", "agent"])["id"].as_str().unwrap().to_owned();
            clean = Some(manifest(&tree(&w, &id)));
        }
        ran.push(r);
    }
    let id = w.ok(&["containers", "get", "agent"])["id"].as_str().unwrap().to_owned();

    // The packet was refused by the firewall, never reached the server, and is in the events.
    assert!(step(&ran, "hoodyctl exec -c agent -- nc").out.contains("refused"), "{}", step(&ran, "hoodyctl exec -c agent -- nc").out);
    assert!(net.tcp_hits(&format!("{SERVER}:443")).is_empty(), "the denied connection reached the server");
    // The denied attempt is in the events (NFLOG delivers it within moments: the line is pasted
    // again for up to 5 s if the tour's own run came too early).
    let events_line = step(&ran, "hoodyctl firewall events").line.clone();
    let mut events: Value = serde_json::from_str(&step(&ran, "hoodyctl firewall events").out).expect("events JSON");
    let seen = |ev: &Value| {
        ev["data"].as_array().unwrap().iter().any(|e| e["destination"] == SERVER && e["destination_port"] == 443 && e["protocol"] == "tcp")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !seen(&events) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        events = serde_json::from_str(&paste(&w, &events_line).out).expect("events JSON");
    }
    assert!(seen(&events), "the denied attempt is in the events: {events}");

    // The diff is exactly what the agent did.
    let table = &step(&ran, "hoodyctl snapshots diff -c agent clean-slate --output table").out;
    for want in ["/root/loot/id_rsa", "/etc/motd", "/bin/vi"] {
        assert!(table.contains(want), "the diff table names {want}:\n{table}");
    }
    let after_restore: Value = serde_json::from_str(&step(&ran, "hoodyctl snapshots diff -c agent clean-slate$").out).expect("diff JSON");
    assert_eq!(after_restore["data"]["changes"].as_array().map(Vec::len), Some(0), "nothing is left after the restore: {after_restore}");

    // Restored file for file: the tree the host holds is the clean one.
    let clean = clean.expect("a manifest at the snapshot");
    let now = manifest(&tree(&w, &id));
    let differ: Vec<_> = clean
        .iter()
        .filter(|(k, v)| now.get(*k) != Some(v))
        .map(|(k, _)| k)
        .chain(now.keys().filter(|k| !clean.contains_key(*k)))
        .collect();
    assert!(differ.is_empty(), "the restored tree differs from the clean one at {differ:?}");
    let got = w.ok(&["containers", "get", "agent"]);
    assert_eq!(got["status"], "running", "restored and started again: {got}");
    assert_eq!(w.exec(&id, &["cat", "/etc/motd"]).code, 1, "/etc/motd is gone again");
    assert_eq!(w.exec(&id, &["ls", "/bin/vi"]).code, 0, "/bin/vi is back");

    // Still closed: deny-all, no rules, and the same connection is still refused.
    let fw: Value = serde_json::from_str(&step(&ran, "hoodyctl firewall show").out).expect("firewall JSON");
    assert_eq!(fw["data"]["policy"], "deny", "{fw}");
    assert_eq!(fw["data"]["egress"].as_array().map(Vec::len), Some(0), "{fw}");
    let again = paste(&w, step(&ran, "hoodyctl exec -c agent -- nc").line.as_str());
    assert_eq!(again.code, 1, "still refused after the restore: {}", again.out);
    assert!(net.tcp_hits(&format!("{SERVER}:443")).is_empty(), "a connection reached the server after the restore");
}

#[test]
fn the_seeds_workflow_as_the_readme_types_it_on_btrfs() {
    the_seeds_workflow_as_the_readme_types_it(Driver::Btrfs);
}

#[test]
fn the_seeds_workflow_as_the_readme_types_it_on_overlay() {
    the_seeds_workflow_as_the_readme_types_it(Driver::Overlay);
}

/// The README's whole quick tour, one shell session as a user pastes it: every command must
/// succeed, except the ones the README itself says are refused (`nc` to a closed destination);
/// the interactive shell (`exec -t`) gets a terminal and `exit 7` typed into it.
#[test]
fn the_whole_quick_tour_runs_as_pasted() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).expect("README.md");
    let start = readme.find("## Quick tour").expect("a quick tour");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").expect("its shell block") + 6..];
    let block = &block[..block.find("```").expect("end of the block")];
    // Whole commands (continuation lines joined), each followed by a marker with its status.
    let mut commands: Vec<String> = vec![];
    let mut cur = String::new();
    for line in block.lines() {
        let t = line.trim_end();
        if cur.is_empty() && (t.trim().is_empty() || t.trim_start().starts_with('#')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => cur.push_str(part),
            None => {
                cur.push_str(t);
                commands.push(std::mem::take(&mut cur));
            }
        }
    }
    assert!(commands.len() > 30, "the tour has {} commands", commands.len());
    let w = World::with_net(Driver::Btrfs);
    let net = Servers::start(w.inet(), &[&format!("{SERVER}:443")], &[]);
    // The interactive shell is typed into as a person would, on a terminal (`script` gives it
    // one): `exit 7`, whose status comes back.
    let typed =
        |c: &str| if c.contains("exec -t") { format!("printf 'exit 7\\n' | timeout 60 script -qec '{c}' /dev/null") } else { c.to_owned() };
    let script: String = commands.iter().enumerate().map(|(i, c)| format!("{}\necho \"@@tour {i} $?\"\n", typed(c))).collect();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let path = format!("{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir().display());
    let out = Command::new("/bin/sh")
        .args(["-c", &script])
        .current_dir(&repo)
        .env_clear()
        .env("PATH", path)
        .env("HOME", w.dir.to_string_lossy().as_ref())
        .env("HOODY_SOCKET", &w.socket)
        .stdin(Stdio::null())
        .output()
        .expect("/bin/sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file("/tmp/bb.tar.zst");
    let _ = std::fs::remove_file("/tmp/debian.tar.zst");
    let mut seen = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = line.strip_prefix("@@tour ") else { continue };
        let (i, code) = rest.split_once(' ').expect("marker");
        let (i, code): (usize, i32) = (i.parse().unwrap(), code.parse().unwrap());
        let cmd = &commands[i];
        seen += 1;
        let want = if cmd.contains(" nc ") {
            1
        } else if cmd.contains("exec -t") {
            7
        } else if cmd.contains("--timeout 5 -- sh") {
            137
        } else {
            0
        };
        assert_eq!(code, want, "`{cmd}` exited {code}:\n{}", hoody_e2e::tail(&text, 60));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(seen, commands.len(), "the tour stopped early:\n{}", hoody_e2e::tail(&stdout, 40));
    assert!(net.tcp_hits(&format!("{SERVER}:443")).is_empty(), "a refused connection reached the server");
    // The tour's end: the debian container runs, demo is gone.
    assert_eq!(w.ok(&["containers", "get", "deb"])["status"], "running");
    assert_ne!(w.ctl(&["containers", "get", "demo"]).code, 0);
}
