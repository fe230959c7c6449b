//! Recent denied egress attempts per container, bounded (the kernel already rate-limits them).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hoody_net::nflog::Denied;
use serde::Serialize;

/// Attempts kept per container.
pub const KEEP: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub time: String,
    pub protocol: &'static str,
    pub source: String,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u16>,
}

#[derive(Default)]
pub struct EventLog {
    by_container: Mutex<HashMap<String, VecDeque<Event>>>,
}

impl EventLog {
    pub fn record(&self, d: Denied, time: String) {
        let mut m = self.by_container.lock().expect("poisoned");
        let q = m.entry(d.container).or_default();
        if q.len() == KEEP {
            q.pop_front();
        }
        q.push_back(Event {
            time,
            protocol: d.protocol,
            source: d.source.to_string(),
            destination: d.destination.to_string(),
            destination_port: d.destination_port,
        });
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
            };
            log.record(d, format!("t{i}"));
        }
        let r = log.recent("c");
        assert_eq!(r.len(), KEEP);
        assert_eq!(r[0].destination_port, Some((KEEP + 9) as u16));
        assert!(log.recent("other").is_empty());
        log.forget("c");
        assert!(log.recent("c").is_empty());
    }
}
