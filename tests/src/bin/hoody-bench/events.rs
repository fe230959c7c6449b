//! The event stream's cost: API latency with many subscribers attached against none, side by
//! side (two daemons alike but for the subscribers, rounds alternating), for a read that emits
//! nothing and a change that emits an event every subscriber is sent; and the events per second
//! the daemon delivers to all of them.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hoody_e2e::World;
use hoody_e2e::stats::{median, paired_ratio, percentile};

/// `n` subscribers of the event stream, each on its own connection and thread, counting the
/// `container.updated` lines they read.
struct Subscribers {
    seen: Vec<Arc<AtomicU64>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Subscribers {
    fn attach(w: &World, n: usize) -> Subscribers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut seen = vec![];
        let mut threads = vec![];
        for _ in 0..n {
            let count = Arc::new(AtomicU64::new(0));
            let mut s = UnixStream::connect(&w.socket).expect("connect");
            s.write_all(b"GET /api/v1/events?type=container.updated HTTP/1.1\r\nHost: hoodyd\r\n\r\n").expect("subscribe");
            s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let (c, stop) = (count.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut r = BufReader::new(s);
                let mut line = String::new();
                while !stop.load(Ordering::Relaxed) {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) => return,
                        Ok(_) if line.contains("\"container.updated\"") => {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            }));
            seen.push(count);
        }
        Subscribers { seen, stop, threads }
    }

    /// Waits until every subscriber has read `total` events; the time it took from `since`.
    fn all_have(&self, total: u64, since: Instant) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.seen.iter().any(|c| c.load(Ordering::Relaxed) < total) {
            assert!(Instant::now() < deadline, "subscribers fell behind: {:?}", self.seen.iter().map(|c| c.load(Ordering::Relaxed)).min());
            std::thread::sleep(Duration::from_millis(2));
        }
        since.elapsed()
    }
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

pub fn events_bench(subscribers: usize) {
    let clients = 16;
    let per_client = 50;
    let rounds = 10;
    let (with, with_ids, _) = super::api_world(50, true, None);
    let (without, without_ids, _) = super::api_world(50, true, None);
    let subs = Subscribers::attach(&with, subscribers);
    std::thread::sleep(Duration::from_millis(500));
    let kinds = ["GET /containers/{id}", "PATCH /containers/{id} (emits container.updated)"];
    let mut samples: Vec<[Vec<f64>; 2]> = kinds.iter().map(|_| [vec![], vec![]]).collect();
    let mut round_medians: Vec<[Vec<f64>; 2]> = kinds.iter().map(|_| [vec![], vec![]]).collect();
    let mut delivered = vec![];
    let mut emitted = 0u64;
    for _ in 0..rounds {
        for (side, (w, ids)) in [(&with, &with_ids), (&without, &without_ids)].into_iter().enumerate() {
            let one = |i: usize| format!("/containers/{}", ids[i % ids.len()]);
            let (lat, _) = super::hammer(w, None, clients, per_client, &one);
            round_medians[0][side].push(median(&lat));
            samples[0][side].extend(lat);
            let t = Instant::now();
            let (lat, _) = super::hammer_with(w, None, clients, per_client, "PATCH", r#"{"autostart": false}"#, &one);
            round_medians[1][side].push(median(&lat));
            samples[1][side].extend(lat);
            if side == 0 {
                emitted += (clients * per_client) as u64;
                let took = subs.all_have(emitted, t);
                delivered.push((clients * per_client * subscribers) as f64 / took.as_secs_f64());
            }
        }
    }
    drop(subs);
    println!("## Events: the cost of subscribers\n");
    println!(
        "Two daemons alike (50 containers each), one with {subscribers} subscribers of `GET /events` attached, {clients} concurrent clients on keep-alive connections, {rounds} rounds of {} requests per measurement, alternating.\n",
        clients * per_client
    );
    println!("| request | daemon | median ms | p50 ms | p99 ms |\n|---|---|---|---|---|");
    let mut ratios = vec![];
    for (k, kind) in kinds.iter().enumerate() {
        for (side, label) in [format!("{subscribers} subscribers"), "none".to_string()].iter().enumerate() {
            let s = &samples[k][side];
            println!("| {kind} | {label} | {:.2} | {:.2} | {:.2} |", median(s), percentile(s, 50.0), percentile(s, 99.0));
        }
        ratios.push(paired_ratio(&round_medians[k][0], &round_medians[k][1]));
    }
    let p99 = |k: usize, side: usize| percentile(&samples[k][side], 99.0);
    let p99_ratio = p99(1, 0) / p99(1, 1);
    let worst = ratios.iter().copied().fold(f64::MIN, f64::max);
    println!(
        "\nWith subscribers / without, median of per-round ratios of the medians: {}; p99 of the change {p99_ratio:.2}×. Target ≤ 1.1×: {}.",
        kinds.iter().zip(&ratios).map(|(k, r)| format!("{k}: {r:.2}×")).collect::<Vec<_>>().join("; "),
        super::verdict(worst <= 1.1)
    );
    println!(
        "\nEvents delivered (each change's event to every subscriber, from the first request of a round to the last subscriber's last line): median {:.0} events/s, slowest round {:.0} events/s.",
        median(&delivered),
        delivered.iter().copied().fold(f64::MAX, f64::min)
    );
}
