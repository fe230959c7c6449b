//! Audit retention without breaking the chain (issue 14, fourth part): the log is written in
//! segments, each after the first beginning with an anchor that carries the record before it;
//! `hoodyctl audit --verify` checks across them, reports where retention cut the history, and
//! catches a segment taken out of the middle. Forcing rotations hides nothing.

use hoody_e2e::{Driver, World};

fn sealed(w: &World) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(&w.state_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("audit.log.") && !n.ends_with(".next")))
        .collect();
    v.sort();
    v
}

#[test]
fn segments_verify_across_rotation_and_retention_and_a_removed_middle_one_is_caught() {
    let mut w = World::with_flags(Driver::Overlay, &["--audit-segment-size", "16KiB"]);
    let marker = w.ok(&["containers", "create", "--name", "marker", "--image", "busybox"])["id"].as_str().unwrap().to_owned();
    // Many requests: many rotations.
    for _ in 0..600 {
        assert_eq!(w.http().get("/health").status, 200);
    }
    let segs = sealed(&w);
    assert!(segs.len() >= 8, "{segs:?}");
    // Nothing was hidden by the rotations: the create is still listed and the chain verifies.
    let records = w.ok(&["audit", "--limit", "10000"]);
    let all = records.as_array().unwrap();
    assert!(all.iter().any(|r| r["method"] == "POST" && r["path"] == "/api/v1/containers" && r["status"] == 201), "the create is gone");
    assert_eq!(all[0]["seq"], 1, "the listing starts with the first record");
    let about = w.ok(&["audit", "-c", "marker"]);
    assert!(about.to_string().contains(&marker) || about.as_array().is_some(), "{about}");
    let v = w.ok(&["audit", "--verify"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["segments"].as_u64().unwrap() as usize, segs.len() + 1);
    assert!(v.get("retention_cut_before").is_none(), "{v}");
    // Age: a segment older than the retention goes at start-up.
    w.stop_daemon();
    let oldest = segs[0].clone();
    hoody_e2e::run("touch", &["-d", "100 days ago", &oldest.to_string_lossy()]);
    w.start_daemon();
    assert!(!oldest.exists(), "a segment older than 90 days was kept");
    // Space: with a bound of 4 segments the oldest go; the rest still verifies, from the cut.
    w.stop_daemon();
    w.extra_flags.extend(["--audit-max-space".into(), "64KiB".into()]);
    w.start_daemon();
    let left = sealed(&w);
    assert!(left.len() <= 4 && !left.is_empty(), "{left:?}");
    let v = w.ok(&["audit", "--verify"]);
    assert_eq!(v["ok"], true, "{v}");
    let cut = v["retention_cut_before"].as_u64().expect("the cut is reported");
    assert!(cut > 100, "{v}");
    let first = w.ok(&["audit", "--limit", "10000"]).as_array().unwrap()[0]["seq"].as_u64().unwrap();
    assert_eq!(first, cut, "the listing starts where the retention cut it");
    // A segment taken out of the middle breaks the chain there, and says so.
    let left = sealed(&w);
    assert!(left.len() >= 3, "{left:?}");
    std::fs::remove_file(&left[1]).unwrap();
    let r = w.ctl(&["audit", "--verify"]);
    assert_eq!(r.code, 1, "{r:?}");
    let next = left[2].file_name().unwrap().to_string_lossy().into_owned();
    assert!(r.stderr.contains("missing") && r.stderr.contains(&next), "{r:?}");
}
