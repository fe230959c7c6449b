//! Exec instances: every exec gets an id and a record — what runs, who started it, how it
//! ended — kept while it runs and for a bounded time and count after (Docker's exec instances,
//! Incus's exec operations). Each lives in a directory its shim writes too (a detached exec's
//! output, how it ended), so instances and their output outlive the daemon.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

pub use hoody_api::exec::{ExecStatus, ExecView, StartedBy};

use crate::exec_record::{self as rec, ExecEnd, ExecRecord, ShimPids};

/// Finished instances kept per container, at most (the oldest go first).
pub const KEEP_FINISHED: usize = 100;
/// … and for at most this long after they finished.
pub const KEEP_FOR: Duration = Duration::from_secs(3600);

/// Output kept for later (detached execs), per stream up to a cap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated_stdout: bool,
    pub truncated_stderr: bool,
}

struct Entry {
    view: ExecView,
    finished: Option<Instant>,
    /// Bytes kept per output stream.
    cap: u64,
    /// A client attached through this daemon (a re-attach ends the grace after a restart).
    attached: bool,
}

/// A running exec the daemon found at its start (its shim outlived the daemon before).
#[derive(Clone, Debug)]
pub struct Recovered {
    pub view: ExecView,
    pub kill_grace: Duration,
}

/// The instances, backed by their directories (see [`crate::exec_record`]): what the shims
/// record on disk is the truth, read again whenever a running instance is looked at.
pub struct ExecRegistry {
    dir: PathBuf,
    proc_root: PathBuf,
    by_id: Mutex<HashMap<String, Entry>>,
}

impl ExecRegistry {
    pub fn new(dir: PathBuf, proc_root: PathBuf) -> ExecRegistry {
        ExecRegistry { dir, proc_root, by_id: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The directory of exec `id`.
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub fn start(&self, view: ExecView, cap: u64) {
        let mut m = self.lock();
        let gone = Self::prune(&mut m, &view.container_id, Instant::now());
        m.insert(view.id.clone(), Entry { view, finished: None, cap, attached: false });
        drop(m);
        for id in gone {
            let _ = std::fs::remove_dir_all(self.dir_of(&id));
        }
    }

    /// Finished instances beyond the count or the age go, oldest first; returns their ids.
    fn prune(m: &mut HashMap<String, Entry>, container: &str, now: Instant) -> Vec<String> {
        let mut gone: Vec<String> =
            m.iter().filter(|(_, e)| e.finished.is_some_and(|t| now.duration_since(t) >= KEEP_FOR)).map(|(id, _)| id.clone()).collect();
        let mut done: Vec<(Instant, String)> = m
            .iter()
            .filter(|(id, e)| e.view.container_id == container && !gone.contains(id))
            .filter_map(|(id, e)| e.finished.map(|t| (t, id.clone())))
            .collect();
        if done.len() > KEEP_FINISHED {
            done.sort();
            gone.extend(done[..done.len() - KEEP_FINISHED].iter().map(|(_, id)| id.clone()));
        }
        for id in &gone {
            m.remove(id);
        }
        gone
    }

    /// Records how it ended (`None`: it ended without a record, its shim killed).
    /// Records the end of `id`; true when it was running until now (its first end).
    pub fn finish(&self, id: &str, end: Option<&ExecEnd>) -> bool {
        let mut m = self.lock();
        match m.get_mut(id) {
            Some(e) => {
                let first = e.view.status == ExecStatus::Running;
                Self::finish_entry(e, end, Instant::now());
                first
            }
            None => false,
        }
    }

    fn finish_entry(e: &mut Entry, end: Option<&ExecEnd>, at: Instant) {
        e.view.status = ExecStatus::Exited;
        e.view.exit_code = end.and_then(|x| x.exit_code);
        e.view.signal = end.and_then(|x| x.signal);
        e.view.timed_out = end.is_some_and(|x| x.timed_out);
        e.view.finished_at = Some(end.map(|x| x.finished_at.clone()).unwrap_or_else(super::now));
        e.finished = Some(at);
    }

    /// Whether the shim recorded in `dir` still runs. Without its pids it is starting while
    /// this daemon runs (`exec` waits for that), but at the daemon's start it never ran: the
    /// daemon that made the record went before its shim got that far.
    fn shim_alive(&self, dir: &Path, at_start: bool) -> bool {
        match rec::read_json::<ShimPids>(dir, rec::PIDS) {
            Some(p) => crate::procfs::is_same_process(&self.proc_root, p.shim_pid, p.shim_start),
            None => !at_start,
        }
    }

    /// Reads again, from their directories, how the running instances of `container` ended.
    fn refresh(&self, container: &str) {
        let running: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.view.container_id == container && e.view.status == ExecStatus::Running)
            .map(|(id, _)| id.clone())
            .collect();
        for id in running {
            let dir = self.dir_of(&id);
            let end = rec::read_json::<ExecEnd>(&dir, rec::END);
            if end.is_some() || !self.shim_alive(&dir, false) {
                // The end may have been written just before the shim exited: read it once more.
                let end = end.or_else(|| rec::read_json::<ExecEnd>(&dir, rec::END));
                self.finish(&id, end.as_ref());
            }
        }
    }

    /// The end a shim recorded for `id`.
    pub fn recorded_end(&self, id: &str) -> Option<ExecEnd> {
        rec::read_json(&self.dir_of(id), rec::END)
    }

    /// A client attached to `id` (through the attach endpoint).
    pub fn mark_attached(&self, id: &str) {
        if let Some(e) = self.lock().get_mut(id) {
            e.attached = true;
        }
    }

    pub fn attached(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|e| e.attached)
    }

    pub fn get(&self, container: &str, id: &str) -> Option<(ExecView, Option<Captured>)> {
        self.refresh(container);
        let (view, cap) = self.lock().get(id).filter(|e| e.view.container_id == container).map(|e| (e.view.clone(), e.cap))?;
        let output = view.detached.then(|| {
            let dir = self.dir_of(id);
            let (stdout, stderr) = (rec::read_output(&dir, rec::STDOUT, cap), rec::read_output(&dir, rec::STDERR, cap));
            let end = rec::read_json::<ExecEnd>(&dir, rec::END);
            // While it runs, output at the cap means some may have been dropped.
            let cut = |end_says: Option<bool>, b: &Vec<u8>| end_says.unwrap_or(b.len() as u64 >= cap);
            Captured {
                truncated_stdout: cut(end.as_ref().map(|e| e.truncated_stdout), &stdout),
                truncated_stderr: cut(end.as_ref().map(|e| e.truncated_stderr), &stderr),
                stdout,
                stderr,
            }
        });
        Some((view, output))
    }

    /// A container's instances, most recently started first.
    pub fn list(&self, container: &str) -> Vec<ExecView> {
        self.refresh(container);
        let mut v: Vec<ExecView> = self.lock().values().filter(|e| e.view.container_id == container).map(|e| e.view.clone()).collect();
        v.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        v
    }

    /// A deleted container's instances go with it, directories and all.
    pub fn forget(&self, container: &str) {
        let mut gone = vec![];
        self.lock().retain(|id, e| {
            let keep = e.view.container_id != container;
            if !keep {
                gone.push(id.clone());
            }
            keep
        });
        for id in gone {
            let _ = std::fs::remove_dir_all(self.dir_of(&id));
        }
    }

    /// At the daemon's start: the instances from their directories. Those of containers that
    /// are gone, and half-made ones (no record), are removed; finished ones keep their age (from
    /// their end's file time). Returns the running ones.
    pub fn load(&self, containers: &HashSet<String>) -> Vec<Recovered> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return vec![] };
        let mut running = vec![];
        let now = (Instant::now(), SystemTime::now());
        for d in rd.flatten() {
            let (Some(id), dir) = (d.file_name().to_str().map(str::to_owned), d.path()) else { continue };
            let record = rec::read_json::<ExecRecord>(&dir, rec::RECORD);
            let Some(record) = record.filter(|r| r.view.id == id && containers.contains(&r.view.container_id)) else {
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            };
            let mut e = Entry { view: record.view.clone(), finished: None, cap: record.shim.cap, attached: false };
            let end = rec::read_json::<ExecEnd>(&dir, rec::END);
            if end.is_some() || !self.shim_alive(&dir, true) {
                let age = std::fs::metadata(dir.join(rec::END))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.1.duration_since(t).ok())
                    .unwrap_or_default();
                Self::finish_entry(&mut e, end.as_ref(), now.0.checked_sub(age).unwrap_or(now.0));
            } else {
                running.push(Recovered { view: record.view.clone(), kill_grace: Duration::from_millis(record.kill_grace_ms) });
            }
            self.lock().insert(id, e);
        }
        running
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

    fn end(code: i32) -> ExecEnd {
        ExecEnd { exit_code: Some(code), finished_at: "t".into(), ..Default::default() }
    }

    #[test]
    fn finished_instances_are_bounded_and_their_directories_go() {
        let d = tempfile::tempdir().unwrap();
        let r = ExecRegistry::new(d.path().into(), "/proc".into());
        for i in 0..(KEEP_FINISHED + 5) {
            let id = format!("{i:04}");
            std::fs::create_dir_all(r.dir_of(&id)).unwrap();
            r.start(view(&id, "c"), 5);
            r.finish(&id, Some(&end(0)));
        }
        std::fs::create_dir_all(r.dir_of("9999")).unwrap();
        r.start(view("9999", "c"), 5);
        assert_eq!(r.list("c").len(), KEEP_FINISHED + 1, "the running one and the newest finished");
        assert!(r.get("c", "0000").is_none(), "the oldest finished went");
        assert!(!r.dir_of("0000").exists(), "with its directory");
        assert!(r.get("other", "9999").is_none(), "only under its own container");
        std::fs::write(r.dir_of("9999").join(rec::STDOUT), b"hello world").unwrap();
        let (_, out) = r.get("c", "9999").unwrap();
        let out = out.unwrap();
        assert_eq!((out.stdout.as_slice(), out.truncated_stdout, out.stderr.as_slice()), (&b"hello"[..], true, &b""[..]));
        r.forget("c");
        assert!(r.list("c").is_empty());
        assert!(!r.dir_of("9999").exists());
    }

    #[test]
    fn a_restart_loads_instances_from_their_directories() {
        let d = tempfile::tempdir().unwrap();
        let record = |id: &str, c: &str| ExecRecord {
            view: view(id, c),
            kill_grace_ms: 5000,
            shim: rec::ShimSpec {
                exec: crate::spec::ExecSpec {
                    id: c.into(),
                    init_pid: 1,
                    init_start: 1,
                    cgroup: "/x".into(),
                    command: vec!["true".into()],
                    env: vec![],
                    cwd: "/".into(),
                    uid: 0,
                    gid: 0,
                    tty: false,
                    rows: 24,
                    cols: 80,
                    proc_root: "/proc".into(),
                },
                shim_cgroup: "/y".into(),
                detached: true,
                cap: 100,
                timeout_ms: None,
            },
        };
        let put = |id: &str, c: &str| {
            let dir = d.path().join(id);
            std::fs::create_dir_all(&dir).unwrap();
            rec::write_json(&dir, rec::RECORD, &record(id, c)).unwrap();
            dir
        };
        // Ended while no daemon ran.
        let ended = put("aa", "c1");
        rec::write_end(&ended, &end(3), false).unwrap();
        // Its shim still runs (this test process stands for it).
        let live = put("bb", "c1");
        let me = std::process::id() as i32;
        let start = crate::procfs::start_time(Path::new("/proc"), me).unwrap();
        rec::write_json_volatile(&live, rec::PIDS, &ShimPids { shim_pid: me, shim_start: start, helper_pid: me }).unwrap();
        // Its shim is gone without a record of the end (killed).
        let lost = put("cc", "c1");
        rec::write_json_volatile(&lost, rec::PIDS, &ShimPids { shim_pid: me, shim_start: start + 1, helper_pid: me }).unwrap();
        // Its daemon went before its shim ran (a record, no pids): ended, not running forever.
        put("ff", "c1");
        // Of a container that is gone; and a directory without a record.
        put("dd", "gone");
        std::fs::create_dir_all(d.path().join("ee")).unwrap();

        let r = ExecRegistry::new(d.path().into(), "/proc".into());
        let running = r.load(&HashSet::from(["c1".to_string()]));
        assert_eq!(running.iter().map(|x| x.view.id.as_str()).collect::<Vec<_>>(), vec!["bb"]);
        assert_eq!(running[0].kill_grace, Duration::from_secs(5));
        let (v, _) = r.get("c1", "aa").unwrap();
        assert_eq!((v.status, v.exit_code), (ExecStatus::Exited, Some(3)));
        let (v, _) = r.get("c1", "cc").unwrap();
        assert_eq!((v.status, v.exit_code), (ExecStatus::Exited, None));
        assert_eq!(r.get("c1", "ff").unwrap().0.status, ExecStatus::Exited);
        assert_eq!(r.get("c1", "bb").unwrap().0.status, ExecStatus::Running);
        assert!(!d.path().join("dd").exists() && !d.path().join("ee").exists());
        // The running one ends while the daemon runs: seen at the next look.
        rec::write_end(&live, &end(0), false).unwrap();
        assert_eq!(r.get("c1", "bb").unwrap().0.exit_code, Some(0));
    }
}
