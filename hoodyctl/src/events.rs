//! `hoodyctl events`: follows the daemon's event stream, like `incus monitor`. One JSON object
//! per line as the daemon sends them (or a line of columns with `--output table`). When the
//! stream ends — the daemon restarted, or this reader was too slow and dropped — it resumes
//! after the last seq it printed, so nothing is missed and nothing printed twice.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;
use clap_complete::ArgValueCandidates;
use hoody_api::client::ClientError;
use hoody_api::events::{Event, EventLine};
use hoody_api::query::EventsQuery;

use super::Client;
use super::complete;
use super::output::{self, Output};

/// How long a lost daemon is waited for before giving up.
const RECONNECT_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only these types or classes (repeatable, or comma-separated): container.exited, snapshot…
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only the events of this container.
    #[arg(short = 'c', long = "container", value_name = "ID", add = ArgValueCandidates::new(complete::containers))]
    pub container: Option<String>,
    /// Begin after this seq: the events since then first, then new ones.
    #[arg(long, value_name = "SEQ")]
    pub since: Option<u64>,
    /// Exit after N events.
    #[arg(short = 'n', long, value_name = "N")]
    pub count: Option<u64>,
}

pub async fn events(client: &Client, out: Output, a: EventsArgs) -> anyhow::Result<i32> {
    let types = (!a.types.is_empty()).then(|| a.types.join(","));
    let mut since = a.since;
    let mut printed = 0u64;
    let mut lost_at: Option<Instant> = None;
    loop {
        let q = EventsQuery { since, types: types.clone(), container: a.container.clone() };
        let mut stream = match client.events(&q).await {
            Ok(s) => {
                lost_at = None;
                since = since.or(s.after());
                s
            }
            Err(ClientError::Api { status, error }) => return Ok(output::refused(status, &error)),
            Err(e @ (ClientError::Connect { .. } | ClientError::Http(_))) if since.is_some() => {
                // The daemon is restarting: wait for it, then go on where this left off.
                let first = *lost_at.get_or_insert_with(Instant::now);
                if first.elapsed() > RECONNECT_FOR {
                    return Err(e.into());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        while let Some(line) = stream.next().await {
            let line = match line {
                Ok(l) => l,
                // The connection broke (the daemon was killed): resume as after an end.
                Err(ClientError::Http(_)) if since.is_some() => break,
                Err(e) => return Err(e.into()),
            };
            if let EventLine::Event(e) = &line {
                since = Some(e.seq);
                printed += 1;
            }
            print(out, &line)?;
            if a.count.is_some_and(|n| printed >= n) {
                return Ok(0);
            }
        }
        // Ended (a restart, or a drop for slowness): resume after the last seq printed, or
        // where the stream began.
    }
}

fn print(out: Output, line: &EventLine) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    match (out, line) {
        (Output::Json, l) => writeln!(o, "{}", serde_json::to_string(l)?)?,
        (Output::Table, EventLine::Gap(g)) => writeln!(o, "-- events {}..{} are not in the stream (resume with --since)", g.from, g.to)?,
        (Output::Table, EventLine::Event(e)) => writeln!(o, "{}", columns(e))?,
    }
    o.flush()?;
    Ok(())
}

/// `SEQ TIME TYPE CONTAINER what`, the what being the event's data as `key=value`.
fn columns(e: &Event) -> String {
    let data = serde_json::to_value(&e.data).unwrap_or_default();
    let what: Vec<String> = data
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
        .collect();
    format!("{:>6}  {}  {:<22}  {}  {}", e.seq, e.time, e.kind.as_str(), e.container.as_deref().unwrap_or("-"), what.join(" "))
}
