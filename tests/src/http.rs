//! A raw HTTP/1.1 client over the daemon's socket, for requests hoodyctl would never send
//! (malformed JSON, oversize bodies, unknown fields).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde_json::Value;

pub struct Http {
    pub socket: PathBuf,
    /// Sent as `Authorization: Bearer …` when set.
    pub token: Option<String>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The error message of an error envelope.
    pub fn message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or_default().to_owned()
    }
}

impl Http {
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let mut s = UnixStream::connect(&self.socket).expect("connect");
        let auth = self.token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let head = format!(
            "{method} /api/v1{path} HTTP/1.1\r\nHost: hoodyd\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        // The server may answer (413, or 503 beyond the connection limit) and close before reading
        // everything; a broken pipe is not an error, the answer is still there to read.
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(body);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = match text.find("\r\n\r\n") {
            Some(i) => dechunk(&text[i + 4..], text[..i].to_ascii_lowercase().contains("transfer-encoding: chunked")),
            None => String::new(),
        };
        Reply { status, body }
    }

    pub fn post(&self, path: &str, body: &str) -> Reply {
        self.request("POST", path, body.as_bytes())
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, b"")
    }

    /// The same client, presenting `token`.
    pub fn with_token(&self, token: &str) -> Http {
        Http { socket: self.socket.clone(), token: Some(token.to_owned()) }
    }
}

fn dechunk(body: &str, chunked: bool) -> String {
    if !chunked {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some(i) = rest.find("\r\n") {
        let n = usize::from_str_radix(rest[..i].trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[i + 2..i + 2 + n]);
        rest = &rest[i + 2 + n + 2..];
    }
    out
}
