//! Anti-spoofing outside the nftables table: on the host end of a container's veth, an ingress
//! qdisc with one classifier (cls_bpf, direct action) that passes IPv4 from the container's /32
//! and ARP, and drops everything else. It lives on the interface itself, so a foreign
//! `nft flush ruleset`, a daemon stop or a host-wide `rp_filter=0|2` does not loosen it: a
//! container can never put a packet with another source address on the host (the failsafe
//! routing rule covers only the subnet's own sources). A classic `tc … u32 … action drop`
//! would need the gact action, which kernels may lack (this one does); cls_bpf needs no action.
//!
//! The program, in order: shorter than an Ethernet and IPv4 header → drop; ARP → pass; not
//! IPv4 → drop; source address not the container's → drop; pass.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use futures::StreamExt;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{TcAttribute, TcBpfFlags, TcFilterBpfOption, TcHandle, TcMessage, TcOption};
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};

use crate::bpf_sys::{Insn, load_sched_cls};
use crate::error::NetError;

const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;
/// Where the IPv4 source address is at tc ingress (the data starts at the Ethernet header).
const SADDR_OFFSET: i32 = 14 + 12;
/// Offsets in `struct __sk_buff`.
const SKB_LEN: i16 = 0;
const SKB_PROTOCOL: i16 = 16;
/// `skb->protocol` is big-endian; as the u32 the program reads on this (little-endian) host.
const fn proto_be(p: u16) -> i32 {
    p.to_be() as i32
}
const ETH_P_ALL: u16 = 0x0003;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: dst | (src << 4), off, imm }
}

/// The classifier for a container whose address is `addr`.
pub(crate) fn program(addr: Ipv4Addr) -> Vec<Insn> {
    const MOV64_X: u8 = 0xbf; // r_dst = r_src
    const LDX_W: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
    const LD_ABS_W: u8 = 0x20; // r0 = ntohl(*(u32 *)(skb data + imm))
    const JLT32_K: u8 = 0xa6; // if (u32)r_dst < imm goto +off
    const JEQ32_K: u8 = 0x16;
    const JNE32_K: u8 = 0x56;
    const MOV64_K: u8 = 0xb7; // r_dst = imm
    const EXIT: u8 = 0x95;
    vec![
        insn(MOV64_X, 6, 1, 0, 0),                      // 0: r6 = ctx (LD_ABS needs it)
        insn(LDX_W, 0, 1, SKB_LEN, 0),                  // 1: r0 = skb->len
        insn(JLT32_K, 0, 0, 7, 34),                     // 2: too short → 10
        insn(LDX_W, 0, 1, SKB_PROTOCOL, 0),             // 3: r0 = skb->protocol
        insn(JEQ32_K, 0, 0, 3, proto_be(0x0806)),       // 4: ARP → 8
        insn(JNE32_K, 0, 0, 4, proto_be(0x0800)),       // 5: not IPv4 → 10
        insn(LD_ABS_W, 0, 0, 0, SADDR_OFFSET),          // 6: r0 = source address
        insn(JNE32_K, 0, 0, 2, u32::from(addr) as i32), // 7: not ours → 10
        insn(MOV64_K, 0, 0, 0, TC_ACT_OK),              // 8: pass
        insn(EXIT, 0, 0, 0, 0),                         // 9
        insn(MOV64_K, 0, 0, 0, TC_ACT_SHOT),            // 10: drop
        insn(EXIT, 0, 0, 0, 0),                         // 11
    ]
}

async fn request(h: &rtnetlink::Handle, msg: RouteNetlinkMessage) -> Result<(), rtnetlink::Error> {
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let mut h = h.clone();
    let mut response = h.request(req)?;
    while let Some(m) = response.next().await {
        if let NetlinkPayload::Error(e) = m.payload
            && e.code.is_some()
        {
            return Err(rtnetlink::Error::NetlinkError(e));
        }
    }
    Ok(())
}

/// Puts the qdisc and the classifier on interface `ifname` (index `index`): created, or
/// replaced in place where they are (so it also repairs an interface that lost them, and gives
/// containers started by an older hoodyd theirs).
pub(crate) async fn install(h: &rtnetlink::Handle, ifname: &str, index: u32, addr: Ipv4Addr) -> Result<(), NetError> {
    let nl = |op: &'static str| move |source| NetError::Netlink { op, iface: ifname.to_owned(), source };
    let prog = load_sched_cls(&program(addr), "hoody_source").map_err(|source| NetError::Io {
        op: "load (bpf) the source filter of",
        target: ifname.to_owned(),
        source,
    })?;
    h.qdisc().replace(index as i32).ingress().execute().await.map_err(nl("add the ingress qdisc of"))?;
    let mut msg = TcMessage::with_index(index as i32);
    msg.header.parent = TcHandle::INGRESS;
    // A fixed handle, so a second call replaces the filter instead of adding another.
    msg.header.handle = TcHandle::from(1u32);
    msg.header.info = u32::from(TcHandle { major: 1, minor: ETH_P_ALL.to_be() });
    msg.attributes = vec![
        TcAttribute::Kind("bpf".into()),
        TcAttribute::Options(vec![
            TcOption::Bpf(TcFilterBpfOption::ProgFd(prog.as_raw_fd() as u32)),
            TcOption::Bpf(TcFilterBpfOption::ProgName("hoody_source".into())),
            TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
        ]),
    ];
    // The filter holds its own reference to the program: `prog` may close after this.
    request(h, RouteNetlinkMessage::NewTrafficFilter(msg)).await.map_err(nl("add the source filter of"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_pass_and_drop() {
        let p = program(Ipv4Addr::new(10, 77, 0, 9));
        let target = |i: usize| (i as i64 + 1 + i64::from(p[i].off)) as usize;
        for (i, want) in [(2, 10), (4, 8), (5, 10), (7, 10)] {
            assert_eq!(target(i), want, "jump of instruction {i}");
        }
        assert_eq!((p[8].imm, p[10].imm), (TC_ACT_OK, TC_ACT_SHOT));
        assert_eq!(p[7].imm as u32, 0x0a4d_0009, "the container's address, host order (LD_ABS converts)");
        assert_eq!(p[6].imm, 26, "after the Ethernet header");
        assert!(p.iter().all(|i| i.code != 0x15 && i.code != 0x55), "32-bit compares: no sign extension of the address");
    }
}
