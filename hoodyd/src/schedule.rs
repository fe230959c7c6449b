//! Snapshot schedules and expiry: parsing, and the plan of what to take and delete at a given
//! moment. Pure, with the clock injected, so it is tested without waiting.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::limits::FieldError;

/// How often scheduled snapshots are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub every: Duration,
}

pub const MIN_EVERY: Duration = Duration::from_secs(60);

/// `hourly`, `daily`, `weekly` or `@every <duration>` (`@every 15m`, at least a minute).
pub fn parse_schedule(field: &str, s: &str) -> Result<Schedule, FieldError> {
    let every = match s.trim() {
        "hourly" => Duration::from_secs(3600),
        "daily" => Duration::from_secs(86_400),
        "weekly" => Duration::from_secs(7 * 86_400),
        other => {
            let d = other
                .strip_prefix("@every")
                .map(str::trim)
                .ok_or_else(|| FieldError::new(field, "use hourly, daily, weekly or \"@every 15m\""))?;
            humantime::parse_duration(d).map_err(|e| FieldError::new(field, format!("{d:?}: {e}")))?
        }
    };
    if every < MIN_EVERY {
        return Err(FieldError::new(field, "at most one snapshot a minute"));
    }
    Ok(Schedule { every })
}

/// A retention such as `90d`, `12h`, `2w`.
pub fn parse_expiry(field: &str, s: &str) -> Result<Duration, FieldError> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| FieldError::new(field, format!("{s:?}: {e} (e.g. 90d, 12h)")))?;
    if d < MIN_EVERY {
        return Err(FieldError::new(field, "at least a minute"));
    }
    Ok(d)
}

/// A snapshot as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snap {
    pub name: String,
    pub created_unix: i64,
    pub scheduled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Take(String),
    Expire(String),
}

/// Name of a scheduled snapshot taken at `t` (`auto-20261123-021530`).
pub fn auto_name(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    // 2026-11-23T02:15:30Z → 20261123-021530
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    format!("auto-{}-{}", &digits[..8], &digits[8..14])
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// What to do now. After downtime the schedule catches up with one snapshot (not one per
/// missed period); expiry applies to scheduled snapshots only, so a manual `clean-slate` stays.
pub fn plan(now: SystemTime, schedule: Option<Schedule>, expiry: Option<Duration>, snaps: &[Snap]) -> Vec<Action> {
    let now_s = unix(now);
    let mut actions = vec![];
    if let Some(s) = schedule {
        let last = snaps.iter().filter(|x| x.scheduled).map(|x| x.created_unix).max();
        if last.is_none_or(|l| now_s - l >= s.every.as_secs() as i64) {
            let mut name = auto_name(now);
            let mut n = 1;
            while snaps.iter().any(|x| x.name == name) {
                n += 1;
                name = format!("{}-{n}", auto_name(now));
            }
            actions.push(Action::Take(name));
        }
    }
    if let Some(e) = expiry {
        for x in snaps.iter().filter(|x| x.scheduled && now_s - x.created_unix >= e.as_secs() as i64) {
            actions.push(Action::Expire(x.name.clone()));
        }
    }
    actions
}

/// The daemon's clock: the system's, or (tests only) the time written in a file.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Reads an RFC 3339 time from a file at each call (`HOODY_CLOCK_FILE`). A file caught half
/// written (empty, unparsable) gives the last time read from it, never the system time; the
/// system time only until the file has been read once.
pub struct FileClock {
    path: std::path::PathBuf,
    last: std::sync::Mutex<Option<SystemTime>>,
}

impl FileClock {
    pub fn new(path: std::path::PathBuf) -> Self {
        FileClock { path, last: std::sync::Mutex::new(None) }
    }
}

impl Clock for FileClock {
    fn now(&self) -> SystemTime {
        let read = std::fs::read_to_string(&self.path).ok().and_then(|s| humantime::parse_rfc3339(s.trim()).ok());
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if read.is_some() {
            *last = read;
        }
        last.unwrap_or_else(SystemTime::now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    fn snap(name: &str, t: &str, scheduled: bool) -> Snap {
        Snap { name: name.into(), created_unix: unix(at(t)), scheduled }
    }

    #[test]
    fn a_half_written_clock_file_keeps_the_last_time() {
        let dir = std::env::temp_dir().join(format!("hoody-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("clock");
        std::fs::write(&path, "2026-01-01T00:00:00Z").unwrap();
        let clock = FileClock::new(path.clone());
        assert_eq!(clock.now(), at("2026-01-01T00:00:00Z"));
        std::fs::write(&path, "").unwrap();
        assert_eq!(clock.now(), at("2026-01-01T00:00:00Z"), "caught between truncate and write");
        std::fs::write(&path, "2026-01-01T01:00:00Z").unwrap();
        assert_eq!(clock.now(), at("2026-01-01T01:00:00Z"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_schedule("s", "daily").unwrap().every, Duration::from_secs(86_400));
        assert_eq!(parse_schedule("s", "@every 15m").unwrap().every, Duration::from_secs(900));
        assert_eq!(parse_schedule("s", "@every 10s").unwrap_err().field, "s");
        assert!(parse_schedule("s", "sometimes").is_err());
        assert_eq!(parse_expiry("e", "90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert!(parse_expiry("e", "soon").is_err());
        assert_eq!(auto_name(at("2026-11-23T02:15:30Z")), "auto-20261123-021530");
    }

    #[test]
    fn takes_when_due_and_catches_up_once() {
        let s = Some(parse_schedule("s", "hourly").unwrap());
        let snaps = vec![snap("auto-1", "2026-01-01T00:00:00Z", true), snap("clean-slate", "2026-01-01T00:30:00Z", false)];
        assert_eq!(plan(at("2026-01-01T00:59:59Z"), s, None, &snaps), vec![]);
        assert_eq!(plan(at("2026-01-01T01:00:00Z"), s, None, &snaps), vec![Action::Take("auto-20260101-010000".into())]);
        // Down for three days: one snapshot now, not seventy-two.
        assert_eq!(plan(at("2026-01-04T00:00:00Z"), s, None, &snaps).len(), 1);
        // Never scheduled before: take one at once.
        assert_eq!(plan(at("2026-01-01T00:00:00Z"), s, None, &[]).len(), 1);
    }

    #[test]
    fn expiry_spares_manual_snapshots() {
        let e = Some(parse_expiry("e", "2d").unwrap());
        let snaps = vec![
            snap("auto-old", "2026-01-01T00:00:00Z", true),
            snap("auto-new", "2026-01-03T00:00:00Z", true),
            snap("clean-slate", "2025-01-01T00:00:00Z", false),
        ];
        assert_eq!(plan(at("2026-01-03T12:00:00Z"), None, e, &snaps), vec![Action::Expire("auto-old".into())]);
    }

    #[test]
    fn unique_names_in_one_second() {
        let s = Some(parse_schedule("s", "hourly").unwrap());
        let snaps = vec![snap("auto-20260101-010000", "2026-01-01T00:00:00Z", true)];
        assert_eq!(plan(at("2026-01-01T01:00:00Z"), s, None, &snaps), vec![Action::Take("auto-20260101-010000-2".into())]);
    }
}
