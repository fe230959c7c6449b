//! The unsafe corner of the firewall: nftnl-sys calls for what the nftnl crate lacks (sets and
//! their elements, lookups, loads into a chosen register, `log`, `limit`, `update @set`), and the
//! netfilter netlink socket.

use std::ffi::{CStr, CString, c_char, c_void};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use nftnl::expr::Expression;
use nftnl::nftnl_sys as sys;
use nftnl::{MsgType, NlMsg, Rule};

use crate::compile::Elem;
use nix::sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, sockopt};

pub const NFPROTO_INET: u16 = 1;
pub const IFNAMSIZ: usize = 16;

fn alloc_expr(name: &CStr) -> NonNull<sys::nftnl_expr> {
    // SAFETY: `name` is a valid C string; nftnl_expr_alloc returns NULL only on OOM.
    NonNull::new(unsafe { sys::nftnl_expr_alloc(name.as_ptr()) }).expect("nftnl_expr_alloc: out of memory")
}

/// `lookup` of the key starting at register `sreg` in a set: matches when the key is (or,
/// inverted, is not) an element; in a verdict map (`verdict`), the element's verdict is taken
/// (`… vmap @esh`).
pub struct SetLookup {
    pub set: CString,
    pub set_id: u32,
    pub sreg: u32,
    pub invert: bool,
    pub verdict: bool,
}

impl Expression for SetLookup {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"lookup");
        // SAFETY: `e` was just allocated; the string is copied by nftnl.
        unsafe {
            sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_LOOKUP_SREG as u16, self.sreg);
            sys::nftnl_expr_set_str(e.as_ptr(), sys::NFTNL_EXPR_LOOKUP_SET as u16, self.set.as_ptr());
            sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_LOOKUP_SET_ID as u16, self.set_id);
            if self.invert {
                sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_LOOKUP_FLAGS as u16, libc::NFT_LOOKUP_F_INV as u32);
            }
            if self.verdict {
                sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_LOOKUP_DREG as u16, libc::NFT_REG_VERDICT as u32);
            }
        }
        e
    }
}

/// Loads a packet field into a 32-bit register (`NFT_REG32_*`), for concatenated keys.
pub enum Load {
    Meta { key: u32, dreg: u32 },
    Payload { base: u32, offset: u32, len: u32, dreg: u32 },
}

impl Expression for Load {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        match *self {
            Load::Meta { key, dreg } => {
                let e = alloc_expr(c"meta");
                // SAFETY: `e` is valid; plain integer attributes.
                unsafe {
                    sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_META_KEY as u16, key);
                    sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_META_DREG as u16, dreg);
                }
                e
            }
            Load::Payload { base, offset, len, dreg } => {
                let e = alloc_expr(c"payload");
                // SAFETY: `e` is valid; plain integer attributes.
                unsafe {
                    sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_PAYLOAD_BASE as u16, base);
                    sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_PAYLOAD_OFFSET as u16, offset);
                    sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_PAYLOAD_LEN as u16, len);
                    sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_PAYLOAD_DREG as u16, dreg);
                }
                e
            }
        }
    }
}

/// `update @set { <key in register 1> limit rate N/second burst M packets }`: the rule goes on
/// only while this key's rate is within the limit.
pub struct MeterUpdate {
    pub set: CString,
    pub set_id: u32,
    pub per_second: u64,
    pub burst: u32,
}

impl Expression for MeterUpdate {
    fn to_expr(&self, rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let e = alloc_expr(c"dynset");
        let limit = Limit { per_second: self.per_second, burst: self.burst }.to_expr(rule);
        // SAFETY: `e` and `limit` are valid; the set name is copied; the dynset takes ownership
        // of `limit` (freed with it).
        unsafe {
            sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_DYNSET_SREG_KEY as u16, libc::NFT_REG_1 as u32);
            sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_DYNSET_OP as u16, libc::NFT_DYNSET_OP_UPDATE as u32);
            sys::nftnl_expr_set_str(e.as_ptr(), sys::NFTNL_EXPR_DYNSET_SET_NAME as u16, self.set.as_ptr());
            sys::nftnl_expr_set_u32(e.as_ptr(), sys::NFTNL_EXPR_DYNSET_SET_ID as u16, self.set_id);
            sys::nftnl_expr_set(e.as_ptr(), sys::NFTNL_EXPR_DYNSET_EXPR as u16, limit.as_ptr() as *const c_void, 0);
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

/// How a set is declared: flags, key type and length, data, field lengths, timeout, counter.
pub struct SetSpec {
    pub flags: u32,
    pub key_type: u32,
    pub key_len: u32,
    /// `ipv4_addr : verdict` maps.
    pub verdict_map: bool,
    /// Field lengths of a concatenated interval key.
    pub concat: &'static [u8],
    pub timeout_ms: Option<u64>,
    pub size: Option<u32>,
    /// A counter on every element.
    pub counter: bool,
    /// nft's user data (key byte order) so that `nft list` prints the keys readably.
    pub udata: &'static [u8],
}

/// `set NAME { … }` (add only).
pub struct SetDef {
    pub table: CString,
    pub name: CString,
    pub id: u32,
    pub spec: SetSpec,
}

// SAFETY: `write` only writes one netlink message into the caller's buffer, which NlMsg requires
// to be at least nft_nlmsg_maxsize() bytes.
unsafe impl NlMsg for SetDef {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: MsgType) {
        let s = SetHandle::new(&self.table, &self.name);
        let p = s.0.as_ptr();
        let sp = &self.spec;
        // SAFETY: `p` is valid; data is copied by nftnl; `buf` is large enough per the NlMsg
        // contract; the counter expression is handed over to the set, which frees it.
        unsafe {
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FLAGS as u16, sp.flags);
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_TYPE as u16, sp.key_type);
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_LEN as u16, sp.key_len);
            if sp.verdict_map {
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_TYPE as u16, libc::NFT_DATA_VERDICT);
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_LEN as u16, 0);
            }
            if !sp.concat.is_empty() {
                sys::nftnl_set_set_data(p, sys::NFTNL_SET_DESC_CONCAT as u16, sp.concat.as_ptr().cast(), sp.concat.len() as u32);
            }
            if let Some(t) = sp.timeout_ms {
                sys::nftnl_set_set_u64(p, sys::NFTNL_SET_TIMEOUT as u16, t);
            }
            if let Some(n) = sp.size {
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DESC_SIZE as u16, n);
            }
            if sp.counter {
                sys::nftnl_set_add_expr(p, alloc_expr(c"counter").as_ptr());
            }
            if !sp.udata.is_empty() {
                sys::nftnl_set_set_data(p, sys::NFTNL_SET_USERDATA as u16, sp.udata.as_ptr().cast(), sp.udata.len() as u32);
            }
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_ID as u16, self.id);
            let flags = libc::NLM_F_CREATE | libc::NLM_F_ACK;
            let h = sys::nftnl_nlmsg_build_hdr(buf.cast::<c_char>(), libc::NFT_MSG_NEWSET as u16, NFPROTO_INET, flags as u16, seq);
            sys::nftnl_set_nlmsg_build_payload(h, p);
        }
    }
}

/// Set user data: key byte order = host (interface names print as names).
pub const UDATA_HOST_KEY: [u8; 6] = [0, 4, 1, 0, 0, 0];

/// Elements to add to or delete from a set (message type from the batch: add or delete), or
/// (with [`MsgType::Del`] and `get`) to look up.
pub struct Elems<'a> {
    pub table: CString,
    pub set: CString,
    pub elems: &'a [Elem],
    /// A lookup (`NFT_MSG_GETSETELEM`) instead of a change.
    pub get: bool,
}

// SAFETY: as for SetDef, one message into a buffer of nft_nlmsg_maxsize() bytes.
unsafe impl NlMsg for Elems<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, msg_type: MsgType) {
        let s = SetHandle::new(&self.table, &self.set);
        let add = msg_type == MsgType::Add && !self.get;
        for el in self.elems {
            // SAFETY: allocation; the element is handed over to the set, which frees it.
            let e = unsafe { sys::nftnl_set_elem_alloc() };
            assert!(!e.is_null(), "nftnl_set_elem_alloc: out of memory");
            // SAFETY: `e` is valid; keys, chain names and user data are copied by nftnl.
            unsafe {
                sys::nftnl_set_elem_set(e, sys::NFTNL_SET_ELEM_KEY as u16, el.key.as_ptr().cast(), el.key.len() as u32);
                if let Some(end) = &el.key_end {
                    sys::nftnl_set_elem_set(e, sys::NFTNL_SET_ELEM_KEY_END as u16, end.as_ptr().cast(), end.len() as u32);
                }
                if add {
                    if let Some(chain) = &el.goto {
                        let chain = CString::new(chain.as_str()).expect("no NUL in chain names");
                        sys::nftnl_set_elem_set_u32(e, sys::NFTNL_SET_ELEM_VERDICT as u16, libc::NFT_GOTO as u32);
                        sys::nftnl_set_elem_set_str(e, sys::NFTNL_SET_ELEM_CHAIN as u16, chain.as_ptr());
                    }
                    if let Some(ms) = el.timeout_ms {
                        sys::nftnl_set_elem_set_u64(e, sys::NFTNL_SET_ELEM_TIMEOUT as u16, ms);
                    }
                    if let Some(c) = &el.comment {
                        let ud = comment_udata(c);
                        sys::nftnl_set_elem_set(e, sys::NFTNL_SET_ELEM_USERDATA as u16, ud.as_ptr().cast(), ud.len() as u32);
                    }
                }
                sys::nftnl_set_elem_add(s.0.as_ptr(), e);
            }
        }
        let (ty, flags) = match (self.get, msg_type) {
            (true, _) => (libc::NFT_MSG_GETSETELEM, libc::NLM_F_ACK),
            (false, MsgType::Add) => (libc::NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE | libc::NLM_F_ACK),
            (false, MsgType::Del) => (libc::NFT_MSG_DELSETELEM, libc::NLM_F_ACK),
        };
        // SAFETY: `buf` is large enough per the NlMsg contract; `s` is valid.
        unsafe {
            let h = sys::nftnl_nlmsg_build_hdr(buf.cast::<c_char>(), ty as u16, NFPROTO_INET, flags as u16, seq);
            sys::nftnl_set_elems_nlmsg_build_payload(h, s.0.as_ptr());
        }
    }
}

/// An element comment as nft stores it: user data TLV (type 0, length, string with its NUL).
pub fn comment_udata(c: &str) -> Vec<u8> {
    let b = &c.as_bytes()[..c.len().min(250)];
    let mut v = vec![0u8, (b.len() + 1) as u8];
    v.extend_from_slice(b);
    v.push(0);
    v
}

/// An interface name as a key: NUL-padded to IFNAMSIZ.
pub fn ifname_key(name: &str) -> [u8; IFNAMSIZ] {
    let mut k = [0u8; IFNAMSIZ];
    let b = name.as_bytes();
    k[..b.len().min(IFNAMSIZ - 1)].copy_from_slice(&b[..b.len().min(IFNAMSIZ - 1)]);
    k
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

/// Builds a dump request (`NLM_F_DUMP`) of rules (of `chain`, or of the whole table), or of
/// the elements of set `set`, into `buf`; returns its length.
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
        DumpWhat::SetElems(set) => {
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

/// Builds a lookup of one element (`NFT_MSG_GETSETELEM` without dump) into `buf`.
pub fn get_elem_request(buf: &mut AlignedBuf, seq: u32, table: &CStr, set: &CStr, elem: &Elem) -> usize {
    let msg = Elems { table: table.to_owned(), set: set.to_owned(), elems: std::slice::from_ref(elem), get: true };
    let b = buf.bytes_mut();
    // SAFETY: the buffer (64 KiB) is larger than nft_nlmsg_maxsize() as NlMsg requires.
    unsafe { msg.write(b.as_mut_ptr().cast(), seq, MsgType::Del) };
    u32::from_ne_bytes(b[..4].try_into().expect("4 bytes")) as usize
}

pub enum DumpWhat<'a> {
    Rules(Option<&'a CStr>),
    SetElems(&'a CStr),
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
