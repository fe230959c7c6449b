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
