//! The Unix socket: created atomically with its final mode (bind to a temporary name, chmod,
//! chown, rename over the old path), a stale socket replaced only when nobody answers on it,
//! one HTTP/1.1 connection per client with header timeouts and upgrades, a cap on concurrent
//! connections, and the peer's credentials (SO_PEERCRED) attached to every request.

use std::convert::Infallible;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use super::slots::Slots;
pub use crate::auth::Peer;

/// How long a refused connection is given to send its request before it is answered, and how
/// long it is kept in all.
const REFUSAL_WAIT: Duration = Duration::from_millis(500);
const REFUSAL_LINGER: Duration = Duration::from_millis(1000);
/// Refused connections kept open at once to be answered after their request.
const MAX_LINGERING: usize = 256;

static LINGERING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A refused connection's place among those kept to be answered after their request.
struct Lingering;

impl Lingering {
    fn enter() -> Option<Lingering> {
        use std::sync::atomic::Ordering;
        LINGERING.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_LINGERING).then_some(n + 1)).ok().map(|_| Lingering)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        LINGERING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The answer of a connection over a limit, written without waiting on the client.
fn too_many(message: &str) -> Vec<u8> {
    let body = format!("{{\"error\":{{\"code\":\"unavailable\",\"message\":\"{message}\",\"details\":[]}}}}\n");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Whether a peer is an administrator (room is kept for them within the connection cap).
pub type IsAdmin = Arc<dyn Fn(&Peer) -> bool + Send + Sync>;

#[derive(Clone)]
pub struct ServeConfig {
    pub slots: Arc<Slots>,
    pub is_admin: IsAdmin,
    pub header_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// Binds the API socket at `path` with mode 0660 and group `gid`.
pub fn bind(path: &Path, gid: Option<u32>) -> io::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("another daemon answers on {}", path.display())));
        }
        debug!(socket = %path.display(), "replacing a stale socket");
    }
    let dir = path.parent().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "socket path has no directory"))?;
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "socket path has no file name"))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp)?;
    let prepared = (|| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660))?;
        if let Some(g) = gid {
            std::os::unix::fs::chown(&tmp, Some(0), Some(g))?;
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = prepared {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

/// Serves `router` on `listener` until `shutdown` flips to true, then lets open requests finish
/// for the grace period.
pub async fn serve(listener: UnixListener, router: Router, cfg: ServeConfig, mut shutdown: watch::Receiver<bool>) {
    let (conn_stop_tx, conn_stop) = watch::channel(false);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let peer = match stream.peer_cred() {
            Ok(c) => Peer { uid: c.uid(), gid: c.gid(), pid: c.pid() },
            Err(e) => {
                warn!(error = %e, "no peer credentials; connection dropped");
                continue;
            }
        };
        let router = router.clone();
        let mut stop = conn_stop.clone();
        let header_timeout = cfg.header_timeout;
        let (slots, is_admin) = (cfg.slots.clone(), cfg.is_admin.clone());
        tokio::spawn(async move {
            // Root needs no look at /proc; anyone else's groups are read off the blocking pool.
            let admin = peer.uid == 0 || tokio::task::spawn_blocking(move || is_admin(&peer)).await.unwrap_or(false);
            let slot = match slots.admit(peer.uid, admin) {
                Ok(s) => Arc::new(s),
                Err(refused) => {
                    let message = refused.message();
                    warn!(uid = peer.uid, reason = %message, "connection refused");
                    // A best-effort answer, so it knows why: after its request when that comes
                    // within REFUSAL_WAIT (an HTTP client answered before it has written its
                    // request reports a broken connection, not the answer), then kept until the
                    // client closes it or REFUSAL_LINGER is over, reading and dropping what comes
                    // (a client still writing would otherwise see a broken pipe). At most
                    // MAX_LINGERING refused connections are kept so; past that one is answered
                    // and closed at once, so refusals never hold more descriptors than that.
                    let Some(_lingering) = Lingering::enter() else {
                        let _ = stream.try_write(&too_many(&message));
                        return;
                    };
                    let start = tokio::time::Instant::now();
                    let mut scratch = [0u8; 16 * 1024];
                    // (Readiness may be reported before anything is there: only bytes count.)
                    while let Ok(Ok(())) = tokio::time::timeout_at(start + REFUSAL_WAIT, stream.readable()).await {
                        match stream.try_read(&mut scratch) {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                            _ => break,
                        }
                    }
                    let _ = stream.try_write(&too_many(&message));
                    while let Ok(Ok(())) = tokio::time::timeout_at(start + REFUSAL_LINGER, stream.readable()).await {
                        match stream.try_read(&mut scratch) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(_) => break,
                        }
                    }
                    return;
                }
            };
            let held = slot.clone();
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(peer);
                req.extensions_mut().insert(held.clone());
                let router = router.clone();
                async move { Ok::<_, Infallible>(router.oneshot(req.map(Body::new)).await.unwrap_or_else(|e| match e {})) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            let stopping = tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(error = %e, uid = peer.uid, "connection ended with an error");
                    }
                    false
                }
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopping {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
            drop(slot);
        });
    }
    info!("no longer accepting connections");
    let _ = conn_stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + cfg.shutdown_grace;
    while cfg.slots.connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_refusal_is_well_formed() {
        let bytes = super::too_many("too many open connections from uid 7 (at most 64)");
        let text = std::str::from_utf8(&bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let len: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
        assert_eq!(len, body.len());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "unavailable");
    }
}
