//! hoodyctl: the client of hoodyd's socket. Depends on the API's crate only, never on the
//! daemon's (no SQLite, no nftables).

mod access;
mod cli;
mod exec;
mod output;
mod sys;

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;

pub type ReqBody = BoxBody<Bytes, std::io::Error>;

pub struct Client {
    pub socket: PathBuf,
    pub token: Option<String>,
}

/// A decoded answer: status and JSON envelope.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the daemon's answer is not JSON")
    }

    /// The daemon's error message and causes, for stderr.
    pub fn error_text(&self) -> String {
        match serde_json::from_slice::<hoody_api::envelope::ErrorEnvelope>(&self.body) {
            Ok(e) => {
                let mut s = e.error.message;
                for c in &e.error.details {
                    s.push_str(&format!("\n  caused by: {c}"));
                }
                s
            }
            Err(_) => format!("HTTP {}: {}", self.status, String::from_utf8_lossy(&self.body)),
        }
    }
}

pub fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

impl Client {
    pub fn from_env(socket: Option<PathBuf>) -> Client {
        let socket = socket
            .or_else(|| std::env::var_os("HOODY_SOCKET").map(PathBuf::from))
            .unwrap_or_else(|| hoody_api::paths::DEFAULT_SOCKET.into());
        let token = std::env::var("HOODY_TOKEN").ok().filter(|t| !t.is_empty());
        Client { socket, token }
    }

    pub fn request_builder(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        let mut b = Request::builder().method(method).uri(format!("/api/v1{path}")).header(header::HOST, "hoodyd");
        if let Some(t) = &self.token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b
    }

    /// Sends one request on a fresh connection; upgrades are allowed on it.
    pub async fn send(&self, req: Request<ReqBody>) -> anyhow::Result<Response<Incoming>> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .with_context(|| format!("connecting to hoodyd at {} (is it running? set HOODY_SOCKET)", self.socket.display()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("HTTP handshake")?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        sender.send_request(req).await.context("sending the request")
    }

    pub async fn call(&self, method: Method, path: &str, json: Option<serde_json::Value>) -> anyhow::Result<Answer> {
        let mut b = self.request_builder(method, path);
        let body = match json {
            Some(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                full(serde_json::to_vec(&v)?)
            }
            None => full(Bytes::new()),
        };
        let resp = self.send(b.body(body).map_err(|e| anyhow!(e))?).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await.context("reading the answer")?.to_bytes();
        Ok(Answer { status, body })
    }
}

fn main() {
    use clap::Parser;
    let cli = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hoodyctl: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(cli::run(cli)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hoodyctl: {e:#}");
            1
        }
    };
    // Exit at once: a pending read of stdin must not keep the process alive.
    std::process::exit(code)
}
