//! Token secrets: generated once, shown once, stored as an HMAC-SHA256 under a key that lives
//! only on this server (mode 0600 in the state directory), compared in constant time.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const PREFIX: &str = "hdy_";

pub struct TokenKey(Vec<u8>);

impl TokenKey {
    /// Loads the key at `path`, creating it (32 random bytes, mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> std::io::Result<TokenKey> {
        match std::fs::read(path) {
            Ok(k) if k.len() >= 32 => return Ok(TokenKey(k)),
            Ok(_) => return Err(std::io::Error::other(format!("{} is too short to be a token key", path.display()))),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        let key: [u8; 32] = rand::random();
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        f.write_all(&key)?;
        f.sync_all()?;
        Ok(TokenKey(key.to_vec()))
    }

    #[cfg(test)]
    pub fn fixed(k: &[u8]) -> TokenKey {
        TokenKey(k.to_vec())
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }

    pub fn hash(&self, secret: &str) -> Vec<u8> {
        let mut m = self.mac();
        m.update(secret.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// Constant-time comparison of `secret`'s hash with `stored`.
    pub fn verify(&self, secret: &str, stored: &[u8]) -> bool {
        let mut m = self.mac();
        m.update(secret.as_bytes());
        m.verify_slice(stored).is_ok()
    }
}

/// A new token: (id, secret, the string handed to the caller).
pub fn generate() -> (String, String, String) {
    let id = crate::ids::new_id();
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("{PREFIX}{id}_{secret}");
    (id, secret, token)
}

/// Splits a presented token into (id, secret).
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (crate::ids::is_id(id) && secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit())).then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tampering() {
        let key = TokenKey::fixed(b"0123456789abcdef0123456789abcdef");
        let (id, secret, token) = generate();
        let (pid, psecret) = parse(&token).unwrap();
        assert_eq!((pid, psecret), (id.as_str(), secret.as_str()));
        let stored = key.hash(&secret);
        assert!(key.verify(&secret, &stored));
        let mut wrong = secret.clone().into_bytes();
        wrong[0] = if wrong[0] == b'a' { b'b' } else { b'a' };
        assert!(!key.verify(std::str::from_utf8(&wrong).unwrap(), &stored));
        assert!(!TokenKey::fixed(b"another key, another key, another").verify(&secret, &stored), "the hash is keyed");
        for bad in ["", "hdy_", "hdy_xyz_abc", "bearer", &token[..token.len() - 1], &format!("x{token}")] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
