//! JSON bodies: size-capped, unknown fields refused (by the types), and errors that name the
//! field (`limits.memory: invalid type …`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub const MAX_JSON_BODY: usize = 1 << 20;

pub struct JsonBody<T>(pub T);

/// Parses a JSON document into `T`, classifying errors: malformed JSON is 400, a well-formed
/// document with a wrong, missing or unknown field is 422 naming the field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof | serde_json::error::Category::Io => {
                    Err(ApiError::bad_request(format!("malformed JSON: {inner}")))
                }
                serde_json::error::Category::Data => {
                    // An unknown or missing member is named by the message; a wrong one by its path.
                    let msg = inner.to_string();
                    let named = super::error::named_field(&msg);
                    let field = match (path.as_str(), named) {
                        (".", Some(n)) => Some(n),
                        (".", None) => None,
                        // The path already ends with an unknown member; a missing one is named only by the message.
                        (p, Some(n)) if msg.starts_with("missing field") => Some(format!("{p}.{n}")),
                        (p, _) => Some(p.to_owned()),
                    };
                    let message = if path == "." { msg } else { format!("{path}: {msg}") };
                    let e = ApiError::invalid(message);
                    Err(match field {
                        Some(f) => e.field(f),
                        None => e,
                    })
                }
            }
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_capped(req, MAX_JSON_BODY).await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request("a JSON body is required"));
        }
        parse(&bytes).map(JsonBody)
    }
}

/// When the whole request body must have arrived (the guard sets it from `--request-timeout`),
/// so a client that trickles its body cannot hold a connection slot for ever.
#[derive(Clone, Copy, Debug)]
pub struct BodyDeadline(pub tokio::time::Instant);

/// Reads a body of at most `limit` bytes (413 beyond), by the request's deadline (408 after).
pub async fn read_capped(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let deadline = req.extensions().get::<BodyDeadline>().copied();
    let read = axum::body::to_bytes(req.into_body(), limit);
    let res = match deadline {
        Some(BodyDeadline(at)) => tokio::time::timeout_at(at, read).await.map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                crate::api::error::ErrorCode::RequestTimeout,
                "the request body did not arrive in time",
            )
        })?,
        None => read.await,
    };
    res.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::too_large(format!("request body exceeds {limit} bytes"))
        } else {
            ApiError::bad_request(format!("cannot read the request body: {e}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CreateContainer;

    #[test]
    fn errors_are_classified_and_name_the_field() {
        let e = parse::<CreateContainer>(b"{not json").unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        let e = parse::<CreateContainer>(br#"{"name":"a","image":"b","limits":{"memory":[1]}}"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert!(e.message.starts_with("limits.memory"), "{}", e.message);
        let e = parse::<CreateContainer>(br#"{"name":"a","image":"b","colour":"red"}"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert!(e.message.contains("colour"), "{}", e.message);
        let e = parse::<CreateContainer>(br#"{"image":"b"}"#).unwrap_err();
        assert!(e.message.contains("name"), "{}", e.message);
    }
}
