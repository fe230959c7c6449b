//! `GET /containers/{id}/logs[?follow=true][&tail=N]`: the init's console output as a raw byte
//! stream (`text/plain`); with `follow`, new output is streamed until the container stops.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::error::{ApiError, ApiResult};
use super::query::Query;
use super::{AppState, Caller};

use hoody_api::query::LogsQuery;

/// Offset where the last `n` lines of the file begin.
async fn tail_offset(f: &mut tokio::fs::File, n: usize) -> std::io::Result<u64> {
    let len = f.metadata().await?.len();
    let mut pos = len;
    let mut newlines = 0usize;
    let mut buf = vec![0u8; 8192];
    while pos > 0 {
        let step = (pos as usize).min(buf.len());
        pos -= step as u64;
        f.seek(std::io::SeekFrom::Start(pos)).await?;
        f.read_exact(&mut buf[..step]).await?;
        for i in (0..step).rev() {
            if buf[i] == b'\n' && pos + i as u64 + 1 != len {
                newlines += 1;
                if newlines == n {
                    return Ok(pos + i as u64 + 1);
                }
            }
        }
    }
    Ok(0)
}

/// The log's inode, to notice a rotation (the shim renames the file and starts a new one).
async fn inode(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    tokio::fs::metadata(path).await.ok().map(|m| m.ino())
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> ApiError {
    move |e| ApiError::from(crate::runtime::RuntimeError::Io { op, source: e })
}

/// Opens `path` at the start of its last `n` lines (all of it without `n`).
async fn open_at_tail(path: &std::path::Path, n: Option<usize>) -> Result<Option<(tokio::fs::File, usize)>, ApiError> {
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("open the console log")(e)),
    };
    let Some(n) = n else { return Ok(Some((f, 0))) };
    let off = tail_offset(&mut f, n).await.map_err(io("read the console log"))?;
    f.seek(std::io::SeekFrom::Start(off)).await.map_err(io("read the console log"))?;
    // How many lines this part gives: the rest come from the rotated part before it.
    if off > 0 {
        return Ok(Some((f, n)));
    }
    let mut all = Vec::new();
    f.read_to_end(&mut all).await.map_err(io("read the console log"))?;
    let count = all.iter().filter(|b| **b == b'\n').count() + usize::from(all.last().is_some_and(|b| *b != b'\n'));
    f.seek(std::io::SeekFrom::Start(0)).await.map_err(io("read the console log"))?;
    Ok(Some((f, count)))
}

#[utoipa::path(
    get,
    path = "/api/v1/containers/{id}/logs",
    tag = "containers",
    operation_id = "container_logs",
    params(("id" = String, Path, description = "Container id or name"), hoody_api::query::LogsQuery),
    responses((status = 200, description = "The console output, raw bytes", content_type = "text/plain", body = String))
)]
pub async fn logs(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
    gate: super::slots::StreamGate,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let path = st.rt.log_path(&c.id);
    let old = crate::helper::shim::rotated(&path);
    // The stream: (when the current part has fewer lines than asked, or without `tail`) the
    // rotated part first, then the current one, then (with `follow`) whatever the shim writes,
    // across rotations.
    let current = open_at_tail(&path, q.tail).await?;
    let ino = match &current {
        Some((f, _)) => f.metadata().await.ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m)),
        None => None,
    };
    let have = current.as_ref().map(|c| c.1).unwrap_or(0);
    let earlier = match q.tail {
        Some(n) if have >= n => None,
        Some(n) => open_at_tail(&old, Some(n - have)).await?.map(|x| x.0),
        None => open_at_tail(&old, None).await?.map(|x| x.0),
    };
    let file = current.map(|c| c.0);
    let rt = st.rt.clone();
    let cid = c.id.clone();
    let follow = q.follow;
    let slot = if follow { Some(gate.begin()?) } else { None };
    let stream = futures::stream::unfold((earlier, file, ino, false), move |(mut earlier, mut file, mut ino, done)| {
        let rt = rt.clone();
        let cid = cid.clone();
        let path = path.clone();
        async move {
            if done {
                return None;
            }
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                if let Some(f) = earlier.as_mut() {
                    match f.read(&mut buf).await {
                        Ok(0) => earlier = None,
                        Ok(n) => {
                            buf.truncate(n);
                            return Some((Ok::<_, std::io::Error>(Bytes::from(buf)), (earlier, file, ino, false)));
                        }
                        Err(e) => return Some((Err(e), (earlier, file, ino, true))),
                    }
                    continue;
                }
                if file.is_none() {
                    file = tokio::fs::File::open(&path).await.ok();
                    ino = match &file {
                        Some(f) => f.metadata().await.ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m)),
                        None => None,
                    };
                }
                if let Some(f) = file.as_mut() {
                    match f.read(&mut buf).await {
                        Ok(0) => {
                            // Drained: if the shim rotated, the new file is read from its start.
                            let now = inode(&path).await;
                            if now.is_some() && now != ino {
                                file = None;
                                continue;
                            }
                        }
                        Ok(n) => {
                            buf.truncate(n);
                            return Some((Ok::<_, std::io::Error>(Bytes::from(buf)), (earlier, file, ino, false)));
                        }
                        Err(e) => return Some((Err(e), (earlier, file, ino, true))),
                    }
                }
                if !follow || rt.running_init_pid(&cid).is_none() {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let body = match slot {
        Some(slot) => Body::from_stream(slot.hold(stream)),
        None => Body::from_stream(stream),
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], [super::slots::CLOSE], body))
}
