//! Firewall rules as the API takes them, validated before anything reaches the kernel.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::addr::Ipv4Net;
use crate::error::Invalid;

pub const MAX_RULES_PER_CONTAINER: usize = 1000;
pub const MAX_DESCRIPTION: usize = 255;

pub use hoody_api::common::Port as PortValue;
pub use hoody_api::firewall::{Action, EgressRule as EgressRequest, IngressRule as IngressRequest, Protocol};

/// IP protocol number, for `meta l4proto`.
pub fn protocol_number(p: Protocol) -> Option<u8> {
    match p {
        Protocol::Tcp => Some(libc::IPPROTO_TCP as u8),
        Protocol::Udp => Some(libc::IPPROTO_UDP as u8),
        Protocol::Icmp => Some(libc::IPPROTO_ICMP as u8),
        Protocol::Any => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Egress,
    Ingress,
}

/// One port or an inclusive range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to { write!(f, "{}", self.from) } else { write!(f, "{}-{}", self.from, self.to) }
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl PortRange {
    pub fn parse(field: &str, s: &str) -> Result<PortRange, Invalid> {
        let port = |p: &str| -> Result<u16, Invalid> {
            let v: u32 = p.trim().parse().map_err(|_| Invalid::new(field, format!("{p:?} is not a port number")))?;
            if v == 0 || v > 65535 {
                return Err(Invalid::new(field, format!("port {v} is outside 1-65535")));
            }
            Ok(v as u16)
        };
        let (from, to) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(s)?;
                (p, p)
            }
        };
        if from > to {
            return Err(Invalid::new(field, format!("range {from}-{to} is reversed")));
        }
        Ok(PortRange { from, to })
    }
}

/// A validated rule (without its id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleSpec {
    pub direction: Direction,
    pub action: Action,
    pub protocol: Protocol,
    /// Destination (egress) or source (ingress); [`FQDN_PEER`] for a rule by name.
    pub peer: Ipv4Net,
    pub ports: Option<PortRange>,
    pub description: String,
    /// An egress allow rule by name (`destination_fqdn`): it matches the addresses the
    /// container learned by resolving a name it allows, not `peer`.
    pub fqdn: Option<String>,
}

/// The `peer` of a rule by name: the limited broadcast address, which no region of it is ever
/// compiled from (a rule by name owns only what the container learned; [`crate::regions`]).
pub const FQDN_PEER: Ipv4Net = Ipv4Net { addr: std::net::Ipv4Addr::BROADCAST, prefix: 32 };

/// A rule with its id, as stored and compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub spec: RuleSpec,
}

fn action(s: &str) -> Result<Action, Invalid> {
    match s {
        "allow" => Ok(Action::Allow),
        "deny" => Ok(Action::Deny),
        o => Err(Invalid::new("action", format!("{o:?} is not an action (allow, deny)"))),
    }
}

fn protocol(s: Option<&str>) -> Result<Protocol, Invalid> {
    match s.unwrap_or("any") {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "icmp" => Ok(Protocol::Icmp),
        "any" | "all" => Ok(Protocol::Any),
        o => Err(Invalid::new("protocol", format!("{o:?} is not a protocol (tcp, udp, icmp, any)"))),
    }
}

fn net(field: &str, s: &str) -> Result<Ipv4Net, Invalid> {
    s.parse::<Ipv4Net>().map_err(|e| Invalid::new(field, format!("{s:?} {e}")))
}

fn ports(proto: Protocol, v: &Option<PortValue>) -> Result<Option<PortRange>, Invalid> {
    let Some(v) = v else { return Ok(None) };
    let text = v.as_text();
    if !matches!(proto, Protocol::Tcp | Protocol::Udp) {
        return Err(Invalid::new("destination_port", "a port needs protocol tcp or udp"));
    }
    PortRange::parse("destination_port", &text).map(Some)
}

fn description(d: &Option<String>) -> Result<String, Invalid> {
    let d = d.clone().unwrap_or_default();
    if d.len() > MAX_DESCRIPTION {
        return Err(Invalid::new("description", format!("longer than {MAX_DESCRIPTION} bytes")));
    }
    if d.chars().any(char::is_control) {
        return Err(Invalid::new("description", "contains control characters"));
    }
    Ok(d)
}

/// A rule body checked and turned into a [`RuleSpec`].
pub trait ValidateRule {
    fn validate(&self) -> Result<RuleSpec, Invalid>;
}

impl ValidateRule for EgressRequest {
    fn validate(&self) -> Result<RuleSpec, Invalid> {
        let action = action(&self.action)?;
        let protocol = protocol(self.protocol.as_deref())?;
        let (peer, fqdn) = match (&self.destination, &self.destination_fqdn) {
            (Some(d), None) => (net("destination", d)?, None),
            (None, Some(n)) => {
                if action != Action::Allow {
                    return Err(Invalid::new("destination_fqdn", "a rule by name only allows (deny by address, or leave the name out)"));
                }
                (FQDN_PEER, Some(crate::fqdn::validate("destination_fqdn", n)?))
            }
            (Some(_), Some(_)) => return Err(Invalid::new("destination_fqdn", "give destination or destination_fqdn, not both")),
            (None, None) => return Err(Invalid::new("destination", "missing: give destination (CIDR) or destination_fqdn (a host name)")),
        };
        Ok(RuleSpec {
            direction: Direction::Egress,
            action,
            protocol,
            peer,
            ports: ports(protocol, &self.destination_port)?,
            description: description(&self.description)?,
            fqdn,
        })
    }
}

impl ValidateRule for IngressRequest {
    fn validate(&self) -> Result<RuleSpec, Invalid> {
        if let Some(a) = &self.action
            && action(a)? != Action::Allow
        {
            return Err(Invalid::new("action", "the ingress list only allows; everything not listed is dropped"));
        }
        let protocol = protocol(self.protocol.as_deref())?;
        Ok(RuleSpec {
            direction: Direction::Ingress,
            action: Action::Allow,
            protocol,
            peer: net("source", &self.source)?,
            ports: ports(protocol, &self.destination_port)?,
            description: description(&self.description)?,
            fqdn: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eg(json: &str) -> Result<RuleSpec, Invalid> {
        serde_json::from_str::<EgressRequest>(json).expect("shape").validate()
    }

    #[test]
    fn the_seed_rule() {
        let r = eg(r#"{"action":"allow","protocol":"tcp","destination":"203.0.113.10/32","destination_port":"443","description":"Allow Stripe API"}"#).unwrap();
        assert_eq!(r.action, Action::Allow);
        assert_eq!(r.ports, Some(PortRange { from: 443, to: 443 }));
        assert_eq!(r.peer.to_string(), "203.0.113.10/32");
        let r = eg(r#"{"action":"deny","protocol":"udp","destination":"198.51.100.0/24","destination_port":"8000-8100"}"#).unwrap();
        assert_eq!(r.ports.unwrap().to_string(), "8000-8100");
        assert!(eg(r#"{"action":"allow","destination":"0.0.0.0/0","destination_port":53}"#).is_err(), "port without tcp/udp");
    }

    #[test]
    fn a_rule_by_name_holds_the_name_not_an_address() {
        let r = eg(r#"{"action":"allow","protocol":"tcp","destination_fqdn":"API.Stripe.com","destination_port":"443"}"#).unwrap();
        assert_eq!((r.fqdn.as_deref(), r.peer), (Some("api.stripe.com"), FQDN_PEER));
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (r#"{"action":"allow","protocol":"tcp","destination":"api.stripe.com","destination_port":"443"}"#, "destination", "resolve"),
            (r#"{"action":"allow","protocol":"tcp","destination":"10.0.0.300","destination_port":"443"}"#, "destination", "not an IPv4"),
            (r#"{"action":"allow","protocol":"tcp","destination":"2001:db8::1","destination_port":"443"}"#, "destination", "IPv6"),
            (r#"{"action":"allow","protocol":"tcp","destination":"10.0.0.1","destination_port":"0"}"#, "destination_port", "outside"),
            (r#"{"action":"allow","protocol":"tcp","destination":"10.0.0.1","destination_port":"70000"}"#, "destination_port", "outside"),
            (
                r#"{"action":"allow","protocol":"tcp","destination":"10.0.0.1","destination_port":"9000-8000"}"#,
                "destination_port",
                "reversed",
            ),
            (r#"{"action":"allow","protocol":"icmp","destination":"10.0.0.1","destination_port":"80"}"#, "destination_port", "tcp or udp"),
            (r#"{"action":"allow","protocol":"any","destination":"10.0.0.1","destination_port":"80"}"#, "destination_port", "tcp or udp"),
            (r#"{"action":"permit","protocol":"tcp","destination":"10.0.0.1"}"#, "action", "not an action"),
            (r#"{"action":"allow","protocol":"sctp","destination":"10.0.0.1"}"#, "protocol", "not a protocol"),
            (r#"{"action":"allow","protocol":"tcp"}"#, "destination", "missing"),
            (r#"{"action":"allow","destination":"10.0.0.1","destination_fqdn":"a.example.com"}"#, "destination_fqdn", "not both"),
            (r#"{"action":"deny","destination_fqdn":"a.example.com"}"#, "destination_fqdn", "only allows"),
            (r#"{"action":"allow","destination_fqdn":"a.*.example.com"}"#, "destination_fqdn", "wildcard"),
            (r#"{"action":"allow","destination_fqdn":"203.0.113.10"}"#, "destination_fqdn", "address"),
        ];
        for (json, field, needle) in cases {
            let e = eg(json).unwrap_err();
            assert_eq!(e.field, field, "{json}");
            assert!(e.message.contains(needle), "{json}: {}", e.message);
        }
        let long = format!(r#"{{"action":"allow","destination":"10.0.0.1","description":"{}"}}"#, "x".repeat(256));
        assert_eq!(eg(&long).unwrap_err().field, "description");
        assert_eq!(eg(r#"{"action":"allow","destination":"10.0.0.1","description":"a\u0007b"}"#).unwrap_err().field, "description");
    }

    #[test]
    fn ingress_only_allows() {
        let ok = serde_json::from_str::<IngressRequest>(r#"{"protocol":"tcp","source":"198.51.100.2","destination_port":"8080"}"#)
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!((ok.direction, ok.action), (Direction::Ingress, Action::Allow));
        let e = serde_json::from_str::<IngressRequest>(r#"{"action":"deny","source":"198.51.100.2"}"#).unwrap().validate().unwrap_err();
        assert_eq!(e.field, "action");
    }
}
