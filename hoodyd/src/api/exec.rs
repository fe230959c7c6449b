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
use crate::exec_record as rec;
use crate::proto::{FrameReader, InFrame, OutFrame, OutFrameReader};
use crate::runtime::Runtime;
use crate::runtime::exec::{CAPTURE_MAX, ExecRequest, Started};
use crate::runtime::execs::StartedBy;
use hoody_api::exec::{ExecDetail, ExecResult, Output, Truncated};

pub use hoody_api::paths::{EXEC_ID_HEADER, UPGRADE_PROTOCOL};

fn started_by(caller: &Caller) -> StartedBy {
    StartedBy { uid: caller.peer.uid, token_id: caller.token.as_ref().map(|t| t.id.clone()) }
}

fn wants_upgrade(req: &Request) -> bool {
    req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case(UPGRADE_PROTOCOL))
}

fn switching(exec_id: &str) -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, UPGRADE_PROTOCOL)
        .header(EXEC_ID_HEADER, exec_id)
        .body(Body::empty())
        .expect("static response")
}

#[utoipa::path(
    post,
    path = "/api/v1/containers/{id}/exec",
    tag = "exec",
    operation_id = "exec",
    params(("id" = String, Path, description = "Container id or name")),
    request_body = hoody_api::exec::ExecRequest,
    responses((status = 101, description = "With `Upgrade: hoody-exec/1`: the framed stream (docs/API.md); `X-Hoody-Exec-Id` names the instance"), (status = 200, description = "JSON mode: the command ran to its end", body = hoody_api::envelope::Data<hoody_api::exec::ExecResult>), (status = 201, description = "Detached: it runs on", body = hoody_api::envelope::Data<hoody_api::exec::ExecView>))
)]
pub async fn exec(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    gate: super::slots::StreamGate,
    mut req: Request,
) -> ApiResult<Response> {
    let on_upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
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
    let Some(on_upgrade) = on_upgrade else {
        if tty {
            return Err(ApiError::bad_request(format!("a terminal needs an upgraded connection (Upgrade: {UPGRADE_PROTOCOL})")));
        }
        let detach = ereq.detach;
        // A command that runs as long as it likes is a stream too (no connection slot).
        let slot = if detach { None } else { Some(gate.begin()?) };
        let started = st.rt.exec(&c, ereq, started_by(&caller)).await?;
        if detach {
            // Its shim keeps the output; the input is given and the connection let go.
            let id = started.id.clone();
            let (_, mut w) = started.link.into_split();
            feed(&mut w, input).await;
            st.rt.watch_exec_end(&c.id, &id);
            let (view, _) = st.rt.execs().get(&c.id, &id).ok_or_else(|| ApiError::bad_request("the exec vanished"))?;
            return Ok((StatusCode::CREATED, data(view)).into_response());
        }
        let out = run_captured(&st.rt, started, input).await?;
        drop(slot);
        return Ok(([super::slots::CLOSE], data(out)).into_response());
    };
    if ereq.detach {
        return Err(ApiError::bad_request("a detached exec has no stream: send it without an upgrade"));
    }
    let slot = gate.begin()?;
    let started = st.rt.exec(&c, ereq, started_by(&caller)).await?;
    let answer = switching(&started.id);
    upgrade_to_session(st.rt.clone(), on_upgrade, started, tty, slot);
    Ok(answer)
}

/// `POST /containers/{id}/execs/{exec_id}/attach`: the exec's stream again, for a client whose
/// connection dropped (the daemon restarted). Output the command wrote meanwhile comes first;
/// of an exec that ended, what it wrote while nobody was attached and its exit status.
#[utoipa::path(
    post,
    path = "/api/v1/containers/{id}/execs/{exec_id}/attach",
    tag = "exec",
    operation_id = "exec_attach",
    params(("id" = String, Path, description = "Container id or name"), ("exec_id" = String, Path, description = "Exec id")),
    responses((status = 101, description = "The exec's framed stream again (with `Upgrade: hoody-exec/1`)"))
)]
pub async fn attach(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, exec_id)): Path<(String, String)>,
    gate: super::slots::StreamGate,
    mut req: Request,
) -> ApiResult<Response> {
    if !wants_upgrade(&req) {
        return Err(ApiError::bad_request(format!("attaching needs an upgraded connection (Upgrade: {UPGRADE_PROTOCOL})")));
    }
    let slot = gate.begin()?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let (view, started) = st.rt.exec_reattach(&c.id, &exec_id).await?;
    let answer = switching(&exec_id);
    match started {
        Some(started) => upgrade_to_session(st.rt.clone(), on_upgrade, started, view.tty, slot),
        None => {
            let dir = st.rt.execs().dir_of(&exec_id);
            let end = st.rt.execs().recorded_end(&exec_id);
            tokio::spawn(async move {
                let _held = slot;
                let Ok(up) = on_upgrade.await else { return };
                let mut io = TokioIo::new(up);
                let read = tokio::task::spawn_blocking(move || [rec::STDOUT, rec::STDERR].map(|n| rec::read_output(&dir, n, CAPTURE_MAX)));
                let Ok([out, err]) = read.await else { return };
                for (kept, wrap) in [(out, OutFrame::Stdout as fn(Vec<u8>) -> OutFrame), (err, OutFrame::Stderr)] {
                    for chunk in kept.chunks(64 * 1024) {
                        let _ = io.write_all(&wrap(chunk.to_vec()).encode()).await;
                    }
                }
                let last = match end.and_then(|e| e.exit_code) {
                    Some(code) => OutFrame::Exit(code),
                    None => OutFrame::Error("the exec ended without a recorded exit status (its shim was killed)".into()),
                };
                let _ = io.write_all(&last.encode()).await;
                let _ = io.shutdown().await;
            });
        }
    }
    Ok(answer)
}

fn upgrade_to_session(
    rt: std::sync::Arc<Runtime>,
    on_upgrade: hyper::upgrade::OnUpgrade,
    started: Started,
    tty: bool,
    slot: super::slots::StreamSlot,
) {
    tokio::spawn(async move {
        let _held = slot;
        match on_upgrade.await {
            Ok(up) => session(TokioIo::new(up), rt, started, tty).await,
            Err(e) => {
                debug!(exec = %started.id, error = %e, "exec upgrade failed");
                rt.exec_hang_up(&started.cgroup, started.kill_grace).await;
            }
        }
    });
}

/// Sends `input` (if any) and the end of input to the exec's shim.
async fn feed(w: &mut (impl AsyncWrite + Unpin), input: Option<Vec<u8>>) {
    for chunk in input.unwrap_or_default().chunks(64 * 1024) {
        if w.write_all(&InFrame::Stdin(chunk.to_vec()).encode()).await.is_err() {
            return;
        }
    }
    let _ = w.write_all(&InFrame::StdinEof.encode()).await;
}

/// Reads the shim's frames until the exit status (`Some(code)`) or the end of the connection.
async fn next_frames(r: &mut (impl AsyncRead + Unpin), frames: &mut OutFrameReader, buf: &mut [u8]) -> Option<Vec<OutFrame>> {
    loop {
        let mut got = vec![];
        loop {
            match frames.next_frame() {
                Ok(Some(f)) => got.push(f),
                Ok(None) => break,
                Err(_) => return None,
            }
        }
        if !got.is_empty() {
            return Some(got);
        }
        match r.read(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => frames.push(&buf[..n]),
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

/// Both streams as JSON: each as text, or base64 when it is not UTF-8 (the plain field then
/// absent).
fn output(stdout: Vec<u8>, stderr: Vec<u8>, truncated: Truncated) -> Output {
    let split = |b: Vec<u8>| match String::from_utf8(b) {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(base64::engine::general_purpose::STANDARD.encode(e.into_bytes()))),
    };
    let ((stdout, stdout_base64), (stderr, stderr_base64)) = (split(stdout), split(stderr));
    Output { stdout, stdout_base64, stderr, stderr_base64, truncated: Some(truncated) }
}

/// Runs an exec to its end with `input` on its stdin, output kept up to its cap per stream
/// (the rest is read and dropped: the command never gets SIGPIPE); its shim enforces the
/// timeout.
async fn run_captured(rt: &std::sync::Arc<Runtime>, e: Started, input: Option<Vec<u8>>) -> ApiResult<ExecResult> {
    let t0 = Instant::now();
    let mut guard = KillOnDrop { rt: rt.clone(), cgroup: e.cgroup.clone(), armed: true };
    let (mut r, mut w) = e.link.into_split();
    // The write half stays open until the end: closing it would detach this client.
    let feeder = tokio::spawn(async move {
        feed(&mut w, input).await;
        w
    });
    let cap = e.cap as usize;
    let mut kept: [(Vec<u8>, bool); 2] = Default::default();
    let (mut frames, mut buf) = (OutFrameReader::default(), vec![0u8; 64 * 1024]);
    'read: while let Some(got) = next_frames(&mut r, &mut frames, &mut buf).await {
        for f in got {
            let (i, d) = match f {
                OutFrame::Stdout(d) => (0, d),
                OutFrame::Stderr(d) => (1, d),
                OutFrame::Exit(_) | OutFrame::Error(_) => break 'read,
            };
            let k = &mut kept[i];
            let room = cap.saturating_sub(k.0.len());
            k.0.extend_from_slice(&d[..d.len().min(room)]);
            k.1 |= d.len() > room;
        }
    }
    feeder.abort();
    guard.armed = false;
    let end = rt.exec_finished(&e.id, &e.cgroup).unwrap_or_default();
    let [(stdout, cut_out), (stderr, cut_err)] = kept;
    let truncated = Truncated { stdout: cut_out, stderr: cut_err };
    let Output { stdout, stdout_base64, stderr, stderr_base64, .. } = output(stdout, stderr, truncated);
    Ok(ExecResult {
        id: e.id.clone(),
        exit_code: end.exit_code,
        signal: end.signal,
        stdout,
        stdout_base64,
        stderr,
        stderr_base64,
        truncated,
        timed_out: end.timed_out,
        duration_ms: t0.elapsed().as_millis() as u64,
    })
}

/// Relays one exec session between the upgraded connection and the exec's shim until the
/// command has exited. A client that goes away before that (without detaching) takes the exec
/// with it: SIGHUP to its cgroup, `cgroup.kill` after the grace. A daemon that goes away does
/// not: the shim keeps the exec for a client that re-attaches.
async fn session<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: IO, rt: std::sync::Arc<Runtime>, e: Started, tty: bool) {
    let Started { id, container_id, link, helper_pid, cgroup, kill_grace, .. } = e;
    let (mut rd, mut wr) = tokio::io::split(io);
    let (mut srd, mut swr) = link.into_split();
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
    let (gone_tx, mut gone_rx) = tokio::sync::oneshot::channel::<()>();
    let (sig_tx, mut sig_rx) = mpsc::channel::<i32>(16);
    let input = tokio::spawn(async move {
        let mut frames = FrameReader::default();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = gone_tx.send(());
                    return swr;
                }
                Ok(n) => n,
            };
            if tty {
                // The helper decodes the frames itself (it owns the terminal and the signals).
                let _ = swr.write_all(&buf[..n]).await;
                continue;
            }
            frames.push(&buf[..n]);
            loop {
                match frames.next_frame() {
                    Ok(Some(InFrame::Signal(n))) => {
                        let _ = sig_tx.send(i32::from(n)).await;
                    }
                    Ok(Some(InFrame::Resize { .. })) => {}
                    Ok(Some(f)) => {
                        let _ = swr.write_all(&f.encode()).await;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        let _ = gone_tx.send(());
                        return swr;
                    }
                }
            }
        }
    });
    let mut hung_up = false;
    // A client that interrupted or terminated the command (Ctrl-C) means all of it.
    let mut end_tree = false;
    let (mut frames, mut buf) = (OutFrameReader::default(), vec![0u8; 64 * 1024]);
    let mut exited = false;
    loop {
        tokio::select! {
            got = next_frames(&mut srd, &mut frames, &mut buf) => {
                let Some(got) = got else { break };
                for f in got {
                    match f {
                        OutFrame::Exit(_) | OutFrame::Error(_) => exited = true,
                        f => {
                            let _ = tx.send(f).await;
                        }
                    }
                }
                if exited {
                    break;
                }
            }
            Some(sig) = sig_rx.recv() => {
                end_tree |= [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGKILL].contains(&sig);
                rt.exec_signal(&cgroup, helper_pid, sig);
            }
            _ = &mut gone_rx, if !hung_up => {
                hung_up = true;
                debug!(exec = %id, "exec client went away: hanging up");
                let (rt, cg) = (rt.clone(), cgroup.clone());
                tokio::spawn(async move { rt.exec_hang_up(&cg, kill_grace).await });
            }
        }
    }
    if !exited {
        // The shim let go without an exit status: it was writing it, another client attached
        // in this one's place, or it was killed.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let still = rt.execs().get(&container_id, &id).is_some_and(|(v, _)| v.status == crate::runtime::execs::ExecStatus::Running);
        if still && rt.execs().recorded_end(&id).is_none() {
            let _ = tx.send(OutFrame::Error("another client attached to this exec".into())).await;
            drop(tx);
            input.abort();
            let _ = writer.await;
            return;
        }
    }
    if end_tree && !hung_up {
        // What the command left running in the background goes with it.
        let (rt, cg) = (rt.clone(), cgroup.clone());
        tokio::spawn(async move { rt.exec_hang_up(&cg, kill_grace).await });
    }
    let last = match rt.exec_finished(&id, &cgroup).and_then(|e| e.exit_code) {
        Some(code) => OutFrame::Exit(code),
        None => OutFrame::Error("the exec ended without a recorded exit status (its shim was killed)".into()),
    };
    let _ = tx.send(last).await;
    drop(tx);
    input.abort();
    let _ = writer.await;
}

#[utoipa::path(
    get,
    path = "/api/v1/containers/{id}/execs",
    tag = "exec",
    operation_id = "exec_list",
    params(("id" = String, Path, description = "Container id or name")),
    responses((status = 200, description = "Running and recently finished execs", body = hoody_api::envelope::Data<Vec<hoody_api::exec::ExecView>>))
)]
pub async fn list(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let rt = st.rt.clone();
    let list = tokio::task::spawn_blocking(move || rt.execs().list(&c.id))
        .await
        .map_err(|e| ApiError::from(crate::runtime::RuntimeError::from(e)))?;
    Ok(data(list))
}

/// One instance; a detached one with the output kept so far.
#[utoipa::path(
    get,
    path = "/api/v1/containers/{id}/execs/{exec_id}",
    tag = "exec",
    operation_id = "exec_get",
    params(("id" = String, Path, description = "Container id or name"), ("exec_id" = String, Path, description = "Exec id")),
    responses((status = 200, description = "The exec (a detached one with its output so far)", body = hoody_api::envelope::Data<hoody_api::exec::ExecDetail>))
)]
pub async fn get(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, exec_id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    // Files are read: a detached exec's output may be tens of MiB.
    let (rt, eid) = (st.rt.clone(), exec_id.clone());
    let (view, out) = tokio::task::spawn_blocking(move || rt.execs().get(&c.id, &eid))
        .await
        .map_err(|e| ApiError::from(crate::runtime::RuntimeError::from(e)))?
        .ok_or_else(|| ApiError::from(crate::runtime::RuntimeError::Missing(format!("exec {exec_id:?}"))))?;
    let output = out.map(|o| output(o.stdout, o.stderr, Truncated { stdout: o.truncated_stdout, stderr: o.truncated_stderr }));
    Ok(data(ExecDetail { exec: view, output: output.unwrap_or_default() }))
}
