//! Exec instances: every exec gets an id and a record — what runs, who started it, how it
//! ended — kept in memory while it runs and for a bounded time and count after (Docker's exec
//! instances, Incus's exec operations). A detached exec's output is kept here too, bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Finished instances kept per container, at most (the oldest go first).
pub const KEEP_FINISHED: usize = 100;
/// … and for at most this long after they finished.
pub const KEEP_FOR: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    Running,
    Exited,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StartedBy {
    pub uid: u32,
    pub token_id: Option<String>,
}

/// Output kept for later (detached execs), per stream up to a cap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated_stdout: bool,
    pub truncated_stderr: bool,
}

/// An exec as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExecView {
    pub id: String,
    pub container_id: String,
    pub command: Vec<String>,
    pub status: ExecStatus,
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub started_by: StartedBy,
    pub detached: bool,
    pub tty: bool,
    /// Killed because its timeout ran out.
    pub timed_out: bool,
}

struct Entry {
    view: ExecView,
    finished: Option<Instant>,
    output: Option<Captured>,
}

#[derive(Default)]
pub struct ExecRegistry {
    by_id: Mutex<HashMap<String, Entry>>,
}

impl ExecRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn start(&self, view: ExecView) {
        let mut m = self.lock();
        Self::prune(&mut m, &view.container_id, Instant::now());
        let output = view.detached.then(Captured::default);
        m.insert(view.id.clone(), Entry { view, finished: None, output });
    }

    /// Finished instances beyond the count or the age go, oldest first.
    fn prune(m: &mut HashMap<String, Entry>, container: &str, now: Instant) {
        m.retain(|_, e| e.finished.is_none_or(|t| now.duration_since(t) < KEEP_FOR));
        let mut done: Vec<(Instant, String)> =
            m.iter().filter(|(_, e)| e.view.container_id == container).filter_map(|(id, e)| e.finished.map(|t| (t, id.clone()))).collect();
        if done.len() > KEEP_FINISHED {
            done.sort();
            for (_, id) in &done[..done.len() - KEEP_FINISHED] {
                m.remove(id);
            }
        }
    }

    /// Records how it ended: `code` from a normal exit, or the terminating `signal`.
    pub fn finish(&self, id: &str, code: Option<i32>, signal: Option<i32>, timed_out: bool, at: String) {
        let mut m = self.lock();
        if let Some(e) = m.get_mut(id) {
            e.view.status = ExecStatus::Exited;
            e.view.exit_code = code;
            e.view.signal = signal;
            e.view.timed_out = timed_out;
            e.view.finished_at = Some(at);
            e.finished = Some(Instant::now());
        }
    }

    /// Appends detached output (stream 1 stdout, 2 stderr), up to `cap` bytes per stream.
    pub fn capture(&self, id: &str, stream: u8, data: &[u8], cap: usize) {
        let mut m = self.lock();
        let Some(out) = m.get_mut(id).and_then(|e| e.output.as_mut()) else { return };
        let (buf, cut) =
            if stream == 1 { (&mut out.stdout, &mut out.truncated_stdout) } else { (&mut out.stderr, &mut out.truncated_stderr) };
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&data[..data.len().min(room)]);
        if data.len() > room {
            *cut = true;
        }
    }

    pub fn get(&self, container: &str, id: &str) -> Option<(ExecView, Option<Captured>)> {
        self.lock().get(id).filter(|e| e.view.container_id == container).map(|e| (e.view.clone(), e.output.clone()))
    }

    /// A container's instances, most recently started first.
    pub fn list(&self, container: &str) -> Vec<ExecView> {
        let mut v: Vec<ExecView> = self.lock().values().filter(|e| e.view.container_id == container).map(|e| e.view.clone()).collect();
        v.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        v
    }

    /// A deleted container's instances go with it.
    pub fn forget(&self, container: &str) {
        self.lock().retain(|_, e| e.view.container_id != container);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, c: &str) -> ExecView {
        ExecView {
            id: id.into(),
            container_id: c.into(),
            command: vec!["true".into()],
            status: ExecStatus::Running,
            exit_code: None,
            signal: None,
            started_at: format!("t{id}"),
            finished_at: None,
            started_by: StartedBy { uid: 0, token_id: None },
            detached: true,
            tty: false,
            timed_out: false,
        }
    }

    #[test]
    fn finished_instances_are_bounded_and_output_capped() {
        let r = ExecRegistry::default();
        for i in 0..(KEEP_FINISHED + 5) {
            let id = format!("{i:04}");
            r.start(view(&id, "c"));
            r.finish(&id, Some(0), None, false, "t".into());
        }
        r.start(view("9999", "c"));
        assert_eq!(r.list("c").len(), KEEP_FINISHED + 1, "the running one and the newest finished");
        assert!(r.get("c", "0000").is_none(), "the oldest finished went");
        assert!(r.get("other", "9999").is_none(), "only under its own container");
        r.capture("9999", 1, b"hello world", 5);
        r.capture("9999", 2, b"err", 5);
        let (_, out) = r.get("c", "9999").unwrap();
        let out = out.unwrap();
        assert_eq!(
            (out.stdout.as_slice(), out.truncated_stdout, out.stderr.as_slice(), out.truncated_stderr),
            (&b"hello"[..], true, &b"err"[..], false)
        );
        r.forget("c");
        assert!(r.list("c").is_empty());
    }
}
