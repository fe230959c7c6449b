//! A recording double of [`CgroupOps`]: remembers every call, pretends the kernel did it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{CgroupOps, Result, Usage};
use crate::limits::Limits;

pub struct RecordingCgroups {
    pub root: PathBuf,
    pub available: BTreeSet<String>,
    pub calls: Mutex<Vec<String>>,
}

impl RecordingCgroups {
    pub fn new(available: &[&str]) -> Self {
        RecordingCgroups { root: "/cg".into(), available: available.iter().map(|s| s.to_string()).collect(), calls: Mutex::new(vec![]) }
    }

    fn record(&self, s: String) {
        self.calls.lock().expect("poisoned").push(s);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("poisoned").clone()
    }
}

impl CgroupOps for RecordingCgroups {
    fn path(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
    fn controllers(&self) -> BTreeSet<String> {
        self.available.clone()
    }
    fn create(&self, id: &str, limits: &Limits) -> Result<PathBuf> {
        self.check_limits(limits)?;
        self.record(format!("create {id} {limits:?}"));
        Ok(self.path(id))
    }
    fn apply_limits(&self, id: &str, limits: &Limits) -> Result<()> {
        self.check_limits(limits)?;
        self.record(format!("limits {id} {limits:?}"));
        Ok(())
    }
    fn kill(&self, id: &str) -> Result<()> {
        self.record(format!("kill {id}"));
        Ok(())
    }
    fn freeze(&self, id: &str, frozen: bool) -> Result<()> {
        self.record(format!("freeze {id} {frozen}"));
        Ok(())
    }
    fn thaw_tree(&self, id: &str) -> Result<usize> {
        self.record(format!("thaw-tree {id}"));
        Ok(0)
    }
    fn populated(&self, _id: &str) -> Result<bool> {
        Ok(false)
    }
    fn remove(&self, id: &str) -> Result<()> {
        self.record(format!("remove {id}"));
        Ok(())
    }
    fn usage(&self, _id: &str) -> Usage {
        Usage::default()
    }
    fn list(&self) -> Result<Vec<String>> {
        Ok(vec![])
    }
    fn shim_cgroup(&self) -> Result<PathBuf> {
        Ok(self.root.join("shims"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::CgroupError;

    #[test]
    fn missing_controller_is_named() {
        let cg = RecordingCgroups::new(&["pids"]);
        let limits = Limits { memory: Some(1 << 20), pids: Some(10), ..Default::default() };
        let err = cg.create("c1", &limits).unwrap_err();
        match err {
            CgroupError::MissingController { controller, .. } => assert_eq!(controller, "memory"),
            e => panic!("unexpected {e}"),
        }
        assert!(cg.calls().is_empty(), "nothing is created when a controller is missing");
        cg.create("c1", &Limits { pids: Some(10), ..Default::default() }).unwrap();
        assert_eq!(cg.calls().len(), 1);
    }
}
