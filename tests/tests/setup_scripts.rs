//! The set-up scripts' own behaviour, checked without a fresh machine (tests/fresh/run.sh is
//! the fresh-machine test): the benchmark report is written whole or not at all, deps.sh
//! refuses to be sourced and refuses a Rust older than the workspace's rust-version.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository").to_path_buf()
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(hoody_e2e::ROOT).join(format!("{}-setup-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch directory");
    d
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn sh(args: &[&str], path_env: Option<&str>) -> Output {
    let mut c = Command::new("/bin/sh");
    c.args(args).current_dir(repo()).stdin(Stdio::null());
    if let Some(p) = path_env {
        c.env_clear().env("PATH", p).env("HOME", "/nonexistent");
    }
    c.output().expect("run /bin/sh")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A fake hoody-bench: prints a table for each section, fails for the one named in $FAIL.
fn fake_bench(dir: &Path, fail: &str) -> PathBuf {
    let b = dir.join("bench");
    script(&b, &format!("echo \"## section $1\"\necho \"| $1 | 1 ms |\"\n[ \"$1\" != '{fail}' ] || {{ echo half-written; exit 3; }}"));
    b
}

#[test]
fn a_failed_benchmark_section_fails_the_run_and_keeps_the_old_report() {
    let d = scratch("bench-fail");
    let report = d.join("PERFORMANCE.md");
    std::fs::write(&report, "the previous report\n").unwrap();
    let bench = fake_bench(&d, "firewall");
    let o = sh(&["tests/bench/report.sh", &report.to_string_lossy(), &bench.to_string_lossy(), "peers", "firewall", "api"], None);
    assert_ne!(o.status.code(), Some(0), "a failed section must fail the run: {}", text(&o));
    assert!(text(&o).contains("benchmarks failed: firewall"), "the failed section is named: {}", text(&o));
    assert_eq!(std::fs::read_to_string(&report).unwrap(), "the previous report\n", "the old report must stay as it was");
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 2, "no temporary files are left beside the report: {left:?}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_benchmark_run_that_succeeds_replaces_the_report_with_every_section_in_order() {
    let d = scratch("bench-ok");
    let report = d.join("PERFORMANCE.md");
    std::fs::write(&report, "the previous report\n").unwrap();
    std::fs::write(d.join("TEST-TIMES.md"), "## Test suite wall times\n").unwrap();
    let bench = fake_bench(&d, "none");
    let o = sh(&["tests/bench/report.sh", &report.to_string_lossy(), &bench.to_string_lossy(), "peers", "firewall"], None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = std::fs::read_to_string(&report).unwrap();
    assert!(r.starts_with("# Performance\n"), "{r}");
    let (p, f, t) = (r.find("## section peers").unwrap(), r.find("## section firewall").unwrap(), r.find("## Test suite").unwrap());
    assert!(p < f && f < t, "sections in order, then the test times: {r}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn deps_sh_refuses_to_be_sourced_or_run_without_a_mode() {
    // Sourced from dash, deps.sh sees the caller's arguments (none here), not its own.
    for args in [vec!["-c", ". packaging/deps.sh test"], vec!["packaging/deps.sh"], vec!["packaging/deps.sh", "tset"]] {
        let o = sh(&args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("usage: packaging/deps.sh run|test|bench"), "{args:?}: {}", text(&o));
    }
}

/// A directory with a fake `rustc` of the given version and a `cargo`, then the system's PATH.
fn fake_rust(dir: &Path, version: &str) -> String {
    script(&dir.join("rustc"), &format!("echo 'rustc {version} (fake)'"));
    script(&dir.join("cargo"), "echo 'cargo (fake)'");
    format!("{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", dir.display())
}

#[test]
fn deps_sh_refuses_a_rust_older_than_the_workspace_needs_and_says_how_to_get_one() {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let need = manifest.lines().find_map(|l| l.strip_prefix("rust-version = \"")).and_then(|l| l.strip_suffix('"')).expect("rust-version");
    let d = scratch("rust-old");
    // Debian 12's own rustc.
    let o = sh(&["packaging/deps.sh", "run", "--check"], Some(&fake_rust(&d, "1.63.0")));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&format!("is Rust 1.63.0; hoody needs Rust >= {need}")), "{}", text(&o));
    assert!(text(&o).contains("rustup"), "says how to get one: {}", text(&o));
    // Versions compare by number: 1.100 is newer than 1.85, and the minimum itself is enough.
    for ok in ["1.100.0", &format!("{need}.0"), "2.0.0"] {
        let o = sh(&["packaging/deps.sh", "run", "--check"], Some(&fake_rust(&d, ok)));
        assert_eq!(o.status.code(), Some(0), "rustc {ok}: {}", text(&o));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn deps_sh_without_any_rust_says_how_to_get_one() {
    let d = scratch("rust-none");
    let o = sh(&["packaging/deps.sh", "run", "--check"], Some(&format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", d.display())));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no Rust toolchain") && text(&o).contains("rustup"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_readme_and_docs_link_only_to_files_in_the_repository() {
    let root = repo();
    let mut broken = vec![];
    let mut docs: Vec<PathBuf> = vec![root.join("README.md")];
    docs.extend(
        std::fs::read_dir(root.join("docs")).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    for doc in &docs {
        let s = std::fs::read_to_string(doc).unwrap();
        for (i, _) in s.match_indices("](") {
            let rest = &s[i + 2..];
            let target = &rest[..rest.find(')').unwrap_or(rest.len())];
            if target.starts_with("http") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap();
            let p = doc.parent().unwrap().join(file);
            let inside = p.canonicalize().map(|c| c.starts_with(&root)).unwrap_or(false);
            if !inside {
                broken.push(format!("{}: {target}", doc.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links that do not resolve inside the repository: {broken:#?}");
}
