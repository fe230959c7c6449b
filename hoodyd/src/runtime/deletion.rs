//! Deleting a container, in steps that each survive an interruption:
//!
//! 1. stop it (`delete-stopped`), 2. remove its firewall (`delete-firewall`; refused: nothing
//!    else changes), 3. mark the record `deleting` (`delete-marked`), 4. remove its cgroup
//!    (`delete-cgroup`), 5. its storage, nested subvolumes and snapshots included
//!    (`delete-storage`), 6. its state directory, 7. the record (`delete-record`).
//!
//! Until step 7 the record keeps the container's name, address and id range, so nothing is
//! handed to another container while any of its data is left. A failure in steps 4–6 leaves it
//! listed as `deleting` with the error; the daemon retries (every `--delete-retry` seconds, and
//! at start-up before it serves), and so does another `DELETE`.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::lifecycle::fault;
use super::{Result, Runtime, RuntimeError, io_err};
use hoody_api::events::{EventData, EventType};

use crate::model::{Action, Container, Status, check_transition};
use crate::store;

impl Runtime {
    pub async fn delete(self: &Arc<Self>, id: &str, force: bool) -> Result<Container> {
        let guard = self.lock(id).await;
        let c = self.get(id).await?;
        check_transition(c.status, Action::Delete { force })?;
        if c.status == Status::Running {
            self.stop_locked(&c, Duration::ZERO).await?;
        }
        fault("delete-stopped")?;
        self.firewall.uninstall(&c.id, c.ipv4).await?;
        fault("delete-firewall")?;
        if c.status != Status::Deleting {
            let cid = c.id.clone();
            self.store.call(move |db| store::mark_deleting(db, &cid, None)).await?;
        }
        fault("delete-marked")?;
        self.finish_delete(&c).await?;
        self.execs.forget(&c.id);
        drop(guard);
        self.forget_lock(id);
        info!(container = %c.id, name = %c.name, "container deleted");
        self.emit(EventType::ContainerDeleted, &c, EventData::default());
        Ok(c)
    }

    /// Steps 4–7 of a container marked `deleting` (its lock held). On failure the error is
    /// recorded on the container and returned.
    async fn finish_delete(&self, c: &Container) -> Result<()> {
        let (storage, cg, cid, state) = (self.storage.clone(), self.cgroups.clone(), c.id.clone(), self.container_state_dir(&c.id));
        let removed = tokio::task::spawn_blocking(move || -> Result<()> {
            cg.remove(&cid)?;
            fault("delete-cgroup")?;
            storage.delete_container(&cid)?;
            fault("delete-storage")?;
            match std::fs::remove_dir_all(&state) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err("remove the container state directory")(e)),
            }
        })
        .await
        .map_err(RuntimeError::from)
        .and_then(|r| r);
        let cid = c.id.clone();
        if let Err(e) = removed {
            let why = crate::errors::chain(&e).join(": ");
            warn!(container = %c.id, error = %why, "delete failed half-way; the container stays listed as deleting and is retried");
            self.store.call(move |db| store::mark_deleting(db, &cid, Some(&why))).await?;
            return Err(e);
        }
        self.store.call(move |db| store::delete_container(db, &cid)).await?;
        fault("delete-record")?;
        Ok(())
    }

    /// Refuses changes to a container being deleted, for callers holding a copy of the record
    /// that may be older than the mark (it is read again); callers that just read it use
    /// `check_transition(c.status, Action::Change)`.
    pub(crate) async fn refuse_deleting(&self, c: &Container) -> Result<()> {
        let now = self.get(&c.id).await?;
        Ok(check_transition(now.status, Action::Change)?)
    }

    /// Retries every delete that failed half-way (or was interrupted by a crash); returns how
    /// many containers are still `deleting`.
    pub async fn retry_deletes(self: &Arc<Self>) -> Result<usize> {
        let pending: Vec<Container> = self.list(&Default::default()).await?.into_iter().filter(|c| c.status == Status::Deleting).collect();
        let mut left = 0;
        for c in pending {
            let guard = self.lock(&c.id).await;
            // Its firewall too, in case the crash came between the mark and its removal.
            let done = match self.firewall.uninstall(&c.id, c.ipv4).await {
                Ok(()) => self.finish_delete(&c).await,
                Err(e) => Err(e.into()),
            };
            drop(guard);
            match done {
                Ok(()) => {
                    self.forget_lock(&c.id);
                    info!(container = %c.id, name = %c.name, "container deleted (retried)");
                    self.emit(EventType::ContainerDeleted, &c, EventData::default());
                }
                Err(_) => left += 1,
            }
        }
        Ok(left)
    }

    /// Retries failed deletes every `every`, for the life of the daemon.
    pub fn spawn_delete_retries(self: &Arc<Self>, every: Duration) {
        let rt = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = rt.retry_deletes().await {
                    warn!(error = %e, "could not retry pending deletes");
                }
            }
        });
    }
}
