//! Recent denied egress attempts per container, bounded (the kernel already rate-limits them).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hoody_net::nflog::Denied;

/// Attempts kept per container.
pub const KEEP: usize = 256;

pub use hoody_api::firewall::FirewallEvent as Event;

#[derive(Default)]
pub struct EventLog {
    by_container: Mutex<HashMap<String, VecDeque<Event>>>,
}

impl EventLog {
    fn push(&self, container: String, e: Event) {
        let mut m = self.by_container.lock().unwrap_or_else(|e| e.into_inner());
        let q = m.entry(container).or_default();
        if q.len() == KEEP {
            q.pop_front();
        }
        q.push_back(e);
    }

    /// A denied attempt, or (`d.allowed`) a new connection to an address the container learned
    /// by `name` for rule `rule_id`.
    pub fn record(&self, d: Denied, time: String, by_name: Option<(String, String)>) {
        let (name, rule_id) = by_name.unzip();
        let e = Event {
            kind: if d.allowed { "allowed" } else { "denied" }.to_owned(),
            time,
            protocol: Some(d.protocol.to_owned()),
            source: Some(d.source.to_string()),
            destination: Some(d.destination.to_string()),
            destination_port: d.destination_port,
            name,
            qtype: None,
            rule_id,
        };
        self.push(d.container, e);
    }

    /// A query the container's resolver refused (never forwarded).
    pub fn record_dns(&self, container: &str, name: &str, qtype: &str, time: String) {
        let e = Event {
            kind: "dns".to_owned(),
            time,
            protocol: None,
            source: None,
            destination: None,
            destination_port: None,
            name: Some(name.chars().take(hoody_net::fqdn::MAX_NAME).collect()),
            qtype: Some(qtype.to_owned()),
            rule_id: None,
        };
        self.push(container.to_owned(), e);
    }

    /// Most recent first.
    pub fn recent(&self, id: &str) -> Vec<Event> {
        self.by_container.lock().expect("poisoned").get(id).map(|q| q.iter().rev().cloned().collect()).unwrap_or_default()
    }

    pub fn forget(&self, id: &str) {
        self.by_container.lock().expect("poisoned").remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_most_recent_first() {
        let log = EventLog::default();
        for i in 0..(KEEP + 10) {
            let d = Denied {
                container: "c".into(),
                protocol: "tcp",
                source: "10.77.0.2".parse().unwrap(),
                destination: "203.0.113.10".parse().unwrap(),
                destination_port: Some(i as u16),
                allowed: false,
            };
            log.record(d, format!("t{i}"), None);
        }
        let r = log.recent("c");
        assert_eq!(r.len(), KEEP);
        assert_eq!(r[0].destination_port, Some((KEEP + 9) as u16));
        assert!(log.recent("other").is_empty());
        log.forget("c");
        assert!(log.recent("c").is_empty());
    }
}
