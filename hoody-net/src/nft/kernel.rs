//! [`FirewallOps`] against the kernel: each call of `apply` is one nftables transaction sent as
//! a single netlink message, so the kernel applies all of it or none of it.

use std::ffi::CString;
use std::time::Instant;

use nftnl::{Batch, Chain, ChainType, Hook, MsgType, Policy, ProtoFamily, Rule, Table};
use tracing::debug;

use super::sys::{self, AlignedBuf, DumpWhat, Elems, NlSocket, SetDef, SetSpec};
use super::{FirewallOps, KernelElem, KernelRule, TableDump};
use crate::compile::{self, BaseHook, Op, SetKind, TABLE, set_id};
use crate::error::{NetError, Result};

/// Priority of our base chains: just before the default filter priority, so our drops happen
/// whatever other tables accept.
const FILTER_PRIORITY: i32 = -5;
const SRCNAT_PRIORITY: i32 = 100;
/// Before routing, so the mark counts for the routing decision.
const MANGLE_PRIORITY: i32 = -150;

/// The kernel firewall. It keeps one netlink socket for its whole life: closing a netfilter
/// socket makes the kernel finish pending rule destruction first (an RCU grace period, 10–20 ms
/// here), so a socket per call would make every removal that slow.
#[derive(Default)]
pub struct NftFirewall {
    sock: std::sync::Mutex<Option<NlSocket>>,
}

fn cs(s: &str) -> CString {
    CString::new(s).expect("no NUL in names")
}

const TYPE_IPV4: u32 = 7;
/// A 32-bit integer (nft's `mark`): the region kind in front of a shard set's key.
const TYPE_MARK: u32 = 19;
const TYPE_INET_PROTO: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
const TYPE_IFNAME: u32 = 41;
const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_MAP: u32 = 0x8;
const NFT_SET_TIMEOUT: u32 = 0x10;
const NFT_SET_EVAL: u32 = 0x20;
const NFT_SET_CONCAT: u32 = 0x80;

/// nft's type id of a concatenation.
fn concat(types: &[u32]) -> u32 {
    types.iter().fold(0, |acc, t| (acc << 6) | t)
}

/// How each kind of set is declared (what `nft` itself sends for the same declaration).
fn spec(kind: SetKind) -> SetSpec {
    let base = SetSpec {
        flags: 0,
        key_type: TYPE_IPV4,
        key_len: 4,
        verdict_map: false,
        concat: &[],
        timeout_ms: None,
        size: None,
        counter: false,
        udata: &[],
    };
    match kind {
        SetKind::IfAddr => SetSpec { key_type: concat(&[TYPE_IFNAME, TYPE_IPV4]), key_len: 20, ..base },
        SetKind::IfCounted => SetSpec { key_type: TYPE_IFNAME, key_len: 16, counter: true, udata: &sys::UDATA_HOST_KEY, ..base },
        SetKind::AddrCounted => SetSpec { counter: true, ..base },
        SetKind::Addr => base,
        SetKind::Meter => SetSpec { flags: NFT_SET_TIMEOUT | NFT_SET_EVAL, timeout_ms: Some(60_000), size: Some(65_535), ..base },
        SetKind::Regions => SetSpec {
            // Timeouts for the learned addresses of rules by name.
            flags: NFT_SET_INTERVAL | NFT_SET_CONCAT | NFT_SET_TIMEOUT,
            key_type: concat(&[TYPE_MARK, TYPE_IPV4, TYPE_IPV4, TYPE_INET_PROTO, TYPE_INET_SERVICE]),
            key_len: 20,
            concat: &[4, 4, 4, 1, 2],
            counter: true,
            ..base
        },
        SetKind::Points => {
            SetSpec { key_type: concat(&[TYPE_IPV4, TYPE_IPV4, TYPE_INET_PROTO, TYPE_INET_SERVICE]), key_len: 16, counter: true, ..base }
        }
        SetKind::ShardMap => SetSpec { flags: NFT_SET_MAP, verdict_map: true, ..base },
        SetKind::LearnedPoints => SetSpec {
            flags: NFT_SET_TIMEOUT,
            key_type: concat(&[TYPE_IPV4, TYPE_IPV4, TYPE_INET_PROTO, TYPE_INET_SERVICE]),
            key_len: 16,
            counter: true,
            ..base
        },
    }
}

/// A dump's request and answer buffers, reused across the dumps of one session.
struct DumpBufs {
    req: AlignedBuf,
    answer: AlignedBuf,
}

impl DumpBufs {
    fn new() -> DumpBufs {
        DumpBufs { req: AlignedBuf::new(1 << 16), answer: AlignedBuf::new(1 << 20) }
    }
}

fn nft_err(what: &'static str) -> impl FnOnce(std::io::Error) -> NetError {
    move |source| NetError::Nft { what, source }
}

impl NftFirewall {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` with the persistent socket (opened on first use, in the caller's network
    /// namespace), with send and receive buffers of at least `buf` bytes.
    fn with_socket<T>(&self, buf: usize, f: impl FnOnce(&NlSocket) -> Result<T>) -> Result<T> {
        let mut guard = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(NlSocket::open(buf).map_err(nft_err("socket"))?);
        }
        let sock = guard.as_ref().expect("just opened");
        sock.ensure_buffers(buf).map_err(nft_err("socket buffers"))?;
        // Leftovers of an interrupted exchange must not be read as this one's answers.
        sock.discard_pending().map_err(nft_err("socket"))?;
        let r = f(sock);
        if r.is_err() {
            // A failed exchange may leave the socket mid-dump: start afresh next time.
            *guard = None;
        }
        r
    }

    /// Builds the batch.
    fn build(ops: &[Op]) -> (Batch, Vec<usize>) {
        let table = Table::new(cs(TABLE), ProtoFamily::Inet);
        let mut batch = Batch::new();
        // The batch's sequence numbers map back to the op that produced each message.
        let mut seq_to_op = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::AddTable => batch.add(&table, MsgType::Add),
                Op::DelTable => batch.add(&table, MsgType::Del),
                Op::AddBaseChain { name, hook } => {
                    let mut c = Chain::new(cs(name), &table);
                    let (h, prio, ty) = match hook {
                        BaseHook::Forward => (Hook::Forward, FILTER_PRIORITY, ChainType::Filter),
                        BaseHook::Input => (Hook::In, FILTER_PRIORITY, ChainType::Filter),
                        BaseHook::Output => (Hook::Out, FILTER_PRIORITY, ChainType::Filter),
                        BaseHook::Postrouting => (Hook::PostRouting, SRCNAT_PRIORITY, ChainType::Nat),
                        BaseHook::Prerouting => (Hook::PreRouting, MANGLE_PRIORITY, ChainType::Filter),
                    };
                    c.set_hook(h, prio);
                    c.set_type(ty);
                    c.set_policy(Policy::Accept);
                    batch.add(&c, MsgType::Add);
                }
                Op::AddChain(n) => batch.add(&Chain::new(cs(n), &table), MsgType::Add),
                Op::AddSet { name, kind } => {
                    batch.add(&SetDef { table: cs(TABLE), name: cs(name), id: set_id(name), spec: spec(*kind) }, MsgType::Add)
                }
                Op::AddElems { set, elems } => batch.add(&Elems { table: cs(TABLE), set: cs(set), elems, get: false }, MsgType::Add),
                Op::DelElems { set, elems } => batch.add(&Elems { table: cs(TABLE), set: cs(set), elems, get: false }, MsgType::Del),
                Op::AddRule { chain, rule } => {
                    let c = Chain::new(cs(chain), &table);
                    let mut r = Rule::new(&c);
                    for e in &rule.exprs {
                        super::encode::add(&mut r, e);
                    }
                    r.set_comment(cs(&rule.comment)).expect("comments are short");
                    batch.add(&r, MsgType::Add);
                }
            }
            seq_to_op.push(i);
        }
        (batch, seq_to_op)
    }

    /// Runs one dump request and collects its messages.
    fn dump_with<T>(&self, what: DumpWhat<'_>, mut each: impl FnMut(&AlignedBuf, &sys::MsgHeader, &mut Vec<T>)) -> Result<Option<Vec<T>>> {
        self.with_socket(1 << 20, |sock| Self::dump_on(sock, what, &mut each, &mut DumpBufs::new()))
    }

    fn dump_on<T>(
        sock: &NlSocket,
        what: DumpWhat<'_>,
        each: &mut impl FnMut(&AlignedBuf, &sys::MsgHeader, &mut Vec<T>),
        bufs: &mut DumpBufs,
    ) -> Result<Option<Vec<T>>> {
        let DumpBufs { req: buf, answer: rbuf } = bufs;
        let seq = 1;
        let len = sys::dump_request(buf, seq, &cs(TABLE), what);
        sock.send(&buf.bytes_mut()[..len]).map_err(nft_err("dump request"))?;
        let mut out = vec![];
        loop {
            let n = sock.recv(rbuf).map_err(nft_err("dump"))?;
            let msgs = sys::split_messages(rbuf.bytes_mut(), n);
            for m in &msgs {
                if m.ty == libc::NLMSG_DONE as u16 {
                    return Ok(Some(out));
                }
                if let Some((err, _)) = sys::error_of(rbuf.bytes_mut(), m) {
                    if err == 0 {
                        continue;
                    }
                    if -err == libc::ENOENT {
                        return Ok(None);
                    }
                    return Err(NetError::Nft { what: "dump", source: std::io::Error::from_raw_os_error(-err) });
                }
                each(rbuf, m, &mut out);
            }
            if msgs.is_empty() {
                return Ok(Some(out));
            }
        }
    }

    fn rules(&self, chain: Option<&str>) -> Result<Option<Vec<super::parse::ParsedRule>>> {
        let c = chain.map(cs);
        self.dump_with(DumpWhat::Rules(c.as_deref()), |b, m, out| {
            if let Some(r) = super::parse::rule(&b.bytes()[m.offset + 16..m.offset + m.len]) {
                out.push(r)
            }
        })
    }
}

impl FirewallOps for NftFirewall {
    fn apply(&self, ops: &[Op]) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let t = Instant::now();
        let (batch, seq_to_op) = Self::build(ops);
        let batch = batch.finalize();
        let seqs = batch.sequence_numbers();
        let mut bytes: Vec<u8> = batch.iter().flat_map(|page| page.iter().copied()).collect();
        let built_us = t.elapsed().as_micros() as u64;
        // Errors are reported whether or not an acknowledgement was asked for; asking for one per
        // message (as nftnl does) floods the socket on large batches. Only errors come back now.
        sys::clear_ack_flags(&mut bytes);
        let first_error = self.with_socket(bytes.len() + (1 << 20), |sock| {
            sock.send(&bytes).map_err(|source| NetError::Rejected { ops: ops.len(), source })?;
            // The kernel handles the batch inside sendmsg: every answer is queued by now.
            let mut first_error: Option<(i32, u32)> = None;
            let mut rbuf = AlignedBuf::new(1 << 20);
            while let Some(n) = sock.recv_nowait(&mut rbuf).map_err(nft_err("transaction answer"))? {
                for m in &sys::split_messages(rbuf.bytes_mut(), n) {
                    if let Some((err, seq)) = sys::error_of(rbuf.bytes_mut(), m)
                        && err != 0
                        && first_error.is_none()
                    {
                        first_error = Some((err, seq));
                    }
                }
            }
            Ok(first_error)
        })?;
        if let Some((err, seq)) = first_error {
            // Message seqs count from the batch-begin message, which precedes the ops.
            let op = seq.checked_sub(seqs.start + 1).and_then(|i| seq_to_op.get(i as usize)).and_then(|i| ops.get(*i));
            let source = std::io::Error::other(format!("{} (at {op:?})", std::io::Error::from_raw_os_error(-err)));
            return Err(NetError::Rejected { ops: ops.len(), source });
        }
        debug!(ops = ops.len(), bytes = bytes.len(), built_us, elapsed_us = t.elapsed().as_micros() as u64, "nftables transaction applied");
        Ok(())
    }

    fn dump(&self) -> Result<Option<TableDump>> {
        // A rule dump filtered by a table that does not exist answers nothing, not ENOENT; our
        // table always has rules, so none means there is nothing to read.
        let rules = self.rules(None)?.unwrap_or_default();
        if rules.is_empty() {
            return Ok(None);
        }
        let mut d = TableDump::default();
        for r in rules {
            d.chains.entry(r.chain).or_default().push(KernelRule {
                handle: r.handle,
                comment: r.comment,
                packets: r.packets,
                bytes: r.bytes,
            });
        }
        // Every set in one session on the socket (a few syscalls per set, not a set-up each).
        self.with_socket(1 << 20, |sock| {
            let mut each = |b: &AlignedBuf, m: &sys::MsgHeader, out: &mut Vec<KernelElem>| {
                out.extend(super::parse::set_elems(&b.bytes()[m.offset + 16..m.offset + m.len]))
            };
            let mut bufs = DumpBufs::new();
            // Shard sets of as many shards as the table has chains for.
            for (set, _) in compile::sets(compile::MAX_SHARDS) {
                let shard_chain = set.strip_prefix("sh").map(|n| format!("es{n}"));
                if shard_chain.is_some_and(|c| !d.chains.contains_key(&c)) {
                    continue;
                }
                let name = cs(&set);
                if let Some(elems) = Self::dump_on(sock, DumpWhat::SetElems(&name), &mut each, &mut bufs)? {
                    d.sets.insert(set, elems);
                }
            }
            Ok(())
        })?;
        Ok(Some(d))
    }

    fn set_elems(&self, set: &str) -> Result<Option<Vec<KernelElem>>> {
        let name = cs(set);
        self.dump_with(DumpWhat::SetElems(&name), |b, m, out| {
            out.extend(super::parse::set_elems(&b.bytes()[m.offset + 16..m.offset + m.len]))
        })
    }

    fn get_elems(&self, set: &str, probes: &[crate::compile::Elem]) -> Result<Vec<KernelElem>> {
        let (table, name) = (cs(TABLE), cs(set));
        self.with_socket(1 << 20, |sock| {
            let mut found = vec![];
            let mut buf = AlignedBuf::new(1 << 16);
            let mut rbuf = AlignedBuf::new(1 << 16);
            for (i, probe) in probes.iter().enumerate() {
                let len = sys::get_elem_request(&mut buf, i as u32 + 1, &table, &name, probe);
                sock.send(&buf.bytes_mut()[..len]).map_err(nft_err("element lookup"))?;
                // Answers: the element (if it exists), then the acknowledgement or an error.
                'answer: loop {
                    let n = sock.recv(&mut rbuf).map_err(nft_err("element lookup"))?;
                    let msgs = sys::split_messages(rbuf.bytes_mut(), n);
                    if msgs.is_empty() {
                        break;
                    }
                    for m in &msgs {
                        if let Some((err, _)) = sys::error_of(rbuf.bytes_mut(), m) {
                            if err == 0 || -err == libc::ENOENT {
                                break 'answer;
                            }
                            return Err(NetError::Nft { what: "element lookup", source: std::io::Error::from_raw_os_error(-err) });
                        }
                        found.extend(super::parse::set_elems(&rbuf.bytes()[m.offset + 16..m.offset + m.len]));
                    }
                }
            }
            Ok(found)
        })
    }
}
