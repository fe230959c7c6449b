//! A hostile tree cannot steer the daemon (issue 13, first part): the container cannot create
//! btrfs subvolumes or snapshots inside its root — a nested subvolume would defeat restore and
//! delete and escape the disk quota with a qgroup of its own — not even with high bits set in
//! the ioctl request, while reflink copies (FICLONE, same ioctl magic) keep working.

use hoody_e2e::{Driver, World, run};

#[test]
fn btrfs_subvolume_ioctls_are_refused_inside_and_reflinks_still_work() {
    let w = World::new(Driver::Btrfs);
    let c = w.running("tenant")["id"].as_str().unwrap().to_owned();
    w.install_probe(&c);
    for (what, request) in [
        ("SUBVOL_CREATE", "5000940e"),
        ("SUBVOL_CREATE_V2", "50009418"),
        ("SUBVOL_CREATE with high bits set", "ffffffff5000940e"),
        ("SUBVOL_CREATE_V2 with high bits set", "1234567850009418"),
    ] {
        let (code, out) = w.probe(&c, &["ioctl", "/", request, "nested"]);
        assert_eq!((code, out.split_whitespace().take(2).collect::<Vec<_>>().join(" ")), (1, "errno 1".to_owned()), "{what}: {out}");
    }
    let root = w.storage_dir.join("containers").join(&c).join("rootfs");
    assert!(!root.join("nested").exists(), "a subvolume was made inside the container's root");
    let list = run("btrfs", &["subvolume", "list", &w.mnt.to_string_lossy()]);
    assert!(!list.contains("nested"), "btrfs lists a nested subvolume: {list}");
    // Reflinks still work (what `cp --reflink=always` does).
    w.sh(&c, "dd if=/dev/urandom of=/orig bs=64k count=16 2>/dev/null");
    let (code, out) = w.probe(&c, &["ficlone", "/orig", "/clone"]);
    assert_eq!((code, out.as_str()), (0, "ok"), "FICLONE inside the container");
    assert_eq!(w.sh(&c, "cmp /orig /clone && echo same").trim(), "same");
}

#[test]
fn a_2gib_sparse_file_is_snapshotted_and_restored_on_overlay_as_what_it_holds() {
    // The pool is 1 GiB: a copy that wrote the holes out could not even fit.
    let w = World::new(Driver::Overlay);
    let c = w.running("sparse")["id"].as_str().unwrap().to_owned();
    w.sh(&c, "dd if=/dev/zero of=/sparse bs=1 count=1 seek=2147483647 2>/dev/null && echo middle | dd of=/sparse bs=1 seek=1073741824 conv=notrunc 2>/dev/null");
    w.ok(&["snapshots", "create", "--container", &c, "--alias", "holes"]);
    let dir = w.storage_dir.join("containers").join(&c);
    let allocated = |p: &std::path::Path| {
        let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        (m.len(), std::os::unix::fs::MetadataExt::blocks(&m) * 512)
    };
    let (len, used) = allocated(&dir.join("snapshots/holes/upper/sparse"));
    assert_eq!(len, 2 << 30);
    assert!(used <= 4 << 20, "the snapshot's copy allocated {} MiB", used >> 20);
    w.sh(&c, "rm /sparse");
    w.ok(&["snapshots", "restore", "-c", &c, "--name", "holes"]);
    let (len, used) = allocated(&dir.join("upper/sparse"));
    assert_eq!(len, 2 << 30);
    assert!(used <= 4 << 20, "the restored file allocated {} MiB", used >> 20);
    assert_eq!(w.sh(&c, "dd if=/sparse bs=1 skip=1073741824 count=6 2>/dev/null"), "middle", "its data came back");
}

fn id(v: &serde_json::Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Subvolumes btrfs lists under this container's directory.
fn subvolumes_of(w: &World, container: &str) -> Vec<String> {
    let list = run("btrfs", &["subvolume", "list", "-a", &w.mnt.to_string_lossy()]);
    list.lines().filter(|l| l.contains(container)).map(str::to_owned).collect()
}

fn chattr(flag: &str, p: &std::path::Path) {
    run("chattr", &[flag, &p.to_string_lossy()]);
}

/// A delete that fails half-way keeps the record (`deleting`, with its error) and with it the
/// container's address and id range; the daemon retries, and only once the storage is gone
/// are they handed out again. `jam` makes the storage undeletable, `unjam` undoes it.
fn a_jammed_delete_holds_its_address_until_retried(w: &World, c: &str, jam: &std::path::Path) {
    let before = w.ok(&["containers", "get", c]);
    let (ip, uid) = (before["ipv4"].as_str().unwrap().to_owned(), before["idmap"]["host_uid_base"].as_u64().unwrap());
    chattr("+i", jam);
    struct Unjam(std::path::PathBuf);
    impl Drop for Unjam {
        fn drop(&mut self) {
            let _ = std::process::Command::new("chattr").args(["-i", &self.0.to_string_lossy()]).status();
        }
    }
    let unjam = Unjam(jam.to_path_buf());
    let r = w.ctl(&["containers", "delete", "--force", c]);
    assert_ne!(r.code, 0, "the delete cannot have succeeded: {r:?}");
    let now = w.ok(&["containers", "get", c]);
    assert_eq!(now["status"], "deleting", "{now}");
    assert!(now["error"].as_str().unwrap_or("").contains("not permitted"), "the error is kept: {now}");
    for refused in [&["containers", "start", c][..], &["snapshots", "create", "-c", c, "--alias", "late"]] {
        let r = w.ctl(refused);
        assert_ne!(r.code, 0, "{refused:?} on a container being deleted: {r:?}");
    }
    let other = w.ok(&["containers", "create", "--name", "other", "--image", "busybox"]);
    assert_ne!(other["ipv4"].as_str().unwrap(), ip, "the address of a container whose data is still there was reused");
    assert_ne!(other["idmap"]["host_uid_base"].as_u64().unwrap(), uid, "its id range was reused");
    assert!(w.storage_dir.join("containers").join(c).exists());
    drop(unjam);
    hoody_e2e::eventually("the daemon retries the delete", || w.ctl(&["containers", "get", c]).code != 0);
    assert!(!w.storage_dir.join("containers").join(c).exists(), "its storage directory is gone");
    if w.driver == Driver::Btrfs {
        assert_eq!(subvolumes_of(w, c), Vec::<String>::new(), "btrfs still lists subvolumes of it");
    }
    let next = w.ok(&["containers", "create", "--name", "next", "--image", "busybox"]);
    assert_eq!(next["ipv4"].as_str().unwrap(), ip, "the freed address is the lowest free one again");
    assert_eq!(next["idmap"]["host_uid_base"].as_u64().unwrap(), uid);
}

#[test]
fn a_host_made_nested_subvolume_is_restored_over_twice_and_deleted_with_nothing_left() {
    let w = World::with_flags(Driver::Btrfs, &["--delete-retry", "1"]);
    let c = id(&w.running("nest"));
    w.sh(&c, "echo before > /data");
    w.ok(&["snapshots", "create", "--container", &c, "--alias", "s"]);
    let root = w.storage_dir.join("containers").join(&c).join("rootfs");
    let nest = |deeper: bool| {
        run("btrfs", &["subvolume", "create", &root.join("nested").to_string_lossy()]);
        std::fs::write(root.join("nested/payload"), b"the tenant's data").unwrap();
        if deeper {
            run("btrfs", &["subvolume", "create", &root.join("nested/deeper").to_string_lossy()]);
        }
    };
    for round in 0..2 {
        nest(round == 1);
        w.sh(&c, "echo after > /data");
        let r = w.ok(&["snapshots", "restore", "-c", &c, "--name", "s"]);
        assert_eq!(r["container"]["status"], "running", "round {round}: {r}");
        assert_eq!(w.sh(&c, "cat /data").trim(), "before", "round {round}: the root is the snapshot's");
        assert!(!root.join("nested/payload").exists(), "round {round}: the nested subvolume came back");
        // The previous root (with what was nested in it) goes in the background, right after.
        hoody_e2e::eventually("the previous root and its nested subvolumes are destroyed", || {
            !subvolumes_of(&w, &c).iter().any(|l| l.contains("nested") || l.contains(".restore"))
        });
    }
    // Nested twice, and the deepest one cannot be deleted (immutable): the delete fails half-way.
    nest(true);
    a_jammed_delete_holds_its_address_until_retried(&w, &c, &root.join("nested/deeper"));
}

#[test]
fn a_delete_that_fails_half_way_on_overlay_is_retried_and_holds_its_address() {
    let w = World::with_flags(Driver::Overlay, &["--delete-retry", "1"]);
    let c = id(&w.running("jam"));
    w.sh(&c, "mkdir -p /keep && echo x > /keep/file");
    let upper = w.storage_dir.join("containers").join(&c).join("upper");
    a_jammed_delete_holds_its_address_until_retried(&w, &c, &upper.join("keep/file"));
}

/// Open descriptors of the daemon that point into `dir` (a thread blocked on a FIFO holds one).
fn daemon_fds_under(w: &World, dir: &std::path::Path) -> Vec<String> {
    let pid = w.daemon_pid().expect("the daemon runs");
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return vec![] };
    rd.flatten().filter_map(|e| std::fs::read_link(e.path()).ok()).filter(|p| p.starts_with(dir)).map(|p| p.display().to_string()).collect()
}

/// Daemon threads waiting to open or read a FIFO.
fn daemon_threads_on_fifos(w: &World) -> Vec<String> {
    let pid = w.daemon_pid().expect("the daemon runs");
    let mut out = vec![];
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let stack = std::fs::read_to_string(t.path().join("stack")).unwrap_or_default();
        let wchan = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
        if stack.contains("fifo_open") || stack.contains("wait_for_partner") || stack.contains("pipe_read") || wchan.contains("fifo") {
            out.push(format!("{}: {wchan} {stack}", t.path().display()));
        }
    }
    out
}

/// One diff through hoodyctl, killed (and the test failed) if it takes 5 s.
fn timed_diff(w: &World, c: &str, n: usize) -> (String, std::time::Duration) {
    let t = std::time::Instant::now();
    let mut child = w
        .hoodyctl()
        .args(["snapshots", "diff", "-c", c, "s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t.elapsed() > std::time::Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("diff {n} took over 5 s; daemon threads on FIFOs: {:?}", daemon_threads_on_fifos(w));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let elapsed = t.elapsed();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "diff {n}: {stderr}");
    assert!(!stdout.contains("CANARY") && !stderr.contains("CANARY"), "diff {n} named a host file: {stdout}");
    (stdout, elapsed)
}

/// The tenant swaps a directory with a symlink to a host directory full of canary names, and 8
/// regular files (of the snapshot's size) with FIFOs — atomic exchanges in tight loops — while
/// the daemon diffs its root 1,000 times: no answer names a canary, none takes 5 s, and no
/// daemon thread or descriptor is left on the tree.
fn diffs_racing_symlink_and_fifo_swaps(driver: Driver) -> World {
    let w = World::new(driver);
    let canary = w.dir.join("host-canary");
    std::fs::create_dir_all(canary.join("CANARY-subdir")).unwrap();
    for i in 0..8 {
        std::fs::write(canary.join(format!("CANARY-{i}")), b"host secret").unwrap();
    }
    let c = id(&w.running("racer"));
    w.install_probe(&c);
    let setup = format!(
        "mkdir -p /race/d && echo x > /race/d/f && ln -s {host} /race/d.swap && \
         for i in $(seq 8); do echo x > /race/p$i; mkfifo /race/p$i.swap; done",
        host = canary.display()
    );
    w.sh(&c, &setup);
    w.ok(&["snapshots", "create", "--container", &c, "--alias", "s"]);
    w.sh(&c, "for i in $(seq 8); do echo y > /race/p$i; done");
    let mut swaps = "/probe swap /race/d /race/d.swap </dev/null >/dev/null 2>&1 &".to_owned();
    for i in 1..=8 {
        swaps.push_str(&format!(" /probe swap /race/p{i} /race/p{i}.swap </dev/null >/dev/null 2>&1 &"));
    }
    w.sh(&c, &format!("{swaps} true"));
    assert!(w.sh(&c, "ps").matches("probe swap").count() >= 9, "the swappers run");
    let mut slowest = std::time::Duration::ZERO;
    let mut seen = std::collections::BTreeSet::new();
    for n in 0..1000 {
        let (stdout, took) = timed_diff(&w, &c, n);
        slowest = slowest.max(took);
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        for ch in v["data"]["changes"].as_array().unwrap() {
            if ch["path"].as_str().unwrap().starts_with("/race") {
                seen.insert(format!("{} {} {}", ch["path"], ch["kind"], ch["type"]));
            }
        }
    }
    // The race was real: diffs saw the symlink and FIFOs where the snapshot has a directory
    // and files.
    assert!(seen.iter().any(|s| s.starts_with("\"/race/d\"") && s.contains("symlink")), "no diff saw the symlink: {seen:?}");
    assert!(seen.iter().any(|s| s.starts_with("\"/race/p") && s.contains("other")), "no diff saw a FIFO: {seen:?}");
    assert_eq!(daemon_threads_on_fifos(&w), Vec::<String>::new());
    assert_eq!(daemon_fds_under(&w, &w.storage_dir.join("containers")), Vec::<String>::new(), "descriptors left open in the tree");
    eprintln!("{driver:?}: slowest of 1,000 racing diffs {slowest:?}");
    w
}

#[test]
fn diffs_racing_symlink_and_fifo_swaps_on_btrfs() {
    let mut w = diffs_racing_symlink_and_fifo_swaps(Driver::Btrfs);
    // On btrfs a diff reads a temporary read-only snapshot of the live root: none is left
    // behind, and one a crash leaves is removed at start-up.
    let c = id(&w.ok(&["containers", "get", "racer"]));
    let dir = w.storage_dir.join("containers").join(&c);
    assert!(!subvolumes_of(&w, &c).iter().any(|l| l.contains(".diff-")), "{:?}", subvolumes_of(&w, &c));
    w.kill_daemon();
    run(
        "btrfs",
        &["subvolume", "snapshot", "-r", &dir.join("rootfs").to_string_lossy(), &dir.join(".diff-left-by-a-crash").to_string_lossy()],
    );
    w.start_daemon();
    assert!(!dir.join(".diff-left-by-a-crash").exists(), "the leftover snapshot was not reclaimed");
    assert!(!subvolumes_of(&w, &c).iter().any(|l| l.contains(".diff-")), "{:?}", subvolumes_of(&w, &c));
}

#[test]
fn diffs_racing_symlink_and_fifo_swaps_on_overlay() {
    diffs_racing_symlink_and_fifo_swaps(Driver::Overlay);
}
