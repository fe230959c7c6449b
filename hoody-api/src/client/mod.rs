//! The client of hoodyd's socket (feature `client`): one HTTP/1.1 connection per request over
//! the Unix socket (`$HOODY_SOCKET`), `$HOODY_TOKEN` as the bearer token; raw requests and
//! answers for what has no typed method yet, typed methods returning the answer's `data` or the
//! daemon's error with its code.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::envelope::{Data, ErrorBody, ErrorCode, ErrorEnvelope};
use crate::exec::ExecRequest;
use crate::paths::{DEFAULT_SOCKET, EXEC_ID_HEADER, PREFIX, UPGRADE_PROTOCOL};

mod endpoints;
mod events;
pub use events::EventStream;

pub type ReqBody = BoxBody<Bytes, std::io::Error>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to hoodyd at {socket} (is it running? set HOODY_SOCKET)")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking HTTP to hoodyd")]
    Http(#[from] hyper::Error),
    #[error("building the request")]
    Request(#[from] hyper::http::Error),
    #[error("the daemon's answer is not what this client understands")]
    Decode(#[from] serde_json::Error),
    /// The daemon refused or failed: its status and error (`error.code` to branch on).
    #[error("{}", .error.message)]
    Api { status: StatusCode, error: ErrorBody },
    #[error("the daemon answered {0} where it should have switched to the exec stream")]
    NotUpgraded(StatusCode),
    #[error("encoding the query string")]
    Query(#[from] serde_urlencoded::ser::Error),
}

impl ClientError {
    /// The daemon's error code, when it answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { error, .. } => Some(error.code),
            _ => None,
        }
    }
}

/// An answer as it came: status and body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The daemon's error, when the body is one.
    pub fn error(&self) -> Option<ErrorBody> {
        serde_json::from_slice::<ErrorEnvelope>(&self.body).ok().map(|e| e.error)
    }

    /// The daemon's error message and causes, for people.
    pub fn error_text(&self) -> String {
        match self.error() {
            Some(e) => e.text(),
            None => format!("HTTP {}: {}", self.status, String::from_utf8_lossy(&self.body)),
        }
    }

    /// `data` of a successful answer, or the daemon's error.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        if self.status.is_success() {
            return Ok(serde_json::from_slice::<Data<T>>(&self.body)?.data);
        }
        let error = self.error().unwrap_or_else(|| ErrorBody {
            code: ErrorCode::Unknown,
            message: format!("HTTP {}: {}", self.status, String::from_utf8_lossy(&self.body)),
            details: vec![],
            field: None,
        });
        Err(ClientError::Api { status: self.status, error })
    }
}

/// One page of a list: its items and, when more follow, the next page's cursor (the answer's
/// `X-Next-Cursor`, to give as `after`).
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

pub fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A path segment, percent-encoded.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

pub struct Client {
    pub socket: PathBuf,
    pub token: Option<String>,
    /// Sent as `Idempotency-Key` on every request that changes something: a retry of the
    /// same request with the same key gets the first answer, never a second effect.
    pub idempotency_key: Option<String>,
}

impl Client {
    /// The socket given, else `$HOODY_SOCKET`, else the default; the token from `$HOODY_TOKEN`.
    pub fn from_env(socket: Option<PathBuf>) -> Client {
        let socket = socket.or_else(|| std::env::var_os("HOODY_SOCKET").map(PathBuf::from)).unwrap_or_else(|| DEFAULT_SOCKET.into());
        let token = std::env::var("HOODY_TOKEN").ok().filter(|t| !t.is_empty());
        Client { socket, token, idempotency_key: None }
    }

    /// The same client, sending `key` as the `Idempotency-Key` of its mutating requests.
    pub fn with_idempotency_key(mut self, key: Option<String>) -> Client {
        self.idempotency_key = key;
        self
    }

    /// A request to `path` (below the API's prefix) with the token.
    pub fn request_builder(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        let mut b = Request::builder().method(method.clone()).uri(format!("{PREFIX}{path}")).header(header::HOST, "hoodyd");
        if let Some(t) = &self.token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(k) = &self.idempotency_key
            && !matches!(method, Method::GET | Method::HEAD)
        {
            b = b.header(crate::paths::IDEMPOTENCY_KEY, k);
        }
        b
    }

    /// Sends one request on a fresh connection; upgrades are allowed on it.
    pub async fn send(&self, req: Request<ReqBody>) -> Result<Response<Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::Connect { socket: self.socket.clone(), source })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender.send_request(req).await?)
    }

    /// One request with an optional JSON body; the answer as it came.
    pub async fn call(&self, method: Method, path: &str, json: Option<serde_json::Value>) -> Result<Answer, ClientError> {
        let mut b = self.request_builder(method, path);
        let body = match json {
            Some(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                full(serde_json::to_vec(&v)?)
            }
            None => full(Bytes::new()),
        };
        let resp = self.send(b.body(body)?).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body })
    }

    /// A request with an optional JSON body; the answer's `data` as `T`, or the daemon's error.
    pub async fn typed<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<&impl Serialize>) -> Result<T, ClientError> {
        let json = body.map(serde_json::to_value).transpose()?;
        self.call(method, path, json).await?.data()
    }

    /// `GET path` of a list: one page and the cursor of the next.
    pub(crate) async fn page<T: DeserializeOwned>(&self, path: &str) -> Result<Page<T>, ClientError> {
        let resp = self.send(self.request_builder(Method::GET, path).body(full(Bytes::new()))?).await?;
        let next = resp.headers().get(crate::paths::NEXT_CURSOR).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Page { items: Answer { status, body }.data()?, next })
    }

    /// A request whose answer is a stream (logs): the body once the status says success.
    pub async fn stream(&self, path: &str) -> Result<Incoming, ClientError> {
        Ok(self.stream_response(path).await?.into_body())
    }

    /// A streamed GET's answer, its headers with it (the error envelope when it failed).
    pub(crate) async fn stream_response(&self, path: &str) -> Result<Response<Incoming>, ClientError> {
        let resp = self.send(self.request_builder(Method::GET, path).body(full(Bytes::new()))?).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.into_body().collect().await?.to_bytes();
        Err(Answer { status, body }.data::<serde_json::Value>().expect_err("a failed status"))
    }

    async fn upgrade(&self, path: &str, body: Bytes) -> Result<(Upgraded, Option<String>), ClientError> {
        let req = self
            .request_builder(Method::POST, path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, UPGRADE_PROTOCOL)
            .body(full(body))?;
        let resp = self.send(req).await?;
        let status = resp.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let body = resp.into_body().collect().await?.to_bytes();
            let answer = Answer { status, body };
            return Err(match answer.data::<serde_json::Value>() {
                Err(e @ ClientError::Api { .. }) => e,
                _ => ClientError::NotUpgraded(status),
            });
        }
        let exec_id = resp.headers().get(EXEC_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok((hyper::upgrade::on(resp).await?, exec_id))
    }

    /// `POST /containers/{id}/exec` with `Upgrade: hoody-exec`: the framed stream (see
    /// [`crate::proto`]) and the new instance's id.
    pub async fn exec_stream(&self, container: &str, req: &ExecRequest) -> Result<(Upgraded, Option<String>), ClientError> {
        self.upgrade(&format!("/containers/{}/exec", enc(container)), serde_json::to_vec(req)?.into()).await
    }

    /// `POST /containers/{id}/execs/{exec_id}/attach`: the running exec's stream again.
    pub async fn attach(&self, container: &str, exec_id: &str) -> Result<Upgraded, ClientError> {
        Ok(self.upgrade(&format!("/containers/{}/execs/{}/attach", enc(container), enc(exec_id)), Bytes::new()).await?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_decode_to_data_or_the_daemons_error() {
        let ok = Answer { status: StatusCode::OK, body: Bytes::from_static(br#"{"data": [1, 2]}"#) };
        assert_eq!(ok.data::<Vec<u32>>().unwrap(), vec![1, 2]);
        let err = Answer {
            status: StatusCode::NOT_FOUND,
            body: Bytes::from_static(br#"{"error": {"code": "not_found", "message": "container \"x\" not found", "details": ["why"]}}"#),
        };
        let e = err.data::<serde_json::Value>().unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::NotFound));
        assert_eq!(e.to_string(), "container \"x\" not found");
        assert_eq!(err.error_text(), "container \"x\" not found\n  caused by: why");
        let plain = Answer { status: StatusCode::BAD_GATEWAY, body: Bytes::from_static(b"nope") };
        assert_eq!(plain.data::<serde_json::Value>().unwrap_err().code(), Some(ErrorCode::Unknown));
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
    }
}
