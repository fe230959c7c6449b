//! Creating realms and tokens: validation of the requests and the records they become.

use std::time::SystemTime;

use super::scopes::Scope;
use super::token::{self, TokenKey};
use crate::limits::FieldError;
use crate::store::{RealmRecord, TokenRecord};

/// Longest description of a realm or a token, in bytes.
pub const MAX_DESCRIPTION: usize = 255;
/// Most realms one token (or container) may name.
pub const MAX_REALMS: usize = 64;

pub use hoody_api::realms::{CreateRealm, CreateToken, IssuedToken};

pub fn validate_description(field: &str, d: &str) -> Result<(), FieldError> {
    if d.len() > MAX_DESCRIPTION {
        return Err(FieldError::new(field, format!("longer than {MAX_DESCRIPTION} bytes")));
    }
    if d.chars().any(char::is_control) {
        return Err(FieldError::new(field, "contains control characters"));
    }
    Ok(())
}

/// Checks the shape of a realm list (ids, count); `exists` says whether a realm is known.
pub fn validate_realm_ids(field: &str, ids: &[String], exists: impl Fn(&str) -> bool) -> Result<(), FieldError> {
    if ids.len() > MAX_REALMS {
        return Err(FieldError::new(field, format!("at most {MAX_REALMS} realms")));
    }
    for (i, r) in ids.iter().enumerate() {
        if !crate::ids::is_id(r) {
            return Err(FieldError::new(format!("{field}[{i}]"), "must be a 24-character lowercase hex id"));
        }
        if !exists(r) {
            return Err(FieldError::new(format!("{field}[{i}]"), format!("no realm {r} (create it with POST /realms)")));
        }
    }
    Ok(())
}

pub fn new_realm(req: CreateRealm, now: &str) -> Result<RealmRecord, FieldError> {
    validate_description("description", &req.description)?;
    Ok(RealmRecord { id: crate::ids::new_id(), description: req.description, created_at: now.to_owned() })
}

/// Validates a token request into its record and the secret to hand out once.
pub fn new_token(
    req: CreateToken,
    key: &TokenKey,
    exists: impl Fn(&str) -> bool,
    now: SystemTime,
) -> Result<(IssuedToken, TokenRecord), FieldError> {
    if req.realm_ids.is_empty() {
        return Err(FieldError::new("realm_ids", "a token needs at least one realm"));
    }
    validate_realm_ids("realm_ids", &req.realm_ids, exists)?;
    let mut scopes = Vec::with_capacity(req.scopes.len());
    for (i, s) in req.scopes.iter().enumerate() {
        let Some(sc) = Scope::parse(s) else {
            let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            return Err(FieldError::new(format!("scopes[{i}]"), format!("unknown scope {s:?} (one of {})", all.join(", "))));
        };
        scopes.push(sc);
    }
    scopes.sort();
    scopes.dedup();
    validate_description("description", &req.description)?;
    let expires_at = match req.expires_at {
        None => None,
        Some(s) => {
            let t = humantime::parse_rfc3339_weak(&s).map_err(|e| FieldError::new("expires_at", format!("not an RFC 3339 time: {e}")))?;
            if t <= now {
                return Err(FieldError::new("expires_at", "is in the past"));
            }
            Some(humantime::format_rfc3339_seconds(t).to_string())
        }
    };
    let mut realm_ids = req.realm_ids;
    realm_ids.sort();
    realm_ids.dedup();
    let (id, secret, token) = token::generate();
    let record = TokenRecord {
        id,
        hash: key.hash(&secret),
        realm_ids,
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        description: req.description,
        created_at: humantime::format_rfc3339_millis(now).to_string(),
        expires_at,
    };
    Ok((IssuedToken { record: record.view(), token }, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(realms: &[&str], scopes: &[&str]) -> CreateToken {
        CreateToken {
            realm_ids: realms.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            description: String::new(),
            expires_at: None,
        }
    }

    proptest::proptest! {
        /// Whatever the body, a token request is either refused naming a field or becomes a
        /// record that holds no secret.
        #[test]
        fn any_token_body(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200), desc in ".{0,300}", exp in ".{0,30}") {
            let key = TokenKey::fixed(b"0123456789abcdef0123456789abcdef");
            let _ = serde_json::from_slice::<CreateToken>(&body);
            let r = CreateToken { realm_ids: vec!["aaaaaaaaaaaaaaaaaaaaaaaa".into()], scopes: vec![desc.clone()], description: desc, expires_at: Some(exp) };
            match new_token(r, &key, |_| true, SystemTime::now()) {
                Ok((t, rec)) => proptest::prop_assert!(!serde_json::to_string(&rec.view()).unwrap().contains(&t.token)),
                Err(e) => proptest::prop_assert!(!e.field.is_empty()),
            }
        }
    }

    #[test]
    fn token_requests_are_checked_field_by_field() {
        let key = TokenKey::fixed(b"0123456789abcdef0123456789abcdef");
        let r1 = "aaaaaaaaaaaaaaaaaaaaaaaa";
        let known = |r: &str| r == r1;
        let now = SystemTime::now();
        let (t, record) = new_token(req(&[r1, r1], &["exec", "containers:read", "exec"]), &key, known, now).unwrap();
        assert_eq!(record.realm_ids, vec![r1.to_string()]);
        assert_eq!(t.record.scopes, vec!["containers:read".to_string(), "exec".to_string()]);
        let (id, secret) = token::parse(&t.token).unwrap();
        assert_eq!((id, t.record.id.as_str()), (record.id.as_str(), record.id.as_str()));
        assert!(key.verify(secret, &record.hash));
        assert!(!serde_json::to_string(&record.view()).unwrap().contains(secret), "the listed token never carries the secret");

        let field = |r: CreateToken| new_token(r, &key, known, now).unwrap_err().field;
        assert_eq!(field(req(&[], &[])), "realm_ids");
        assert_eq!(field(req(&[r1, "bbbbbbbbbbbbbbbbbbbbbbbb"], &[])), "realm_ids[1]");
        assert_eq!(field(req(&["nothex"], &[])), "realm_ids[0]");
        assert_eq!(field(req(&[r1], &["exec", "root"])), "scopes[1]");
        let mut long = req(&[r1], &[]);
        long.description = "x".repeat(MAX_DESCRIPTION + 1);
        assert_eq!(field(long), "description");
        let mut past = req(&[r1], &[]);
        past.expires_at = Some("2001-01-01T00:00:00Z".into());
        assert_eq!(field(past), "expires_at");
        let mut garbage = req(&[r1], &[]);
        garbage.expires_at = Some("tomorrow".into());
        assert_eq!(field(garbage), "expires_at");
    }
}
