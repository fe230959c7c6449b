//! The resolver's sockets on the gateway address: UDP with the arrival interface of every
//! datagram (IP_PKTINFO), TCP with length-prefixed messages. Bound with IP_FREEBIND (the address
//! exists only on the host ends of running containers), never on 0.0.0.0.

use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{self, AddressFamily, Backlog, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrIn, sockopt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use super::Resolver;

/// Queries answered at the same time, at most (over UDP; each TCP connection counts one).
const IN_FLIGHT: usize = 1024;
const TCP_CONNECTIONS: usize = 256;
/// A TCP client that sends nothing for this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);

fn sock(ty: SockType, addr: SocketAddr) -> std::io::Result<OwnedFd> {
    let fd = socket::socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)?;
    socket::setsockopt(&fd, sockopt::IpFreebind, &true)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if ty == SockType::Datagram {
        socket::setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?;
    }
    let SocketAddr::V4(v4) = addr else { return Err(std::io::Error::other("IPv4 only")) };
    socket::bind(fd.as_raw_fd(), &SockaddrIn::from(v4))?;
    Ok(fd)
}

/// The UDP socket and the TCP listener on `addr`.
pub fn bind(addr: SocketAddr) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let u = sock(SockType::Datagram, addr)?;
    let t = sock(SockType::Stream, addr)?;
    socket::listen(&t, Backlog::new(128).map_err(std::io::Error::from)?)?;
    Ok((std::net::UdpSocket::from(u), std::net::TcpListener::from(t)))
}

/// Whether `src` is the address of the container whose host end has index `ifindex`.
fn from_its_interface(r: &Resolver, src: Ipv4Addr, ifindex: u32) -> bool {
    r.firewall.policy_of(src).is_some_and(|c| nix::net::if_::if_nametoindex(c.ifname().as_str()).is_ok_and(|i| i == ifindex))
}

pub fn serve(r: Arc<Resolver>, udp: std::net::UdpSocket, tcp: std::net::TcpListener) {
    let r2 = r.clone();
    tokio::spawn(async move {
        if let Err(e) = serve_udp(r2, udp).await {
            tracing::error!(error = %e, "resolver (udp) stopped");
        }
    });
    tokio::spawn(async move {
        if let Err(e) = serve_tcp(r, tcp).await {
            tracing::error!(error = %e, "resolver (tcp) stopped");
        }
    });
}

async fn serve_udp(r: Arc<Resolver>, udp: std::net::UdpSocket) -> std::io::Result<()> {
    let sock = Arc::new(tokio::net::UdpSocket::from_std(udp)?);
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, src, ifindex) = sock
            .async_io(tokio::io::Interest::READABLE, || {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
                let m = socket::recvmsg::<SockaddrIn>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
                    .map_err(std::io::Error::from)?;
                let ifindex = m
                    .cmsgs()
                    .ok()
                    .and_then(|mut c| {
                        c.find_map(|c| match c {
                            ControlMessageOwned::Ipv4PacketInfo(i) => Some(i.ipi_ifindex as u32),
                            _ => None,
                        })
                    })
                    .unwrap_or(0);
                Ok((m.bytes, m.address, ifindex))
            })
            .await?;
        let Some(src) = src else { continue };
        let src = SocketAddrV4::new(src.ip(), src.port());
        if !from_its_interface(&r, *src.ip(), ifindex) {
            tracing::debug!(%src, ifindex, "dns query not from its container's interface: dropped");
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
        let (r, sock, query) = (r.clone(), sock.clone(), buf[..n].to_vec());
        tokio::spawn(async move {
            if let Some(reply) = r.answer(*src.ip(), &query, false).await {
                let _ = sock.send_to(&reply, src).await;
            }
            drop(permit);
        });
    }
}

async fn serve_tcp(r: Arc<Resolver>, tcp: std::net::TcpListener) -> std::io::Result<()> {
    let l = tokio::net::TcpListener::from_std(tcp)?;
    let slots = Arc::new(Semaphore::new(TCP_CONNECTIONS));
    loop {
        let (mut s, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "resolver accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let SocketAddr::V4(peer) = peer else { continue };
        // A TCP peer completed a handshake from its address (the table drops forged sources).
        if r.firewall.policy_of(*peer.ip()).is_none() {
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
        let r = r.clone();
        tokio::spawn(async move {
            loop {
                let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, s.read_u16()).await else { break };
                let mut q = vec![0u8; usize::from(len)];
                if !matches!(tokio::time::timeout(TCP_IDLE, s.read_exact(&mut q)).await, Ok(Ok(_))) {
                    break;
                }
                let Some(reply) = r.answer(*peer.ip(), &q, true).await else { break };
                let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                out.extend(reply);
                if s.write_all(&out).await.is_err() {
                    break;
                }
            }
            drop(permit);
        });
    }
}
