//! Query strings, parsed with errors in the API's envelope.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q).map(Query).map_err(|e| {
            let msg = e.to_string();
            let e = ApiError::bad_request(format!("query string: {msg}"));
            match super::error::named_field(&msg) {
                Some(f) => e.field(format!("?{f}")),
                None => e,
            }
        })
    }
}

pub use hoody_api::query::Lifecycle;
