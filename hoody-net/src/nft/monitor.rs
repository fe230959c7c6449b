//! Watches nftables commits in this network namespace (the `NFNLGRP_NFTABLES` multicast group)
//! and reports those that touched our table but were not made by this process — for example
//! `nft flush ruleset` from Debian's `nftables.service` at boot or on reload, which deletes
//! every table including ours.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};

use crate::compile::TABLE;
use crate::error::{NetError, Result};
use crate::nlmsg::{attr, messages};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_TRACE: u16 = 17;
const NFNLGRP_NFTABLES: u32 = 7;
const NFPROTO_INET: u8 = 1;
/// In every table, chain, rule, set, element, object and flowtable message, attribute 1 is the
/// name of the table.
const ATTR_TABLE: u16 = 1;
const NFTA_GEN_PROC_PID: u16 = 2;
const NFTA_GEN_PROC_NAME: u16 = 3;

/// A committed transaction that touched our table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableChange {
    /// A commit, by the thread `pid` of the process called `comm`.
    Commit { pid: u32, comm: String },
    /// Notifications were lost (socket overrun): anything may have happened.
    Overrun,
}

/// What one buffer of notifications said, given whether our table was touched by messages
/// seen earlier in the same transaction (a transaction's messages can span buffers).
#[derive(Debug, Default)]
pub struct Parser {
    touched: bool,
}

impl Parser {
    /// Commits (NEWGEN messages) that close a transaction which touched `inet hoody`.
    pub fn feed(&mut self, buf: &[u8]) -> Vec<TableChange> {
        let mut out = vec![];
        for (ty, body) in messages(buf) {
            // The body starts with a 4-byte nfgenmsg whose first byte is the family.
            let (Some(&family), Some(attrs)) = (body.first(), body.get(4..)) else { continue };
            if ty >> 8 == NFNL_SUBSYS_NFTABLES {
                match ty & 0xff {
                    NFT_MSG_NEWGEN => {
                        if std::mem::take(&mut self.touched) {
                            let pid = attr(attrs, NFTA_GEN_PROC_PID).and_then(|v| v.try_into().ok()).map(u32::from_be_bytes).unwrap_or(0);
                            let comm = attr(attrs, NFTA_GEN_PROC_NAME).map(cstr).unwrap_or_default();
                            out.push(TableChange::Commit { pid, comm });
                        }
                    }
                    NFT_MSG_TRACE => {}
                    _ => {
                        if family == NFPROTO_INET && attr(attrs, ATTR_TABLE).map(cstr).as_deref() == Some(TABLE) {
                            self.touched = true;
                        }
                    }
                }
            }
        }
        out
    }
}

fn cstr(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(v)).into_owned()
}

pub struct TableMonitor {
    fd: OwnedFd,
    parser: Parser,
    buf: Vec<u8>,
}

fn io(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> NetError {
    move |e| NetError::Io { op, target: "nftables monitor socket".into(), source: e.into() }
}

impl TableMonitor {
    /// Subscribes to nftables notifications in the calling thread's network namespace.
    pub fn bind() -> Result<TableMonitor> {
        let fd = socket::socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)
            .map_err(io("socket"))?;
        // A flush of a big table sends thousands of notifications at once.
        let _ = socket::setsockopt(&fd, socket::sockopt::RcvBufForce, &(8 << 20));
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1 << (NFNLGRP_NFTABLES - 1))).map_err(io("bind"))?;
        Ok(TableMonitor { fd, parser: Parser::default(), buf: vec![0u8; 1 << 20] })
    }

    /// Blocks until a transaction that touched our table is committed; returns its commits.
    pub fn wait(&mut self) -> Result<Vec<TableChange>> {
        loop {
            let n = match socket::recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::ENOBUFS) => {
                    self.parser = Parser::default();
                    return Ok(vec![TableChange::Overrun]);
                }
                Err(e) => return Err(io("receive")(e)),
            };
            let changes = self.parser.feed(&self.buf[..n]);
            if !changes.is_empty() {
                return Ok(changes);
            }
        }
    }
}

/// Whether `tid` is a thread of this process (the kernel names the committing thread).
pub fn is_own_thread(proc_root: &std::path::Path, tid: u32) -> bool {
    tid != 0 && proc_root.join("self/task").join(tid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, family: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = vec![0u8; 16];
        m.extend_from_slice(&[family, 0, 0, 0]);
        for (t, v) in attrs {
            m.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
            m.extend_from_slice(&t.to_ne_bytes());
            m.extend_from_slice(v);
            m.resize(m.len().div_ceil(4) * 4, 0);
        }
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | ty).to_ne_bytes());
        m
    }

    fn gen_msg(pid: u32, comm: &str) -> Vec<u8> {
        let name = format!("{comm}\0");
        msg(NFT_MSG_NEWGEN, 0, &[(1, &7u32.to_be_bytes()), (NFTA_GEN_PROC_PID, &pid.to_be_bytes()), (NFTA_GEN_PROC_NAME, name.as_bytes())])
    }

    #[test]
    fn a_deleted_table_of_ours_is_reported_with_its_committer() {
        let mut p = Parser::default();
        let mut buf = msg(8, NFPROTO_INET, &[(ATTR_TABLE, b"hoody\0"), (2, b"forward\0")]);
        buf.extend(msg(2, NFPROTO_INET, &[(ATTR_TABLE, b"hoody\0")]));
        buf.extend(gen_msg(4242, "nft"));
        assert_eq!(p.feed(&buf), vec![TableChange::Commit { pid: 4242, comm: "nft".into() }]);
    }

    #[test]
    fn other_tables_and_families_are_not_ours() {
        let mut p = Parser::default();
        let mut buf = msg(2, NFPROTO_INET, &[(ATTR_TABLE, b"filter\0")]);
        buf.extend(msg(2, 2, &[(ATTR_TABLE, b"hoody\0")]));
        buf.extend(msg(6, NFPROTO_INET, &[(ATTR_TABLE, b"hoodyx\0")]));
        buf.extend(gen_msg(1, "nft"));
        assert!(p.feed(&buf).is_empty());
    }

    #[test]
    fn a_transaction_spans_buffers() {
        let mut p = Parser::default();
        assert!(p.feed(&msg(5, NFPROTO_INET, &[(ATTR_TABLE, b"hoody\0")])).is_empty());
        assert_eq!(p.feed(&gen_msg(9, "x")), vec![TableChange::Commit { pid: 9, comm: "x".into() }]);
        // The next transaction starts clean.
        assert!(p.feed(&gen_msg(9, "x")).is_empty());
    }

    #[test]
    fn own_threads_are_recognised() {
        let proc = std::path::Path::new("/proc");
        assert!(is_own_thread(proc, std::process::id()));
        assert!(!is_own_thread(proc, 0));
    }
}
