//! Forwarding: hoodyd's own query to the upstream resolvers, over UDP from a fresh port, and
//! over TCP when the answer comes back truncated.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wire;

/// How long one upstream gets to answer one try.
const TRY: Duration = Duration::from_millis(1500);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0} cannot be asked for (not a name)")]
    Name(String),
    #[error("{up}: {source}")]
    Io { up: SocketAddr, source: std::io::Error },
    #[error("{0}: no answer in time")]
    Timeout(SocketAddr),
    #[error("{0}: the answer does not match the query")]
    Mismatch(SocketAddr),
    #[error("no upstream resolver")]
    None,
}

fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()?.parse().ok()).flatten()
        })
        .collect()
}

/// The host's resolvers from `resolv_conf`; a local stub (127.0.0.53, systemd-resolved) is
/// looked through to the servers behind it, listed in `behind_stub`
/// (/run/systemd/resolve/resolv.conf).
pub fn host_upstreams(resolv_conf: &Path, behind_stub: &Path) -> Vec<SocketAddr> {
    let listed = nameservers(&std::fs::read_to_string(resolv_conf).unwrap_or_default());
    let stub: IpAddr = [127, 0, 0, 53].into();
    let mut out: Vec<IpAddr> = listed.iter().copied().filter(|a| *a != stub).collect();
    if listed.contains(&stub) {
        out.extend(nameservers(&std::fs::read_to_string(behind_stub).unwrap_or_default()).into_iter().filter(|a| *a != stub));
    }
    out.dedup();
    out.into_iter().map(|a| SocketAddr::new(a, 53)).collect()
}

async fn udp(up: SocketAddr, q: &[u8], name: &str, qtype: RecordType, id: u16) -> Result<Message, UpstreamError> {
    let io = |source| UpstreamError::Io { up, source };
    let local: SocketAddr = if up.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let s = tokio::net::UdpSocket::bind(local).await.map_err(io)?;
    s.connect(up).await.map_err(io)?;
    s.send(q).await.map_err(io)?;
    let mut buf = vec![0u8; 65_535];
    let deadline = tokio::time::Instant::now() + TRY;
    loop {
        let n = match tokio::time::timeout_at(deadline, s.recv(&mut buf)).await {
            Err(_) => return Err(UpstreamError::Timeout(up)),
            Ok(r) => r.map_err(io)?,
        };
        // Anything that is not the answer to this query (another id, another question) is
        // ignored, not taken.
        if let Ok(m) = Message::from_vec(&buf[..n])
            && wire::answers_query(&m, name, qtype, id)
        {
            return Ok(m);
        }
    }
}

async fn tcp(up: SocketAddr, q: &[u8], name: &str, qtype: RecordType, id: u16) -> Result<Message, UpstreamError> {
    let io = |source| UpstreamError::Io { up, source };
    let work = async {
        let mut s = tokio::net::TcpStream::connect(up).await.map_err(io)?;
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(q);
        s.write_all(&framed).await.map_err(io)?;
        let len = s.read_u16().await.map_err(io)?;
        let mut buf = vec![0u8; usize::from(len)];
        s.read_exact(&mut buf).await.map_err(io)?;
        let m = Message::from_vec(&buf).map_err(|_| UpstreamError::Mismatch(up))?;
        if wire::answers_query(&m, name, qtype, id) { Ok(m) } else { Err(UpstreamError::Mismatch(up)) }
    };
    tokio::time::timeout(TRY * 2, work).await.map_err(|_| UpstreamError::Timeout(up))?
}

/// Asks the upstreams in turn (two rounds) for `name`/`qtype`; the first matching answer wins.
pub async fn forward(upstreams: &[SocketAddr], name: &str, qtype: RecordType) -> Result<Message, UpstreamError> {
    let mut last = UpstreamError::None;
    for _ in 0..2 {
        for up in upstreams {
            let id: u16 = rand::random();
            let q = wire::upstream_query(name, qtype, id).ok_or_else(|| UpstreamError::Name(name.to_owned()))?;
            match udp(*up, &q, name, qtype, id).await {
                Ok(m) if m.metadata.truncation => match tcp(*up, &q, name, qtype, id).await {
                    Ok(m) => return Ok(m),
                    Err(e) => last = e,
                },
                Ok(m) => return Ok(m),
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let t = "# x\nsearch example\nnameserver 198.51.100.53\nnameserver 2001:db8::53\nnameserver bogus\noptions edns0\n";
        assert_eq!(nameservers(t), vec!["198.51.100.53".parse::<IpAddr>().unwrap(), "2001:db8::53".parse().unwrap()]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("resolv.conf");
        std::fs::write(&p, t).unwrap();
        assert_eq!(
            host_upstreams(&p, &dir.path().join("none")),
            vec!["198.51.100.53:53".parse::<SocketAddr>().unwrap(), "[2001:db8::53]:53".parse().unwrap()]
        );
        // A stub is looked through to what is behind it.
        let (stub, behind) = (dir.path().join("stub.conf"), dir.path().join("behind.conf"));
        std::fs::write(&stub, "nameserver 127.0.0.53\noptions edns0 trust-ad\n").unwrap();
        std::fs::write(&behind, "nameserver 198.51.100.54\nnameserver 127.0.0.53\n").unwrap();
        assert_eq!(host_upstreams(&stub, &behind), vec!["198.51.100.54:53".parse::<SocketAddr>().unwrap()]);
    }
}
