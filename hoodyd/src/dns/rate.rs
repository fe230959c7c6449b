//! Per-container query rate: a token bucket of `rate` per second, burst twice that.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Instant;

pub struct Limits {
    rate: f64,
    buckets: Mutex<HashMap<Ipv4Addr, (f64, Instant)>>,
}

impl Limits {
    pub fn new(rate: u32) -> Limits {
        Limits { rate: f64::from(rate), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token of `ip`'s bucket; false when it is empty.
    pub fn allow(&self, ip: Ipv4Addr) -> bool {
        self.allow_at(ip, Instant::now())
    }

    fn allow_at(&self, ip: Ipv4Addr, now: Instant) -> bool {
        let burst = 2.0 * self.rate;
        let mut m = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 100_000 {
            m.retain(|_, (_, t)| now.duration_since(*t).as_secs() < 10);
        }
        let (tokens, at) = m.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_of_twice_the_rate_then_the_rate() {
        let l = Limits::new(10);
        let (a, b) = ("10.77.0.2".parse().unwrap(), "10.77.0.3".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!((0..30).filter(|_| l.allow_at(a, t0)).count(), 20);
        assert!(l.allow_at(b, t0), "buckets are per container");
        assert_eq!((0..30).filter(|_| l.allow_at(a, t0 + Duration::from_millis(500))).count(), 5);
    }
}
