//! [`FirewallOps`] against the kernel: each call of `apply` is one nftables transaction sent as
//! a single netlink message, so the kernel applies all of it or none of it.

use std::ffi::CString;
use std::time::Instant;

use nftnl::{Batch, Chain, ChainType, Hook, MsgType, Policy, ProtoFamily, Rule, Table};
use tracing::debug;

use super::sys::{self, AlignedBuf, DumpWhat, MapElems, NlSocket, VerdictMap};
use super::{FirewallOps, KernelRule, TableDump};
use crate::compile::{BaseHook, EGRESS_MAP, INGRESS_MAP, Op, TABLE};
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

    /// Builds the batch; `replaces` receives the positions of messages that must carry
    /// NLM_F_REPLACE (nftnl cannot set it).
    fn build(ops: &[Op], replaces: &mut Vec<usize>) -> (Batch, Vec<usize>) {
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
                Op::DelChain(n) => batch.add(&Chain::new(cs(n), &table), MsgType::Del),
                Op::FlushChain(n) => {
                    let chain = Chain::new(cs(n), &table);
                    batch.add(&Rule::new(&chain), MsgType::Del);
                }
                Op::AddMap(m) => batch.add(
                    &VerdictMap {
                        table: cs(TABLE),
                        name: cs(m),
                        id: if *m == EGRESS_MAP {
                            1
                        } else if *m == INGRESS_MAP {
                            2
                        } else {
                            3
                        },
                    },
                    MsgType::Add,
                ),
                Op::AddMapElem { map, ifname, chain } => {
                    batch.add(&MapElems { table: cs(TABLE), set: cs(map), elems: vec![(sys::ifname_key(ifname), cs(chain))] }, MsgType::Add)
                }
                Op::DelMapElem { map, ifname } => {
                    batch.add(&MapElems { table: cs(TABLE), set: cs(map), elems: vec![(sys::ifname_key(ifname), cs(""))] }, MsgType::Del)
                }
                Op::AddRule { chain, rule, after } => {
                    let c = Chain::new(cs(chain), &table);
                    let mut r = Rule::new(&c);
                    for e in &rule.exprs {
                        super::encode::add(&mut r, e);
                    }
                    r.set_comment(cs(&rule.comment)).expect("comments are short");
                    if let Some(h) = after {
                        r.set_position(*h);
                    }
                    batch.add(&r, MsgType::Add);
                }
                Op::DelRule { chain, handle } => {
                    let c = Chain::new(cs(chain), &table);
                    let mut r = Rule::new(&c);
                    r.set_handle(*handle);
                    batch.add(&r, MsgType::Del);
                }
                Op::ReplaceRule { chain, handle, rule } => {
                    let c = Chain::new(cs(chain), &table);
                    let mut r = Rule::new(&c);
                    for e in &rule.exprs {
                        super::encode::add(&mut r, e);
                    }
                    r.set_comment(cs(&rule.comment)).expect("comments are short");
                    r.set_handle(*handle);
                    replaces.push(seq_to_op.len());
                    batch.add(&r, MsgType::Add);
                }
            }
            seq_to_op.push(i);
        }
        (batch, seq_to_op)
    }

    /// Runs one dump request and collects its messages.
    fn dump_with<T>(&self, what: DumpWhat<'_>, mut each: impl FnMut(&AlignedBuf, &sys::MsgHeader, &mut Vec<T>)) -> Result<Option<Vec<T>>> {
        self.with_socket(1 << 20, |sock| Self::dump_on(sock, what, &mut each))
    }

    fn dump_on<T>(
        sock: &NlSocket,
        what: DumpWhat<'_>,
        each: &mut impl FnMut(&AlignedBuf, &sys::MsgHeader, &mut Vec<T>),
    ) -> Result<Option<Vec<T>>> {
        let mut buf = AlignedBuf::new(1 << 16);
        let seq = 1;
        let len = sys::dump_request(&mut buf, seq, &cs(TABLE), what);
        sock.send(&buf.bytes_mut()[..len]).map_err(nft_err("dump request"))?;
        let mut out = vec![];
        let mut rbuf = AlignedBuf::new(1 << 20);
        loop {
            let n = sock.recv(&mut rbuf).map_err(nft_err("dump"))?;
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
                each(&rbuf, m, &mut out);
            }
            if msgs.is_empty() {
                return Ok(Some(out));
            }
        }
    }

    fn map(&self, name: &str) -> Result<Option<std::collections::BTreeMap<String, String>>> {
        let name = cs(name);
        Ok(self.dump_with(DumpWhat::MapElems(&name), |b, m, out| out.extend(sys::parse_map_elems(b, m)))?.map(|v| v.into_iter().collect()))
    }
}

impl FirewallOps for NftFirewall {
    fn apply(&self, ops: &[Op]) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let t = Instant::now();
        let mut replaces = vec![];
        let (batch, seq_to_op) = Self::build(ops, &mut replaces);
        let batch = batch.finalize();
        let seqs = batch.sequence_numbers();
        let mut bytes: Vec<u8> = batch.iter().flat_map(|page| page.iter().copied()).collect();
        let built_us = t.elapsed().as_micros() as u64;
        // Errors are reported whether or not an acknowledgement was asked for; asking for one per
        // message (as nftnl does) floods the socket on large batches. Only errors come back now.
        sys::clear_ack_flags(&mut bytes);
        // Message i after the batch-begin message is op i.
        sys::set_replace_flags(&mut bytes, &replaces);
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
        let Some(rules) = self.dump_with(DumpWhat::Rules(None), |b, m, out| {
            if let Some(r) = super::parse::rule(&b.bytes()[m.offset + 16..m.offset + m.len]) {
                out.push(r)
            }
        })?
        else {
            return Ok(None);
        };
        let mut d = TableDump::default();
        for r in rules {
            d.chains.entry(r.chain).or_default().push(KernelRule {
                handle: r.handle,
                comment: r.comment,
                packets: r.packets,
                bytes: r.bytes,
            });
        }
        for m in [EGRESS_MAP, INGRESS_MAP] {
            if let Some(elems) = self.map(m)? {
                d.maps.insert(m.to_string(), elems);
            }
        }
        Ok(Some(d))
    }

    fn chain(&self, name: &str) -> Result<Vec<KernelRule>> {
        let c = cs(name);
        let rules = self.dump_with(DumpWhat::Rules(Some(&c)), |b, m, out| {
            if let Some(r) = super::parse::rule(&b.bytes()[m.offset + 16..m.offset + m.len]) {
                out.push(r)
            }
        })?;
        Ok(rules
            .unwrap_or_default()
            .into_iter()
            .map(|r| KernelRule { handle: r.handle, comment: r.comment, packets: r.packets, bytes: r.bytes })
            .collect())
    }
}
