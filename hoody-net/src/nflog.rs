//! Denied egress attempts, read from the kernel's NFLOG over netlink (`nfnetlink_log`). The
//! firewall logs through a per-container rate limit, so this stream stays small.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};
use serde::Serialize;

use crate::compile::LOG_PREFIX;
use crate::error::{NetError, Result};
use crate::nlmsg::{attr, messages};

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
/// Bytes of each denied packet copied to us: IP and transport headers are enough.
const COPY_RANGE: u32 = 96;

/// One denied packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Denied {
    /// The container that sent it: filled in by the caller from the source address (the table
    /// logs every container's denials with one prefix).
    pub container: String,
    pub protocol: &'static str,
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u16>,
    /// A new connection through an address learned by name (logged with its own prefix),
    /// not a denial.
    pub allowed: bool,
}

pub struct NflogListener {
    fd: OwnedFd,
}

fn io(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> NetError {
    move |e| NetError::Io { op, target: "nflog socket".into(), source: e.into() }
}

fn put_attr(buf: &mut Vec<u8>, ty: u16, value: &[u8]) {
    buf.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len().div_ceil(4) * 4, 0);
}

fn config_msg(group: u16, seq: u32, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    // nfgenmsg: family AF_UNSPEC, version 0, resource id = group (big endian).
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&group.to_be_bytes());
    for (t, v) in attrs {
        put_attr(&mut m, *t, v);
    }
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG).to_ne_bytes());
    m[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m
}

impl NflogListener {
    /// Binds NFLOG group `group` in the calling thread's network namespace.
    pub fn bind(group: u16) -> Result<NflogListener> {
        let fd = socket::socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)
            .map_err(io("socket"))?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(io("bind"))?;
        let _ = socket::setsockopt(&fd, socket::sockopt::RcvBufForce, &(4 << 20));
        let mut mode = COPY_RANGE.to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        for (seq, attrs) in [(1, vec![(NFULA_CFG_CMD, vec![NFULNL_CFG_CMD_BIND])]), (2, vec![(NFULA_CFG_MODE, mode)])] {
            let msg = config_msg(group, seq, &attrs);
            socket::sendto(fd.as_raw_fd(), &msg, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(io("configure"))?;
            let mut buf = [0u8; 256];
            let n = socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(io("configure"))?;
            if n >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == libc::NLMSG_ERROR as u16 {
                let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
                if err != 0 {
                    return Err(NetError::Io {
                        op: "bind nflog group",
                        target: group.to_string(),
                        source: std::io::Error::from_raw_os_error(-err),
                    });
                }
            }
        }
        Ok(NflogListener { fd })
    }

    /// Blocks until packets arrive; returns the denied ones that belong to a container.
    pub fn receive(&mut self) -> Result<Vec<Denied>> {
        let mut buf = vec![0u8; 256 * 1024];
        let n = loop {
            match socket::recv(self.fd.as_fd().as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                // Overrun: some events were lost; the counters still count them.
                Err(nix::errno::Errno::ENOBUFS) => return Ok(vec![]),
                Err(e) => return Err(io("receive")(e)),
            }
        };
        Ok(parse_messages(&buf[..n]))
    }
}

/// Parses a buffer of NFLOG packet messages.
pub fn parse_messages(buf: &[u8]) -> Vec<Denied> {
    let mut out = vec![];
    for (ty, body) in messages(buf) {
        // The body starts with a 4-byte nfgenmsg.
        if ty == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
            && let Some(d) = body.get(4..).and_then(parse_packet_msg)
        {
            out.push(d);
        }
    }
    out
}

fn parse_packet_msg(body: &[u8]) -> Option<Denied> {
    let v = attr(body, NFULA_PREFIX)?;
    let prefix = String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(v)).into_owned();
    let payload = attr(body, NFULA_PAYLOAD);
    let allowed = match prefix.as_str() {
        LOG_PREFIX => false,
        crate::compile::ALLOW_LOG_PREFIX => true,
        _ => return None,
    };
    let (protocol, source, destination, destination_port) = parse_ipv4(payload?)?;
    Some(Denied { container: String::new(), protocol, source, destination, destination_port, allowed })
}

/// Protocol, addresses and destination port of an IPv4 packet.
pub fn parse_ipv4(p: &[u8]) -> Option<(&'static str, Ipv4Addr, Ipv4Addr, Option<u16>)> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let (proto, port) = match p[9] {
        6 => ("tcp", true),
        17 => ("udp", true),
        1 => ("icmp", false),
        _ => ("other", false),
    };
    let dport = (port && p.len() >= ihl + 4).then(|| u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]));
    Some((proto, src, dst, dport))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_syn() -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 77, 0, 5, 203, 0, 113, 10];
        p.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb]); // ports 40000 → 443
        p.extend_from_slice(&[0; 16]);
        p
    }

    #[test]
    fn parses_a_packet_message() {
        let mut attrs = vec![];
        put_attr(&mut attrs, NFULA_PREFIX, b"hoody \0");
        put_attr(&mut attrs, NFULA_PAYLOAD, &tcp_syn());
        let mut msg = vec![0u8; 20];
        msg.extend_from_slice(&attrs);
        let len = msg.len() as u32;
        msg[0..4].copy_from_slice(&len.to_ne_bytes());
        msg[4..6].copy_from_slice(&(NFNL_SUBSYS_ULOG << 8).to_ne_bytes());
        let d = parse_messages(&msg);
        assert_eq!(
            d,
            vec![Denied {
                container: String::new(),
                protocol: "tcp",
                source: Ipv4Addr::new(10, 77, 0, 5),
                destination: Ipv4Addr::new(203, 0, 113, 10),
                destination_port: Some(443),
                allowed: false,
            }]
        );
    }

    #[test]
    fn ignores_foreign_prefixes_and_garbage() {
        let mut attrs = vec![];
        put_attr(&mut attrs, NFULA_PREFIX, b"someone-else\0");
        put_attr(&mut attrs, NFULA_PAYLOAD, &tcp_syn());
        assert!(parse_packet_msg(&attrs).is_none());
        assert!(parse_messages(&[1, 2, 3]).is_empty());
        assert!(parse_ipv4(&[0x60; 40]).is_none(), "IPv6 is not parsed as IPv4");
    }

    #[test]
    fn config_message_layout() {
        let m = config_msg(7023, 1, &[(NFULA_CFG_CMD, vec![NFULNL_CFG_CMD_BIND])]);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(&m[18..20], &7023u16.to_be_bytes());
        assert_eq!(m.len() % 4, 0);
    }
}
