//! `POST /containers/{id}/exec`. With `Connection: Upgrade` / `Upgrade: hoody-exec` the answer is
//! `101 Switching Protocols` and the connection carries the framed stream of [`crate::proto`]:
//! stdin, stdout, stderr, window size and, last, the exit status. Without an upgrade the command
//! runs without input and the answer is `{"data": {"exit_code", "stdout", "stderr"}}`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::mpsc;
use tracing::debug;

use super::body::{MAX_JSON_BODY, parse, read_capped};
use super::error::{ApiError, ApiResult, data};
use super::{AppState, Caller};
use crate::proto::{FrameReader, InFrame, OutFrame};
use crate::runtime::exec::ExecRequest;

pub const UPGRADE_PROTOCOL: &str = "hoody-exec";
/// Output kept for a non-interactive exec, per stream.
const CAPTURE_LIMIT: usize = 1 << 20;

pub async fn exec(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    mut req: Request,
) -> ApiResult<Response> {
    let wants_upgrade =
        req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case(UPGRADE_PROTOCOL));
    let on_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));
    let body = read_capped(req, MAX_JSON_BODY).await?;
    let ereq: ExecRequest = parse(&body)?;
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let tty = ereq.tty;
    let Some(on_upgrade) = on_upgrade else {
        if tty {
            return Err(ApiError::bad_request(format!("a terminal needs an upgraded connection (Upgrade: {UPGRADE_PROTOCOL})")));
        }
        return capture(st.rt.exec(&c.id, ereq).await?).await;
    };
    let child = st.rt.exec(&c.id, ereq).await?;
    let cid = c.id.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => session(TokioIo::new(up), child, tty).await,
            Err(e) => debug!(container = %cid, error = %e, "exec upgrade failed"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, UPGRADE_PROTOCOL)
        .body(Body::empty())
        .expect("static response"))
}

fn exit_code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

async fn read_limited(r: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(r) = r {
        let _ = r.take(CAPTURE_LIMIT as u64).read_to_end(&mut out).await;
    }
    out
}

async fn capture(mut child: Child) -> ApiResult<Response> {
    drop(child.stdin.take());
    let (out, err) = tokio::join!(read_limited(child.stdout.take()), read_limited(child.stderr.take()));
    let status =
        child.wait().await.map_err(|e| ApiError::from(crate::runtime::RuntimeError::Io { op: "wait for the command", source: e }))?;
    Ok(data(serde_json::json!({
        "exit_code": exit_code(status),
        "stdout": String::from_utf8_lossy(&out),
        "stderr": String::from_utf8_lossy(&err),
    }))
    .into_response())
}

async fn pump(mut r: impl AsyncRead + Unpin, tx: mpsc::Sender<OutFrame>, wrap: fn(Vec<u8>) -> OutFrame) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(wrap(buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Relays one exec session over the upgraded connection until the command has exited.
async fn session<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: IO, mut child: Child, tty: bool) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = mpsc::channel::<OutFrame>(64);
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            let last = matches!(f, OutFrame::Exit(_) | OutFrame::Error(_));
            if wr.write_all(&f.encode()).await.is_err() {
                return;
            }
            if last {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut stdin = child.stdin.take();
    let input = tokio::spawn(async move {
        let mut frames = FrameReader::default();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let Some(w) = stdin.as_mut() else { continue };
            if tty {
                // The helper decodes the frames itself (it owns the terminal).
                if w.write_all(&buf[..n]).await.is_err() {
                    stdin = None;
                }
                continue;
            }
            frames.push(&buf[..n]);
            loop {
                match frames.next_frame() {
                    Ok(Some(InFrame::Stdin(d))) => {
                        if let Some(w) = stdin.as_mut()
                            && w.write_all(&d).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    Ok(Some(InFrame::StdinEof)) => stdin = None,
                    Ok(Some(InFrame::Resize { .. })) => {}
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    });
    let out = child.stdout.take().map(|o| tokio::spawn(pump(o, tx.clone(), OutFrame::Stdout)));
    let err = child.stderr.take().map(|e| tokio::spawn(pump(e, tx.clone(), OutFrame::Stderr)));
    let status = child.wait().await;
    // Drain what the command wrote; a background process keeping the pipe open is not waited for.
    for t in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    let last = match status {
        Ok(s) => OutFrame::Exit(exit_code(s)),
        Err(e) => OutFrame::Error(format!("waiting for the command failed: {e}")),
    };
    let _ = tx.send(last).await;
    drop(tx);
    input.abort();
    let _ = writer.await;
}
