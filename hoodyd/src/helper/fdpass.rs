//! Messages with descriptors over a SOCK_SEQPACKET pair between the helper and the container's
//! first process.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use super::error::{Result, nix_step};

pub fn send(sock: BorrowedFd<'_>, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(msg)], cmsgs, MsgFlags::empty(), None).map_err(nix_step("send to container process"))?;
    Ok(())
}

/// Receives one message (empty on EOF) and the descriptors that came with it.
pub fn recv(sock: BorrowedFd<'_>) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg =
        recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).map_err(nix_step("receive from helper"))?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(nix_step("read control message"))? {
        if let ControlMessageOwned::ScmRights(list) = c {
            for fd in list {
                // SAFETY: SCM_RIGHTS just installed these descriptors in our table; we own them.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let n = msg.bytes;
    buf.truncate(n);
    Ok((buf, fds))
}
