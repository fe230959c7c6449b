//! A packet sniffer in a namespace of the test's own (the fake internet): every IPv4 packet on
//! any of its interfaces, kept when it carries a given tag, so a test can assert that nothing
//! of a crafted packet got out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub struct Sniffer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

impl Sniffer {
    /// Starts capturing in namespace `ns` the IPv4 packets that contain `tag`; returns once
    /// the socket is open.
    pub fn start(ns: &str, tag: &str) -> Sniffer {
        let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(vec![])));
        let (ns, tag, st, sn) = (ns.to_owned(), tag.as_bytes().to_vec(), stop.clone(), seen.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            crate::internet::enter(&ns);
            let proto = (libc::ETH_P_IP as u16).to_be() as i32;
            // SAFETY: plain socket(2); the descriptor is owned below.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, proto) };
            assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
            let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
            // SAFETY: a valid descriptor and a timeval of the size given.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    size_of::<libc::timeval>() as u32,
                )
            };
            ready_tx.send(()).expect("ready");
            let mut buf = vec![0u8; 65536];
            while !st.load(Ordering::SeqCst) {
                // SAFETY: `buf` is writable for its length.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0 && contains(&buf[..n as usize], &tag) {
                    sn.lock().expect("seen").push(buf[..n as usize].to_vec());
                }
            }
            // SAFETY: closing the descriptor opened above.
            unsafe { libc::close(fd) };
        });
        ready_rx.recv().expect("sniffer ready");
        Sniffer { stop, thread: Some(thread), seen }
    }

    /// The packets seen so far (IPv4, from the header on).
    pub fn seen(&self) -> Vec<Vec<u8>> {
        self.seen.lock().expect("seen").clone()
    }

    /// The IPv4 source addresses of the packets seen so far.
    pub fn sources(&self) -> Vec<std::net::Ipv4Addr> {
        self.seen().iter().filter(|p| p.len() >= 20).map(|p| std::net::Ipv4Addr::new(p[12], p[13], p[14], p[15])).collect()
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
