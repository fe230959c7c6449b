//! The containers' resolver: hoodyd answers DNS on the gateway address (169.254.0.1, UDP and
//! TCP 53) of every container, polices each query by the container's `dns` mode and its rules
//! by name, forwards what it allows as a fresh query of its own, and opens in the firewall the
//! addresses an allowed name resolved to (for that container, that rule, the answer's TTL)
//! before the answer goes back.

mod listen;
mod police;
mod rate;
mod upstream;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hoody_net::addr::Ipv4Net;

use crate::firewall::Firewall;

pub use upstream::host_upstreams;

/// Settings of the resolver (flags `--dns-*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// Where queries go; empty: the host's resolvers ([`host_upstreams`]).
    pub upstreams: Vec<SocketAddr>,
    /// Queries per second per container (burst twice that).
    pub rate: u32,
    pub min_ttl: u32,
    pub max_ttl: u32,
    /// Seconds a learned address stays open after its (clamped) TTL.
    pub grace: u32,
    /// The host's resolver configuration, read when no upstream is given.
    pub resolv_conf: PathBuf,
    /// What systemd-resolved lists behind its stub 127.0.0.53.
    pub resolved_conf: PathBuf,
}

/// `IP` or `IP:PORT` (IPv4 or IPv6; port 53 by default).
pub fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)).map_err(|_| "is not an address (IP or IP:PORT)".into())
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("binding the resolver on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("no upstream resolver: give --dns-upstream, or list one in {0}")]
    NoUpstream(String),
}

/// The running resolver.
pub struct Resolver {
    cfg: DnsConfig,
    upstreams: Vec<SocketAddr>,
    firewall: Arc<Firewall>,
    rates: rate::Limits,
    /// Never learned, whatever an answer says.
    forbidden: Vec<Ipv4Net>,
}

impl Resolver {
    /// Binds the resolver's sockets (before the daemon says it is ready) and serves them.
    pub async fn start(cfg: DnsConfig, firewall: Arc<Firewall>, subnet: Ipv4Net) -> Result<Arc<Resolver>, DnsError> {
        let upstreams = if cfg.upstreams.is_empty() { host_upstreams(&cfg.resolv_conf, &cfg.resolved_conf) } else { cfg.upstreams.clone() };
        if upstreams.is_empty() {
            return Err(DnsError::NoUpstream(cfg.resolv_conf.display().to_string()));
        }
        let addr = SocketAddr::from((hoody_net::addr::GATEWAY, 53));
        let (udp, tcp) = listen::bind(addr).map_err(|source| DnsError::Bind { addr, source })?;
        let mut forbidden: Vec<Ipv4Net> = [("169.254.0.0", 16), ("127.0.0.0", 8), ("0.0.0.0", 8), ("224.0.0.0", 4), ("240.0.0.0", 4)]
            .iter()
            .filter_map(|(a, p)| Ipv4Net::new(a.parse().ok()?, *p))
            .collect();
        forbidden.push(subnet);
        forbidden.extend(host_addresses().into_iter().filter_map(|a| Ipv4Net::new(a, 32)));
        let rates = rate::Limits::new(cfg.rate);
        let r = Arc::new(Resolver { cfg, upstreams, firewall, rates, forbidden });
        tracing::info!(listen = %addr, upstreams = %r.upstreams.iter().map(ToString::to_string).collect::<Vec<_>>().join(","), "resolver listening");
        listen::serve(r.clone(), udp, tcp);
        Ok(r)
    }

    fn learnable(&self, a: Ipv4Addr) -> bool {
        !a.is_broadcast() && !self.forbidden.iter().any(|n| n.contains(a))
    }

    fn timeout_of(&self, ttl: u32) -> Duration {
        Duration::from_secs(u64::from(ttl.clamp(self.cfg.min_ttl, self.cfg.max_ttl) + self.cfg.grace))
    }

    /// Answers one query from `src` (the container's address, already checked against its
    /// interface); `None`: nothing to answer (not a query we can parse).
    async fn answer(&self, src: Ipv4Addr, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let q = wire::parse_query(query)?;
        let Some(c) = self.firewall.policy_of(src) else {
            return Some(wire::refused(&q));
        };
        if !self.rates.allow(src) {
            tracing::debug!(container = %c.id, "dns rate limit");
            return Some(wire::refused(&q));
        }
        let (name, qtype, rules) = match police::decide(&c, &q) {
            police::Decision::Forward { name, qtype, rules } => (name, qtype, rules),
            police::Decision::Refuse { name, qtype, why } => {
                tracing::info!(container = %c.id, %name, %qtype, why, "dns query refused");
                self.firewall.events.record_dns(&c.id, &name, &qtype, crate::time::now());
                return Some(wire::refused(&q));
            }
        };
        let reply = match upstream::forward(&self.upstreams, &name, qtype).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(container = %c.id, %name, error = %e, "dns upstream failed");
                return Some(wire::servfail(&q));
            }
        };
        let mut answers: Vec<crate::firewall::learned::Answer> = vec![];
        for (addr, ttl) in wire::addresses(&reply, &name).into_iter().filter(|(a, _)| self.learnable(*a)) {
            for rule_id in &rules {
                answers.push(crate::firewall::learned::Answer {
                    rule_id: rule_id.clone(),
                    addr,
                    name: name.clone(),
                    timeout: self.timeout_of(ttl),
                    slack: Duration::from_secs(u64::from(self.cfg.grace / 2)),
                });
            }
        }
        if !answers.is_empty()
            && let Err(e) = self.firewall.learn(src, answers).await
        {
            // Nothing opened: the container gets no answer it could not use.
            tracing::warn!(container = %c.id, %name, error = %e, "learned addresses not committed");
            return Some(wire::servfail(&q));
        }
        Some(wire::reply(&q, &reply, self.cfg.max_ttl, tcp))
    }
}

/// The host's own IPv4 addresses (never learned: an answer naming the host opens nothing).
fn host_addresses() -> Vec<Ipv4Addr> {
    match nix::ifaddrs::getifaddrs() {
        Ok(it) => it.filter_map(|i| i.address.and_then(|a| a.as_sockaddr_in().map(|s| s.ip()))).collect(),
        Err(_) => vec![],
    }
}
