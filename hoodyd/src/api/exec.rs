//! `POST /containers/{id}/exec`. With `Connection: Upgrade` / `Upgrade: hoody-exec` the answer is
//! `101 Switching Protocols` and the connection carries the framed stream of [`crate::proto`]:
//! stdin, stdout, stderr, window size, signals and, last, the exit status. Without an upgrade
//! (JSON mode, for harnesses) the answer is the whole run: exit code or signal, both streams
//! (base64 when not UTF-8), what was cut, whether the timeout hit. With `detach` the answer is
//! the new instance at once, and its output is kept with it. `GET …/execs[/{exec_id}]` shows
//! the instances.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::debug;

use super::body::{MAX_JSON_BODY, parse, read_capped};
use super::error::{ApiError, ApiResult, data};
use super::{AppState, Caller};
use crate::proto::{FrameReader, InFrame, OutFrame};
use crate::runtime::Runtime;
use crate::runtime::exec::{ExecRequest, Started};
use crate::runtime::execs::StartedBy;

pub const UPGRADE_PROTOCOL: &str = "hoody-exec";
/// Output kept per stream in JSON mode and for detached execs, unless the request says.
const CAPTURE_LIMIT: u64 = 1 << 20;
/// … and at most this.
const CAPTURE_MAX: u64 = 64 << 20;

fn started_by(caller: &Caller) -> StartedBy {
    StartedBy { uid: caller.peer.uid, token_id: caller.token.as_ref().map(|t| t.id.clone()) }
}

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
    let input = match (&ereq.stdin, &ereq.stdin_base64) {
        (Some(t), _) => Some(t.clone().into_bytes()),
        (None, Some(b)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| ApiError::from(crate::limits::FieldError::new("stdin_base64", format!("not base64: {e}"))))?,
        ),
        (None, None) => None,
    };
    let cap = ereq.max_output_bytes.unwrap_or(CAPTURE_LIMIT).min(CAPTURE_MAX) as usize;
    let Some(on_upgrade) = on_upgrade else {
        if tty {
            return Err(ApiError::bad_request(format!("a terminal needs an upgraded connection (Upgrade: {UPGRADE_PROTOCOL})")));
        }
        let detach = ereq.detach;
        let started = st.rt.exec(&c.id, ereq, started_by(&caller)).await?;
        if detach {
            let id = started.id.clone();
            let rt = st.rt.clone();
            tokio::spawn(async move {
                let _ = run_captured(&rt, started, input, cap, true).await;
            });
            let (view, _) = st.rt.execs.get(&c.id, &id).ok_or_else(|| ApiError::bad_request("the exec vanished"))?;
            return Ok((StatusCode::CREATED, data(view)).into_response());
        }
        let out = run_captured(&st.rt, started, input, cap, false).await?;
        return Ok(data(out).into_response());
    };
    if ereq.detach {
        return Err(ApiError::bad_request("a detached exec has no stream: send it without an upgrade"));
    }
    let started = st.rt.exec(&c.id, ereq, started_by(&caller)).await?;
    let (cid, rt) = (c.id.clone(), st.rt.clone());
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => session(TokioIo::new(up), rt, started, tty).await,
            Err(e) => {
                debug!(container = %cid, error = %e, "exec upgrade failed");
                rt.exec_hang_up(&started.cgroup, started.kill_grace).await;
                let mut started = started;
                let status = started.child.wait().await.ok();
                rt.exec_finished(&started, status, false);
            }
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

/// What a stream gave so far: the bytes kept, and whether some were dropped.
type Kept = std::sync::Arc<std::sync::Mutex<(Vec<u8>, bool)>>;

/// Reads a stream to its end into `kept`, keeping `cap` bytes; the rest is read and dropped
/// (the command never gets SIGPIPE).
async fn read_capped_stream(r: Option<impl AsyncRead + Unpin>, cap: usize, kept: Kept, sink: impl Fn(&[u8])) {
    let Some(mut r) = r else { return };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                sink(&buf[..n]);
                let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
                let room = cap.saturating_sub(k.0.len());
                k.0.extend_from_slice(&buf[..n.min(room)]);
                k.1 |= n > room;
            }
        }
    }
}

/// Kills the exec's tree if the request is dropped (its client went away) before it ended.
struct KillOnDrop {
    rt: std::sync::Arc<Runtime>,
    cgroup: String,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.rt.exec_kill(&self.cgroup);
        }
    }
}

/// A stream as JSON: the text, or base64 when it is not UTF-8 (the plain field then absent).
fn put_stream(out: &mut serde_json::Map<String, serde_json::Value>, name: &str, bytes: Vec<u8>) {
    match String::from_utf8(bytes) {
        Ok(s) => out.insert(name.into(), s.into()),
        Err(e) => out.insert(format!("{name}_base64"), base64::engine::general_purpose::STANDARD.encode(e.into_bytes()).into()),
    };
}

/// Runs an exec to its end with `input` on its stdin, output kept up to `cap` per stream (for
/// a detached one, into its instance as it comes), killed at its timeout.
async fn run_captured(
    rt: &std::sync::Arc<Runtime>,
    mut e: Started,
    input: Option<Vec<u8>>,
    cap: usize,
    detached: bool,
) -> ApiResult<serde_json::Value> {
    let t0 = Instant::now();
    let mut guard = KillOnDrop { rt: rt.clone(), cgroup: e.cgroup.clone(), armed: !detached };
    let stdin = e.child.stdin.take();
    let feed = tokio::spawn(async move {
        if let (Some(mut w), Some(data)) = (stdin, input) {
            let _ = w.write_all(&data).await;
        }
    });
    let (id, reg_rt) = (e.id.clone(), rt.clone());
    let sink = move |stream: u8| {
        let (id, rt) = (id.clone(), reg_rt.clone());
        move |d: &[u8]| {
            if detached {
                rt.execs.capture(&id, stream, d, cap);
            }
        }
    };
    let (out, err) = (e.child.stdout.take(), e.child.stderr.take());
    let (kept_out, kept_err): (Kept, Kept) = (Default::default(), Default::default());
    let read_out = tokio::spawn(read_capped_stream(out, cap, kept_out.clone(), sink(1)));
    let read_err = tokio::spawn(read_capped_stream(err, cap, kept_err.clone(), sink(2)));
    let (cgroup, timeout) = (e.cgroup.clone(), e.timeout);
    let mut timed_out = false;
    let status = {
        let wait = e.child.wait();
        tokio::pin!(wait);
        match timeout {
            Some(t) => tokio::select! {
                r = &mut wait => r.ok(),
                _ = tokio::time::sleep(t) => {
                    timed_out = true;
                    rt.exec_kill(&cgroup);
                    wait.await.ok()
                }
            },
            None => wait.await.ok(),
        }
    };
    // What the command wrote; a background process that keeps the pipes open is not waited
    // for beyond a moment (it runs on, as with `docker exec`).
    for h in [read_out, read_err] {
        if tokio::time::timeout(Duration::from_secs(2), h).await.is_err() {
            debug!(exec = %e.id, "output still open after the command ended (a background process holds it)");
        }
    }
    let take = |k: &Kept| std::mem::take(&mut *k.lock().unwrap_or_else(|e| e.into_inner()));
    let ((stdout, cut_out), (stderr, cut_err)) = (take(&kept_out), take(&kept_err));
    feed.abort();
    guard.armed = false;
    let (code, signal) = rt.exec_finished(&e, status, timed_out);
    let mut m = serde_json::Map::new();
    m.insert("id".into(), e.id.clone().into());
    m.insert("exit_code".into(), code.into());
    m.insert("signal".into(), signal.into());
    put_stream(&mut m, "stdout", stdout);
    put_stream(&mut m, "stderr", stderr);
    m.insert("truncated".into(), serde_json::json!({ "stdout": cut_out, "stderr": cut_err }));
    m.insert("timed_out".into(), timed_out.into());
    m.insert("duration_ms".into(), (t0.elapsed().as_millis() as u64).into());
    Ok(serde_json::Value::Object(m))
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

/// Relays one exec session over the upgraded connection until the command has exited. A
/// client that goes away before that (without detaching) takes the exec with it: SIGHUP to its
/// cgroup, `cgroup.kill` after the grace.
async fn session<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: IO, rt: std::sync::Arc<Runtime>, mut e: Started, tty: bool) {
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
    let mut stdin = e.child.stdin.take();
    let (gone_tx, mut gone_rx) = tokio::sync::oneshot::channel::<()>();
    let (sig_tx, mut sig_rx) = mpsc::channel::<i32>(16);
    let input = tokio::spawn(async move {
        let mut frames = FrameReader::default();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = gone_tx.send(());
                    return;
                }
                Ok(n) => n,
            };
            if tty {
                // The helper decodes the frames itself (it owns the terminal and the signals).
                if let Some(w) = stdin.as_mut()
                    && w.write_all(&buf[..n]).await.is_err()
                {
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
                    Ok(Some(InFrame::Signal(n))) => {
                        let _ = sig_tx.send(i32::from(n)).await;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        let _ = gone_tx.send(());
                        return;
                    }
                }
            }
        }
    });
    let out = e.child.stdout.take().map(|o| tokio::spawn(pump(o, tx.clone(), OutFrame::Stdout)));
    let err = e.child.stderr.take().map(|x| tokio::spawn(pump(x, tx.clone(), OutFrame::Stderr)));
    let deadline = e.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut timed_out = false;
    let mut hung_up = false;
    // A client that interrupted or terminated the command (Ctrl-C) means all of it.
    let mut end_tree = false;
    let status = loop {
        let timer = async {
            match deadline {
                Some(d) if !timed_out => tokio::time::sleep_until(d).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            s = e.child.wait() => break s,
            Some(sig) = sig_rx.recv() => {
                end_tree |= [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGKILL].contains(&sig);
                rt.exec_signal(&e, sig);
            }
            _ = &mut gone_rx, if !hung_up => {
                hung_up = true;
                debug!(exec = %e.id, "exec client went away: hanging up");
                let (rt, cg, grace) = (rt.clone(), e.cgroup.clone(), e.kill_grace);
                tokio::spawn(async move { rt.exec_hang_up(&cg, grace).await });
            }
            _ = timer => {
                timed_out = true;
                rt.exec_kill(&e.cgroup);
            }
        }
    };
    // Drain what the command wrote; a background process keeping the pipe open is not waited for.
    for t in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    if end_tree && !hung_up {
        // What the command left running in the background goes with it.
        let (rt, cg, grace) = (rt.clone(), e.cgroup.clone(), e.kill_grace);
        tokio::spawn(async move { rt.exec_hang_up(&cg, grace).await });
    }
    rt.exec_finished(&e, status.as_ref().ok().copied(), timed_out);
    let last = match status {
        Ok(s) => OutFrame::Exit(exit_code(s)),
        Err(err) => OutFrame::Error(format!("waiting for the command failed: {err}")),
    };
    let _ = tx.send(last).await;
    drop(tx);
    input.abort();
    let _ = writer.await;
}

pub async fn list(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    Ok(data(st.rt.execs.list(&c.id)))
}

/// One instance; a detached one with the output kept so far.
pub async fn get(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, exec_id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let (view, out) = st
        .rt
        .execs
        .get(&c.id, &exec_id)
        .ok_or_else(|| ApiError::from(crate::runtime::RuntimeError::NotFound(format!("exec {exec_id}"))))?;
    let mut v = serde_json::to_value(&view).expect("serialises");
    if let (Some(o), Some(m)) = (out, v.as_object_mut()) {
        put_stream(m, "stdout", o.stdout);
        put_stream(m, "stderr", o.stderr);
        m.insert("truncated".into(), serde_json::json!({ "stdout": o.truncated_stdout, "stderr": o.truncated_stderr }));
    }
    Ok(data(v))
}
