//! Disk quotas as the runtime sees them: which limits the storage pool can enforce, the snapshot
//! space a new snapshot must fit in, and what a container's storage uses.

use hoody_snapshot::SnapshotBudget;
use serde::Serialize;

use super::{Result, Runtime};
use crate::limits::{FieldError, Limits};
use crate::model::Container;
use crate::store;

/// The storage part of `usage` in `GET /containers/{id}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DiskUsageView {
    /// The root's own bytes (beyond what it shares with its image).
    pub disk_bytes: u64,
    /// What counts against limits.snapshots_disk (btrfs: the snapshots' charges, the most they
    /// can pin; overlay: the bytes of the snapshots' project).
    pub snapshots_bytes: u64,
    /// Inodes of the root (overlay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
}

impl Runtime {
    /// Refuses (422, naming the field and why) disk limits that this pool cannot enforce.
    pub(crate) fn check_disk_limits(&self, l: &Limits) -> Result<()> {
        let asked = [
            ("limits.disk", l.disk.is_some()),
            ("limits.snapshots_disk", l.snapshots_disk.is_some()),
            ("limits.inodes", l.inodes.is_some()),
        ];
        let Some((field, _)) = asked.iter().find(|(_, set)| *set) else { return Ok(()) };
        if let Err(why) = self.storage.quota_support() {
            return Err(FieldError::new(*field, format!("the storage directory cannot enforce it: {why}")).into());
        }
        if l.inodes.is_some() && !self.storage.limits_inodes() {
            return Err(FieldError::new(
                "limits.inodes",
                format!(
                    "the {} driver does not count inodes apart from bytes: its inodes are metadata that limits.disk bounds",
                    self.storage.kind()
                ),
            )
            .into());
        }
        Ok(())
    }

    /// The snapshot space of `c` that a new snapshot must fit in (None: unbounded).
    pub(crate) async fn snapshot_budget(&self, c: &Container) -> Result<Option<SnapshotBudget>> {
        let Some(limit) = c.limits.disk_limits().snapshots_disk else { return Ok(None) };
        let id = c.id.clone();
        let charged = self.store.call(move |db| store::snapshot_charges(db, &id)).await?;
        Ok(Some(SnapshotBudget { limit, charged }))
    }

    /// What `c`'s storage uses, where the pool counts it (None where it has no quotas).
    pub async fn disk_usage(&self, c: &Container) -> Option<DiskUsageView> {
        self.storage.quota_support().ok()?;
        let (storage, id) = (self.storage.clone(), c.id.clone());
        let usage = match tokio::task::spawn_blocking(move || storage.disk_usage(&id)).await {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => {
                tracing::debug!(container = %c.id, error = %e, "no disk usage");
                return None;
            }
            Err(_) => return None,
        };
        let snapshots_bytes = match usage.snapshots_bytes {
            Some(b) => b,
            None => {
                let id = c.id.clone();
                self.store.call(move |db| store::snapshot_charges(db, &id)).await.ok()?
            }
        };
        Some(DiskUsageView { disk_bytes: usage.disk_bytes, snapshots_bytes, inodes: usage.inodes })
    }
}
