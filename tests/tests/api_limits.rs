//! The socket under abuse: silent, idle and trickling clients are cut off, connections beyond
//! the limit are refused with an answer, and the daemon keeps serving everyone else.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use hoody_e2e::{Driver, World};

/// Reads until the server closes the connection (or `within` passes): (bytes, closed in time).
fn read_until_closed(s: &mut UnixStream, within: Duration) -> (String, bool) {
    s.set_read_timeout(Some(within)).unwrap();
    let mut out = Vec::new();
    let closed = s.read_to_end(&mut out).is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

#[test]
fn slow_idle_and_excess_clients_are_cut_off() {
    let w = World::with_flags(Driver::Overlay, &["--request-timeout", "1", "--max-connections", "4"]);
    let h = w.http();

    // A client that never sends its headers.
    let t = Instant::now();
    let mut silent = UnixStream::connect(&w.socket).unwrap();
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5));
    assert!(closed && t.elapsed() < Duration::from_secs(4), "a silent client was kept {:?}", t.elapsed());

    // A keep-alive connection left idle after its request.
    let mut idle = UnixStream::connect(&w.socket).unwrap();
    idle.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: hoodyd\r\n\r\n").unwrap();
    let t = Instant::now();
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed && t.elapsed() < Duration::from_secs(4), "an idle connection was kept {:?}", t.elapsed());

    // A body that trickles in: 408 once the deadline passes.
    let mut slow = UnixStream::connect(&w.socket).unwrap();
    slow.write_all(b"POST /api/v1/realms HTTP/1.1\r\nHost: hoodyd\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"desc")
        .unwrap();
    let (answer, _) = read_until_closed(&mut slow, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(w.ok(&["realms", "list"])["realm_ids"].as_array().unwrap().is_empty(), "a partial request had an effect");

    // Connections beyond the limit get a 503 at once; the others are unaffected.
    let held: Vec<UnixStream> = (0..4).map(|_| UnixStream::connect(&w.socket).unwrap()).collect();
    // Once the daemon has taken all four in (a loaded machine may take a while), the fifth is
    // refused; before that it may still get a slot of its own.
    let deadline = Instant::now() + Duration::from_secs(5);
    let over = loop {
        let r = h.get("/health");
        if r.status != 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(over.status, 503, "{over:?}");
    assert!(over.body.contains("too many open connections"), "{over:?}");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.get("/health").status != 200 {
        assert!(Instant::now() < deadline, "the daemon did not recover its connection slots");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Oversized and malformed headers are refused without harm.
    let big = format!("GET /api/v1/health HTTP/1.1\r\nHost: hoodyd\r\nX-Junk: {}\r\n\r\n", "a".repeat(1 << 20));
    let mut s = UnixStream::connect(&w.socket).unwrap();
    let _ = s.write_all(big.as_bytes());
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431") || answer.starts_with("HTTP/1.1 400"), "{answer}");
    let mut s = UnixStream::connect(&w.socket).unwrap();
    s.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(h.get("/health").status, 200);
}
