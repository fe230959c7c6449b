//! Realms and tokens.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;

pub use hoody_api::realms::Realm as RealmRecord;

pub fn insert_realm(conn: &Connection, r: &RealmRecord) -> Result<()> {
    conn.execute("INSERT INTO realms (id, description, created_at) VALUES (?1, ?2, ?3)", params![r.id, r.description, r.created_at])?;
    Ok(())
}

pub fn list_realms(conn: &Connection) -> Result<Vec<RealmRecord>> {
    let mut st = conn.prepare_cached("SELECT id, description, created_at FROM realms ORDER BY created_at, id")?;
    Ok(st
        .query_map([], |r| Ok(RealmRecord { id: r.get(0)?, description: r.get(1)?, created_at: r.get(2)? }))?
        .collect::<rusqlite::Result<_>>()?)
}

pub fn realm_exists(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn.query_row("SELECT 1 FROM realms WHERE id = ?1", [id], |_| Ok(())).optional()?.is_some())
}

/// A token as stored: never its secret, only a keyed hash of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub hash: Vec<u8>,
    pub realm_ids: Vec<String>,
    pub scopes: Vec<String>,
    pub description: String,
    pub created_at: String,
    pub expires_at: Option<String>,
}

impl TokenRecord {
    /// As the API lists it: without the hash.
    pub fn view(&self) -> hoody_api::realms::Token {
        hoody_api::realms::Token {
            id: self.id.clone(),
            realm_ids: self.realm_ids.clone(),
            scopes: self.scopes.clone(),
            description: self.description.clone(),
            created_at: self.created_at.clone(),
            expires_at: self.expires_at.clone(),
        }
    }
}

pub fn insert_token(conn: &Connection, t: &TokenRecord) -> Result<()> {
    conn.execute(
        "INSERT INTO tokens (id, hash, realm_ids, scopes, description, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            t.id,
            t.hash,
            serde_json::to_string(&t.realm_ids).expect("strings serialise"),
            serde_json::to_string(&t.scopes).expect("strings serialise"),
            t.description,
            t.created_at,
            t.expires_at
        ],
    )?;
    Ok(())
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let realms: String = r.get(2)?;
    let scopes: String = r.get(3)?;
    Ok(TokenRecord {
        id: r.get(0)?,
        hash: r.get(1)?,
        realm_ids: serde_json::from_str(&realms).unwrap_or_default(),
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        description: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
    })
}

pub fn get_token(conn: &Connection, id: &str) -> Result<Option<TokenRecord>> {
    Ok(conn
        .query_row("SELECT id, hash, realm_ids, scopes, description, created_at, expires_at FROM tokens WHERE id = ?1", [id], token_row)
        .optional()?)
}

pub fn list_tokens(conn: &Connection) -> Result<Vec<TokenRecord>> {
    let mut st =
        conn.prepare_cached("SELECT id, hash, realm_ids, scopes, description, created_at, expires_at FROM tokens ORDER BY created_at, id")?;
    Ok(st.query_map([], token_row)?.collect::<rusqlite::Result<_>>()?)
}

pub fn delete_token(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM tokens WHERE id = ?1", [id])? > 0)
}
