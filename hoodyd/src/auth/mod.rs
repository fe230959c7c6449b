//! Who is calling: the socket peer (SO_PEERCRED) and, for anyone but an administrator, a
//! realm-scoped bearer token.

mod error;
pub mod manage;
pub mod scopes;
pub mod token;

pub use error::AuthError;

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::store::{self, ContainerFilter, Store};
use scopes::Scope;
use token::TokenKey;
use tracing::info;

/// Who is on the other end of the socket (SO_PEERCRED).
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// A token's grant, as checked on this request.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub id: String,
    pub realms: Vec<String>,
    pub scopes: BTreeSet<Scope>,
}

/// The caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub peer: Peer,
    /// `None`: an administrator (the control plane).
    pub token: Option<TokenInfo>,
    /// What the caller may see: everything, or the containers of its realms.
    pub filter: ContainerFilter,
}

impl Caller {
    pub fn admin(peer: Peer) -> Caller {
        Caller { peer, token: None, filter: ContainerFilter::default() }
    }

    pub fn is_admin(&self) -> bool {
        self.token.is_none()
    }

    /// Whether the caller may see a container in `realms`.
    pub fn may_see(&self, realms: &[String]) -> bool {
        self.token.as_ref().is_none_or(|t| realms.iter().any(|r| t.realms.contains(r)))
    }

    pub fn has(&self, s: Scope) -> bool {
        self.token.as_ref().is_none_or(|t| t.scopes.contains(&s))
    }
}

pub struct Auth {
    key: TokenKey,
    admin_gid: Option<u32>,
    proc_root: PathBuf,
    store: Store,
}

fn unauthorized(m: impl Into<String>) -> AuthError {
    AuthError::Unauthorized(m.into())
}

impl Auth {
    pub fn new(key: TokenKey, admin_gid: Option<u32>, proc_root: PathBuf, store: Store) -> Auth {
        Auth { key, admin_gid, proc_root, store }
    }

    /// True when the peer belongs to the admin group (primary or supplementary).
    fn in_admin_group(&self, peer: &Peer) -> bool {
        let Some(g) = self.admin_gid else { return false };
        if peer.gid == g {
            return true;
        }
        let Some(pid) = peer.pid else { return false };
        std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("Groups:")).map(|l| l.split_whitespace().skip(1).any(|x| x.parse() == Ok(g))))
            .unwrap_or(false)
    }

    /// Identifies the caller from its credentials and `Authorization` header.
    /// Whether a peer without a token is an administrator: root or a member of the admin group.
    pub fn is_administrator(&self, peer: &Peer) -> bool {
        peer.uid == 0 || self.in_admin_group(peer)
    }

    pub async fn identify(&self, peer: Peer, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let Some(header) = authorization else {
            if self.is_administrator(&peer) {
                return Ok(Caller::admin(peer));
            }
            return Err(unauthorized(
                "a token is required: Authorization: Bearer <token> (only root and the admin group are administrators)",
            ));
        };
        let bearer = header.strip_prefix("Bearer ").ok_or_else(|| unauthorized("the Authorization header must be \"Bearer <token>\""))?;
        let (id, secret) = token::parse(bearer.trim()).ok_or_else(|| unauthorized("malformed token"))?;
        let key = id.to_owned();
        let rec = self.store.call(move |db| store::get_token(db, &key)).await?;
        // The same answer for an unknown id and a wrong secret.
        let rec = rec.filter(|r| self.key.verify(secret, &r.hash)).ok_or_else(|| unauthorized("invalid or revoked token"))?;
        if let Some(exp) = &rec.expires_at {
            let expired = humantime::parse_rfc3339_weak(exp).map(|t| t <= std::time::SystemTime::now()).unwrap_or(true);
            if expired {
                return Err(unauthorized("the token has expired"));
            }
        }
        let scopes: BTreeSet<Scope> = if rec.scopes.is_empty() {
            Scope::ALL.into_iter().collect()
        } else {
            rec.scopes.iter().filter_map(|s| Scope::parse(s)).collect()
        };
        let realms = rec.realm_ids.clone();
        Ok(Caller {
            peer,
            token: Some(TokenInfo { id: rec.id, realms: realms.clone(), scopes }),
            filter: ContainerFilter { realms: Some(realms) },
        })
    }

    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> store::Result<T> + Send + 'static,
    ) -> Result<T, AuthError> {
        Ok(self.store.call(f).await?)
    }

    /// The containers a path's id or name refers to, with their realms, whoever may see them.
    pub async fn locate(&self, id_or_name: &str) -> Result<Vec<(String, Vec<String>)>, AuthError> {
        let all = self.store.all_containers().await?;
        Ok(all.iter().filter(|c| c.id == id_or_name || c.name == id_or_name).map(|c| (c.id.clone(), c.realm_ids.clone())).collect())
    }

    /// Fills in and checks the realms of a container a caller creates: a token creates in its
    /// own realms only (another realm answers 404, as if it did not exist); an administrator in
    /// any realm that exists.
    pub async fn check_create_realms(&self, caller: &Caller, realm_ids: &mut Vec<String>) -> Result<(), AuthError> {
        if let Some(t) = &caller.token {
            if realm_ids.is_empty() {
                realm_ids.clone_from(&t.realms);
            }
            if let Some(other) = realm_ids.iter().find(|r| !t.realms.contains(r)) {
                return Err(AuthError::RealmNotFound(other.clone()));
            }
            return Ok(());
        }
        let wanted = realm_ids.clone();
        let known = self.db(move |db| wanted.iter().map(|r| store::realm_exists(db, r)).collect::<store::Result<Vec<bool>>>()).await?;
        manage::validate_realm_ids("realm_ids", realm_ids, |r| realm_ids.iter().position(|x| x == r).is_some_and(|i| known[i]))?;
        Ok(())
    }

    pub async fn create_realm(&self, req: manage::CreateRealm) -> Result<store::RealmRecord, AuthError> {
        let rec = manage::new_realm(req, &crate::time::now())?;
        let r = rec.clone();
        self.db(move |db| store::insert_realm(db, &r)).await?;
        info!(realm = %rec.id, "realm created");
        Ok(rec)
    }

    /// The realms a caller may see: all for an administrator, its own for a token.
    pub async fn list_realms(&self, caller: &Caller) -> Result<Vec<store::RealmRecord>, AuthError> {
        let all = self.db(|db| store::list_realms(db)).await?;
        Ok(match &caller.token {
            None => all,
            Some(t) => all.into_iter().filter(|r| t.realms.contains(&r.id)).collect(),
        })
    }

    pub async fn create_token(&self, req: manage::CreateToken) -> Result<manage::IssuedToken, AuthError> {
        let wanted = req.realm_ids.clone();
        let known = self.db(move |db| wanted.iter().map(|r| store::realm_exists(db, r)).collect::<store::Result<Vec<bool>>>()).await?;
        let names = req.realm_ids.clone();
        let (issued, rec) = manage::new_token(
            req,
            &self.key,
            |r| names.iter().position(|x| x == r).is_some_and(|i| known[i]),
            std::time::SystemTime::now(),
        )?;
        self.db(move |db| store::insert_token(db, &rec)).await?;
        info!(token = %issued.record.id, realms = %issued.record.realm_ids.join(","), scopes = %serde_json::to_string(&issued.record.scopes).unwrap_or_default(), "token created");
        Ok(issued)
    }

    pub async fn list_tokens(&self) -> Result<Vec<store::TokenRecord>, AuthError> {
        self.db(|db| store::list_tokens(db)).await
    }

    /// Revokes a token: the next request that presents it is refused.
    pub async fn delete_token(&self, id: &str) -> Result<(), AuthError> {
        let key = id.to_owned();
        if !self.db(move |db| store::delete_token(db, &key)).await? {
            return Err(AuthError::TokenNotFound(id.to_owned()));
        }
        info!(token = %id, "token revoked");
        Ok(())
    }
}
