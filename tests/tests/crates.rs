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

/// Which modules of a crate use which (at `depth` 1: `crate::a`; 2: `crate::a::b`), from the
/// `crate::` and `super::` paths in its sources, comments and test modules left out.
fn module_graph(src: &std::path::Path, depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("source directory").flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "bin") {
                    stack.push(p);
                }
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                parts.clear();
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
            let code = match code.find("#[cfg(test)]\nmod tests").or_else(|| code.find("#[cfg(test)]\npub(crate) mod tests")) {
                Some(i) => &code[..i],
                None => &code[..],
            };
            let me = parts.iter().take(depth).cloned().collect::<Vec<_>>().join("::");
            let parent: Vec<String> = parts[..parts.len().saturating_sub(1)].to_vec();
            for (prefix, base) in [("crate::", vec![]), ("super::", parent)] {
                for (i, _) in code.match_indices(prefix) {
                    if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                        continue;
                    }
                    let rest = &code[i + prefix.len()..];
                    let mut target = base.clone();
                    for seg in rest.split("::").take(2) {
                        let seg: String = seg.chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
                        if seg.is_empty() {
                            break;
                        }
                        target.push(seg);
                    }
                    let t = target.iter().take(depth).cloned().collect::<Vec<_>>().join("::");
                    let nested = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}::")) || b.is_empty();
                    if !nested(&me, &t) && !nested(&t, &me) {
                        g.entry(me.clone()).or_default().insert(t);
                    }
                }
            }
        }
    }
    g
}

/// Every cycle's modules (strongly connected components of more than one module).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![from.to_owned()]);
        while let Some(n) = todo.pop() {
            for m in g.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    todo.push(m.clone());
                }
            }
        }
        seen
    };
    let mut out: Vec<Vec<String>> = vec![];
    for n in g.keys() {
        let r = reach(n);
        let scc: Vec<String> = r.iter().filter(|m| *m == n || reach(m).contains(n)).cloned().collect();
        if scc.len() > 1 && r.contains(n) && !out.iter().any(|c| c.contains(n)) {
            out.push(scc);
        }
    }
    out
}

use std::collections::{BTreeMap, BTreeSet};

#[test]
fn no_crate_has_a_cycle_of_modules() {
    // The check finds a cycle where there is one.
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("a".into());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".to_string()]]);

    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut found = vec![];
    for krate in ["hoody-api", "hoodyctl", "hoodyd", "hoody-net", "hoody-snapshot", "tests"] {
        for depth in [1, 2] {
            let g = module_graph(&root.join(krate).join("src"), depth);
            assert!(krate != "hoodyd" || g.get("api").is_some_and(|u| u.contains("runtime")), "the graph of {krate} was read");
            for c in cycles(&g) {
                let edges: Vec<String> =
                    c.iter().map(|m| format!("{m} → {:?}", g[m].iter().filter(|t| c.contains(t)).collect::<Vec<_>>())).collect();
                found.push(format!("{krate}: {}", edges.join("; ")));
            }
        }
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}
