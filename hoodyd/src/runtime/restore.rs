//! Restoring a snapshot, in written-down steps that a crash at any instant cannot leave half
//! done. A restore is rolled *forward* by the next start: finishing it is what a client's retry
//! would do anyway.
//!
//! | step | what                                                        | the next start after a crash here        |
//! |------|-------------------------------------------------------------|------------------------------------------|
//! | 1    | intent row: snapshot, was it running, a token, phase started | (nothing changed yet) redoes 3–8         |
//! | 2    | stop the container (recorded)                               | stops it if it is still running; 3–8     |
//! | 3    | prepare `.restore` from the snapshot, bounded, marked TOKEN  | live root unmarked: redoes 3–8           |
//! | 4    | swap it with the live root (`RENAME_EXCHANGE`)               | live root marked TOKEN: goes on at 5     |
//! | 5    | sync the pool (the swap and the new root reach the disk)     | same as 4                                |
//! | 6    | clear the mark, reset overlay's work dir; phase swapped row  | phase swapped: goes on at 7              |
//! | 7    | start again if it was running                                | starts it if it was running and is not   |
//! | 8    | clear the intent; answer                                     | (done)                                   |
//! | 9    | remove the previous root (background)                        | removed with the other leftovers         |
//!
//! A refusal or failure before step 4 puts the container back as it was (running again if it
//! was); the intent is cleared.

use hoody_api::events::EventType;
use std::sync::Arc;

use tracing::{info, warn};

use super::lifecycle::fault;
use super::{Result, Runtime, RuntimeError};
use crate::model::{Container, Status};
use crate::store::{self, RestoreIntent, RestorePhase};

/// The in-progress mark of a container's restore, cleared when the restore ends, however it
/// ends (a second restore meanwhile is refused, not queued).
pub struct RestoreClaim(Arc<Runtime>, String);

impl Drop for RestoreClaim {
    fn drop(&mut self) {
        self.0.restoring.lock().expect("poisoned").remove(&self.1);
    }
}

impl Runtime {
    /// Marks a restore of container `id` as in progress: 409 `in_progress` when one is.
    pub fn claim_restore(self: &Arc<Self>, id: &str) -> Result<RestoreClaim> {
        if !self.restoring.lock().expect("poisoned").insert(id.to_owned()) {
            return Err(RuntimeError::State(
                hoody_api::envelope::ErrorCode::InProgress,
                format!("a restore of {id} is already in progress"),
            ));
        }
        Ok(RestoreClaim(self.clone(), id.to_owned()))
    }

    /// Restores snapshot `name`: checked first; a running container is stopped, restored and
    /// started again. A failure before the swap leaves the container on its previous root (and
    /// running again if it was).
    pub async fn restore_snapshot(self: &Arc<Self>, c: &Container, name: &str) -> Result<Container> {
        let claim = self.claim_restore(&c.id)?;
        self.restore_claimed(claim, c, name).await
    }

    /// [`Runtime::restore_snapshot`] under a claim taken before (an asynchronous restore
    /// claims before it answers, so a second one is refused at once).
    pub async fn restore_claimed(self: &Arc<Self>, _claim: RestoreClaim, c: &Container, name: &str) -> Result<Container> {
        self.snapshot_record(c, name).await?;
        if !self.storage.has_snapshot(&c.id, name) {
            return Err(RuntimeError::Conflict(format!("snapshot {name:?} is recorded but its files are gone; it cannot be restored")));
        }
        let _guard = self.lock(&c.id).await;
        let c = self.get(&c.id).await?;
        crate::model::check_transition(c.status, crate::model::Action::Change)?;
        let intent = RestoreIntent {
            container_id: c.id.clone(),
            snapshot: name.to_owned(),
            was_running: c.status == Status::Running,
            token: crate::ids::new_id(),
            phase: RestorePhase::Started,
        };
        let i = intent.clone();
        self.store.call(move |db| store::set_restore_intent(db, &i)).await?;
        fault("restore-intent")?;
        if let Err(e) = self.run_restore(&c, &intent).await {
            self.settle_failed_restore(&c, &intent).await;
            return Err(e);
        }
        info!(container = %c.id, snapshot = %name, restarted = intent.was_running, "snapshot restored");
        self.emit(EventType::SnapshotRestored, &c, super::emit::snapshot(name));
        self.get(&c.id).await
    }

    /// After a failure (not a crash): before the swap, the container is put back as it was
    /// and the intent cleared; swapped but not finished, the intent stays for the next start;
    /// finished (the start failed), the intent is cleared and the container stays restored.
    async fn settle_failed_restore(self: &Arc<Self>, c: &Container, intent: &RestoreIntent) {
        if self.storage.restore_swapped(&c.id, &intent.token) {
            return;
        }
        let id = c.id.clone();
        let phase = self.store.call(move |db| store::restore_intent(db, &id)).await.ok().flatten().map(|i| i.phase);
        let id = c.id.clone();
        if let Err(e) = self.store.call(move |db| store::clear_restore_intent(db, &id)).await {
            warn!(container = %c.id, error = %e, "could not clear a failed restore's intent (the next start settles it)");
            return;
        }
        if phase == Some(RestorePhase::Started) && intent.was_running && self.running_init(&c.id).is_none() {
            match self.get(&c.id).await {
                Ok(c) => {
                    if let Err(e) = self.start_locked(&c).await {
                        warn!(container = %c.id, error = %crate::errors::chain(&e).join(": "), "could not start the container again after a failed restore");
                    }
                }
                Err(e) => warn!(container = %c.id, error = %e, "could not read the container after a failed restore"),
            }
        }
    }

    /// Steps 2–8 (and 9 in the background) for a recorded intent; also what the start-up
    /// reconcile runs for an intent a crash left in phase started.
    async fn run_restore(self: &Arc<Self>, c: &Container, intent: &RestoreIntent) -> Result<()> {
        if self.running_init(&c.id).is_some() {
            self.stop_locked(c, self.cfg.stop_timeout).await?;
            self.emit(EventType::ContainerStopped, c, super::lifecycle::stopped_by("restore"));
        }
        fault("restore-stopped")?;
        let (storage, id, n, disk, token) =
            (self.storage.clone(), c.id.clone(), intent.snapshot.clone(), c.limits.disk_limits(), intent.token.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            if !storage.restore_swapped(&id, &token) {
                storage.restore_snapshot(&id, &n, &disk, &token, &|step| crate::fault::check(step))?;
            }
            storage.sync()?;
            crate::fault::check("restore-swapped").map_err(super::io_err("restore"))?;
            Ok(storage.finish_restore(&id)?)
        })
        .await??;
        let id = c.id.clone();
        self.store.call(move |db| store::set_restore_phase(db, &id, RestorePhase::Swapped)).await?;
        self.restore_run_state(c, intent).await
    }

    /// Steps 7–9: the run state put back, the intent cleared, the old root removed.
    async fn restore_run_state(self: &Arc<Self>, c: &Container, intent: &RestoreIntent) -> Result<()> {
        if intent.was_running && self.running_init(&c.id).is_none() {
            let c = self.get(&c.id).await?;
            self.start_locked(&c).await?;
        }
        fault("restore-started")?;
        let id = c.id.clone();
        self.store.call(move |db| store::clear_restore_intent(db, &id)).await?;
        // The previous root goes in the background (destroying a subvolume may wait for a
        // btrfs commit); it takes the container's lock, so a following restore waits for it.
        let rt = self.clone();
        let id = c.id.clone();
        tokio::spawn(async move {
            let _guard = rt.lock(&id).await;
            let storage = rt.storage.clone();
            let key = id.clone();
            match tokio::task::spawn_blocking(move || storage.cleanup_restore(&key)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(container = %id, error = %e, "could not remove the previous root after a restore"),
                Err(e) => warn!(container = %id, error = %e, "restore cleanup task failed"),
            }
        });
        Ok(())
    }

    /// Start-up: finishes every restore a crash interrupted (before serving, after adoption).
    /// Returns what it repaired, one line each.
    pub async fn finish_interrupted_restores(self: &Arc<Self>) -> Result<Vec<String>> {
        let mut repaired = vec![];
        for intent in self.store.call(|db| store::restore_intents(db)).await? {
            let _guard = self.lock(&intent.container_id).await;
            let c = self.get(&intent.container_id).await?;
            let snapshot_there = self.storage.has_snapshot(&c.id, &intent.snapshot);
            let r = match intent.phase {
                RestorePhase::Swapped => self.restore_run_state(&c, &intent).await,
                RestorePhase::Started if snapshot_there || self.storage.restore_swapped(&c.id, &intent.token) => {
                    self.run_restore(&c, &intent).await
                }
                RestorePhase::Started => {
                    // Its snapshot is gone (lost to a power cut): nothing to finish it with.
                    warn!(container = %c.id, snapshot = %intent.snapshot, "an interrupted restore cannot be finished: its snapshot is gone");
                    let id = c.id.clone();
                    let storage = self.storage.clone();
                    let key = c.id.clone();
                    tokio::task::spawn_blocking(move || storage.cleanup_restore(&key)).await??;
                    self.store.call(move |db| store::clear_restore_intent(db, &id)).await?;
                    if intent.was_running && self.running_init(&c.id).is_none() {
                        self.start_locked(&self.get(&c.id).await?).await?;
                    }
                    Ok(())
                }
            };
            match r {
                Ok(()) => {
                    info!(container = %c.id, snapshot = %intent.snapshot, phase = %format!("{:?}", intent.phase).to_lowercase(), running = intent.was_running, "repair: finished an interrupted restore");
                    repaired.push(format!("restore:{}:{}", c.id, intent.snapshot));
                }
                Err(e) => {
                    warn!(container = %c.id, snapshot = %intent.snapshot, error = %crate::errors::chain(&e).join(": "), "could not finish an interrupted restore")
                }
            }
        }
        Ok(repaired)
    }
}
