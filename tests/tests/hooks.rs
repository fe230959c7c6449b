//! The test hooks (injected faults, audit off, fake clock and boot id) exist only in the daemon
//! built with the `test-hooks` feature (tests/run.sh builds it into target/hooked); the
//! workspace's own build — what `cargo build --release` and the package ship — ignores them.

use hoody_e2e::{Driver, World, release_bin_dir};

/// Starts a daemon from `bin` (None: the hooked one) with a fault on the first step of every
/// create and the audit log switched off; returns (the create's outcome, records it audited).
fn create_under_hooks(bin: Option<std::path::PathBuf>) -> (hoody_e2e::Ctl, usize) {
    let mut w = World::new(Driver::Overlay);
    w.kill_daemon();
    let log = w.state_dir.join("audit.log");
    let records = || std::fs::read_to_string(&log).unwrap_or_default().lines().count();
    let before = records();
    w.daemon_bin = bin;
    w.env.push(("HOODY_FAULTS".into(), "fail:create-storage".into()));
    w.env.push(("HOODY_BENCH_NO_AUDIT".into(), "1".into()));
    w.start_daemon();
    let c = w.ctl(&["containers", "create", "--name", "hooked", "--image", "busybox"]);
    (c, records() - before)
}

#[test]
fn a_daemon_built_without_the_test_hooks_ignores_them() {
    // With the hooks: the fault fails the create and nothing is audited.
    let (c, audited) = create_under_hooks(None);
    assert_ne!(c.code, 0, "the injected fault should fail the create: {c:?}");
    assert!(c.stderr.contains("injected failure at create-storage"), "{c:?}");
    assert_eq!(audited, 0, "HOODY_BENCH_NO_AUDIT=1 discards the audit log of a hooked daemon");

    // As released: the same environment changes nothing.
    let (c, audited) = create_under_hooks(Some(release_bin_dir().join("hoodyd")));
    assert_eq!(c.code, 0, "a release daemon must ignore HOODY_FAULTS: {c:?}");
    assert!(audited >= 2, "a release daemon must audit whatever the environment says ({audited} records)");
}
