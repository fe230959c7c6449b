//! The unsafe corner of the firewall: nftnl-sys calls for what the nftnl crate lacks (verdict
//! maps and their elements, `lookup` into the verdict register, `log`, `limit`, parsing rules and
//! map elements read back from the kernel), and the netfilter netlink socket.

use std::ffi::{CStr, CString, c_char, c_void};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use nftnl::expr::Expression;
use nftnl::nftnl_sys as sys;
use nftnl::{MsgType, NlMsg, Rule};
use nix::sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, sockopt};

pub const NFPROTO_INET: u16 = 1;
const NFT_SET_MAP: u32 = 0x8;
const TYPE_IFNAME: u32 = 41;
/// Set user data TLVs: key byte order = host (1), data byte order = 0, merge elements = 0.
const SET_UDATA: [u8; 18] = [0, 4, 1, 0, 0, 0, 1, 4, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0];
pub const IFNAMSIZ: usize = 16;

fn alloc_expr(name: &CStr) -> NonNull<sys::nftnl_expr> {
    // SAFETY: `name` is a valid C string; nftnl_expr_alloc returns NULL only on OOM.
    NonNull::new(unsafe { sys::nftnl_expr_alloc(name.as_ptr()) }).expect("nftnl_expr_alloc: out of memory")
}

/// `lookup` of register 1 in a verdict map, the verdict going to the verdict register
/// (`iifname vmap @eg`).
pub struct VmapLookup {
    pub set: CString,
    pub set_id: u32,
}

impl Expression for VmapLookup {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"lookup");
        // SAFETY: `e` was just allocated; the string outlives the call and is copied by nftnl.
        unsafe {
            sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_LOOKUP_SREG as u16, libc::NFT_REG_1 as u32);
            sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_LOOKUP_DREG as u16, libc::NFT_REG_VERDICT as u32);
            sys::nftnl_expr_set_str(e.as_ptr(), sys::NFTNL_EXPR_LOOKUP_SET as u16, self.set.as_ptr());
            sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_LOOKUP_SET_ID as u16, self.set_id);
        }
        e
    }
}

/// `log group N prefix "…"` (NFLOG).
pub struct Log {
    pub group: u16,
    pub prefix: CString,
}

impl Expression for Log {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"log");
        // SAFETY: `e` is valid; the prefix string is copied by nftnl.
        unsafe {
            sys::nftnl_expr_set_u16(e.as_ptr(), sys::NFTNL_EXPR_LOG_GROUP as u16, self.group);
            sys::nftnl_expr_set_str(e.as_ptr(), sys::NFTNL_EXPR_LOG_PREFIX as u16, self.prefix.as_ptr());
        }
        e
    }
}

/// `limit rate N/second burst M packets`.
pub struct Limit {
    pub per_second: u64,
    pub burst: u32,
}

impl Expression for Limit {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"limit");
        // SAFETY: `e` is valid; plain integer attributes.
        unsafe {
            sys::nftnl_expr_set_u64(e.as_ptr(), sys::NFTNL_EXPR_LIMIT_RATE as u16, self.per_second);
            sys::nftnl_expr_set_u64(e.as_ptr(), sys::NFTNL_EXPR_LIMIT_UNIT as u16, 1);
            sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_LIMIT_BURST as u16, self.burst);
            sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_LIMIT_TYPE as u16, 0);
        }
        e
    }
}

struct SetHandle(NonNull<sys::nftnl_set>);

impl SetHandle {
    fn new(table: &CStr, name: &CStr) -> SetHandle {
        // SAFETY: allocation; NULL only on OOM.
        let s = NonNull::new(unsafe { sys::nftnl_set_alloc() }).expect("nftnl_set_alloc: out of memory");
        // SAFETY: `s` is valid; strings are copied.
        unsafe {
            sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_TABLE as u16, table.as_ptr());
            sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_NAME as u16, name.as_ptr());
            sys::nftnl_set_set_u32(s.as_ptr(), sys::NFTNL_SET_FAMILY as u16, u32::from(NFPROTO_INET));
        }
        SetHandle(s)
    }
}

impl Drop for SetHandle {
    fn drop(&mut self) {
        // SAFETY: we own the set (and the elements added to it).
        unsafe { sys::nftnl_set_free(self.0.as_ptr()) }
    }
}

/// `map NAME { type ifname : verdict; }`.
pub struct VerdictMap {
    pub table: CString,
    pub name: CString,
    pub id: u32,
}

// SAFETY: `write` only writes one netlink message into the caller's buffer, which NlMsg requires
// to be at least nft_nlmsg_maxsize() bytes.
unsafe impl NlMsg for VerdictMap {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, msg_type: MsgType) {
        let s = SetHandle::new(&self.table, &self.name);
        let (ty, flags) = match msg_type {
            MsgType::Add => (libc::NFT_MSG_NEWSET, libc::NLM_F_CREATE | libc::NLM_F_ACK),
            MsgType::Del => (libc::NFT_MSG_DELSET, libc::NLM_F_ACK),
        };
        // SAFETY: `s` is valid; `buf` is large enough per the NlMsg contract.
        unsafe {
            sys::nftnl_set_set_u32(s.0.as_ptr(), sys::NFTNL_SET_FLAGS as u16, NFT_SET_MAP);
            sys::nftnl_set_set_u32(s.0.as_ptr(), sys::NFTNL_SET_KEY_TYPE as u16, TYPE_IFNAME);
            sys::nftnl_set_set_u32(s.0.as_ptr(), sys::NFTNL_SET_KEY_LEN as u16, IFNAMSIZ as u32);
            sys::nftnl_set_set_u32(s.0.as_ptr(), sys::NFTNL_SET_DATA_TYPE as u16, libc::NFT_DATA_VERDICT);
            sys::nftnl_set_set_u32(s.0.as_ptr(), sys::NFTNL_SET_DATA_LEN as u16, 0);
            sys::nftnl_set_set_u32(s.0.as_ptr(), sys::NFTNL_SET_ID as u16, self.id);
            // What nft itself stores (key byte order: host, as for interface names), so that
            // `nft list` prints the keys as names.
            sys::nftnl_set_set_data(s.0.as_ptr(), sys::NFTNL_SET_USERDATA as u16, SET_UDATA.as_ptr().cast(), SET_UDATA.len() as u32);
            let h = sys::nftnl_nlmsg_build_hdr(buf.cast::<c_char>(), ty as u16, NFPROTO_INET, flags as u16, seq);
            sys::nftnl_set_nlmsg_build_payload(h, s.0.as_ptr());
        }
    }
}

/// Elements of a verdict map: interface name → `jump CHAIN` (the chain is ignored on delete).
pub struct MapElems {
    pub table: CString,
    pub set: CString,
    pub elems: Vec<([u8; IFNAMSIZ], CString)>,
}

/// An interface name as a map key: NUL-padded to IFNAMSIZ.
pub fn ifname_key(name: &str) -> [u8; IFNAMSIZ] {
    let mut k = [0u8; IFNAMSIZ];
    let b = name.as_bytes();
    k[..b.len().min(IFNAMSIZ - 1)].copy_from_slice(&b[..b.len().min(IFNAMSIZ - 1)]);
    k
}

// SAFETY: as for VerdictMap, one message into a buffer of nft_nlmsg_maxsize() bytes.
unsafe impl NlMsg for MapElems {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, msg_type: MsgType) {
        let s = SetHandle::new(&self.table, &self.set);
        for (key, chain) in &self.elems {
            // SAFETY: allocation; the element is handed over to the set, which frees it.
            let e = unsafe { sys::nftnl_set_elem_alloc() };
            assert!(!e.is_null(), "nftnl_set_elem_alloc: out of memory");
            // SAFETY: `e` is valid; key and chain are copied by nftnl.
            unsafe {
                sys::nftnl_set_elem_set(e, sys::NFTNL_SET_ELEM_KEY as u16, key.as_ptr().cast(), IFNAMSIZ as u32);
                if msg_type == MsgType::Add {
                    sys::nftnl_set_elem_set_u32(e, sys::NFTNL_SET_ELEM_VERDICT as u16, libc::NFT_JUMP as u32);
                    sys::nftnl_set_elem_set_str(e, sys::NFTNL_SET_ELEM_CHAIN as u16, chain.as_ptr());
                }
                sys::nftnl_set_elem_add(s.0.as_ptr(), e);
            }
        }
        let (ty, flags) = match msg_type {
            MsgType::Add => (libc::NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE | libc::NLM_F_ACK),
            MsgType::Del => (libc::NFT_MSG_DELSETELEM, libc::NLM_F_ACK),
        };
        // SAFETY: `buf` is large enough per the NlMsg contract; `s` is valid.
        unsafe {
            let h = sys::nftnl_nlmsg_build_hdr(buf.cast::<c_char>(), ty as u16, NFPROTO_INET, flags as u16, seq);
            sys::nftnl_set_elems_nlmsg_build_payload(h, s.0.as_ptr());
        }
    }
}

/// A netfilter netlink socket.
pub struct NlSocket(OwnedFd);

/// A receive buffer aligned for `nlmsghdr`.
pub struct AlignedBuf(Vec<u64>);

impl AlignedBuf {
    pub fn new(bytes: usize) -> AlignedBuf {
        AlignedBuf(vec![0u64; bytes.div_ceil(8)])
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.0.len() * 8;
        // SAFETY: a Vec<u64> is a valid, initialised, writable region of len bytes; u8 has no
        // alignment requirement and the borrow of self covers the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), len) }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: a Vec<u64> is valid, initialised memory of len*8 bytes; u8 has no alignment
        // requirement and the slice borrows self.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), self.0.len() * 8) }
    }

    fn ptr(&self) -> *const u8 {
        self.0.as_ptr().cast::<u8>()
    }
}

/// One message of a received buffer: its type, offset and length.
#[derive(Clone, Copy, Debug)]
pub struct MsgHeader {
    pub ty: u16,
    pub offset: usize,
    pub len: usize,
}

/// Splits `n` received bytes into message headers.
pub fn split_messages(buf: &[u8], n: usize) -> Vec<MsgHeader> {
    let mut out = vec![];
    let mut off = 0;
    while off + 16 <= n {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
        if len < 16 || off + len > n {
            break;
        }
        let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2 bytes"));
        out.push(MsgHeader { ty, offset: off, len });
        off += len.div_ceil(4) * 4;
    }
    out
}

/// Clears NLM_F_ACK on every message of a batch buffer.
pub fn clear_ack_flags(buf: &mut [u8]) {
    for m in split_messages(buf, buf.len()) {
        let f = u16::from_ne_bytes([buf[m.offset + 6], buf[m.offset + 7]]) & !(libc::NLM_F_ACK as u16);
        buf[m.offset + 6..m.offset + 8].copy_from_slice(&f.to_ne_bytes());
    }
}

/// Turns the messages at positions `which` (counting from the first message after the
/// batch-begin message) from "append" into "replace the rule with this handle".
pub fn set_replace_flags(buf: &mut [u8], which: &[usize]) {
    let msgs = split_messages(buf, buf.len());
    for i in which {
        if let Some(m) = msgs.get(i + 1) {
            let f = u16::from_ne_bytes([buf[m.offset + 6], buf[m.offset + 7]]);
            let f = (f & !((libc::NLM_F_APPEND | libc::NLM_F_EXCL) as u16)) | libc::NLM_F_REPLACE as u16;
            buf[m.offset + 6..m.offset + 8].copy_from_slice(&f.to_ne_bytes());
        }
    }
}

/// The error code of an NLMSG_ERROR message (0 = ack) and the sequence number it answers.
pub fn error_of(buf: &[u8], m: &MsgHeader) -> Option<(i32, u32)> {
    if m.ty != libc::NLMSG_ERROR as u16 || m.len < 16 + 4 + 16 {
        return None;
    }
    let p = m.offset + 16;
    let err = i32::from_ne_bytes(buf[p..p + 4].try_into().expect("4 bytes"));
    let seq = u32::from_ne_bytes(buf[p + 4 + 8..p + 4 + 12].try_into().expect("4 bytes"));
    Some((err, seq))
}

impl NlSocket {
    /// Opens a socket with send and receive buffers of at least `buf` bytes.
    pub fn open(buf: usize) -> io::Result<NlSocket> {
        let fd = socket::socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)?;
        socket::bind(fd.as_fd().as_raw_fd_compat(), &NetlinkAddr::new(0, 0))?;
        let size = buf.max(1 << 20);
        // Forcing needs CAP_NET_ADMIN (the daemon has it); fall back to the capped setting.
        if socket::setsockopt(&fd, sockopt::SndBufForce, &size).is_err() {
            socket::setsockopt(&fd, sockopt::SndBuf, &size)?;
        }
        if socket::setsockopt(&fd, sockopt::RcvBufForce, &size).is_err() {
            socket::setsockopt(&fd, sockopt::RcvBuf, &size)?;
        }
        // The kernel answers at once; a silent socket must never wedge the daemon.
        socket::setsockopt(&fd, sockopt::ReceiveTimeout, &nix::sys::time::TimeVal::new(10, 0))?;
        Ok(NlSocket(fd))
    }

    /// Grows the send and receive buffers to at least `size` bytes.
    pub fn ensure_buffers(&self, size: usize) -> io::Result<()> {
        let fd = self.0.as_fd();
        if socket::getsockopt(&fd, sockopt::SndBuf)? < size {
            if socket::setsockopt(&fd, sockopt::SndBufForce, &size).is_err() {
                socket::setsockopt(&fd, sockopt::SndBuf, &size)?;
            }
            if socket::setsockopt(&fd, sockopt::RcvBufForce, &size).is_err() {
                socket::setsockopt(&fd, sockopt::RcvBuf, &size)?;
            }
        }
        Ok(())
    }

    /// Drops whatever is queued on the socket.
    pub fn discard_pending(&self) -> io::Result<()> {
        let mut b = AlignedBuf::new(1 << 16);
        while self.recv_nowait(&mut b)?.is_some() {}
        Ok(())
    }

    /// Sends `data` in one message (a batch must reach the kernel whole).
    pub fn send(&self, data: &[u8]) -> io::Result<()> {
        let kernel = NetlinkAddr::new(0, 0);
        let n = socket::sendto(self.0.as_fd().as_raw_fd_compat(), data, &kernel, MsgFlags::empty())?;
        if n != data.len() {
            return Err(io::Error::other(format!("netlink sent {n} of {} bytes", data.len())));
        }
        Ok(())
    }

    pub fn recv(&self, buf: &mut AlignedBuf) -> io::Result<usize> {
        Ok(socket::recv(self.0.as_fd().as_raw_fd_compat(), buf.bytes_mut(), MsgFlags::empty())?)
    }

    /// Receives what is already queued; `None` once the socket is empty.
    pub fn recv_nowait(&self, buf: &mut AlignedBuf) -> io::Result<Option<usize>> {
        match socket::recv(self.0.as_fd().as_raw_fd_compat(), buf.bytes_mut(), MsgFlags::MSG_DONTWAIT) {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(nix::errno::Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

trait RawFdCompat {
    fn as_raw_fd_compat(&self) -> std::os::fd::RawFd;
}

impl RawFdCompat for std::os::fd::BorrowedFd<'_> {
    fn as_raw_fd_compat(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

/// Builds a dump request (`NLM_F_DUMP`) of rules (of `chain`, or of the whole table) or of the
/// elements of map `set`, into `buf`; returns its length.
pub fn dump_request(buf: &mut AlignedBuf, seq: u32, table: &CStr, what: DumpWhat<'_>) -> usize {
    let b = buf.bytes_mut().as_mut_ptr().cast::<c_char>();
    let flags = (libc::NLM_F_DUMP | libc::NLM_F_ACK) as u16;
    match what {
        DumpWhat::Rules(chain) => {
            // SAFETY: allocation; NULL only on OOM.
            let r = unsafe { sys::nftnl_rule_alloc() };
            assert!(!r.is_null(), "nftnl_rule_alloc: out of memory");
            // SAFETY: `r` is valid; strings are copied; `b` has room for one message.
            unsafe {
                sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
                if let Some(c) = chain {
                    sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_CHAIN as u16, c.as_ptr());
                }
                let h = sys::nftnl_nlmsg_build_hdr(b, libc::NFT_MSG_GETRULE as u16, NFPROTO_INET, flags, seq);
                sys::nftnl_rule_nlmsg_build_payload(h, r);
                sys::nftnl_rule_free(r);
                (*h).nlmsg_len as usize
            }
        }
        DumpWhat::MapElems(set) => {
            let s = SetHandle::new(table, set);
            // SAFETY: `b` has room for one message; `s` is valid.
            unsafe {
                let h = sys::nftnl_nlmsg_build_hdr(b, libc::NFT_MSG_GETSETELEM as u16, NFPROTO_INET, flags, seq);
                sys::nftnl_set_elems_nlmsg_build_payload(h, s.0.as_ptr());
                (*h).nlmsg_len as usize
            }
        }
    }
}

pub enum DumpWhat<'a> {
    Rules(Option<&'a CStr>),
    MapElems(&'a CStr),
}

/// Parses one NEWSETELEM message of a dump into (interface name, chain) pairs.
pub fn parse_map_elems(buf: &AlignedBuf, m: &MsgHeader) -> Vec<(String, String)> {
    // SAFETY: the buffer is aligned and `m` lies inside the received bytes (split_messages).
    let nlh = unsafe { buf.ptr().add(m.offset).cast::<libc::nlmsghdr>() };
    // SAFETY: allocation; NULL only on OOM.
    let s = unsafe { sys::nftnl_set_alloc() };
    assert!(!s.is_null(), "nftnl_set_alloc: out of memory");
    let mut out = vec![];
    // SAFETY: `nlh` is a complete kernel message; `s` is valid and freed with its elements.
    unsafe {
        if sys::nftnl_set_elems_nlmsg_parse(nlh.cast(), s) >= 0 {
            let it = sys::nftnl_set_elems_iter_create(s);
            if !it.is_null() {
                loop {
                    let e = sys::nftnl_set_elems_iter_next(it);
                    if e.is_null() {
                        break;
                    }
                    let mut klen = 0u32;
                    let k = sys::nftnl_set_elem_get(e, sys::NFTNL_SET_ELEM_KEY as u16, &mut klen);
                    let c = sys::nftnl_set_elem_get_str(e, sys::NFTNL_SET_ELEM_CHAIN as u16);
                    if !k.is_null() {
                        let key = std::slice::from_raw_parts(k.cast::<u8>(), klen as usize);
                        let name = String::from_utf8_lossy(key.split(|b| *b == 0).next().unwrap_or(key)).into_owned();
                        let chain = if c.is_null() { String::new() } else { CStr::from_ptr(c).to_string_lossy().into_owned() };
                        out.push((name, chain));
                    }
                }
                sys::nftnl_set_elems_iter_destroy(it);
            }
        }
        sys::nftnl_set_free(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_keys_are_padded() {
        let k = ifname_key("hv01234567");
        assert_eq!(&k[..10], b"hv01234567");
        assert!(k[10..].iter().all(|b| *b == 0));
    }
}
