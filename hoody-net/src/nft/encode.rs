//! Turning compiled expressions into nftnl expressions of a rule (the same instructions `nft`
//! itself emits for `iifname . ip saddr != @ctr`, `ip saddr & 0.0.0.255 vmap @esh`,
//! `ip saddr . ip daddr . meta l4proto . th dport @ea05`, …).

use std::ffi::CString;

use nftnl::Rule;
use nftnl::expr::{
    Bitwise, Cmp, CmpOp, Conntrack, Counter, IcmpCode, Immediate, Masquerade, Meta, NetworkHeaderField, Payload, Register, RejectionType,
    Verdict as NVerdict,
};

use super::sys::{IFNAMSIZ, Load, Log, MeterUpdate, SetLookup, ifname_key};
use crate::compile::{Expr, Field, Verdict, set_id};

fn cstring(s: &str) -> CString {
    CString::new(s).expect("names never contain NUL")
}

const IPV4_SADDR: u32 = 12;
const IPV4_DADDR: u32 = 16;
const TH_DPORT: u32 = 2;

/// Loads `f` into 32-bit register `dreg` (`NFT_REG32_*`).
fn load(f: Field, dreg: u32) -> Load {
    let net = libc::NFT_PAYLOAD_NETWORK_HEADER as u32;
    match f {
        Field::Iifname => Load::Meta { key: libc::NFT_META_IIFNAME as u32, dreg },
        Field::Oifname => Load::Meta { key: libc::NFT_META_OIFNAME as u32, dreg },
        Field::Saddr => Load::Payload { base: net, offset: IPV4_SADDR, len: 4, dreg },
        Field::Daddr => Load::Payload { base: net, offset: IPV4_DADDR, len: 4, dreg },
        Field::L4Proto => Load::Meta { key: libc::NFT_META_L4PROTO as u32, dreg },
        Field::Dport => Load::Payload { base: libc::NFT_PAYLOAD_TRANSPORT_HEADER as u32, offset: TH_DPORT, len: 2, dreg },
    }
}

/// Loads the concatenation of `fields` from register 1 on; returns the first register.
fn load_key(rule: &mut Rule<'_>, fields: &[Field]) -> u32 {
    load_key_from(rule, fields, 0)
}

/// Loads the concatenation of `fields` starting `skip` 32-bit words into register 1.
fn load_key_from(rule: &mut Rule<'_>, fields: &[Field], skip: u32) -> u32 {
    let first = libc::NFT_REG32_00 as u32;
    let mut words = skip;
    for f in fields {
        rule.add_expr(&load(*f, first + words));
        words += (f.key_len() as u32).div_ceil(4);
    }
    first
}

/// `ip saddr|daddr` in `n` (masked unless a /32).
fn addr_in(rule: &mut Rule<'_>, field: nftnl::expr::Ipv4HeaderField, n: &crate::addr::Ipv4Net) {
    rule.add_expr(&Payload::Network(NetworkHeaderField::Ipv4(field)));
    if n.prefix < 32 {
        let (mask, xor) = (n.mask().to_be_bytes(), [0u8; 4]);
        rule.add_expr(&Bitwise::new(&mask[..], &xor[..]));
    }
    rule.add_expr(&Cmp::new(CmpOp::Eq, n.network()));
}

/// Appends the nftnl expressions for `e` to `rule`.
pub fn add(rule: &mut Rule<'_>, e: &Expr) {
    match e {
        Expr::IifPrefix(p) => {
            rule.add_expr(&Meta::IifName);
            rule.add_expr(&Cmp::new(CmpOp::Eq, p.as_bytes()));
        }
        Expr::OifPrefix(p) => {
            rule.add_expr(&Meta::OifName);
            rule.add_expr(&Cmp::new(CmpOp::Eq, p.as_bytes()));
        }
        Expr::OifName(n) => {
            rule.add_expr(&Meta::OifName);
            let k: [u8; IFNAMSIZ] = ifname_key(n);
            rule.add_expr(&Cmp::new(CmpOp::Eq, &k[..]));
        }
        Expr::NfProto(p) => {
            rule.add_expr(&Meta::NfProto);
            rule.add_expr(&Cmp::new(CmpOp::Eq, *p));
        }
        Expr::L4Proto(p) => {
            rule.add_expr(&Meta::L4Proto);
            rule.add_expr(&Cmp::new(CmpOp::Eq, *p));
        }
        Expr::Saddr(n) => addr_in(rule, nftnl::expr::Ipv4HeaderField::Saddr, n),
        Expr::Daddr(n) => addr_in(rule, nftnl::expr::Ipv4HeaderField::Daddr, n),
        Expr::Dport(p) => {
            rule.add_expr(&load(Field::Dport, libc::NFT_REG32_00 as u32));
            rule.add_expr(&Cmp::new(CmpOp::Eq, &p.to_be_bytes()[..]));
        }
        Expr::Lookup { fields, set, invert } => {
            let sreg = load_key(rule, fields);
            rule.add_expr(&SetLookup { set: cstring(set), set_id: set_id(set), sreg, invert: *invert, verdict: false });
        }
        Expr::ShardLookup { kind, fields, set } => {
            // The constant kind in the key's first 32 bits (big-endian, as nft prints the field), the
            // fields after it.
            rule.add_expr(&Immediate::new(u32::from_ne_bytes([0, 0, 0, *kind]), Register::Reg1));
            load_key_from(rule, fields, 1);
            rule.add_expr(&SetLookup {
                set: cstring(set),
                set_id: set_id(set),
                sreg: libc::NFT_REG32_00 as u32,
                invert: false,
                verdict: false,
            });
        }
        Expr::ShardVmap { field, map, mask } => {
            let sreg = load_key(rule, &[*field]);
            let (mask, xor) = (*mask, [0u8; 4]);
            rule.add_expr(&Bitwise::new(&mask[..], &xor[..]));
            rule.add_expr(&SetLookup { set: cstring(map), set_id: set_id(map), sreg, invert: false, verdict: true });
        }
        Expr::CtState(states) => {
            let states = *states;
            rule.add_expr(&Conntrack::State);
            let (mask, xor) = (states.to_ne_bytes(), 0u32.to_ne_bytes());
            rule.add_expr(&Bitwise::new(&mask[..], &xor[..]));
            rule.add_expr(&Cmp::new(CmpOp::Neq, &0u32.to_ne_bytes()[..]));
        }
        Expr::Counter => rule.add_expr(&Counter),
        Expr::Meter { set, per_second, burst } => {
            load_key(rule, &[Field::Saddr]);
            rule.add_expr(&MeterUpdate { set: cstring(set), set_id: set_id(set), per_second: u64::from(*per_second), burst: *burst });
        }
        Expr::Log { group, prefix } => rule.add_expr(&Log { group: *group, prefix: cstring(prefix) }),
        Expr::Masquerade => rule.add_expr(&Masquerade),
        Expr::SetMark(m) => {
            rule.add_expr(&Immediate::new(*m, Register::Reg1));
            rule.add_expr(&Meta::Mark { set: true });
        }
        Expr::Verdict(v) => rule.add_expr(&match v {
            Verdict::Accept => NVerdict::Accept,
            Verdict::Drop => NVerdict::Drop,
            Verdict::Goto(c) => NVerdict::Goto { chain: cstring(c) },
            Verdict::RejectTcpReset => NVerdict::Reject(RejectionType::TcpRst),
            Verdict::RejectPortUnreachable => NVerdict::Reject(RejectionType::Icmp(IcmpCode::PortUnreach)),
        }),
    }
}
