//! hoodyctl for people and scripts: one way to name the container, exit statuses by class, the
//! error envelope when JSON is asked for, tables by default on request, completions that ask
//! the daemon.

use hoody_e2e::{Driver, World};

/// What the shell's completion function would offer after `words` (the last one being typed),
/// through hoodyctl's dynamic completion protocol (bash's).
fn complete(w: &World, words: &[&str]) -> Vec<String> {
    let out = w
        .hoodyctl()
        .env("COMPLETE", "bash")
        .env("_CLAP_IFS", "\n")
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .env("_CLAP_COMPLETE_COMP_TYPE", "9")
        .env("_CLAP_COMPLETE_SPACE", "true")
        .arg("--")
        .args(words)
        .output()
        .expect("hoodyctl");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn names_statuses_envelopes_tables_and_completions() {
    let w = World::new(Driver::Overlay);
    let id = w.ok(&["containers", "create", "--name", "alpha", "--image", "busybox"])["id"].as_str().unwrap().to_owned();
    w.ok(&["snapshots", "create", "alpha", "--alias", "first"]);

    // Exit statuses by class.
    assert_eq!(w.ctl(&["containers", "get", "nope"]).code, 3, "not found");
    assert_eq!(w.ctl(&["containers", "stop", "alpha"]).code, 4, "conflict: not running");
    let bad = w.ctl(&["containers", "create", "--name", "Bad Name", "--image", "busybox"]);
    assert_eq!(bad.code, 5, "refused: {bad:?}");
    let gone = w.hoodyctl().args(["--socket", "/nonexistent/hoodyd.sock", "health"]).output().unwrap();
    assert_eq!(gone.status.code(), Some(6), "unreachable");
    assert_eq!(w.ctl(&["containers", "frobnicate"]).code, 2, "usage");

    // The error envelope on stdout only when JSON is asked for explicitly.
    let quiet = w.ctl(&["containers", "get", "nope"]);
    assert!(quiet.stdout.is_empty() && quiet.stderr.contains("not found"), "{quiet:?}");
    let json = w.ctl(&["--output", "json", "containers", "get", "nope"]);
    assert_eq!(json.json()["error"]["code"], "not_found", "{json:?}");

    // HOODY_OUTPUT=table makes tables the default; --output json still wins.
    let table = w.hoodyctl().env("HOODY_OUTPUT", "table").args(["snapshots", "list", "alpha"]).output().unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("NAME") && text.contains("first"), "{text}");
    let json = w.hoodyctl().env("HOODY_OUTPUT", "table").args(["-o", "json", "snapshots", "list", "alpha"]).output().unwrap();
    assert!(String::from_utf8_lossy(&json.stdout).starts_with("{\"data\":["));

    // The container as -c or first, everywhere.
    w.ok(&["containers", "start", "alpha"]);
    assert_eq!(w.ctl(&["exec", "-c", "alpha", "id", "-u"]).stdout.trim(), "0");
    assert_eq!(w.ctl(&["exec", "alpha", "--", "id", "-u"]).stdout.trim(), "0");
    assert_eq!(w.ctl(&["exec", &id, "sh", "-c", "echo $((6*7))"]).stdout.trim(), "42");
    let d = w.ok(&["snapshots", "diff", "alpha", "first"]);
    assert_eq!(d["from"], "first");
    assert_eq!(w.ok(&["snapshots", "diff", "-c", "alpha", "first"])["from"], "first");

    // Completions ask the daemon.
    assert!(complete(&w, &["hoodyctl", "containers", "get", ""]).contains(&"alpha".to_string()));
    assert!(complete(&w, &["hoodyctl", "exec", "-c", ""]).contains(&"alpha".to_string()));
    assert!(complete(&w, &["hoodyctl", "images", "get", ""]).contains(&"busybox".to_string()));
    w.ok(&["containers", "create", "--name", "beta", "--image", "busybox"]);
    w.ok(&["snapshots", "create", "beta", "--alias", "betas"]);
    let snaps = complete(&w, &["hoodyctl", "snapshots", "restore", "-c", "alpha", "--name", ""]);
    assert!(snaps.contains(&"first".to_string()) && !snaps.contains(&"betas".to_string()), "alpha's snapshots only: {snaps:?}");
    let anyone = complete(&w, &["hoodyctl", "snapshots", "restore", "--name", ""]);
    assert!(anyone.contains(&"first".to_string()) && anyone.contains(&"betas".to_string()), "{anyone:?}");
    let positional = complete(&w, &["hoodyctl", "snapshots", "restore", "alpha", "--name", ""]);
    assert!(positional.contains(&"first".to_string()) && !positional.contains(&"betas".to_string()), "{positional:?}");
    let second: Vec<String> =
        complete(&w, &["hoodyctl", "snapshots", "delete", "beta", ""]).into_iter().filter(|c| !c.starts_with('-')).collect();
    assert_eq!(second, ["betas"], "the container given first, then its snapshots only");
    assert!(complete(&w, &["hoodyctl", "containers", "get", "al"]).iter().all(|c| c.starts_with("al")));
}
