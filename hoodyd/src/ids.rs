//! Identifiers and names: 24-hex ids, container/image/snapshot names.

use crate::limits::FieldError;

/// A fresh id: 24 lowercase hex characters (96 random bits).
pub fn new_id() -> String {
    let bytes: [u8; 12] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn is_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Container and snapshot names: 1–63 of `[a-z0-9-]`, not starting or ending with `-`.
pub fn validate_name(field: &str, s: &str) -> Result<(), FieldError> {
    if s.is_empty() || s.len() > 63 {
        return Err(FieldError::new(field, "must be 1 to 63 characters"));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(FieldError::new(field, format!("invalid character {c:?}: use lowercase letters, digits and '-'")));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(FieldError::new(field, "must not start or end with '-'"));
    }
    Ok(())
}

/// Image names: like container names, plus `.` and `_` inside (`debian-12.5`).
pub fn validate_image_name(field: &str, s: &str) -> Result<(), FieldError> {
    if s.is_empty() || s.len() > 63 {
        return Err(FieldError::new(field, "must be 1 to 63 characters"));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'))) {
        return Err(FieldError::new(field, format!("invalid character {c:?}: use lowercase letters, digits, '-', '.', '_'")));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(FieldError::new(field, "must start with a letter or digit"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_24_hex() {
        let a = new_id();
        assert!(is_id(&a), "{a}");
        assert_ne!(a, new_id());
        assert!(!is_id("ABCDEFABCDEFABCDEFABCDEF"));
        assert!(!is_id("abc"));
    }

    #[test]
    fn names() {
        for ok in ["a", "acme-app", "x1", &"a".repeat(63)] {
            validate_name("name", ok).unwrap();
        }
        for bad in ["", "-a", "a-", "Acme", "a_b", "a.b", "a b", &"a".repeat(64), "ü"] {
            assert_eq!(validate_name("name", bad).unwrap_err().field, "name", "{bad}");
        }
        validate_image_name("name", "debian-12.5_min").unwrap();
        for bad in [".staging", "-x", "A", "a/b", ""] {
            assert!(validate_image_name("name", bad).is_err(), "{bad}");
        }
    }
}
