//! Histograms kept in memory, by label values: cumulative counts per upper bound, the sum and
//! the count, as the Prometheus text format wants them.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Upper bounds (seconds) for API request latencies.
pub const REQUEST_BOUNDS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Upper bounds (seconds) for operation durations.
pub const OPERATION_BOUNDS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// One histogram's numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative: see [`Histogram::cumulative`]).
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.buckets.len() != bounds.len() {
            self.buckets = vec![0; bounds.len()];
        }
        if let Some(i) = bounds.iter().position(|b| v <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// Counts at or below each bound, as the `le` buckets show them.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut n = 0;
        self.buckets
            .iter()
            .map(|b| {
                n += b;
                n
            })
            .collect()
    }
}

/// Histograms by label values (in a stable order).
pub struct HistogramVec {
    bounds: &'static [f64],
    by_labels: Mutex<BTreeMap<Vec<String>, Histogram>>,
}

impl HistogramVec {
    pub const fn new(bounds: &'static [f64]) -> HistogramVec {
        HistogramVec { bounds, by_labels: Mutex::new(BTreeMap::new()) }
    }

    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    pub fn observe(&self, labels: Vec<String>, seconds: f64) {
        let mut m = self.by_labels.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(labels).or_default().observe(self.bounds, seconds);
    }

    /// A copy of every histogram.
    pub fn snapshot(&self) -> Vec<(Vec<String>, Histogram)> {
        let m = self.by_labels.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().map(|(k, h)| (k.clone(), h.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_fall_in_their_bucket_and_accumulate() {
        let v = HistogramVec::new(&[0.1, 1.0]);
        for s in [0.05, 0.1, 0.5, 7.0] {
            v.observe(vec!["a".into()], s);
        }
        let (labels, h) = &v.snapshot()[0];
        assert_eq!(labels, &["a"]);
        assert_eq!((h.cumulative(), h.count), (vec![2, 3], 4));
        assert!((h.sum - 7.65).abs() < 1e-9);
    }
}
