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

#[derive(Default)]
pub struct NftFirewall;

fn cs(s: &str) -> CString {
    CString::new(s).expect("no NUL in names")
}

fn nft_err(what: &'static str) -> impl FnOnce(std::io::Error) -> NetError {
    move |source| NetError::Nft { what, source }
}

impl NftFirewall {
    pub fn new() -> Self {
        NftFirewall
    }

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
            }
            seq_to_op.push(i);
        }
        (batch, seq_to_op)
    }

    /// Runs one dump request and collects its messages.
    fn dump_with<T>(&self, what: DumpWhat<'_>, mut each: impl FnMut(&AlignedBuf, &sys::MsgHeader, &mut Vec<T>)) -> Result<Option<Vec<T>>> {
        let sock = NlSocket::open(1 << 20).map_err(nft_err("socket"))?;
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
        let (batch, seq_to_op) = Self::build(ops);
        let batch = batch.finalize();
        let seqs = batch.sequence_numbers();
        let bytes: Vec<u8> = batch.iter().flat_map(|page| page.iter().copied()).collect();
        let sock = NlSocket::open(bytes.len() + (1 << 20) + 64 * ops.len()).map_err(nft_err("socket"))?;
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
        if let Some((err, seq)) = first_error {
            // Message seqs count from the batch-begin message, which precedes the ops.
            let op = seq.checked_sub(seqs.start + 1).and_then(|i| seq_to_op.get(i as usize)).and_then(|i| ops.get(*i));
            let source = std::io::Error::other(format!("{} (at {op:?})", std::io::Error::from_raw_os_error(-err)));
            return Err(NetError::Rejected { ops: ops.len(), source });
        }
        debug!(ops = ops.len(), bytes = bytes.len(), elapsed_us = t.elapsed().as_micros() as u64, "nftables transaction applied");
        Ok(())
    }

    fn dump(&self) -> Result<Option<TableDump>> {
        let Some(rules) = self.dump_with(DumpWhat::Rules(None), |b, m, out| {
            if let Some(r) = sys::parse_rule(b, m) {
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
            if let Some(r) = sys::parse_rule(b, m) {
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
