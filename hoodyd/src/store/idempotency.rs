//! Rows of the answers kept for retries with the same `Idempotency-Key`: a row is claimed
//! (`done = 0`) before the request runs and holds its answer once it ran.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;

/// What of a request body its first answer depended on: the handler's reading of it, which
/// may stop early (a refusal before an upload is read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodySeen {
    pub len: u64,
    pub sha256: [u8; 32],
    /// The whole body was read: a retry's must end at the same length.
    pub complete: bool,
}

/// A first answer, kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptAnswer {
    /// `METHOD path?query` of the first request.
    pub target: String,
    pub body: BodySeen,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub response: Vec<u8>,
    /// What the first answer's audit record named beyond its path (a created container, its
    /// realms, a snapshot or rule), as JSON, for the retry's record.
    pub subject: Option<String>,
}

/// What a key holds when a request with it arrives.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nobody used it (or its answer expired): the request runs, the key is now held.
    New,
    /// A request with this key still runs.
    Running {
        target: String,
    },
    Done(Box<KeptAnswer>),
}

/// Claims `key` for `scope` unless it is held: a row older than `expired_before` counts as
/// absent and is replaced.
pub fn claim_key(conn: &mut Connection, scope: &str, key: &str, target: &str, now: i64, expired_before: i64) -> Result<Claim> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM idempotency WHERE scope = ?1 AND key = ?2 AND created_unix < ?3", params![scope, key, expired_before])?;
    let found = tx
        .query_row(
            "SELECT target, done, body_len, body_sha, body_complete, status, headers, response, subject
               FROM idempotency WHERE scope = ?1 AND key = ?2",
            params![scope, key],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<Vec<u8>>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ))
            },
        )
        .optional()?;
    let claim = match found {
        None => {
            tx.execute(
                "INSERT INTO idempotency (scope, key, target, created_unix, done) VALUES (?1, ?2, ?3, ?4, 0)",
                params![scope, key, target, now],
            )?;
            Claim::New
        }
        Some((target, false, ..)) => Claim::Running { target },
        Some((target, true, len, sha, complete, status, headers, response, subject)) => {
            let corrupt = |what: &str| super::StoreError::Corrupt { id: format!("idempotency key {key:?}"), what: what.to_owned() };
            let sha256: [u8; 32] = sha.and_then(|s| s.try_into().ok()).ok_or_else(|| corrupt("body digest"))?;
            let headers: Vec<(String, String)> =
                serde_json::from_str(headers.as_deref().unwrap_or("[]")).map_err(|_| corrupt("headers"))?;
            Claim::Done(Box::new(KeptAnswer {
                target,
                body: BodySeen { len: len as u64, sha256, complete },
                status: status.ok_or_else(|| corrupt("status"))? as u16,
                headers,
                response: response.unwrap_or_default(),
                subject,
            }))
        }
    };
    tx.commit()?;
    Ok(claim)
}

/// Keeps the first answer under a key this request claimed.
pub fn keep_answer(conn: &Connection, scope: &str, key: &str, a: &KeptAnswer) -> Result<()> {
    let headers = serde_json::to_string(&a.headers).expect("strings serialize");
    conn.execute(
        "UPDATE idempotency SET done = 1, body_len = ?3, body_sha = ?4, body_complete = ?5, status = ?6, headers = ?7,
                response = ?8, subject = ?9
          WHERE scope = ?1 AND key = ?2 AND done = 0",
        params![scope, key, a.body.len as i64, a.body.sha256.as_slice(), a.body.complete, a.status as i64, headers, a.response, a.subject],
    )?;
    Ok(())
}

/// Gives a claimed key back: its request's answer is not one a retry should get again.
pub fn release_key(conn: &Connection, scope: &str, key: &str) -> Result<()> {
    conn.execute("DELETE FROM idempotency WHERE scope = ?1 AND key = ?2 AND done = 0", params![scope, key])?;
    Ok(())
}

/// At start: keys whose request the last daemon did not finish answering are free again, and
/// answers older than `expired_before` are dropped.
pub fn prune_keys(conn: &Connection, expired_before: i64, unfinished_too: bool) -> Result<usize> {
    let mut n = conn.execute("DELETE FROM idempotency WHERE created_unix < ?1", [expired_before])?;
    if unfinished_too {
        n += conn.execute("DELETE FROM idempotency WHERE done = 0", [])?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> KeptAnswer {
        KeptAnswer {
            target: "POST /x".into(),
            body: BodySeen { len: 3, sha256: [7; 32], complete: true },
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            response: b"{}".to_vec(),
            subject: Some(r#"{"container":"c1","realm_ids":["r1"]}"#.into()),
        }
    }

    #[test]
    fn a_key_is_claimed_once_then_answers_and_expires() {
        let store = crate::store::Store::memory().unwrap();
        store
            .call_sync(|c| {
                assert_eq!(claim_key(c, "uid:0", "k", "POST /x", 100, 0)?, Claim::New);
                assert_eq!(claim_key(c, "uid:0", "k", "POST /x", 101, 0)?, Claim::Running { target: "POST /x".into() });
                // Another caller's key of the same name is its own.
                assert_eq!(claim_key(c, "token:t1", "k", "POST /x", 101, 0)?, Claim::New);
                keep_answer(c, "uid:0", "k", &answer())?;
                match claim_key(c, "uid:0", "k", "POST /x", 102, 0)? {
                    Claim::Done(a) => assert_eq!(*a, answer()),
                    other => panic!("{other:?}"),
                }
                // Past the window the key is new again.
                assert_eq!(claim_key(c, "uid:0", "k", "POST /x", 200, 150)?, Claim::New);
                release_key(c, "uid:0", "k")?;
                assert_eq!(claim_key(c, "uid:0", "k", "POST /x", 201, 150)?, Claim::New);
                assert_eq!(prune_keys(c, 0, true)?, 2);
                Ok(())
            })
            .unwrap();
    }
}
