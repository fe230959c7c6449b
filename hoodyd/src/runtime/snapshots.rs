//! Snapshots of a container: consistent (a running container is frozen for the instant of the
//! snapshot), restorable (a running container is stopped, restored and started again), and
//! comparable (diff against the live root or another snapshot). Plus the scheduler.

use hoody_api::events::EventType;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use hoody_snapshot::StorageError;
use tracing::{info, warn};

use super::lifecycle::fault;
use super::{Result, Runtime, RuntimeError};
use crate::model::{Container, Status};
use crate::schedule::{self, Action, Snap};
use crate::store::{self, SnapshotRecord, StoreError};

pub use hoody_api::snapshots::{Diff as DiffView, Snapshot as SnapshotView};

fn change(c: hoody_snapshot::diff::Change) -> hoody_api::snapshots::Change {
    use hoody_api::snapshots::ChangeKind as K;
    use hoody_snapshot::diff::ChangeKind;
    hoody_api::snapshots::Change {
        path: c.path,
        kind: match c.kind {
            ChangeKind::Added => K::Added,
            ChangeKind::Modified => K::Modified,
            ChangeKind::Deleted => K::Deleted,
        },
        what: c.what.into_iter().map(str::to_owned).collect(),
        file_type: c.file_type.to_owned(),
    }
}

impl Runtime {
    fn view(&self, r: SnapshotRecord) -> SnapshotView {
        SnapshotView {
            name: r.name,
            created_at: r.created_at,
            scheduled: r.scheduled,
            driver: self.storage.kind().to_string(),
            bytes: r.bytes,
            paused_ms: r.paused_ms,
        }
    }

    pub async fn list_snapshots(&self, c: &Container) -> Result<Vec<SnapshotView>> {
        let id = c.id.clone();
        let rows = self.store.call(move |db| store::list_snapshots(db, &id)).await?;
        Ok(rows.into_iter().map(|r| self.view(r)).collect())
    }

    pub(super) async fn snapshot_record(&self, c: &Container, name: &str) -> Result<SnapshotRecord> {
        let (id, n) = (c.id.clone(), name.to_owned());
        self.store
            .call(move |db| store::get_snapshot(db, &id, &n))
            .await?
            .ok_or_else(|| RuntimeError::Missing(format!("snapshot {name:?} of {:?}", c.name)))
    }

    /// Refuses, as a restore would, a snapshot that is not recorded.
    pub async fn snapshot_exists(&self, c: &Container, name: &str) -> Result<()> {
        self.snapshot_record(c, name).await.map(drop)
    }

    /// Takes a snapshot named `name`; a running container is frozen while it is taken.
    ///
    /// Steps, and what the next start does after a crash at each (rolled *back*: a snapshot
    /// that was not answered is not kept, and its name is free again):
    /// 1. freeze a running container — thawed (every level of its cgroup tree);
    /// 2. the snapshot in the pool (btrfs: a read-only subvolume; overlay: a copy of the upper
    ///    layer) — a snapshot on disk with no row is removed;
    /// 3. thaw;
    /// 4. sync the pool, so the row never points at data a power cut can lose — as 2;
    /// 5. the row (durable when committed); answer.
    pub async fn create_snapshot(&self, c: &Container, name: &str, scheduled: bool) -> Result<SnapshotView> {
        crate::ids::validate_name("alias", name)?;
        let _guard = self.lock(&c.id).await;
        let c = self.get(&c.id).await?;
        crate::model::check_transition(c.status, crate::model::Action::Change)?;
        let (id, n) = (c.id.clone(), name.to_owned());
        if self.store.call(move |db| store::get_snapshot(db, &id, &n)).await?.is_some() {
            return Err(RuntimeError::State(hoody_api::envelope::ErrorCode::AlreadyExists, format!("snapshot {name:?} already exists")));
        }
        let running = c.status == Status::Running && self.running_init_pid(&c.id).is_some();
        let budget = self.snapshot_budget(&c).await?;
        let (storage, cgroups, id, n) = (self.storage.clone(), self.cgroups.clone(), c.id.clone(), name.to_owned());
        let (stats, paused) = tokio::task::spawn_blocking(move || -> Result<_> {
            let t = Instant::now();
            if running {
                cgroups.freeze(&id, true)?;
                crate::fault::check("snapshot-frozen").map_err(super::io_err("snapshot"))?;
            }
            let r = storage.create_snapshot(&id, &n, budget);
            if running && let Err(e) = cgroups.freeze(&id, false) {
                warn!(container = %id, error = %e, "could not thaw after the snapshot");
            }
            let paused = running.then(|| t.elapsed().as_millis() as u64);
            let stats = r?;
            let synced = storage
                .sync()
                .map_err(RuntimeError::from)
                .and_then(|_| crate::fault::check("snapshot-taken").map_err(super::io_err("snapshot")));
            if let Err(e) = synced {
                let _ = storage.delete_snapshot(&id, &n);
                return Err(e);
            }
            Ok((stats, paused))
        })
        .await??;
        let t = self.cfg.clock.now();
        let rec = SnapshotRecord {
            name: name.to_owned(),
            created_at: humantime::format_rfc3339_millis(t).to_string(),
            created_unix: t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0),
            scheduled,
            bytes: stats.bytes,
            paused_ms: paused,
            charge_bytes: stats.charge,
        };
        let (id, r) = (c.id.clone(), rec.clone());
        if let Err(e) = self.store.call(move |db| store::insert_snapshot(db, &id, &r)).await {
            let (storage, id, n) = (self.storage.clone(), c.id.clone(), name.to_owned());
            let _ = tokio::task::spawn_blocking(move || storage.delete_snapshot(&id, &n)).await;
            return Err(match e {
                StoreError::SnapshotTaken(_) => RuntimeError::State(hoody_api::envelope::ErrorCode::AlreadyExists, e.to_string()),
                e => e.into(),
            });
        }
        info!(container = %c.id, snapshot = %name, scheduled, paused_ms = paused, "snapshot taken");
        self.emit(EventType::SnapshotCreated, &c, super::emit::snapshot(name));
        Ok(self.view(rec))
    }

    /// Deletes snapshot `name` (also what expiry does). Steps: 1. the snapshot in the pool;
    /// 2. its row; answer. After a crash between them the next start removes the row (rolled
    /// *forward*: a retry would finish it anyway); one left on disk with no row is removed.
    pub async fn delete_snapshot(&self, c: &Container, name: &str) -> Result<()> {
        self.remove_snapshot(c, name, EventType::SnapshotDeleted).await
    }

    /// Deletes snapshot `name`, telling the event stream it was `deleted` or `expired`.
    async fn remove_snapshot(&self, c: &Container, name: &str, event: EventType) -> Result<()> {
        let _guard = self.lock(&c.id).await;
        self.refuse_deleting(c).await?;
        self.snapshot_record(c, name).await?;
        let (storage, id, n) = (self.storage.clone(), c.id.clone(), name.to_owned());
        match tokio::task::spawn_blocking(move || storage.delete_snapshot(&id, &n)).await? {
            Ok(()) | Err(StorageError::SnapshotNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        fault("snapshot-delete-storage")?;
        let (id, n) = (c.id.clone(), name.to_owned());
        self.store.call(move |db| store::delete_snapshot(db, &id, &n)).await?;
        info!(container = %c.id, snapshot = %name, "snapshot deleted");
        self.emit(event, c, super::emit::snapshot(name));
        Ok(())
    }

    /// Changes from snapshot `from` to snapshot `to` (the live root when `None`).
    pub async fn diff(&self, c: &Container, from: &str, to: Option<&str>) -> Result<DiffView> {
        self.refuse_deleting(c).await?;
        self.snapshot_record(c, from).await?;
        if let Some(t) = to {
            self.snapshot_record(c, t).await?;
        }
        let (storage, image, id, f, t) = (self.storage.clone(), c.image.clone(), c.id.clone(), from.to_owned(), to.map(str::to_owned));
        let changes = tokio::task::spawn_blocking(move || -> std::result::Result<_, hoody_snapshot::StorageError> {
            let a = storage.snapshot_view(&image, &id, &f)?;
            let b = match &t {
                Some(t) => storage.snapshot_view(&image, &id, t)?,
                None => storage.live_view(&image, &id)?,
            };
            Ok(hoody_snapshot::diff::diff(a.as_ref(), b.as_ref()))
        })
        .await??;
        let count = |k| changes.iter().filter(|c| c.kind == k).count();
        use hoody_snapshot::diff::ChangeKind::*;
        Ok(DiffView {
            from: from.to_owned(),
            to: to.unwrap_or("live").to_owned(),
            added: count(Added),
            modified: count(Modified),
            deleted: count(Deleted),
            changes: changes.into_iter().map(change).collect(),
        })
    }

    /// Sets or clears the snapshot schedule and expiry.
    pub async fn set_snapshot_policy(&self, id: &str, schedule: Option<String>, expiry: Option<String>) -> Result<()> {
        let key = id.to_owned();
        self.store.call(move |db| store::set_snapshot_policy(db, &key, schedule.as_deref(), expiry.as_deref())).await?;
        Ok(())
    }

    /// One pass of the scheduler: takes due snapshots and deletes expired ones.
    pub async fn run_schedules(self: &Arc<Self>) -> Result<()> {
        let policies = self.store.call(|db| store::snapshot_policies(db)).await?;
        let now = self.cfg.clock.now();
        for (id, sched, exp) in policies {
            let schedule = sched.as_deref().and_then(|s| schedule::parse_schedule("schedule", s).ok());
            let expiry = exp.as_deref().and_then(|s| schedule::parse_expiry("expiry", s).ok());
            let Ok(c) = self.get(&id).await else { continue };
            if c.status == Status::Deleting {
                continue;
            }
            let snaps: Vec<Snap> = self
                .list_snapshots(&c)
                .await?
                .into_iter()
                .map(|s| Snap {
                    created_unix: humantime::parse_rfc3339_weak(&s.created_at)
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0),
                    name: s.name,
                    scheduled: s.scheduled,
                })
                .collect();
            for action in schedule::plan(now, schedule, expiry, &snaps) {
                let r = match &action {
                    Action::Take(name) => self.create_snapshot(&c, name, true).await.map(drop),
                    Action::Expire(name) => self.remove_snapshot(&c, name, EventType::SnapshotExpired).await,
                };
                match r {
                    Ok(()) => info!(container = %id, action = %action_text(&action), "scheduled snapshot action done"),
                    Err(e) => {
                        warn!(container = %id, action = %action_text(&action), error = %crate::errors::chain(&e).join(": "), "scheduled snapshot action failed")
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs the scheduler every `tick` until the process ends.
    pub fn spawn_scheduler(self: &Arc<Self>, tick: Duration) {
        let rt = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = rt.run_schedules().await {
                    warn!(error = %crate::errors::chain(&e).join(": "), "snapshot scheduler pass failed");
                }
                tokio::time::sleep(tick).await;
            }
        });
    }
}

/// A scheduled action, for the log.
fn action_text(a: &Action) -> String {
    match a {
        Action::Take(name) => format!("take {name}"),
        Action::Expire(name) => format!("expire {name}"),
    }
}
