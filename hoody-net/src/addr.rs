//! IPv4 networks and the container address pool.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 network (`203.0.113.0/24`); a bare address is a /32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then_some(Ipv4Net { addr: Ipv4Addr::from(u32::from(addr) & Self::mask_of(prefix)), prefix })
    }

    fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) }
    }

    pub fn mask(&self) -> u32 {
        Self::mask_of(self.prefix)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a string is not an IPv4 network, for messages that help the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetParseError {
    HostName,
    Ipv6,
    Malformed,
    /// `10.0.0.1/24`: host bits set (a typo more often than not).
    HostBits(Ipv4Net),
}

impl fmt::Display for NetParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetParseError::HostName => f.write_str(
                "looks like a host name: resolve it to an IPv4 address or CIDR first (the firewall matches addresses, not names)",
            ),
            NetParseError::Ipv6 => f.write_str("IPv6 destinations are not supported yet (IPv6 from containers is always denied)"),
            NetParseError::Malformed => f.write_str("not an IPv4 address or CIDR (e.g. 203.0.113.10 or 203.0.113.0/24)"),
            NetParseError::HostBits(n) => write!(f, "has host bits set; did you mean {n}?"),
        }
    }
}

impl std::error::Error for NetParseError {}

impl FromStr for Ipv4Net {
    type Err = NetParseError;
    fn from_str(s: &str) -> Result<Self, NetParseError> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: Ipv4Addr = match a.parse() {
            Ok(v) => v,
            Err(_) if a.contains(':') => return Err(NetParseError::Ipv6),
            Err(_)
                if !a.is_empty()
                    && a.chars().any(|c| c.is_ascii_alphabetic())
                    && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') =>
            {
                return Err(NetParseError::HostName);
            }
            Err(_) => return Err(NetParseError::Malformed),
        };
        let prefix = match p {
            None => 32,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= 32 && !p.to_string().is_empty()).ok_or(NetParseError::Malformed)?,
        };
        let net = Ipv4Net::new(addr, prefix).ok_or(NetParseError::Malformed)?;
        if net.addr != addr {
            return Err(NetParseError::HostBits(net));
        }
        Ok(net)
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map_err(|e: NetParseError| e.to_string())
    }
}

impl From<Ipv4Net> for String {
    fn from(n: Ipv4Net) -> String {
        n.to_string()
    }
}

/// The pool container addresses come from (`--subnet`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub net: Ipv4Net,
}

impl Pool {
    /// Refuses pools too small to be useful and ones that would overlap the link-local gateway.
    pub fn new(net: Ipv4Net) -> Result<Pool, String> {
        if net.prefix > 30 {
            return Err(format!("subnet {net} is too small (at most /30)"));
        }
        if Ipv4Net::new(Ipv4Addr::new(169, 254, 0, 0), 16).is_some_and(|ll| ll.contains(net.addr) || net.contains(ll.addr)) {
            return Err(format!("subnet {net} overlaps 169.254.0.0/16, which hoody uses for the gateway"));
        }
        Ok(Pool { net })
    }

    /// The lowest address of the pool that is not used, skipping network and broadcast.
    pub fn allocate(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let first = u32::from(self.net.network()) + 1;
        let last = u32::from(self.net.broadcast()) - 1;
        (first..=last).map(Ipv4Addr::from).find(|a| !used.contains(a))
    }
}

/// The address of every container's gateway: the host end of each veth pair carries it.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_explains() {
        assert_eq!("203.0.113.10".parse::<Ipv4Net>().unwrap().to_string(), "203.0.113.10/32");
        assert_eq!("203.0.113.0/24".parse::<Ipv4Net>().unwrap().prefix, 24);
        assert_eq!("0.0.0.0/0".parse::<Ipv4Net>().unwrap().mask(), 0);
        assert_eq!("api.stripe.com".parse::<Ipv4Net>(), Err(NetParseError::HostName));
        assert_eq!("2001:db8::1".parse::<Ipv4Net>(), Err(NetParseError::Ipv6));
        assert_eq!("2001:db8::/32".parse::<Ipv4Net>(), Err(NetParseError::Ipv6));
        for bad in ["", "1.2.3", "1.2.3.4/33", "1.2.3.4/", "1.2.3.4/x", "300.1.1.1", "1.2.3.4/-1"] {
            assert_eq!(bad.parse::<Ipv4Net>(), Err(NetParseError::Malformed), "{bad}");
        }
        assert!(matches!("10.0.0.1/24".parse::<Ipv4Net>(), Err(NetParseError::HostBits(_))));
        assert!(NetParseError::HostName.to_string().contains("resolve"));
    }

    #[test]
    fn pool_allocation() {
        let pool = Pool::new("10.77.0.0/30".parse().unwrap()).unwrap();
        let mut used = BTreeSet::new();
        let a = pool.allocate(&used).unwrap();
        used.insert(a);
        let b = pool.allocate(&used).unwrap();
        used.insert(b);
        assert_eq!((a, b), (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2)));
        assert_eq!(pool.allocate(&used), None, "network and broadcast are never handed out");
        used.remove(&a);
        assert_eq!(pool.allocate(&used), Some(a));
        assert!(Pool::new("169.254.0.0/24".parse().unwrap()).is_err());
        assert!(Pool::new("10.0.0.0/31".parse().unwrap()).is_err());
    }

    #[test]
    fn contains() {
        let n: Ipv4Net = "203.0.113.0/24".parse().unwrap();
        assert!(n.contains(Ipv4Addr::new(203, 0, 113, 200)));
        assert!(!n.contains(Ipv4Addr::new(203, 0, 114, 1)));
    }
}
