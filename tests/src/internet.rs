//! Servers that play the internet (or the host): threads of the test process that entered a
//! network namespace of the test's own, listening on documentation addresses and recording
//! every connection and datagram they get.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What a server saw: its own address, the peer, and the first bytes it got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub data: String,
}

pub struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub tcp: Arc<Mutex<Vec<Hit>>>,
    pub udp: Arc<Mutex<Vec<Hit>>>,
}

/// Moves the calling thread into network namespace `ns`.
pub fn enter(ns: &str) {
    let fd = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
    nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

impl Servers {
    /// Starts TCP and UDP servers inside namespace `ns`; returns once they all listen.
    pub fn start(ns: &str, tcp: &[&str], udp: &[&str]) -> Servers {
        let stop = Arc::new(AtomicBool::new(false));
        let (tcp_hits, udp_hits) = (Arc::new(Mutex::new(vec![])), Arc::new(Mutex::new(vec![])));
        let mut threads = vec![];
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for a in tcp {
            let (addr, ns, stop, hits, ready) =
                (a.parse::<SocketAddr>().expect("address"), ns.to_owned(), stop.clone(), tcp_hits.clone(), ready_tx.clone());
            threads.push(std::thread::spawn(move || {
                enter(&ns);
                let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
                l.set_nonblocking(true).expect("nonblocking");
                ready.send(()).expect("ready");
                while !stop.load(Ordering::SeqCst) {
                    match l.accept() {
                        Ok((mut s, peer)) => {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
                            let mut buf = [0u8; 64];
                            let n = s.read(&mut buf).unwrap_or(0);
                            hits.lock().expect("hits").push(Hit {
                                local: addr,
                                peer,
                                data: String::from_utf8_lossy(&buf[..n]).into_owned(),
                            });
                            let _ = s.write_all(b"hello");
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }));
        }
        for a in udp {
            let (addr, ns, stop, hits, ready) =
                (a.parse::<SocketAddr>().expect("address"), ns.to_owned(), stop.clone(), udp_hits.clone(), ready_tx.clone());
            threads.push(std::thread::spawn(move || {
                enter(&ns);
                let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
                s.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
                ready.send(()).expect("ready");
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((n, peer)) = s.recv_from(&mut buf) {
                        hits.lock().expect("hits").push(Hit { local: addr, peer, data: String::from_utf8_lossy(&buf[..n]).into_owned() });
                        let _ = s.send_to(b"pong", peer);
                    }
                }
            }));
        }
        for _ in 0..(tcp.len() + udp.len()) {
            ready_rx.recv_timeout(Duration::from_secs(10)).expect("servers listening");
        }
        Servers { stop, threads, tcp: tcp_hits, udp: udp_hits }
    }

    /// TCP connections accepted on `local`.
    pub fn tcp_hits(&self, local: &str) -> Vec<Hit> {
        let l: SocketAddr = local.parse().expect("address");
        self.tcp.lock().expect("hits").iter().filter(|h| h.local == l).cloned().collect()
    }

    /// Datagrams received on `local`.
    pub fn udp_hits(&self, local: &str) -> Vec<Hit> {
        let l: SocketAddr = local.parse().expect("address");
        self.udp.lock().expect("hits").iter().filter(|h| h.local == l).cloned().collect()
    }

    pub fn clear(&self) {
        self.tcp.lock().expect("hits").clear();
        self.udp.lock().expect("hits").clear();
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Connects from inside namespace `ns` (optionally from address `source`) to `dest`; returns the
/// first bytes the server sent, or the error.
pub fn connect_from(ns: &str, source: Option<&str>, dest: &str, timeout: Duration) -> std::io::Result<String> {
    let (ns, source, dest) = (ns.to_owned(), source.map(str::to_owned), dest.parse::<SocketAddr>().expect("address"));
    std::thread::spawn(move || {
        enter(&ns);
        let s = socket2_connect(source.as_deref(), dest, timeout)?;
        let mut s = s;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .join()
    .expect("connect thread")
}

/// A TCP connect with an optional bound source address (std cannot bind before connect).
fn socket2_connect(source: Option<&str>, dest: SocketAddr, timeout: Duration) -> std::io::Result<std::net::TcpStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, socket};
    use std::os::fd::AsRawFd;
    let Some(src) = source else { return std::net::TcpStream::connect_timeout(&dest, timeout) };
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    let src: std::net::SocketAddrV4 = format!("{src}:0").parse().expect("source");
    bind(fd.as_raw_fd(), &SockaddrIn::from(src))?;
    let s = std::net::TcpStream::from(fd);
    // Connect with a timeout: non-blocking connect, then wait for writability.
    s.set_nonblocking(true)?;
    let SocketAddr::V4(d) = dest else { return Err(std::io::Error::other("IPv4 only")) };
    match nix::sys::socket::connect(s.as_raw_fd(), &SockaddrIn::from(d)) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let mut fds = [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(&s), nix::poll::PollFlags::POLLOUT)];
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms))? == 0 {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    s.set_nonblocking(false)?;
    Ok(s)
}
