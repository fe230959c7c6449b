//! `GET /containers/{id}/logs[?follow=true][&tail=N]`: the init's console output as a raw byte
//! stream (`text/plain`); with `follow`, new output is streamed until the container stops.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::error::{ApiError, ApiResult};
use super::query::Query;
use super::{AppState, Caller};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    #[serde(default)]
    follow: bool,
    tail: Option<usize>,
}

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

pub async fn logs(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<impl IntoResponse> {
    let c = st.rt.resolve(&id, &caller.filter).await?;
    let path = st.rt.log_path(&c.id);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(ApiError::from(crate::runtime::RuntimeError::Io { op: "open the console log", source: e }));
        }
    };
    if let (Some(f), Some(n)) = (file.as_mut(), q.tail) {
        let off = tail_offset(f, n)
            .await
            .map_err(|e| ApiError::from(crate::runtime::RuntimeError::Io { op: "read the console log", source: e }))?;
        f.seek(std::io::SeekFrom::Start(off))
            .await
            .map_err(|e| ApiError::from(crate::runtime::RuntimeError::Io { op: "read the console log", source: e }))?;
    }
    let rt = st.rt.clone();
    let cid = c.id.clone();
    let follow = q.follow;
    let stream = futures::stream::unfold((file, false), move |(mut file, done)| {
        let rt = rt.clone();
        let cid = cid.clone();
        let path = path.clone();
        async move {
            if done {
                return None;
            }
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                if file.is_none() {
                    file = tokio::fs::File::open(&path).await.ok();
                }
                if let Some(f) = file.as_mut() {
                    match f.read(&mut buf).await {
                        Ok(0) => {}
                        Ok(n) => {
                            buf.truncate(n);
                            return Some((Ok::<_, std::io::Error>(Bytes::from(buf)), (file, false)));
                        }
                        Err(e) => return Some((Err(e), (file, true))),
                    }
                }
                if !follow || rt.running_init_pid(&cid).is_none() {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(stream)))
}
