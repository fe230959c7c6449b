//! Scopes of tokens, and what each endpoint needs: one table, so the whole policy can be read
//! (and tested) in one place.

use axum::http::Method;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "containers:read")]
    ContainersRead,
    #[serde(rename = "containers:write")]
    ContainersWrite,
    #[serde(rename = "exec")]
    Exec,
    #[serde(rename = "firewall:write")]
    FirewallWrite,
    #[serde(rename = "snapshots:write")]
    SnapshotsWrite,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Scope::ContainersRead, Scope::ContainersWrite, Scope::Exec, Scope::FirewallWrite, Scope::SnapshotsWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ContainersRead => "containers:read",
            Scope::ContainersWrite => "containers:write",
            Scope::Exec => "exec",
            Scope::FirewallWrite => "firewall:write",
            Scope::SnapshotsWrite => "snapshots:write",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// What a request needs from its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any authenticated caller (the answer is filtered by its realms).
    Caller,
    Scope(Scope),
    /// Administrators only (uid 0 or the admin group, without a token).
    Admin,
}

/// The need of `method path` (path under `/api/v1`, query excluded).
pub fn need(method: &Method, path: &str) -> Need {
    let seg: Vec<&str> = path.trim_start_matches("/api/v1").split('/').filter(|s| !s.is_empty()).collect();
    let read = method == Method::GET || method == Method::HEAD;
    match seg.as_slice() {
        ["health"] => Need::Caller,
        ["metrics"] => Need::Admin,
        ["system", ..] => Need::Admin,
        ["realms"] if read => Need::Caller,
        ["realms", ..] => Need::Admin,
        ["tokens", ..] => Need::Admin,
        ["audit"] if read => Need::Caller,
        ["events"] if read => Need::Scope(Scope::ContainersRead),
        ["audit", ..] => Need::Admin,
        ["images", ..] if read => Need::Scope(Scope::ContainersRead),
        ["images", ..] => Need::Admin,
        ["containers"] | ["containers", _] if read => Need::Scope(Scope::ContainersRead),
        ["containers"] | ["containers", _] => Need::Scope(Scope::ContainersWrite),
        ["containers", _, "start" | "stop" | "restart"] => Need::Scope(Scope::ContainersWrite),
        ["containers", _, "exec"] | ["containers", _, "execs", _, "attach"] => Need::Scope(Scope::Exec),
        ["containers", _, "logs"] => Need::Scope(Scope::ContainersRead),
        ["containers", _, "firewall", ..] if read => Need::Scope(Scope::ContainersRead),
        ["containers", _, "firewall", ..] => Need::Scope(Scope::FirewallWrite),
        ["containers", _, "snapshots", ..] if read => Need::Scope(Scope::ContainersRead),
        ["containers", _, "snapshots", ..] => Need::Scope(Scope::SnapshotsWrite),
        _ => Need::Caller,
    }
}

/// The container named in a path, if any (`/api/v1/containers/{id}/…`).
pub fn container_ref(path: &str) -> Option<&str> {
    let mut it = path.trim_start_matches("/api/v1").split('/').filter(|s| !s.is_empty());
    (it.next() == Some("containers")).then(|| it.next()).flatten()
}

/// The snapshot a path names: `/containers/{id}/snapshots/{name}[/…]`.
pub fn snapshot_ref(path: &str) -> Option<&str> {
    let parts: Vec<&str> = path.trim_start_matches("/api/v1").split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        ["containers", _, "snapshots", name, ..] => Some(name),
        _ => None,
    }
}

/// The firewall rule a path names: `/containers/{id}/firewall/{egress|ingress}/{rule_id}`.
pub fn rule_ref(path: &str) -> Option<&str> {
    let parts: Vec<&str> = path.trim_start_matches("/api/v1").split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        ["containers", _, "firewall", "egress" | "ingress", id] => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_and_rules_named_by_paths() {
        assert_eq!(snapshot_ref("/api/v1/containers/app/snapshots/s1"), Some("s1"));
        assert_eq!(snapshot_ref("/api/v1/containers/app/snapshots/s1/diff"), Some("s1"));
        assert_eq!(snapshot_ref("/api/v1/containers/app/snapshots"), None);
        assert_eq!(rule_ref("/api/v1/containers/app/firewall/egress/r1"), Some("r1"));
        assert_eq!(rule_ref("/api/v1/containers/app/firewall/egress"), None);
        assert_eq!(rule_ref("/api/v1/containers/app/firewall/events"), None);
    }

    #[test]
    fn table() {
        let cases = [
            (Method::GET, "/api/v1/containers", Need::Scope(Scope::ContainersRead)),
            (Method::POST, "/api/v1/containers", Need::Scope(Scope::ContainersWrite)),
            (Method::GET, "/api/v1/containers/x", Need::Scope(Scope::ContainersRead)),
            (Method::DELETE, "/api/v1/containers/x", Need::Scope(Scope::ContainersWrite)),
            (Method::PATCH, "/api/v1/containers/x", Need::Scope(Scope::ContainersWrite)),
            (Method::POST, "/api/v1/containers/x/stop", Need::Scope(Scope::ContainersWrite)),
            (Method::POST, "/api/v1/containers/x/exec", Need::Scope(Scope::Exec)),
            (Method::GET, "/api/v1/containers/x/logs", Need::Scope(Scope::ContainersRead)),
            (Method::GET, "/api/v1/containers/x/firewall/events", Need::Scope(Scope::ContainersRead)),
            (Method::POST, "/api/v1/containers/x/firewall/egress", Need::Scope(Scope::FirewallWrite)),
            (Method::DELETE, "/api/v1/containers/x/firewall/ingress/r", Need::Scope(Scope::FirewallWrite)),
            (Method::POST, "/api/v1/containers/x/firewall/reset", Need::Scope(Scope::FirewallWrite)),
            (Method::GET, "/api/v1/containers/x/snapshots/s/diff", Need::Scope(Scope::ContainersRead)),
            (Method::PATCH, "/api/v1/containers/x/snapshots/s", Need::Scope(Scope::SnapshotsWrite)),
            (Method::POST, "/api/v1/tokens", Need::Admin),
            (Method::GET, "/api/v1/tokens", Need::Admin),
            (Method::POST, "/api/v1/realms", Need::Admin),
            (Method::GET, "/api/v1/realms", Need::Caller),
            (Method::GET, "/api/v1/audit", Need::Caller),
            (Method::GET, "/api/v1/audit/verify", Need::Admin),
            (Method::POST, "/api/v1/images", Need::Admin),
            (Method::GET, "/api/v1/images", Need::Scope(Scope::ContainersRead)),
            (Method::GET, "/api/v1/metrics", Need::Admin),
        ];
        for (m, p, n) in cases {
            assert_eq!(need(&m, p), n, "{m} {p}");
        }
        assert_eq!(container_ref("/api/v1/containers/abc/logs"), Some("abc"));
        assert_eq!(container_ref("/api/v1/containers"), None);
        assert_eq!(container_ref("/api/v1/images/x"), None);
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
    }

    proptest::proptest! {
        /// Any path: an answer, never a panic; a path naming a container needs a scope.
        #[test]
        fn any_path_has_a_need(path in "(/[a-z0-9%._-]{0,12}){0,7}", post in proptest::bool::ANY) {
            let m = if post { Method::POST } else { Method::GET };
            let n = need(&m, &format!("/api/v1{path}"));
            if let Some(c) = container_ref(&format!("/api/v1{path}")) {
                proptest::prop_assert!(!c.is_empty());
                proptest::prop_assert!(matches!(n, Need::Scope(_) | Need::Caller), "{path}: {n:?}");
            }
        }
    }
}
