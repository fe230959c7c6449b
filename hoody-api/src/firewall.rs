//! A container's firewall: its rules, counters, the bodies that change it, and its events.

use serde::{Deserialize, Serialize};

use crate::common::Port;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Any,
}

/// Body of `POST /containers/{id}/firewall/egress`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    /// allow or deny.
    pub action: String,
    /// tcp, udp, icmp, any (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// An address or CIDR (`203.0.113.0/24`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// A host name (or `*.example.com`) instead of `destination`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_fqdn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<Port>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Body of `POST /containers/{id}/firewall/ingress`: an allow-list entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IngressRule {
    /// allow (the default; the only one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// An address or CIDR.
    pub source: String,
    /// `port` is accepted too.
    #[serde(default, alias = "port", skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<Port>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Body of `PATCH /containers/{id}/firewall`: each field keeps its value unless given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FirewallPatch {
    /// deny or allow: what the policy after the last rule does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// filtered, open or off: what the container's resolver answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
}

/// A rule as answered, with its counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rule {
    pub id: String,
    pub action: Action,
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_fqdn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<String>,
    pub description: String,
    pub created_at: String,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

/// `GET /containers/{id}/firewall`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Firewall {
    pub container_id: String,
    pub interface: String,
    pub ipv4: Option<String>,
    /// Egress policy after the last rule: deny or allow.
    pub policy: String,
    /// What the container's resolver answers: filtered, open, off.
    pub dns: String,
    /// In their order: the first that matches decides.
    pub egress: Vec<Rule>,
    pub ingress: Vec<Rule>,
    /// Egress refused (by a deny rule or the policy).
    pub denied: Count,
    /// Packets dropped for a forged source address.
    pub spoofed: Count,
    /// Inbound packets refused (not on the allow-list, not a reply).
    pub ingress_denied: Count,
}

/// A denied connection attempt (`kind: denied`), a refused DNS query (`kind: dns`, with the
/// name and type asked for), or an allowed connection by name (`kind: allowed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FirewallEvent {
    pub kind: String,
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub qtype: Option<String>,
    /// The rule by name whose learned address the connection went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
}
