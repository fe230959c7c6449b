//! The typed values of settings that people write with units: sizes (`8MiB`) and spans of time
//! (`30`, `90d`). Each parses the same way from a flag and from the configuration file (where a
//! plain number is also accepted), and prints back in a form it parses.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes: `8MiB`, `1.5GiB`, `10GB`, `65536`, `0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::limits::parse_size(s).map(ByteSize).ok_or_else(|| format!("{s:?} is not a size (e.g. 8MiB, 10GiB, 0)"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::limits::format_size(self.0))
    }
}

/// A span of time: whole seconds (`30`) or with units (`90s`, `5m`, `12h`, `90d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u64>() {
            return Ok(Span(Duration::from_secs(n)));
        }
        humantime::parse_duration(t).map(Span).map_err(|e| format!("{s:?} is not a span of time ({e}; e.g. 30, 5m, 90d)"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A DNS server: `IP` (port 53) or `IP:PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upstream(pub SocketAddr);

impl FromStr for Upstream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::dns::parse_upstream(s).map(Upstream).map_err(|e| format!("{s:?} {e}"))
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// In the file a size or a span may be a number (bytes, seconds) or text; it is written back as
/// text, which reads the same.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

macro_rules! serde_as_text {
    ($t:ty, $from_number:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                match NumberOrText::deserialize(d)? {
                    NumberOrText::Number(n) => Ok($from_number(n)),
                    NumberOrText::Text(t) => t.parse().map_err(serde::de::Error::custom),
                }
            }
        }
    };
}

serde_as_text!(ByteSize, ByteSize);
serde_as_text!(Span, |n| Span(Duration::from_secs(n)));

impl Serialize for Upstream {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Upstream {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_spans_read_back_what_they_print() {
        for s in ["8MiB", "0", "65536", "1.5GiB", "10GB"] {
            let v: ByteSize = s.parse().unwrap();
            assert_eq!(v.to_string().parse::<ByteSize>().unwrap(), v, "{s}");
        }
        for s in ["30", "0", "90d", "5m", "1h 30m"] {
            let v: Span = s.parse().unwrap();
            assert_eq!(v.to_string().parse::<Span>().unwrap(), v, "{s}");
        }
        assert_eq!("90d".parse::<Span>().unwrap().0, Duration::from_secs(90 * 86400));
        assert!("8 apples".parse::<ByteSize>().is_err() && "soon".parse::<Span>().is_err());
    }

    #[test]
    fn the_file_may_give_numbers_or_text() {
        #[derive(Deserialize)]
        struct T {
            a: ByteSize,
            b: Span,
            c: Upstream,
        }
        let t: T = toml::from_str("a = 1024\nb = \"2m\"\nc = \"198.51.100.53\"").unwrap();
        assert_eq!((t.a, t.b.0, t.c.0.port()), (ByteSize(1024), Duration::from_secs(120), 53));
        let t: T = toml::from_str("a = \"1KiB\"\nb = 7\nc = \"198.51.100.53:5353\"").unwrap();
        assert_eq!((t.a, t.b.0, t.c.0.port()), (ByteSize(1024), Duration::from_secs(7), 5353));
    }
}
