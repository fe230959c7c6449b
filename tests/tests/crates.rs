//! The crates' boundaries: hoodyctl is built from the API's crate alone.

#[test]
fn hoodyctl_depends_on_neither_the_daemon_nor_sqlite_nor_nftables() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-p", "hoodyctl", "-e", "normal,build", "--prefix", "none", "--format", "{p}"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.lines().any(|l| l.starts_with("hoody-api ")), "{tree}");
    for banned in ["hoodyd ", "rusqlite ", "libsqlite3-sys ", "nftnl ", "nftnl-sys ", "mnl "] {
        assert!(!tree.lines().any(|l| l.starts_with(banned)), "hoodyctl pulls in {banned}:\n{tree}");
    }
}
