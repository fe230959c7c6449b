//! The container runtime as the API sees it: lifecycle, exec, images. It owns the state store,
//! the storage driver and the cgroup manager, and starts processes through the helper.

pub mod adopt;
pub mod boot;
pub mod deletion;
pub mod disk;
mod emit;
pub mod exec;
mod exec_spares;
pub mod execs;
pub mod images;
pub mod launch;
pub mod lifecycle;
pub mod monitor;
pub mod network;
pub mod reaper;
pub mod restore;
pub mod snapshots;
pub mod storage_reconcile;
pub mod table_guard;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoody_snapshot::{StorageDriver, StorageError};

use crate::cgroup::{CgroupError, CgroupOps};
use crate::idmap::IdPool;
use crate::limits::FieldError;
use crate::model::{Container, Egress};
use crate::spec::FailureKind;
use crate::store::{ContainerFilter, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {0:?} not found")]
    NotFound(String),
    /// Something of a container that is not there (a snapshot, a rule, an exec): what it is.
    #[error("{0} not found")]
    Missing(String),
    #[error("image {0:?} not found")]
    ImageNotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A refusal for the state something is in, with the code that says which (409).
    #[error("{1}")]
    State(hoody_api::envelope::ErrorCode, String),
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("storage")]
    Storage(#[from] StorageError),
    #[error("cgroup")]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{message}")]
    Helper { kind: FailureKind, message: String, causes: Vec<String> },
    #[error("{op}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("blocking task failed")]
    Join(#[from] tokio::task::JoinError),
    #[error("firewall")]
    Firewall(#[from] hoody_net::NetError),
}

impl From<(hoody_api::envelope::ErrorCode, String)> for RuntimeError {
    /// A refused state transition ([`crate::model::check_transition`]).
    fn from((code, message): (hoody_api::envelope::ErrorCode, String)) -> Self {
        RuntimeError::State(code, message)
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

pub(crate) fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> RuntimeError {
    move |source| RuntimeError::Io { op, source }
}

/// Fixed settings of the runtime.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Binary re-executed as the helper (the daemon's own, `/proc/self/exe`).
    pub helper: PathBuf,
    pub state_dir: PathBuf,
    pub proc_root: PathBuf,
    pub stop_timeout: Duration,
    pub id_pool: IdPool,
    pub default_egress: Egress,
    /// The pool container addresses come from.
    pub net_pool: hoody_net::addr::Pool,
    /// Time for snapshots and their schedule (injectable for tests).
    pub clock: Arc<dyn crate::schedule::Clock>,
    /// `limits.disk` of a container whose create request gives none (`--default-disk`).
    pub default_disk: Option<u64>,
    /// `limits.inodes` likewise (`--default-inodes`, overlay).
    pub default_inodes: Option<u64>,
    /// Console log rotation size (`--log-max-size`).
    pub log_max: u64,
    /// How long an exec whose client lost the daemon waits to be re-attached after a restart
    /// (`--exec-reattach-grace`).
    pub exec_reattach_grace: Duration,
}

impl std::fmt::Debug for dyn crate::schedule::Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({:?})", self.now())
    }
}

pub struct Runtime {
    cfg: RuntimeConfig,
    store: Store,
    storage: Arc<dyn StorageDriver>,
    cgroups: Arc<dyn CgroupOps>,
    firewall: Arc<crate::firewall::Firewall>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    running: Mutex<HashMap<String, monitor::RunningInit>>,
    /// Containers with a restore in progress (a second restore is refused, not queued).
    restoring: Mutex<std::collections::HashSet<String>>,
    /// Exec instances, running and recently finished.
    execs: execs::ExecRegistry,
    /// What the autostart of this daemon start did.
    autostart: Mutex<boot::AutostartReport>,
    /// The event stream's source.
    events: Arc<crate::events::EventLog>,
    /// Exec shims started ahead of time.
    spares: Arc<exec_spares::Spares>,
}

impl Runtime {
    pub fn new(
        cfg: RuntimeConfig,
        store: Store,
        storage: Arc<dyn StorageDriver>,
        cgroups: Arc<dyn CgroupOps>,
        firewall: Arc<crate::firewall::Firewall>,
        events: Arc<crate::events::EventLog>,
    ) -> Arc<Self> {
        let execs = execs::ExecRegistry::new(cfg.state_dir.join("execs"), cfg.proc_root.clone());
        // HOODY_EXEC_SPARES (test hook): how many spares to keep, for the benchmark's side by side.
        let kept = crate::test_hooks::var("HOODY_EXEC_SPARES").and_then(|v| v.to_str()?.parse().ok()).unwrap_or(exec_spares::SPARES);
        let spares = exec_spares::Spares::new(cfg.helper.clone(), kept);
        Arc::new(Runtime {
            cfg,
            store,
            storage,
            cgroups,
            firewall,
            locks: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            restoring: Mutex::default(),
            execs,
            autostart: Mutex::default(),
            events,
            spares,
        })
    }

    /// Exec instances, running and recently finished (their reads touch files: call them off
    /// the async workers).
    pub fn execs(&self) -> &execs::ExecRegistry {
        &self.execs
    }

    /// Recent denied attempts, refused queries and connections by name of a container.
    pub fn firewall_events(&self, id: &str) -> Vec<crate::firewall::events::Event> {
        self.firewall.events.recent(id)
    }

    /// Seconds between SIGTERM and the kill when a stop names none.
    pub fn stop_timeout(&self) -> Duration {
        self.cfg.stop_timeout
    }

    /// The cgroup's numbers of a container (files in cgroupfs, read off the async workers).
    pub async fn cgroup_usage(&self, id: &str) -> Option<crate::cgroup::Usage> {
        let (cgroups, id) = (self.cgroups.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || cgroups.usage(&id)).await.ok()
    }

    /// The ids of every container in the store.
    pub async fn container_ids(&self) -> Result<std::collections::HashSet<String>> {
        Ok(self.store.all_containers().await?.iter().map(|c| c.id.clone()).collect())
    }

    /// Serialises lifecycle operations on one container.
    pub(crate) async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self.locks.lock().expect("poisoned").entry(id.to_owned()).or_default().clone();
        m.lock_owned().await
    }

    pub(crate) fn forget_lock(&self, id: &str) {
        self.locks.lock().expect("poisoned").remove(id);
    }

    pub fn container_state_dir(&self, id: &str) -> PathBuf {
        self.cfg.state_dir.join("containers").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_state_dir(id).join("console.log")
    }

    /// Resolves an id or a name (visible through `filter`) to a container.
    pub async fn resolve(&self, id_or_name: &str, filter: &ContainerFilter) -> Result<Container> {
        let all = self.store.all_containers().await?;
        let visible = |c: &Container| filter.realms.as_ref().is_none_or(|rs| c.realm_ids.iter().any(|r| rs.contains(r)));
        if crate::ids::is_id(id_or_name)
            && let Some(c) = all.iter().find(|c| c.id == id_or_name)
        {
            return if visible(c) { Ok(c.clone()) } else { Err(RuntimeError::NotFound(id_or_name.to_owned())) };
        }
        let named: Vec<&Container> = all.iter().filter(|c| c.name == id_or_name && visible(c)).collect();
        match named.as_slice() {
            [] => Err(RuntimeError::NotFound(id_or_name.to_owned())),
            [one] => Ok((*one).clone()),
            many => {
                Err(RuntimeError::Conflict(format!("{} containers are named {id_or_name:?} (in different realms): use the id", many.len())))
            }
        }
    }

    pub async fn get(&self, id: &str) -> Result<Container> {
        let key = id.to_owned();
        self.store.call(move |c| crate::store::get_container(c, &key)).await?.ok_or_else(|| RuntimeError::NotFound(id.to_owned()))
    }

    pub async fn list(&self, filter: &ContainerFilter) -> Result<Vec<Container>> {
        Ok(self.store.containers(filter).await?)
    }
}

/// RFC 3339 UTC timestamp with milliseconds.
pub use crate::time::now;
