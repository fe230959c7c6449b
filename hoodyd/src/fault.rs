//! Fault injection for tests: `HOODY_FAULTS=fail:restore-swap,crash:create-storage` makes the
//! named step fail with an error (`fail:`) or abort the whole daemon on the spot (`crash:`),
//! to prove that every step leaves a consistent state. Only with the `test-hooks` feature
//! (`crate::test_hooks`); in the release binary the list is always empty.

use std::sync::OnceLock;

fn faults() -> &'static Vec<(bool, String)> {
    static F: OnceLock<Vec<(bool, String)>> = OnceLock::new();
    F.get_or_init(|| {
        crate::test_hooks::var("HOODY_FAULTS")
            .and_then(|v| v.into_string().ok())
            .unwrap_or_default()
            .split(',')
            .filter_map(|f| match f.trim().split_once(':') {
                Some(("fail", p)) => Some((false, p.to_owned())),
                Some(("crash", p)) => Some((true, p.to_owned())),
                _ => None,
            })
            .collect()
    })
}

/// Passes unless the step `point` is set to fail (an error) or crash (the process aborts).
pub fn check(point: &str) -> std::io::Result<()> {
    for (crash, p) in faults() {
        if p == point {
            if *crash {
                tracing::error!(point, "injected crash");
                std::process::abort();
            }
            return Err(std::io::Error::other(format!("injected failure at {point}")));
        }
    }
    Ok(())
}
