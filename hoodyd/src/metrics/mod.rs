//! What the daemon counts for `GET /metrics` beyond what it reads at scrape time (cgroups,
//! links, the firewall's counters): API requests by route, method and status with their
//! latencies, and the durations of operations. Names and units follow the Prometheus
//! conventions (`_total` on counters, seconds and bytes).

pub mod histogram;
pub mod text;

use histogram::{HistogramVec, REQUEST_BOUNDS};

/// Counted as requests are answered.
pub struct ApiMetrics {
    /// By route (the path pattern, `/api/v1/containers/{id}`), method, status.
    pub requests: HistogramVec,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics { requests: HistogramVec::new(REQUEST_BOUNDS) }
    }
}

impl ApiMetrics {
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        // Methods outside the standard ones are one label value (a client chooses them).
        const KNOWN: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        let method = if KNOWN.contains(&method) { method } else { "other" };
        self.requests.observe(vec![route.to_owned(), method.to_owned(), status.to_string()], seconds);
    }
}
