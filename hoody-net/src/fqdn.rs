//! Host names in egress rules (`destination_fqdn`): RFC 1123 names, or a wildcard
//! `*.example.com` whose `*` is the whole leftmost label and stands for one or more labels.

use crate::error::Invalid;

/// A name is at most this long (without the trailing dot).
pub const MAX_NAME: usize = 253;
/// A label is at most this long.
pub const MAX_LABEL: usize = 63;

fn label_ok(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= MAX_LABEL
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// The name as a rule holds it: lower case, without a trailing dot; refused (naming `field`)
/// when it is not a host name, is an address, or has a `*` anywhere but as its leftmost label.
pub fn validate(field: &str, s: &str) -> Result<String, Invalid> {
    let bad = |why: String| Invalid::new(field, format!("{s:?} {why}"));
    let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    if name.is_empty() {
        return Err(bad("is empty".into()));
    }
    if name.len() > MAX_NAME {
        return Err(bad(format!("is longer than {MAX_NAME} characters")));
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() || name.contains(':') || name.contains('/') {
        return Err(bad("is an address: give it as destination".into()));
    }
    let (wild, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name.as_str()),
    };
    let labels: Vec<&str> = rest.split('.').collect();
    if let Some(l) = labels.iter().find(|l| l.len() > MAX_LABEL) {
        return Err(bad(format!("has a label longer than {MAX_LABEL} characters ({} characters)", l.len())));
    }
    if labels.iter().any(|l| l.contains('*')) {
        return Err(bad("has a wildcard that is not the whole leftmost label (*.example.com)".into()));
    }
    if !labels.iter().all(|l| label_ok(l)) {
        return Err(bad("is not a host name (labels of letters, digits and inner hyphens, separated by dots)".into()));
    }
    if wild && labels.len() < 2 {
        return Err(bad("is a wildcard over a top-level domain".into()));
    }
    Ok(name)
}

/// Whether the query name `name` (lower case, no trailing dot) is one a rule for `pattern`
/// allows: the name itself, or for `*.example.com` any name below example.com (not itself).
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(base) => name.len() > base.len() + 1 && name.ends_with(base) && name.as_bytes()[name.len() - base.len() - 1] == b'.',
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_and_lower_cased() {
        assert_eq!(validate("f", "API.Stripe.com.").unwrap(), "api.stripe.com");
        assert_eq!(validate("f", "*.githubusercontent.com").unwrap(), "*.githubusercontent.com");
        for (bad, why) in [
            ("", "empty"),
            ("a..b", "not a host name"),
            ("-a.com", "not a host name"),
            ("a_b.com", "not a host name"),
            ("api.*.com", "wildcard"),
            ("*api.com", "wildcard"),
            ("a.*", "wildcard"),
            ("*.com", "top-level"),
            ("203.0.113.10", "address"),
            ("203.0.113.0/24", "address"),
        ] {
            let e = validate("destination_fqdn", bad).unwrap_err();
            assert_eq!(e.field, "destination_fqdn");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(validate("f", &long_label).unwrap_err().to_string().contains("label longer than 63"));
        let long = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        assert!(validate("f", &long).unwrap_err().to_string().contains("longer than 253"));
    }

    #[test]
    fn wildcards_match_below_their_base_only() {
        assert!(matches("api.stripe.com", "api.stripe.com"));
        assert!(!matches("api.stripe.com", "x.api.stripe.com"));
        assert!(matches("*.example.com", "a.example.com"));
        assert!(matches("*.example.com", "a.b.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.example.com", "badexample.com"));
        assert!(!matches("*.example.com", "example.com.evil.net"));
    }
}
