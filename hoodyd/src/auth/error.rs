//! Why a caller was not identified or a realm or token operation was refused.

use crate::limits::FieldError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No valid token where one is needed (401, counted as denied).
    #[error("{0}")]
    Unauthorized(String),
    /// A realm a token is not in: answered as if it did not exist (404, counted as denied).
    #[error("realm {0} not found")]
    RealmNotFound(String),
    #[error("token {0} not found")]
    TokenNotFound(String),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("the state store")]
    Store(#[from] StoreError),
}
