//! Realms and tokens.

use serde::{Deserialize, Serialize};

/// Body of `POST /realms` (optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRealm {
    #[serde(default)]
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Realm {
    pub id: String,
    pub description: String,
    pub created_at: String,
}

/// `GET /realms`: the realms the caller sees, and their ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Realms {
    pub realm_ids: Vec<String>,
    pub realms: Vec<Realm>,
}

/// Body of `POST /tokens`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub realm_ids: Vec<String>,
    /// read, write, exec, snapshot, firewall (all when empty).
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// RFC 3339; absent = never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// A token as listed: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Token {
    pub id: String,
    pub realm_ids: Vec<String>,
    pub scopes: Vec<String>,
    pub description: String,
    pub created_at: String,
    pub expires_at: Option<String>,
}

/// A token as answered at creation: the only time its secret leaves the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    #[serde(flatten)]
    pub record: Token,
    /// The secret, for `Authorization: Bearer …`.
    pub token: String,
}
