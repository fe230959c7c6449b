//! Start-up repairs of what a crash in a storage operation left (see the steps written beside
//! each operation: `snapshots.rs`, `restore.rs`, `images.rs`, `deletion.rs`). Run before the
//! API serves and before the scheduler runs, so no operation is live: anything half-made is a
//! leftover. Each repair is logged.

use std::collections::BTreeSet;
use std::sync::Arc;

use tracing::{info, warn};

use super::{Result, Runtime};
use crate::model::Status;
use crate::store::{self, ContainerFilter};

impl Runtime {
    /// Thaws every level of each adopted container's cgroup tree (a snapshot's freeze that a
    /// crash left in place).
    pub async fn thaw_leftover_freezes(&self, adopted: &[String]) -> Vec<String> {
        let (cg, ids) = (self.cgroups.clone(), adopted.to_vec());
        let r = tokio::task::spawn_blocking(move || {
            let mut out = vec![];
            for id in ids {
                match cg.thaw_tree(&id) {
                    Ok(0) => {}
                    Ok(n) => {
                        info!(container = %id, cgroups = n, "repair: thawed a container a crash left frozen");
                        out.push(format!("thawed:{id}"));
                    }
                    Err(e) => warn!(container = %id, error = %e, "could not thaw a container"),
                }
            }
            out
        })
        .await;
        r.unwrap_or_default()
    }

    /// Removes snapshots and images on disk that no row records (made but never answered, or
    /// deleted from the store but not yet from disk), staging entries, and rows whose data is
    /// gone (a snapshot delete interrupted after its storage step).
    pub async fn reclaim_storage_orphans(self: &Arc<Self>) -> Result<Vec<String>> {
        let mut repaired = vec![];
        for c in self.list(&ContainerFilter::default()).await? {
            if c.status == Status::Deleting {
                continue;
            }
            let key = c.id.clone();
            let rows: BTreeSet<String> =
                self.store.call(move |db| store::list_snapshots(db, &key)).await?.into_iter().map(|s| s.name).collect();
            let (storage, key) = (self.storage.clone(), c.id.clone());
            let disk: BTreeSet<String> = tokio::task::spawn_blocking(move || storage.snapshot_names(&key)).await??.into_iter().collect();
            for name in disk.difference(&rows) {
                let (storage, key, n) = (self.storage.clone(), c.id.clone(), name.clone());
                match tokio::task::spawn_blocking(move || storage.delete_snapshot(&key, &n)).await? {
                    Ok(()) => {
                        info!(container = %c.id, snapshot = %name, "repair: removed a snapshot that was never answered (or whose delete was)");
                        repaired.push(format!("snapshot:{}:{name}", c.id));
                    }
                    Err(e) => warn!(container = %c.id, snapshot = %name, error = %e, "could not remove a leftover snapshot"),
                }
            }
            for name in rows.difference(&disk) {
                let (key, n) = (c.id.clone(), name.clone());
                self.store.call(move |db| store::delete_snapshot(db, &key, &n)).await?;
                warn!(container = %c.id, snapshot = %name, "repair: removed the row of a snapshot whose files are gone (an interrupted delete)");
                repaired.push(format!("snapshot-row:{}:{name}", c.id));
            }
        }
        let storage = self.storage.clone();
        for n in tokio::task::spawn_blocking(move || storage.discard_stale_staging()).await?? {
            info!(entry = %n, "repair: removed an interrupted import's staging entry");
            repaired.push(format!("staging:{n}"));
        }
        let rows: BTreeSet<String> = self.list_images().await?.into_iter().map(|i| i.name).collect();
        let storage = self.storage.clone();
        let disk: BTreeSet<String> = tokio::task::spawn_blocking(move || storage.image_names()).await??.into_iter().collect();
        for name in disk.difference(&rows) {
            let (storage, n) = (self.storage.clone(), name.clone());
            match tokio::task::spawn_blocking(move || storage.delete_image(&n)).await? {
                Ok(()) => {
                    info!(image = %name, "repair: removed an image that was never answered (or whose delete was)");
                    repaired.push(format!("image:{name}"));
                }
                Err(e) => warn!(image = %name, error = %e, "could not remove a leftover image"),
            }
        }
        for name in rows.difference(&disk) {
            let n = name.clone();
            let users = self.store.call(move |db| store::image_users(db, &n)).await?;
            if users == 0 {
                let n = name.clone();
                self.store.call(move |db| store::delete_image(db, &n)).await?;
                warn!(image = %name, "repair: removed the row of an image whose files are gone");
                repaired.push(format!("image-row:{name}"));
            } else {
                warn!(image = %name, users, "an image's files are gone but containers still name it");
            }
        }
        Ok(repaired)
    }
}
