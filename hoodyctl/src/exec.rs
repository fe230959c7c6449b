//! The client side of an exec session: raw terminal, window size, frames both ways.

use std::io::Write;
use std::os::fd::AsFd;

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use hoody_api::client::{Client, ClientError};
use hoody_api::proto::codec::{ClientCodec, CodecError};
use hoody_api::proto::{InFrame, OutFrame};

/// Puts the terminal on stdin in raw mode until dropped.
pub struct RawMode(Option<Termios>);

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(orig) = tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = orig.clone();
        cfmakeraw(&mut raw);
        if tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).is_err() {
            return RawMode(None);
        }
        RawMode(Some(orig))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

/// Current size of the terminal on stdout, if it is one.
pub fn window_size() -> Option<(u16, u16)> {
    crate::sys::get_winsize(std::io::stdout().as_fd()).ok().filter(|(r, c)| *r > 0 && *c > 0)
}

/// How long a session whose connection dropped (the daemon restarted) tries to re-attach.
const REATTACH_FOR: std::time::Duration = std::time::Duration::from_secs(120);

type Reader = tokio::io::ReadHalf<TokioIo<Upgraded>>;
type Writer = tokio::io::WriteHalf<TokioIo<Upgraded>>;

/// How one connection of a session ended.
enum Ended {
    Exit(i32),
    Error(String),
    /// Without an exit status: the daemon went away.
    Dropped(String),
}

/// Copies output frames to stdout and stderr until the exit status or the connection's end.
async fn relay_output(rd: &mut Reader) -> anyhow::Result<Ended> {
    use futures::StreamExt;
    let mut frames = tokio_util::codec::FramedRead::new(rd, ClientCodec);
    loop {
        let f = match frames.next().await {
            None => return Ok(Ended::Dropped("the daemon closed the exec stream without an exit status".into())),
            Some(Err(CodecError::Io(e))) => return Ok(Ended::Dropped(format!("reading from the daemon: {e}"))),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(f)) => f,
        };
        match f {
            OutFrame::Stdout(d) => {
                let mut o = std::io::stdout().lock();
                o.write_all(&d)?;
                o.flush()?;
            }
            OutFrame::Stderr(d) => {
                let mut e = std::io::stderr().lock();
                e.write_all(&d)?;
                e.flush()?;
            }
            OutFrame::Exit(code) => return Ok(Ended::Exit(code)),
            OutFrame::Error(m) => return Ok(Ended::Error(m)),
        }
    }
}

/// `POST …/execs/{exec_id}/attach`: `Ok(None)` while the daemon is not (yet) there to answer.
pub async fn reattach(client: &Client, container: &str, exec_id: &str) -> anyhow::Result<Option<Upgraded>> {
    match client.attach(container, exec_id).await {
        Ok(up) => Ok(Some(up)),
        Err(ClientError::Api { status, error }) if !status.is_server_error() => anyhow::bail!("re-attaching: {}", error.text()),
        Err(_) => Ok(None),
    }
}

/// Runs the session; returns the command's exit status. When the connection drops without
/// one (the daemon restarted) and `attach` names the exec (container, id), it re-attaches, for up
/// to two minutes; input and signals given meanwhile are sent once it is back.
pub async fn run(client: &Client, up: Upgraded, tty: bool, attach: Option<(String, String)>) -> anyhow::Result<i32> {
    let (mut rd, wr) = tokio::io::split(TokioIo::new(up));
    let (tx, mut rx) = mpsc::channel::<InFrame>(64);
    let (wr_tx, mut wr_rx) = mpsc::channel::<Writer>(1);
    wr_tx.send(wr).await.ok();
    tokio::spawn(async move {
        let mut current: Option<Writer> = None;
        let mut pending: Option<InFrame> = None;
        loop {
            tokio::select! {
                w = wr_rx.recv() => {
                    let Some(w) = w else { return };
                    current = Some(w);
                }
                f = rx.recv(), if pending.is_none() => {
                    let Some(f) = f else { return };
                    pending = Some(f);
                }
            }
            if let (Some(w), Some(f)) = (current.as_mut(), pending.as_ref()) {
                if w.write_all(&f.encode()).await.is_ok() {
                    pending = None;
                } else {
                    current = None;
                }
            }
        }
    });
    let stdin_tx = tx.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = stdin_tx.send(InFrame::StdinEof).await;
                    return;
                }
                Ok(n) => {
                    if stdin_tx.send(InFrame::Stdin(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    // Signals this client gets go to the command's process group (frame 5), with or without a
    // terminal, also when started in the background (where SIGINT and SIGQUIT are ignored).
    for (kind, n) in [
        (tokio::signal::unix::SignalKind::interrupt(), libc::SIGINT),
        (tokio::signal::unix::SignalKind::terminate(), libc::SIGTERM),
        (tokio::signal::unix::SignalKind::hangup(), libc::SIGHUP),
        (tokio::signal::unix::SignalKind::quit(), libc::SIGQUIT),
    ] {
        let Ok(mut s) = tokio::signal::unix::signal(kind) else { continue };
        let sig_tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if sig_tx.send(InFrame::Signal(n as u8)).await.is_err() {
                    return;
                }
            }
        });
    }
    if tty {
        let winch_tx = tx.clone();
        tokio::spawn(async move {
            let Ok(mut winch) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some((rows, cols)) = window_size()
                    && winch_tx.send(InFrame::Resize { rows, cols }).await.is_err()
                {
                    return;
                }
            }
        });
    }
    loop {
        let why = match relay_output(&mut rd).await? {
            Ended::Exit(code) => return Ok(code),
            Ended::Error(m) => anyhow::bail!("{m}"),
            Ended::Dropped(why) => why,
        };
        let Some((container, exec_id)) = attach.as_ref() else { anyhow::bail!("{why}") };
        eprintln!("hoodyctl: {why}; re-attaching to the exec");
        let deadline = std::time::Instant::now() + REATTACH_FOR;
        let up = loop {
            if let Some(up) = reattach(client, container, exec_id).await? {
                break up;
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("{why}; the daemon did not come back to re-attach to");
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        };
        let (r, w) = tokio::io::split(TokioIo::new(up));
        rd = r;
        if wr_tx.send(w).await.is_err() {
            anyhow::bail!("the session's input ended");
        }
    }
}
