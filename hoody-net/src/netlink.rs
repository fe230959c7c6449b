//! Link, address and route operations over rtnetlink. [`LinkOps`] is the seam; [`Rtnl`] talks
//! to the kernel (its socket belongs to the network namespace of the thread that opened it);
//! [`RecordingLinks`] records calls for unit tests.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth};
use netlink_packet_route::route::RouteScope;
use rtnetlink::{LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};
use tracing::debug;

use crate::addr::Ipv4Net;
use crate::error::{NetError, Result};

pub trait LinkOps {
    /// Creates a veth pair: `host` here, `peer` directly inside the namespace `peer_netns`.
    fn create_veth(&mut self, host: &str, peer: &str, peer_netns: RawFd) -> Result<()>;
    fn set_up(&mut self, ifname: &str) -> Result<()>;
    fn add_address(&mut self, ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<()>;
    /// A route to `dst` through `ifname`: on-link when `via` is `None`. Replaces a route to the
    /// same destination: a deleted container's address can be handed out again while the kernel
    /// is still tearing down its old interface (netns cleanup is asynchronous), route included.
    fn add_route(&mut self, dst: Ipv4Net, ifname: &str, via: Option<Ipv4Addr>) -> Result<()>;
    /// Deletes a link; `false` when it did not exist.
    fn delete_link(&mut self, ifname: &str) -> Result<bool>;
    /// Names of the links whose name starts with `prefix`.
    fn links_with_prefix(&mut self, prefix: &str) -> Result<Vec<String>>;
    /// Lets only IPv4 from `addr` (and ARP) in through `ifname`, with a tc classifier on the
    /// interface itself (see `source_filter`); idempotent.
    fn pin_source(&mut self, ifname: &str, addr: Ipv4Addr) -> Result<()>;
    /// The kernel's traffic counters of every link whose name starts with `prefix`, in one
    /// dump.
    fn link_stats(&mut self, prefix: &str) -> Result<Vec<(String, LinkStats)>>;
}

/// What a link counted since it was made (the host end: `rx` is what the container sent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

/// rtnetlink on a private single-threaded runtime (blocking calls; for helpers and blocking
/// threads, never for a tokio worker).
pub struct Rtnl {
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
}

fn nl(op: &'static str, iface: &str) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let iface = iface.to_owned();
    move |source| NetError::Netlink { op, iface, source }
}

impl Rtnl {
    /// Opens a route netlink socket in the calling thread's network namespace.
    pub fn open() -> Result<Rtnl> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(|source| NetError::Io {
            op: "start",
            target: "netlink runtime".into(),
            source,
        })?;
        let (conn, handle, _) = rt.block_on(async { rtnetlink::new_connection() }).map_err(|source| NetError::Io {
            op: "open",
            target: "route netlink socket".into(),
            source,
        })?;
        rt.spawn(conn);
        Ok(Rtnl { rt, handle })
    }

    pub(crate) fn handle(&self) -> rtnetlink::Handle {
        self.handle.clone()
    }

    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn index(&mut self, ifname: &str) -> Result<Option<u32>> {
        let h = self.handle.clone();
        let name = ifname.to_owned();
        let r = self.rt.block_on(async move { h.link().get().match_name(name).execute().try_next().await });
        match r {
            Ok(Some(m)) => Ok(Some(m.header.index)),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
            Err(e) => Err(nl("look up", ifname)(e)),
        }
    }

    fn must_index(&mut self, ifname: &str) -> Result<u32> {
        self.index(ifname)?.ok_or_else(|| NetError::Io {
            op: "find interface",
            target: ifname.to_owned(),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })
    }
}

impl LinkOps for Rtnl {
    fn create_veth(&mut self, host: &str, peer: &str, peer_netns: RawFd) -> Result<()> {
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new().name(peer.to_owned()).setns_by_fd(peer_netns).build();
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_owned())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        let h = self.handle.clone();
        self.rt.block_on(async move { h.link().add(msg).execute().await }).map_err(nl("create veth", host))?;
        debug!(iface = host, peer, "veth created");
        Ok(())
    }

    fn set_up(&mut self, ifname: &str) -> Result<()> {
        let idx = self.must_index(ifname)?;
        let h = self.handle.clone();
        self.rt
            .block_on(async move { h.link().set(LinkUnspec::new_with_index(idx).up().build()).execute().await })
            .map_err(nl("set up", ifname))
    }

    fn add_address(&mut self, ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        let idx = self.must_index(ifname)?;
        let h = self.handle.clone();
        self.rt
            .block_on(async move { h.address().add(idx, IpAddr::V4(addr), prefix).execute().await })
            .map_err(nl("add address", ifname))?;
        debug!(iface = ifname, %addr, prefix, "address added");
        Ok(())
    }

    fn add_route(&mut self, dst: Ipv4Net, ifname: &str, via: Option<Ipv4Addr>) -> Result<()> {
        let idx = self.must_index(ifname)?;
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(dst.addr, dst.prefix).output_interface(idx);
        b = match via {
            Some(gw) => b.gateway(gw).onlink(),
            None => b.scope(RouteScope::Link),
        };
        let msg = b.build();
        let h = self.handle.clone();
        self.rt.block_on(async move { h.route().add(msg).replace().execute().await }).map_err(nl("add route", ifname))?;
        debug!(iface = ifname, %dst, via = %via.map(|v| v.to_string()).unwrap_or_else(|| "on-link".into()), "route added");
        Ok(())
    }

    fn delete_link(&mut self, ifname: &str) -> Result<bool> {
        let Some(idx) = self.index(ifname)? else {
            return Ok(false);
        };
        let h = self.handle.clone();
        match self.rt.block_on(async move { h.link().del(idx).execute().await }) {
            Ok(()) => {}
            // Gone between the look-up and the delete: the kernel tears down a dead network
            // namespace's veth asynchronously. What was asked holds.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => return Ok(false),
            Err(e) => return Err(nl("delete", ifname)(e)),
        }
        debug!(iface = ifname, "link deleted");
        Ok(true)
    }

    fn links_with_prefix(&mut self, prefix: &str) -> Result<Vec<String>> {
        let h = self.handle.clone();
        let msgs: Vec<_> = self.rt.block_on(async move { h.link().get().execute().try_collect().await }).map_err(nl("list", prefix))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m: netlink_packet_route::link::LinkMessage| {
                m.attributes.into_iter().find_map(|a| match a {
                    netlink_packet_route::link::LinkAttribute::IfName(n) => Some(n),
                    _ => None,
                })
            })
            .filter(|n| n.starts_with(prefix))
            .collect())
    }

    fn link_stats(&mut self, prefix: &str) -> Result<Vec<(String, LinkStats)>> {
        use netlink_packet_route::link::{LinkAttribute, LinkMessage};
        let h = self.handle.clone();
        let msgs: Vec<LinkMessage> =
            self.rt.block_on(async move { h.link().get().execute().try_collect().await }).map_err(nl("stats", prefix))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| {
                let (mut name, mut stats) = (None, LinkStats::default());
                for a in m.attributes {
                    match a {
                        LinkAttribute::IfName(n) => name = Some(n),
                        LinkAttribute::Stats64(s) => {
                            stats =
                                LinkStats { rx_bytes: s.rx_bytes, rx_packets: s.rx_packets, tx_bytes: s.tx_bytes, tx_packets: s.tx_packets }
                        }
                        _ => {}
                    }
                }
                name.filter(|n| n.starts_with(prefix)).map(|n| (n, stats))
            })
            .collect())
    }

    fn pin_source(&mut self, ifname: &str, addr: Ipv4Addr) -> Result<()> {
        let index = self.must_index(ifname)?;
        let h = self.handle.clone();
        self.rt.block_on(crate::source_filter::install(&h, ifname, index, addr))?;
        debug!(ifname, %addr, "source address pinned (tc ingress filters)");
        Ok(())
    }
}

/// Records calls; every operation succeeds.
#[derive(Default)]
pub struct RecordingLinks {
    pub calls: Vec<String>,
    pub existing: Vec<String>,
}

impl LinkOps for RecordingLinks {
    fn create_veth(&mut self, host: &str, peer: &str, _peer_netns: RawFd) -> Result<()> {
        self.calls.push(format!("veth {host} {peer}@netns"));
        Ok(())
    }
    fn set_up(&mut self, ifname: &str) -> Result<()> {
        self.calls.push(format!("up {ifname}"));
        Ok(())
    }
    fn add_address(&mut self, ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        self.calls.push(format!("addr {ifname} {addr}/{prefix}"));
        Ok(())
    }
    fn add_route(&mut self, dst: Ipv4Net, ifname: &str, via: Option<Ipv4Addr>) -> Result<()> {
        self.calls.push(match via {
            Some(v) => format!("route {dst} via {v} dev {ifname}"),
            None => format!("route {dst} dev {ifname}"),
        });
        Ok(())
    }
    fn delete_link(&mut self, ifname: &str) -> Result<bool> {
        self.calls.push(format!("delete {ifname}"));
        Ok(self.existing.iter().any(|e| e == ifname))
    }
    fn links_with_prefix(&mut self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.existing.iter().filter(|e| e.starts_with(prefix)).cloned().collect())
    }
    fn pin_source(&mut self, ifname: &str, addr: Ipv4Addr) -> Result<()> {
        self.calls.push(format!("pin {ifname} {addr}"));
        Ok(())
    }
    fn link_stats(&mut self, prefix: &str) -> Result<Vec<(String, LinkStats)>> {
        Ok(self.links_with_prefix(prefix)?.into_iter().map(|n| (n, LinkStats::default())).collect())
    }
}
