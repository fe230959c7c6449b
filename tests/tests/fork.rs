//! Fork: many containers from one snapshot of a prepared container, each with its own id,
//! address, id range and firewall, the source's rules and limits copied, its tree its own.

use std::collections::BTreeSet;
use std::process::Command;

use hoody_e2e::internet::Servers;
use hoody_e2e::{Driver, NEIGHBOUR, SERVER, World};
use serde_json::Value;

const FORKS: usize = 20;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn egress_rules(w: &World, cid: &str) -> Vec<(String, String, String)> {
    let fw = w.ok(&["firewall", "show", "-c", cid]);
    fw["egress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r["destination"].as_str().unwrap().to_owned(), r["destination_port"].to_string()))
        .collect()
}

fn forks_of_one_snapshot(driver: Driver) {
    let w = World::with_net(driver);
    let net = Servers::start(w.inet(), &[&format!("{SERVER}:443"), &format!("{SERVER}:80"), &format!("{NEIGHBOUR}:443")], &[]);
    let base = w.ok(&["containers", "create", "--name", "base", "--image", "busybox", "--start", "--env", "ROLE=agent"]);
    let bid = id(&base);
    w.install_probe(&bid);
    w.sh(&bid, "mkdir -p /srv && echo prepared > /srv/state && truncate -s 1G /srv/sparse && echo tail >> /srv/sparse");
    let rule = w.ok(&[
        "firewall",
        "egress",
        "create",
        "-c",
        &bid,
        "--action",
        "allow",
        "--protocol",
        "tcp",
        "--destination",
        &format!("{SERVER}/32"),
        "--destination-port",
        "443",
    ]);
    w.ok(&["snapshots", "create", "-c", &bid, "--alias", "ready"]);
    // What the source does after the snapshot is not in the forks.
    w.sh(&bid, "echo later > /srv/after && echo changed > /srv/state");

    let mut ids = BTreeSet::from([bid.clone()]);
    let mut addrs = BTreeSet::from([base["ipv4"].as_str().unwrap().to_owned()]);
    let mut rule_ids = BTreeSet::from([id(&rule)]);
    let mut forks = vec![];
    for i in 0..FORKS {
        let f = w.ok(&["containers", "create", "--name", &format!("task-{i}"), "--from", "base/ready", "--start"]);
        assert_eq!(f["status"], "running", "{f}");
        assert_eq!((f["image"].as_str(), f["egress"].as_str()), (Some("busybox"), Some("deny")), "{f}");
        assert!(ids.insert(id(&f)), "a fork's id is its own: {f}");
        assert!(addrs.insert(f["ipv4"].as_str().unwrap().to_owned()), "a fork's address is its own: {f}");
        assert_ne!(f["idmap"]["host_uid_base"], base["idmap"]["host_uid_base"], "a fork's id range is its own: {f}");
        let rules = egress_rules(&w, &id(&f));
        assert_eq!(rules.len(), 1, "the source's rule, copied: {rules:?}");
        assert_eq!((rules[0].1.as_str(), rules[0].2.as_str()), ("203.0.113.10/32", "\"443\""), "{rules:?}");
        assert!(rule_ids.insert(rules[0].0.clone()), "a copied rule has an id of its own: {rules:?}");
        forks.push(id(&f));
    }

    // Each fork's tree is the snapshot's, and its own from then on; its init has the source's
    // environment with its own name.
    for (i, f) in forks.iter().enumerate() {
        let env = w.sh(f, "tr '\\0' '\\n' < /proc/1/environ");
        assert!(env.lines().any(|l| l == "ROLE=agent"), "the source's environment in fork {i}: {env}");
        assert!(env.lines().any(|l| l == format!("HOSTNAME=task-{i}")), "its own hostname in fork {i}: {env}");
        assert_eq!(w.sh(f, "cat /srv/state; test -e /srv/after && echo after; tail -c 5 /srv/sparse"), "prepared\ntail\n", "fork {i}");
        w.sh(f, &format!("echo mine-{i} > /srv/state"));
    }
    for (i, f) in forks.iter().enumerate() {
        assert_eq!(w.sh(f, "cat /srv/state"), format!("mine-{i}\n"));
    }
    assert_eq!(w.sh(&bid, "cat /srv/state"), "changed\n", "the forks' writes never reach the source");

    // Each fork's firewall is its own and holds: the copied rule opens exactly that.
    let f0 = &forks[0];
    let (code, out) = w.probe(f0, &["tcp", SERVER, "443", "2000", "hi"]);
    assert_eq!(code, 0, "the copied rule opens 443: {out}");
    for (dest, port) in [(SERVER, "80"), (NEIGHBOUR, "443")] {
        let (code, out) = w.probe(f0, &["tcp", dest, port, "1000"]);
        assert_ne!(code, 0, "{dest}:{port} got through from a fork: {out}");
    }
    assert_eq!(net.tcp_hits(&format!("{SERVER}:443")).len(), 1);
    assert!(net.tcp_hits(&format!("{SERVER}:80")).is_empty() && net.tcp_hits(&format!("{NEIGHBOUR}:443")).is_empty());
    // Deleting a fork's copy of the rule closes that fork only.
    let copied = egress_rules(&w, f0)[0].0.clone();
    w.ok(&["firewall", "egress", "delete", "-c", f0, &copied]);
    let (code, _) = w.probe(f0, &["tcp", SERVER, "443", "1000"]);
    assert_ne!(code, 0, "the fork's rule is gone");
    let (code, out) = w.probe(&forks[1], &["tcp", SERVER, "443", "2000"]);
    assert_eq!(code, 0, "another fork keeps its rule: {out}");
    assert_eq!(egress_rules(&w, &bid).len(), 1, "the source keeps its rule");

    // A request's own egress policy means no copied rules.
    let own = w.ok(&["containers", "create", "--name", "own-policy", "--from", "base/ready", "--egress", "deny"]);
    assert!(egress_rules(&w, &id(&own)).is_empty());

    // On disk: a btrfs fork is a snapshot of the snapshot (O(1)); an overlay fork's copy of the
    // upper layer keeps the sparse file sparse.
    let snap = w.storage_dir.join("containers").join(&bid).join("snapshots/ready");
    let root = |cid: &str| w.storage_dir.join("containers").join(cid);
    match driver {
        Driver::Btrfs => {
            let uuid = subvolume_field(&snap, "UUID:");
            assert_eq!(subvolume_field(&root(f0).join("rootfs"), "Parent UUID:"), uuid, "a fork is a clone of the snapshot");
        }
        Driver::Overlay => {
            let m = std::fs::metadata(root(f0).join("upper/srv/sparse")).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert!(m.size() > 1 << 30 && m.blocks() * 512 < 16 << 20, "the copy is sparse: {} bytes in {} blocks", m.size(), m.blocks());
        }
    }

    // Refused: an unknown snapshot, a malformed source, a source the caller cannot see.
    let c = w.ctl(&["containers", "create", "--name", "nope", "--from", "base/missing"]);
    assert_eq!(c.code, 3, "{c:?}");
    assert!(c.stderr.contains(r#"snapshot "missing" of "base" not found"#), "the answer names what is missing: {c:?}");
    let c = w.ctl(&["containers", "create", "--name", "nope", "--from", "base"]);
    assert_eq!(c.code, 2, "a malformed --from is a usage error: {c:?}");
    let c = w.ctl(&["--output", "json", "containers", "create", "--name", "nope", "--image", "busybox", "--from", "base/ready"]);
    assert_eq!(c.code, 2, "a fork's image is its source's: {c:?}");
    let realm = w.ok(&["realms", "create", "--description", "tenant"])["id"].as_str().unwrap().to_owned();
    let token = w.ok(&["tokens", "create", "--realm", &realm])["token"].as_str().unwrap().to_owned();
    let mut cmd = w.hoodyctl();
    let out = cmd.env("HOODY_TOKEN", &token).args(["containers", "create", "--name", "stolen", "--from", "base/ready"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "a tenant cannot fork what it cannot see: {out:?}");
    let names: Vec<String> =
        w.ok(&["containers", "list"]).as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect();
    assert!(!names.iter().any(|n| n == "nope" || n == "stolen"), "{names:?}");

    // The forks outlive their source.
    w.ok(&["containers", "delete", &bid, "--force"]);
    assert_eq!(w.sh(&forks[1], "cat /srv/state; tail -c 5 /srv/sparse"), "mine-1\ntail\n");
    w.ok(&["containers", "restart", &forks[1]]);
    assert_eq!(w.sh(&forks[1], "cat /srv/state"), "mine-1\n");
}

fn subvolume_field(path: &std::path::Path, field: &str) -> String {
    let out = Command::new("btrfs").arg("subvolume").arg("show").arg(path).output().unwrap();
    assert!(out.status.success(), "btrfs subvolume show {}: {out:?}", path.display());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = text.lines().find_map(|l| l.trim().strip_prefix(field)).unwrap_or_else(|| panic!("no {field} in {text}")).trim().to_owned();
    assert!(v.len() > 30, "{field} {v:?}");
    v
}

#[test]
fn twenty_forks_of_one_snapshot_on_btrfs() {
    forks_of_one_snapshot(Driver::Btrfs);
}

#[test]
fn twenty_forks_of_one_snapshot_on_overlay() {
    forks_of_one_snapshot(Driver::Overlay);
}

/// The source's limits are the fork's, with what the request sets in their place.
#[test]
fn a_fork_keeps_the_source_limits_unless_told() {
    let w = World::new(Driver::Btrfs);
    let base = w.ok(&["containers", "create", "--name", "base", "--image", "busybox", "--disk", "200MiB", "--snapshots-disk", "300MiB"]);
    w.ok(&["snapshots", "create", "-c", &id(&base), "--alias", "s"]);
    let same = w.ok(&["containers", "create", "--name", "same", "--from", "base/s"]);
    assert_eq!(same["limits"], base["limits"], "{same}");
    let more = w.ok(&["containers", "create", "--name", "more", "--from", "base/s", "--disk", "400MiB"]);
    assert_eq!(more["limits"]["disk_bytes"], 400 << 20, "{more}");
    assert_eq!(more["limits"]["snapshots_disk_bytes"], 300 << 20, "{more}");
    assert_eq!(same["limits"]["disk_bytes"], 200 << 20, "{same}");
}

/// A snapshot published as an image: its tree as the container saw it (deletions and replaced
/// directories included), an image like any other, nothing mounted or staged left behind.
fn published(driver: Driver) {
    let w = World::new(driver);
    let base = w.running("base");
    let bid = id(&base);
    w.sh(
        &bid,
        "mkdir -p /srv && echo prepared > /srv/state && rm /bin/vi && rm -rf /usr/sbin && mkdir /usr/sbin && echo x > /usr/sbin/only",
    );
    w.ok(&["snapshots", "create", "-c", &bid, "--alias", "ready"]);
    w.sh(&bid, "echo later > /srv/state");
    let img = w.ok(&["images", "publish", "prepared", "--from", "base/ready"]);
    assert_eq!(img["name"], "prepared", "{img}");
    assert!(img["files"].as_u64().unwrap() > 100, "{img}");
    assert_eq!(img["source"], format!("snapshot:{bid}/ready"), "{img}");

    // Nothing mounted or staged is left.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let storage = w.storage_dir.display().to_string();
    assert!(!mounts.lines().any(|l| l.contains(&format!("{storage}/images"))), "a mount is left: {mounts}");
    let mut images: Vec<String> =
        std::fs::read_dir(w.storage_dir.join("images")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    images.sort();
    assert_eq!(images, ["busybox", "prepared"], "staging left behind");
    // On disk: an overlay image holds no whiteouts; a btrfs image is a read-only subvolume.
    let root = w.storage_dir.join("images/prepared");
    match driver {
        Driver::Overlay => {
            use std::os::unix::fs::FileTypeExt;
            let mut stack = vec![root.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let e = e.unwrap();
                    let t = e.file_type().unwrap();
                    assert!(!t.is_char_device(), "a whiteout in the image: {}", e.path().display());
                    if t.is_dir() {
                        stack.push(e.path());
                    }
                }
            }
            assert!(!root.join("bin/vi").exists() && root.join("bin/sh").exists());
        }
        Driver::Btrfs => {
            let out = Command::new("btrfs").args(["property", "get", "-ts"]).arg(&root).arg("ro").output().unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ro=true", "{out:?}");
        }
    }

    // Containers made from it have the snapshot's tree; the source can go.
    w.ok(&["containers", "delete", &bid, "--force"]);
    for name in ["one", "two"] {
        let c = id(&w.ok(&["containers", "create", "--name", name, "--image", "prepared", "--start"]));
        assert_eq!(w.sh(&c, "cat /srv/state; test -e /bin/vi && echo vi; ls /usr/sbin"), "prepared\nonly\n");
    }
    // Refused: an unknown snapshot, a name taken.
    let c = w.ctl(&["images", "publish", "other", "--from", "one/missing"]);
    assert_eq!(c.code, 3, "{c:?}");
    let one = id(&w.ok(&["containers", "get", "one"]));
    w.ok(&["snapshots", "create", "-c", &one, "--alias", "s"]);
    let c = w.ctl(&["images", "publish", "prepared", "--from", "one/s"]);
    assert_eq!(c.code, 4, "{c:?}");
}

#[test]
fn a_published_snapshot_is_an_image_of_its_tree_on_btrfs() {
    published(Driver::Btrfs);
}

#[test]
fn a_published_snapshot_is_an_image_of_its_tree_on_overlay() {
    published(Driver::Overlay);
}
