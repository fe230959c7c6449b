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

    // Connections beyond the limit get a 503 at once; the others are unaffected. The four held
    // connections are silent, so the daemon cuts them after the 1 s request timeout, and the
    // slot of a connection a client just closed is given back only once the daemon has seen it
    // close: a round in which the fifth still got a slot of its own is tried again.
    let mut over = None;
    for _ in 0..10 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while h.get("/health").status != 200 {
            assert!(Instant::now() < deadline, "the daemon did not give its connection slots back");
            std::thread::sleep(Duration::from_millis(50));
        }
        let held: Vec<UnixStream> = (0..4).map(|_| UnixStream::connect(&w.socket).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        let r = h.get("/health");
        drop(held);
        if r.status != 200 {
            over = Some(r);
            break;
        }
    }
    let over = over.expect("four held connections never filled a cap of four");
    assert_eq!(over.status, 503, "{over:?}");
    assert!(over.body.contains("too many open connections"), "{over:?}");
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

/// What each connection was told by now: `Some(answer)` when refused at once, `None` when
/// taken in (nothing to read yet).
fn told(conns: &mut [UnixStream]) -> Vec<Option<String>> {
    // A refused connection that sends nothing is answered 500 ms after its accept (one that
    // sends a request, after it); a loaded machine takes a while to accept 300.
    std::thread::sleep(Duration::from_millis(2000));
    conns
        .iter_mut()
        .map(|s| {
            s.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                Err(e) => Some(e.to_string()),
            }
        })
        .collect()
}

/// hoodyctl as `uid` in the socket's group, with `token` if given.
fn ctl_as_user(w: &World, uid: u32, token: Option<&str>, args: &[&str]) -> (i32, String) {
    let mut cmd = w.hoodyctl();
    cmd.args(args).stdin(std::process::Stdio::null());
    if let Some(t) = token {
        cmd.env("HOODY_TOKEN", t);
    }
    hoody_e2e::sys::as_user(&mut cmd, uid, 64242, &[]);
    let out = cmd.output().unwrap();
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn one_peer_cannot_shut_out_the_others_and_streams_have_their_own_cap() {
    let w = World::with_flags(
        Driver::Overlay,
        &["--socket-group", "64242", "--max-connections", "40", "--max-connections-per-peer", "8", "--max-streams", "3"],
    );
    let realm = w.ok(&["realms", "create", "--description", "tenant"])["id"].as_str().unwrap().to_owned();
    let token = w.ok(&["tokens", "create", "--realm", &realm])["token"].as_str().unwrap().to_owned();
    // 300 idle connections from one uid: eight are taken in, the rest refused at once, naming it.
    let mut idle: Vec<UnixStream> = hoody_e2e::sys::connect_as(&w.socket, 64260, 64242, 300).into_iter().map(Result::unwrap).collect();
    let answers = told(&mut idle);
    assert_eq!(answers.iter().filter(|a| a.is_none()).count(), 8, "the peer's cap");
    let refusal = answers.iter().flatten().next().unwrap();
    assert!(refusal.starts_with("HTTP/1.1 503") && refusal.contains("from uid 64260 (at most 8)"), "{refusal}");
    // Another client and an administrator are served meanwhile; the same uid is not.
    assert_eq!(ctl_as_user(&w, 64261, Some(&token), &["containers", "list"]).0, 0);
    assert_eq!(w.ctl(&["health"]).code, 0);
    let (code, out) = ctl_as_user(&w, 64260, Some(&token), &["containers", "list"]);
    assert!(code != 0 && out.contains("from uid 64260"), "{code} {out}");
    // Other uids fill what is left but for the administrators' room (40 / 8 = 5): 8 + 27.
    let mut crowd = Vec::new();
    for uid in 64270..64275 {
        crowd.extend(hoody_e2e::sys::connect_as(&w.socket, uid, 64242, 8).into_iter().map(Result::unwrap));
    }
    let answers = told(&mut crowd);
    assert_eq!(answers.iter().filter(|a| a.is_none()).count(), 27, "up to the room kept for administrators");
    assert!(answers.iter().flatten().all(|a| a.contains("too many open connections")), "{answers:?}");
    let (code, out) = ctl_as_user(&w, 64261, Some(&token), &["containers", "list"]);
    assert!(code != 0 && out.contains("too many open connections"), "{code} {out}");
    assert_eq!(w.ctl(&["health"]).code, 0, "an administrator is still served");
    drop((idle, crowd));
    // Streams: three event streams are open (and hold no connection slot), a fourth is refused,
    // requests are served; when one ends, another may begin.
    let h = w.http();
    let open_stream = || {
        let mut s = UnixStream::connect(&w.socket).unwrap();
        s.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: hoodyd\r\n\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        (s, String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut streams = Vec::new();
    while streams.len() < 3 {
        let (s, head) = open_stream();
        if head.starts_with("HTTP/1.1 200") {
            streams.push(s);
        } else {
            // The refused connections above may still be closing.
            assert!(Instant::now() < deadline, "{head}");
        }
    }
    let (_, head) = open_stream();
    assert!(head.starts_with("HTTP/1.1 503") && head.contains("too many open streams"), "{head}");
    let r = h.get("/containers");
    assert_eq!(r.status, 200, "{r:?}");
    drop(streams.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, head) = open_stream();
        if head.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "a stream slot stayed taken after its stream ended: {head}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
