//! Turning compiled expressions into nftnl expressions of a rule (the same instructions `nft`
//! itself emits for `iifname vmap @eg`, `ip daddr 203.0.113.0/24`, `th dport 8000-8100`, …).

use std::ffi::CString;

use nftnl::Rule;
use nftnl::expr::{
    Bitwise, Cmp, CmpOp, Conntrack, Counter, IcmpCode, Immediate, Masquerade, Meta, NetworkHeaderField, Payload, Register, RejectionType,
    TcpHeaderField, TransportHeaderField, Verdict as NVerdict,
};

use super::sys::{IFNAMSIZ, Limit, Log, VmapLookup, ifname_key};
use crate::compile::{EGRESS_MAP, Expr, INGRESS_MAP, Verdict};

fn cstring(s: &str) -> CString {
    CString::new(s).expect("names never contain NUL")
}

fn map_id(name: &str) -> u32 {
    match name {
        n if n == EGRESS_MAP => 1,
        n if n == INGRESS_MAP => 2,
        _ => 3,
    }
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
        Expr::IifVmap(m) => {
            rule.add_expr(&Meta::IifName);
            rule.add_expr(&VmapLookup { set: cstring(m), set_id: map_id(m) });
        }
        Expr::OifVmap(m) => {
            rule.add_expr(&Meta::OifName);
            rule.add_expr(&VmapLookup { set: cstring(m), set_id: map_id(m) });
        }
        Expr::NfProto(p) => {
            rule.add_expr(&Meta::NfProto);
            rule.add_expr(&Cmp::new(CmpOp::Eq, *p));
        }
        Expr::L4Proto(p) => {
            rule.add_expr(&Meta::L4Proto);
            rule.add_expr(&Cmp::new(CmpOp::Eq, *p));
        }
        Expr::SaddrNot(a) => {
            rule.add_expr(&Payload::Network(NetworkHeaderField::Ipv4(nftnl::expr::Ipv4HeaderField::Saddr)));
            rule.add_expr(&Cmp::new(CmpOp::Neq, *a));
        }
        Expr::Saddr(n) | Expr::Daddr(n) => {
            let field = if matches!(e, Expr::Saddr(_)) { nftnl::expr::Ipv4HeaderField::Saddr } else { nftnl::expr::Ipv4HeaderField::Daddr };
            rule.add_expr(&Payload::Network(NetworkHeaderField::Ipv4(field)));
            if n.prefix < 32 {
                let (mask, xor) = (n.mask().to_be_bytes(), [0u8; 4]);
                rule.add_expr(&Bitwise::new(&mask[..], &xor[..]));
            }
            rule.add_expr(&Cmp::new(CmpOp::Eq, n.network()));
        }
        Expr::Dport(p) => {
            // TCP and UDP keep the destination port at the same offset (th dport).
            rule.add_expr(&Payload::Transport(TransportHeaderField::Tcp(TcpHeaderField::Dport)));
            let (from, to) = (p.from.to_be_bytes(), p.to.to_be_bytes());
            if p.from == p.to {
                rule.add_expr(&Cmp::new(CmpOp::Eq, &from[..]));
            } else {
                rule.add_expr(&Cmp::new(CmpOp::Gte, &from[..]));
                rule.add_expr(&Cmp::new(CmpOp::Lte, &to[..]));
            }
        }
        Expr::CtState(states) => {
            let states = *states;
            rule.add_expr(&Conntrack::State);
            let (mask, xor) = (states.to_ne_bytes(), 0u32.to_ne_bytes());
            rule.add_expr(&Bitwise::new(&mask[..], &xor[..]));
            rule.add_expr(&Cmp::new(CmpOp::Neq, &0u32.to_ne_bytes()[..]));
        }
        Expr::Counter => rule.add_expr(&Counter),
        Expr::Limit { per_second, burst } => rule.add_expr(&Limit { per_second: u64::from(*per_second), burst: *burst }),
        Expr::Log { group, prefix } => rule.add_expr(&Log { group: *group, prefix: cstring(prefix) }),
        Expr::Masquerade => rule.add_expr(&Masquerade),
        Expr::SetMark(m) => {
            rule.add_expr(&Immediate::new(*m, Register::Reg1));
            rule.add_expr(&Meta::Mark { set: true });
        }
        Expr::Verdict(v) => rule.add_expr(&match v {
            Verdict::Accept => NVerdict::Accept,
            Verdict::Drop => NVerdict::Drop,
            Verdict::Return => NVerdict::Return,
            Verdict::Jump(c) => NVerdict::Jump { chain: cstring(c) },
            Verdict::Goto(c) => NVerdict::Goto { chain: cstring(c) },
            Verdict::RejectTcpReset => NVerdict::Reject(RejectionType::TcpRst),
            Verdict::RejectPortUnreachable => NVerdict::Reject(RejectionType::Icmp(IcmpCode::PortUnreach)),
        }),
    }
}
