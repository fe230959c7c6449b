//! The client side of an exec session: raw terminal, window size, frames both ways.

use std::io::Write;
use std::os::fd::AsFd;

use anyhow::Context;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::proto::{InFrame, OutFrame, OutFrameReader};

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
    crate::helper::sys::get_winsize(std::io::stdout().as_fd()).ok().filter(|(r, c)| *r > 0 && *c > 0)
}

/// Runs the session; returns the command's exit status.
pub async fn run(up: Upgraded, tty: bool) -> anyhow::Result<i32> {
    let (mut rd, mut wr) = tokio::io::split(TokioIo::new(up));
    let (tx, mut rx) = mpsc::channel::<InFrame>(64);
    tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&f.encode()).await.is_err() {
                return;
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
    let mut frames = OutFrameReader::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = rd.read(&mut buf).await.context("reading from the daemon")?;
        if n == 0 {
            anyhow::bail!("the daemon closed the exec stream without an exit status");
        }
        frames.push(&buf[..n]);
        while let Some(f) = frames.next_frame()? {
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
                OutFrame::Exit(code) => return Ok(code),
                OutFrame::Error(m) => anyhow::bail!("{m}"),
            }
        }
    }
}
