//! create, start, stop, restart, delete.

use hoody_api::events::{EventData, EventType};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{Result, Runtime, RuntimeError, io_err, now};
use crate::helper::sys;
use crate::ids;
use crate::limits::FieldError;
use crate::limits::ValidateLimits;
use crate::model::{Action, Container, CreateContainer, Status, check_transition, validate_strings};
use crate::spec::{StartSpec, default_env};
use crate::store::{self, StoreError};

/// Validated schedule and expiry from a request; fields absent from the request keep
/// `current`, empty strings clear them.
pub(crate) fn validate_snapshot_policy(
    req: Option<&crate::model::SnapshotPolicy>,
    current_schedule: Option<String>,
    current_expiry: Option<String>,
) -> Result<(Option<String>, Option<String>)> {
    let Some(req) = req else { return Ok((current_schedule, current_expiry)) };
    let schedule = match &req.schedule {
        None => current_schedule,
        Some(s) if s.is_empty() => None,
        Some(s) => {
            crate::schedule::parse_schedule("snapshots.schedule", s)?;
            Some(s.clone())
        }
    };
    let expiry = match &req.expiry {
        None => current_expiry,
        Some(s) if s.is_empty() => None,
        Some(s) => {
            crate::schedule::parse_expiry("snapshots.expiry", s)?;
            Some(s.clone())
        }
    };
    Ok((schedule, expiry))
}

/// A step of create, start or delete where a test may inject a failure or a crash
/// (`HOODY_FAULTS`, see [`crate::fault`]).
pub(super) fn fault(step: &'static str) -> Result<()> {
    crate::fault::check(step).map_err(io_err(step))
}

/// Upper bound on waiting for a killed cgroup's init to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Where a fork comes from: the source container (one the caller may see) and its snapshot.
pub struct Fork {
    pub source: Container,
    pub snapshot: String,
}

/// A fork's environment: the source's, with its own hostname.
fn fork_env(source: &[String], name: &str) -> Vec<String> {
    let mut env = source.to_vec();
    crate::spec::set_env(&mut env, format!("HOSTNAME={name}"));
    env
}

impl Runtime {
    /// Validates a create request into a record (no side effects).
    pub(crate) fn validate_create(&self, req: CreateContainer) -> Result<Container> {
        ids::validate_name("name", &req.name)?;
        ids::validate_image_name("image", &req.image)?;
        for (i, r) in req.realm_ids.iter().enumerate() {
            if !ids::is_id(r) {
                return Err(FieldError::new(format!("realm_ids[{i}]"), "must be a 24-character lowercase hex id").into());
            }
        }
        if let Some(p) = &req.project_id
            && (p.is_empty() || p.len() > 128 || p.chars().any(|c| c.is_control()))
        {
            return Err(FieldError::new("project_id", "must be 1 to 128 printable characters").into());
        }
        let mut limits: crate::limits::Limits = match &req.limits {
            Some(l) => l.validate("limits")?,
            None => Default::default(),
        };
        limits.disk = limits.disk.or(self.cfg.default_disk);
        limits.inodes = limits.inodes.or(self.cfg.default_inodes);
        let command = req.command.unwrap_or_else(|| vec!["/sbin/init".into()]);
        if command.is_empty() || command[0].is_empty() {
            return Err(FieldError::new("command", "must name a program").into());
        }
        validate_strings("command", &command, false)?;
        let mut env = default_env(&req.name);
        if let Some(extra) = req.env {
            validate_strings("env", &extra, true)?;
            for kv in extra {
                crate::spec::set_env(&mut env, kv);
            }
        }
        let (snapshot_schedule, snapshot_expiry) = validate_snapshot_policy(req.snapshots.as_ref(), None, None)?;
        let mut realm_ids = req.realm_ids;
        realm_ids.sort();
        realm_ids.dedup();
        let egress = req.egress.unwrap_or(self.cfg.default_egress);
        Ok(Container {
            id: ids::new_id(),
            name: req.name,
            image: req.image,
            realm_ids,
            project_id: req.project_id,
            limits,
            egress,
            dns: hoody_net::policy::DnsMode::default_for(crate::model::egress_policy(egress)),
            autostart: req.autostart.unwrap_or(false),
            command,
            env,
            idmap: crate::spec::IdMap { host_base: 0, size: 0 },
            ipv4: None,
            status: Status::Created,
            pid: None,
            pid_start: None,
            exit_code: None,
            created_at: now(),
            started_at: None,
            finished_at: None,
            snapshot_schedule,
            snapshot_expiry,
            error: None,
        })
    }

    pub async fn create(self: &Arc<Self>, req: CreateContainer, start: bool) -> Result<Container> {
        self.create_from(req, start, None).await
    }

    /// Creates a container, from its image or (`fork`) from a snapshot of another: then its
    /// root is that snapshot's (an O(1) clone on btrfs, a copy on overlay), and its limits,
    /// egress policy, DNS mode, egress and ingress rules, command and environment are the
    /// source's unless the request gives its own (a request's `egress` means its own policy
    /// and no copied rules; its `limits` replace only the limits they set). Its id, uid range,
    /// address and firewall are its own.
    pub async fn create_from(self: &Arc<Self>, mut req: CreateContainer, start: bool, fork: Option<Fork>) -> Result<Container> {
        if let Some(f) = &fork {
            if req.image.is_empty() {
                req.image.clone_from(&f.source.image);
            } else if req.image != f.source.image {
                return Err(FieldError::new("image", format!("a fork's image is its source's ({:?})", f.source.image)).into());
            }
        }
        let asked_limits = match (&fork, &req.limits) {
            (Some(_), Some(l)) => Some(l.validate("limits")?),
            _ => None,
        };
        let given = (req.egress.is_some(), req.command.is_some(), req.env.is_some());
        let mut c = self.validate_create(req)?;
        let mut rules = vec![];
        if let Some(Fork { source: s, .. }) = &fork {
            // The source's limits, with what the request sets in their place.
            c.limits = match asked_limits {
                Some(l) => s.limits.merged(l),
                None => s.limits,
            };
            if !given.0 {
                (c.egress, c.dns) = (s.egress, s.dns);
                let sid = s.id.clone();
                rules = self.store.call(move |db| store::list_rules(db, &sid)).await?;
                for r in &mut rules {
                    r.rule.id = ids::new_id();
                    r.created_at.clone_from(&c.created_at);
                }
            }
            if !given.1 {
                c.command.clone_from(&s.command);
            }
            if !given.2 {
                c.env = fork_env(&s.env, &c.name);
            }
        }
        let image = c.image.clone();
        if self.store.call(move |db| store::get_image(db, &image)).await?.is_none() {
            return Err(FieldError::new("image", format!("no image named {:?} (see GET /images)", c.image)).into());
        }
        self.cgroups.check_limits(&c.limits)?;
        self.check_disk_limits(&c.limits)?;
        // Interfaces are named after the first 8 hex digits of the id, and so are the project
        // ids of overlay's quotas (bit 31 of which tells a root's from its snapshots'): pick an
        // id whose first digit is below 8 and whose first 8 digits are free, with that bit
        // either way.
        for _ in 0..64 {
            let id = c.id.clone();
            let low = id.as_bytes()[0] < b'8';
            let flipped = format!("{:x}{}", u8::from_str_radix(&id[..1], 16).unwrap_or(0) ^ 8, &id[1..]);
            if low && !self.store.call(move |db| Ok(store::ifname_taken(db, &id)? || store::ifname_taken(db, &flipped)?)).await? {
                break;
            }
            c.id = ids::new_id();
        }
        let _guard = self.lock(&c.id).await;
        let storage = self.storage.clone();
        let (image, id, disk) = (c.image.clone(), c.id.clone(), c.limits.disk_limits());
        let t = std::time::Instant::now();
        let from = fork.as_ref().map(|f| (f.source.id.clone(), f.snapshot.clone()));
        tokio::task::spawn_blocking(move || match from {
            Some((source, snapshot)) => storage.fork_container(&image, &source, &snapshot, &id, &disk),
            None => storage.create_container(&image, &id, &disk),
        })
        .await??;
        let t_storage = t.elapsed();
        fault("create-storage")?;
        let state = self.container_state_dir(&c.id);
        let undo = |rt: &Arc<Self>, id: String| {
            let storage = rt.storage.clone();
            let state = rt.container_state_dir(&id);
            tokio::task::spawn_blocking(move || {
                if let Err(e) = storage.delete_container(&id) {
                    warn!(container = %id, error = %e, "could not remove the root of a failed create");
                }
                let _ = std::fs::remove_dir_all(&state);
            })
        };
        if let Err(e) = std::fs::create_dir_all(&state) {
            let _ = undo(self, c.id.clone()).await;
            return Err(io_err("create the container state directory")(e));
        }
        fault("create-state-dir")?;
        let (record, copied) = (c.clone(), rules.iter().map(|r| r.rule.clone()).collect::<Vec<_>>());
        let (pool, net) = (self.cfg.id_pool, self.cfg.net_pool);
        let t = std::time::Instant::now();
        let inserted = self.store.call(move |db| store::insert_container_with_rules(db, &record, &copied, pool, net)).await;
        let t_store = t.elapsed();
        fault("create-record")?;
        match inserted {
            Ok((idmap, ip)) => {
                c.idmap = idmap;
                c.ipv4 = Some(ip);
            }
            Err(e) => {
                let _ = undo(self, c.id.clone()).await;
                return Err(match e {
                    StoreError::NameTaken { .. } => RuntimeError::State(hoody_api::envelope::ErrorCode::AlreadyExists, e.to_string()),
                    e => e.into(),
                });
            }
        }
        // Its firewall exists before it can ever run: deny-all unless the request said allow.
        let t = std::time::Instant::now();
        let installed = self.firewall.install(&self.firewall_of(&c, rules)).await;
        let t_fw = t.elapsed();
        if let Err(e) = installed {
            let cid = c.id.clone();
            let _ = self.store.call(move |db| store::delete_container(db, &cid)).await;
            let _ = undo(self, c.id.clone()).await;
            return Err(e.into());
        }
        fault("create-firewall")?;
        info!(
            container = %c.id,
            name = %c.name,
            image = %c.image,
            uid_base = c.idmap.host_base,
            storage_us = t_storage.as_micros() as u64,
            store_us = t_store.as_micros() as u64,
            firewall_us = t_fw.as_micros() as u64,
            "container created"
        );
        let data = EventData {
            image: Some(c.image.clone()),
            source: fork.as_ref().map(|f| f.source.id.clone()),
            snapshot: fork.as_ref().map(|f| f.snapshot.clone()),
            ..Default::default()
        };
        self.emit(EventType::ContainerCreated, &c, data);
        drop(_guard);
        if start {
            // Create-and-start is one request: if the start fails, the container goes again
            // (its row, address, id range, storage and firewall), so a retry starts afresh.
            return match self.start(&c.id).await {
                Ok(c) => Ok(c),
                Err(e) => {
                    if let Err(d) = self.delete(&c.id, true).await {
                        warn!(container = %c.id, error = %crate::errors::chain(&d).join(": "), "could not remove a container whose start failed");
                    }
                    Err(e)
                }
            };
        }
        Ok(c)
    }

    pub async fn start(self: &Arc<Self>, id: &str) -> Result<Container> {
        let _guard = self.lock(id).await;
        let c = self.get(id).await?;
        check_transition(c.status, Action::Start)?;
        self.start_locked(&c).await?;
        self.get(id).await
    }

    pub(crate) async fn start_locked(self: &Arc<Self>, c: &Container) -> Result<()> {
        let cg = self.cgroups.clone();
        let (cid, limits) = (c.id.clone(), c.limits);
        let t0 = std::time::Instant::now();
        let cgroup = tokio::task::spawn_blocking(move || cg.create(&cid, &limits)).await??;
        let t_cgroup = t0.elapsed();
        fault("start-cgroup")?;
        let spec = StartSpec {
            id: c.id.clone(),
            hostname: c.name.clone(),
            idmap: c.idmap,
            root: self.storage.container_root(&c.image, &c.id),
            cgroup,
            log: self.log_path(&c.id),
            log_max: self.cfg.log_max,
            shim_cgroup: {
                let cg = self.cgroups.clone();
                tokio::task::spawn_blocking(move || cg.shim_cgroup()).await??
            },
            command: c.command.clone(),
            env: c.env.clone(),
            proc_root: self.cfg.proc_root.clone(),
            network: c.ipv4.map(|address| crate::spec::NetSpec {
                host_ifname: hoody_net::names::host_ifname(&c.id),
                address,
                gateway: hoody_net::addr::GATEWAY,
            }),
        };
        let t = std::time::Instant::now();
        let launched = self.launch(&spec).await;
        let t_launch = t.elapsed();
        let (pid, start_time, shim_pid) = match launched {
            Ok(v) => v,
            Err(e) => {
                let cg = self.cgroups.clone();
                let cid = c.id.clone();
                let _ = tokio::task::spawn_blocking(move || cg.remove(&cid)).await;
                return Err(e);
            }
        };
        self.reap_shim(&c.id, shim_pid);
        fault("start-launched")?;
        let pidfd = sys::pidfd_open(pid).map_err(io_err("open a pidfd for the init"))?;
        let (cid, at) = (c.id.clone(), now());
        let t = std::time::Instant::now();
        self.store.call(move |db| store::mark_running(db, &cid, pid, start_time, &at)).await?;
        let t_store = t.elapsed();
        self.watch_init(&c.id, pid, pidfd).map_err(io_err("watch the init"))?;
        info!(
            container = %c.id,
            pid,
            cgroup_us = t_cgroup.as_micros() as u64,
            helper_us = t_launch.as_micros() as u64,
            store_us = t_store.as_micros() as u64,
            total_us = t0.elapsed().as_micros() as u64,
            "container started"
        );
        self.emit(EventType::ContainerStarted, c, EventData::default());
        Ok(())
    }

    pub async fn stop(self: &Arc<Self>, id: &str, timeout: Option<Duration>) -> Result<Container> {
        self.stop_because(id, timeout, "api").await
    }

    /// A stop whose `container.stopped` event gives `reason` (`api`, `shutdown`).
    pub(crate) async fn stop_because(self: &Arc<Self>, id: &str, timeout: Option<Duration>, reason: &str) -> Result<Container> {
        let _guard = self.lock(id).await;
        let c = self.get(id).await?;
        check_transition(c.status, Action::Stop)?;
        self.stop_locked(&c, timeout.unwrap_or(self.cfg.stop_timeout)).await?;
        self.emit(EventType::ContainerStopped, &c, stopped_by(reason));
        self.get(id).await
    }

    /// SIGTERM, then `cgroup.kill` once `timeout` has passed.
    pub(crate) async fn stop_locked(self: &Arc<Self>, c: &Container, timeout: Duration) -> Result<()> {
        if self.running_init(&c.id).is_none() {
            // Recorded as running but not watched: its init is gone already.
            let (cid, at) = (c.id.clone(), now());
            self.store.call(move |db| store::mark_stopped(db, &cid, None, None, &at)).await?;
            return Ok(());
        }
        // Steps: signal (or cgroup.kill), the exit, its record; answer. A crash before the
        // record is settled by adoption at the next start (the init is gone: marked stopped).
        if !timeout.is_zero() && self.signal_and_wait(&c.id, libc::SIGTERM, timeout).await {
            info!(container = %c.id, "container stopped");
            fault("stop-exited")?;
            return self.recorded_stopped(c).await;
        }
        let cg = self.cgroups.clone();
        let cid = c.id.clone();
        tokio::task::spawn_blocking(move || cg.kill(&cid)).await??;
        fault("stop-killed")?;
        if !self.wait_exit(&c.id, KILL_WAIT).await {
            return Err(RuntimeError::Conflict(format!("container {} did not exit after cgroup.kill", c.id)));
        }
        info!(container = %c.id, "container killed");
        self.recorded_stopped(c).await
    }

    /// A stop is answered as done only once the record says so: if the exit could not be
    /// recorded when it happened (the state file system full), it is written now or the stop
    /// fails saying why.
    async fn recorded_stopped(&self, c: &Container) -> Result<()> {
        if self.get(&c.id).await?.status != Status::Running {
            return Ok(());
        }
        let (cid, at) = (c.id.clone(), now());
        self.store.call(move |db| store::mark_stopped(db, &cid, None, None, &at)).await.map_err(|e| {
            warn!(container = %c.id, error = %e, "the container stopped but its record could not be written");
            RuntimeError::from(e)
        })?;
        Ok(())
    }

    pub async fn restart(self: &Arc<Self>, id: &str, timeout: Option<Duration>) -> Result<Container> {
        let _guard = self.lock(id).await;
        let c = self.get(id).await?;
        check_transition(c.status, Action::Restart)?;
        if c.status == Status::Running {
            self.stop_locked(&c, timeout.unwrap_or(self.cfg.stop_timeout)).await?;
            self.emit(EventType::ContainerStopped, &c, stopped_by("restart"));
        }
        let c = self.get(id).await?;
        self.start_locked(&c).await?;
        self.get(id).await
    }

    /// Changes limits (live, when the container runs), autostart and the snapshot policy.
    pub async fn update(self: &Arc<Self>, id: &str, req: crate::model::UpdateContainer) -> Result<Container> {
        let _guard = self.lock(id).await;
        let c = self.get(id).await?;
        check_transition(c.status, Action::Change)?;
        let limits = match &req.limits {
            Some(l) => {
                let l = c.limits.merged(l.validate("limits")?);
                self.cgroups.check_limits(&l)?;
                self.check_disk_limits(&l)?;
                Some(l)
            }
            None => None,
        };
        let policy = match (&req.snapshots, &req.schedule, &req.expiry) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(FieldError::new("snapshots", "give the schedule either in snapshots or at the top level, not both").into());
            }
            (Some(p), _, _) => Some(p.clone()),
            (None, None, None) => None,
            (None, s, e) => Some(crate::model::SnapshotPolicy { schedule: s.clone(), expiry: e.clone() }),
        };
        let (schedule, expiry) = validate_snapshot_policy(policy.as_ref(), c.snapshot_schedule.clone(), c.snapshot_expiry.clone())?;
        if let Some(l) = limits {
            if c.status == Status::Running {
                let (cg, cid) = (self.cgroups.clone(), c.id.clone());
                tokio::task::spawn_blocking(move || cg.apply_limits(&cid, &l)).await??;
            }
            if l.disk_limits() != c.limits.disk_limits() {
                let (storage, cid, d) = (self.storage.clone(), c.id.clone(), l.disk_limits());
                tokio::task::spawn_blocking(move || storage.set_disk_limits(&cid, &d)).await??;
            }
            let cid = c.id.clone();
            self.store.call(move |db| store::update_limits(db, &cid, &l)).await?;
        }
        if let Some(a) = req.autostart {
            let cid = c.id.clone();
            self.store.call(move |db| store::set_autostart(db, &cid, a)).await?;
        }
        if policy.is_some() {
            self.set_snapshot_policy(&c.id, schedule, expiry).await?;
        }
        info!(container = %c.id, "container updated");
        let mut fields = vec![];
        for (given, name) in [(req.limits.is_some(), "limits"), (req.autostart.is_some(), "autostart"), (policy.is_some(), "snapshots")] {
            if given {
                fields.push(name.to_owned());
            }
        }
        self.emit(EventType::ContainerUpdated, &c, EventData { fields: Some(fields), ..Default::default() });
        self.get(id).await
    }
}

/// The data of `container.stopped`: why (`api`, `restart`, `shutdown`, `restore`).
pub(crate) fn stopped_by(reason: &str) -> EventData {
    EventData { reason: Some(reason.to_owned()), ..Default::default() }
}
