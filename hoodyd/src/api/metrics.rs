//! `GET /metrics`: the Prometheus text format. Per container: CPU, memory, pids, OOM kills
//! (its cgroup, while it runs), disk (where the pool measures it), traffic of its host-side
//! veth end, and what its firewall allowed and refused; per route: requests by method and
//! status with their latencies; operation durations; open connections, streams and event
//! subscribers.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use super::error::ApiResult;
use crate::metrics::text::Text;
use crate::model::Status;
use crate::store::ContainerFilter;

#[utoipa::path(
    get,
    path = "/api/v1/metrics",
    tag = "system",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
pub async fn metrics(State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    let mut t = Text::default();
    daemon(&st, &mut t).await?;
    containers(&st, &mut t).await?;
    api(&st, &mut t);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], t.finish()))
}

async fn daemon(st: &AppState, t: &mut Text) -> ApiResult<()> {
    let all = st.rt.list(&ContainerFilter::default()).await?;
    let images = st.rt.list_images().await?;
    t.family("hoody_containers", "gauge", "Containers known to the daemon, by status.");
    for s in [Status::Created, Status::Running, Status::Stopped, Status::Deleting] {
        t.sample("hoody_containers", &[("status", s.as_str())], all.iter().filter(|c| c.status == s).count() as f64);
    }
    t.family("hoody_images", "gauge", "Images in the storage pool.");
    t.sample("hoody_images", &[], images.len() as f64);
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
        - st.started.elapsed().as_secs_f64();
    t.family("hoody_start_time_seconds", "gauge", "When the daemon started, in seconds since the Unix epoch.");
    t.sample("hoody_start_time_seconds", &[], started.floor());
    t.family("hoody_api_connections", "gauge", "API connections open now (streams not counted).");
    t.sample("hoody_api_connections", &[], st.slots.connections() as f64);
    t.family("hoody_api_streams", "gauge", "Long-lived streams open now: exec sessions, log followers, event streams.");
    t.sample("hoody_api_streams", &[], st.slots.streams() as f64);
    t.family("hoody_event_subscribers", "gauge", "Event streams subscribed now.");
    t.sample("hoody_event_subscribers", &[], st.rt.events().subscribers() as f64);
    Ok(())
}

/// Numbers of one container, read at scrape time.
#[derive(Default)]
struct Sample {
    cpu_seconds: Option<f64>,
    throttled_seconds: Option<f64>,
    memory_bytes: Option<u64>,
    pids: Option<u64>,
    oom_kills: Option<u64>,
    disk_bytes: Option<u64>,
    snapshots_bytes: Option<u64>,
    /// (received by the container, sent by it): bytes, packets.
    net: Option<hoody_net::netlink::LinkStats>,
    /// (verdict, direction, packets, bytes).
    firewall: Vec<(&'static str, &'static str, u64, u64)>,
}

async fn sample(
    st: &AppState,
    c: &crate::model::Container,
    links: &std::collections::HashMap<String, hoody_net::netlink::LinkStats>,
) -> Sample {
    let mut s = Sample::default();
    if c.status == Status::Running
        && let Some(u) = st.rt.cgroup_usage(&c.id).await
    {
        s.cpu_seconds = u.cpu_usage_usec.map(|v| v as f64 / 1e6);
        s.throttled_seconds = u.cpu_throttled_usec.map(|v| v as f64 / 1e6);
        (s.memory_bytes, s.pids, s.oom_kills) = (u.memory_bytes, u.pids, u.oom_kills);
    }
    if let Some(d) = st.rt.disk_usage(c).await {
        (s.disk_bytes, s.snapshots_bytes) = (Some(d.disk_bytes), Some(d.snapshots_bytes));
    }
    s.net = links.get(&hoody_net::names::host_ifname(&c.id)).copied();
    if c.status != Status::Deleting
        && let Ok(fw) = st.rt.show_firewall(c).await
    {
        let allowed = fw
            .egress
            .iter()
            .filter(|r| r.action == hoody_api::firewall::Action::Allow)
            .fold((0, 0), |a, r| (a.0 + r.packets, a.1 + r.bytes));
        let allowed_in = fw
            .ingress
            .iter()
            .filter(|r| r.action == hoody_api::firewall::Action::Allow)
            .fold((0, 0), |a, r| (a.0 + r.packets, a.1 + r.bytes));
        s.firewall = vec![
            ("allowed", "egress", allowed.0, allowed.1),
            ("denied", "egress", fw.denied.packets, fw.denied.bytes),
            ("allowed", "ingress", allowed_in.0, allowed_in.1),
            ("denied", "ingress", fw.ingress_denied.packets, fw.ingress_denied.bytes),
            ("spoofed", "egress", fw.spoofed.packets, fw.spoofed.bytes),
        ];
    }
    s
}

async fn containers(st: &AppState, t: &mut Text) -> ApiResult<()> {
    let all = st.rt.list(&ContainerFilter::default()).await?;
    let links = st.rt.link_stats().await.unwrap_or_else(|e| {
        tracing::warn!(error = %crate::errors::chain(&e).join(": "), "link counters could not be read");
        Default::default()
    });
    let mut samples = Vec::with_capacity(all.len());
    for c in &all {
        samples.push((c, sample(st, c, &links).await));
    }
    type Pick = fn(&Sample) -> Option<f64>;
    let simple: [(&str, &str, &str, Pick); 7] = [
        ("hoody_container_cpu_seconds_total", "counter", "CPU time the container used (its cgroup's cpu.stat), while it runs.", |s| {
            s.cpu_seconds
        }),
        ("hoody_container_cpu_throttled_seconds_total", "counter", "Time the container was held back by its cpus limit.", |s| {
            s.throttled_seconds
        }),
        ("hoody_container_memory_bytes", "gauge", "Memory the container uses now (memory.current).", |s| s.memory_bytes.map(|v| v as f64)),
        ("hoody_container_pids", "gauge", "Tasks in the container now (pids.current).", |s| s.pids.map(|v| v as f64)),
        ("hoody_container_oom_kills_total", "counter", "Processes the kernel's OOM killer ended in the container.", |s| {
            s.oom_kills.map(|v| v as f64)
        }),
        ("hoody_container_disk_bytes", "gauge", "Bytes of the container's root beyond its image (where the pool measures it).", |s| {
            s.disk_bytes.map(|v| v as f64)
        }),
        ("hoody_container_snapshots_disk_bytes", "gauge", "Bytes counted against the container's snapshot space.", |s| {
            s.snapshots_bytes.map(|v| v as f64)
        }),
    ];
    for (name, kind, help, pick) in simple {
        t.family(name, kind, help);
        for (c, s) in &samples {
            if let Some(v) = pick(s) {
                t.sample(name, &[("container", &c.id), ("name", &c.name)], v);
            }
        }
    }
    type Net = fn(&hoody_net::netlink::LinkStats) -> (u64, u64);
    // The host end's receive is what the container sent.
    let net: [(&str, &str, Net); 2] = [
        ("hoody_container_network_transmit", "sent by the container", |l| (l.rx_bytes, l.rx_packets)),
        ("hoody_container_network_receive", "received by the container", |l| (l.tx_bytes, l.tx_packets)),
    ];
    for (base, what, pick) in net {
        for (unit, i) in [("bytes", 0), ("packets", 1)] {
            let name = format!("{base}_{unit}_total");
            t.family(&name, "counter", &format!("{} {what}, counted on its veth's host end.", if i == 0 { "Bytes" } else { "Packets" }));
            for (c, s) in &samples {
                if let Some(l) = &s.net {
                    let v = pick(l);
                    t.sample(&name, &[("container", &c.id), ("name", &c.name)], if i == 0 { v.0 } else { v.1 } as f64);
                }
            }
        }
    }
    for (unit, i) in [("packets", 0), ("bytes", 1)] {
        let name = format!("hoody_container_firewall_{unit}_total");
        t.family(
            &name,
            "counter",
            &format!(
                "{} the container's firewall allowed (by its rules), denied or dropped as spoofed.",
                if i == 0 { "Packets" } else { "Bytes" }
            ),
        );
        for (c, s) in &samples {
            for (verdict, direction, p, b) in &s.firewall {
                let v = if i == 0 { *p } else { *b };
                t.sample(&name, &[("container", &c.id), ("name", &c.name), ("direction", direction), ("verdict", verdict)], v as f64);
            }
        }
    }
    Ok(())
}

fn api(st: &AppState, t: &mut Text) {
    let requests = st.metrics.requests.snapshot();
    t.family("hoody_api_requests_total", "counter", "API requests answered, by route, method and status.");
    for (l, h) in &requests {
        t.sample("hoody_api_requests_total", &[("route", &l[0]), ("method", &l[1]), ("status", &l[2])], h.count as f64);
    }
    t.family(
        "hoody_api_request_duration_seconds",
        "histogram",
        "Time to answer API requests (the audit record included), by route, method and status.",
    );
    for (l, h) in &requests {
        t.histogram(
            "hoody_api_request_duration_seconds",
            &[("route", &l[0]), ("method", &l[1]), ("status", &l[2])],
            st.metrics.requests.bounds(),
            h,
        );
    }
    let ops = st.operations.durations();
    t.family("hoody_operation_duration_seconds", "histogram", "Time operations (?async=true) took, by kind and how they ended.");
    for (l, h) in ops.snapshot() {
        t.histogram("hoody_operation_duration_seconds", &[("kind", &l[0]), ("status", &l[1])], ops.bounds(), &h);
    }
}
