//! Importing, listing and deleting images.

use hoody_api::events::{EventData, EventType};
use std::io::Read;
use std::path::{Path, PathBuf};

use hoody_snapshot::{ImportReport, OwnerPolicy, SafeTreeWriter, StorageError};
use tracing::info;

use super::{Result, Runtime, RuntimeError, now};
use crate::ids;
use crate::store::{self, ImageRecord, StoreError};

/// Where an image comes from.
pub enum ImageSource {
    /// A tar stream (plain, gzip or zstd), e.g. an HTTP request body bridged to sync I/O.
    Tar(Box<dyn Read + Send>),
    /// A directory or tar file on the host (administrators only).
    Path(PathBuf),
    /// The host's static busybox binary.
    Busybox(PathBuf),
    /// A snapshot of a container, published: its whole tree as the container saw it.
    Snapshot { image: String, container: String, snapshot: String },
}

fn describe(src: &ImageSource) -> String {
    match src {
        ImageSource::Tar(_) => "upload".into(),
        ImageSource::Path(p) => p.display().to_string(),
        ImageSource::Busybox(p) => format!("busybox:{}", p.display()),
        ImageSource::Snapshot { container, snapshot, .. } => format!("snapshot:{container}/{snapshot}"),
    }
}

fn fill(storage: &dyn hoody_snapshot::StorageDriver, src: ImageSource, w: SafeTreeWriter) -> Result<ImportReport, StorageError> {
    match src {
        ImageSource::Tar(r) => hoody_snapshot::import_tar::import_tar(r, w),
        ImageSource::Path(p) if p.is_dir() => hoody_snapshot::import_dir::import_dir(&p, w),
        ImageSource::Path(p) if p.is_file() => {
            let f = std::fs::File::open(&p).map_err(|e| StorageError::Io { op: "open", path: p.clone(), source: e })?;
            hoody_snapshot::import_tar::import_tar(f, w)
        }
        ImageSource::Path(p) => Err(StorageError::NotImportable(p)),
        ImageSource::Busybox(p) => hoody_snapshot::busybox::build(&p, w),
        // Read through the same writer as any import: the tree is the tenant's.
        ImageSource::Snapshot { image, container, snapshot } => {
            let mut w = Some(w);
            storage.read_snapshot(&image, &container, &snapshot, &mut |view| {
                hoody_snapshot::import_dir::import_dir(view, w.take().expect("a snapshot is read once"))
            })
        }
    }
}

pub use hoody_api::images::Imported;

impl Runtime {
    /// Imports an image. Steps, and what the next start does after a crash at each (rolled
    /// *back*: an image that was not answered is not kept, and its name is free again):
    /// 1. a staging entry filled with the tree — removed;
    /// 2. committed under its name (read-only on btrfs);
    /// 3. the pool synced — an image on disk with no row is removed;
    /// 4. the row; answer.
    pub async fn import_image(&self, name: &str, src: ImageSource) -> Result<Imported> {
        self.check_new_image(name).await?;
        let source = describe(&src);
        let storage = self.storage.clone();
        let n = name.to_owned();
        let report = tokio::task::spawn_blocking(move || -> Result<ImportReport, StorageError> {
            let staged = storage.stage_image()?;
            let r = SafeTreeWriter::new(&staged, OwnerPolicy::Preserve)
                .and_then(|w| fill(&*storage, src, w))
                .and_then(|r| {
                    crate::fault::check("image-staged")
                        .map(|_| r)
                        .map_err(|e| StorageError::Interrupted { step: "image-staged", source: e })
                })
                .and_then(|r| storage.commit_image(&staged, &n).map(|_| r));
            if r.is_err() {
                storage.discard_staged(&staged);
                return r;
            }
            let synced = storage.sync().and_then(|_| {
                crate::fault::check("image-committed").map_err(|e| StorageError::Interrupted { step: "image-committed", source: e })
            });
            if let Err(e) = synced {
                let _ = storage.delete_image(&n);
                return Err(e);
            }
            r
        })
        .await?
        .map_err(|e| match e {
            StorageError::ImageExists(n) => {
                RuntimeError::State(hoody_api::envelope::ErrorCode::AlreadyExists, format!("image {n:?} already exists"))
            }
            e => e.into(),
        })?;
        let rec = ImageRecord {
            name: name.to_owned(),
            driver: self.storage.kind().to_string(),
            created_at: now(),
            files: report.files + report.directories + report.symlinks + report.hardlinks,
            bytes: report.bytes,
            source,
        };
        let r2 = rec.clone();
        if let Err(e) = self.store.call(move |db| store::insert_image(db, &r2)).await {
            let storage = self.storage.clone();
            let n = name.to_owned();
            let _ = tokio::task::spawn_blocking(move || storage.delete_image(&n)).await;
            return Err(match e {
                StoreError::ImageTaken(_) => RuntimeError::State(hoody_api::envelope::ErrorCode::AlreadyExists, e.to_string()),
                e => e.into(),
            });
        }
        info!(image = %name, files = rec.files, bytes = rec.bytes, skipped = report.skipped.len(), "image imported");
        self.events.global(EventType::ImageImported, EventData { name: Some(name.to_owned()), ..Default::default() });
        Ok(Imported { image: rec, report })
    }

    /// Refuses a name that is not an image name, or one an image has already.
    pub async fn check_new_image(&self, name: &str) -> Result<()> {
        ids::validate_image_name("name", name)?;
        let key = name.to_owned();
        if self.store.call(move |db| store::get_image(db, &key)).await?.is_some() {
            return Err(RuntimeError::State(hoody_api::envelope::ErrorCode::AlreadyExists, format!("image {name:?} already exists")));
        }
        Ok(())
    }

    pub async fn list_images(&self) -> Result<Vec<ImageRecord>> {
        Ok(self.store.call(|db| store::list_images(db)).await?)
    }

    pub async fn get_image(&self, name: &str) -> Result<ImageRecord> {
        let key = name.to_owned();
        self.store.call(move |db| store::get_image(db, &key)).await?.ok_or_else(|| RuntimeError::ImageNotFound(name.to_owned()))
    }

    /// Deletes an image. Steps: 1. the row (so no create can pick it any more); 2. the tree in
    /// the pool; answer. After a crash between them the next start removes the tree (rolled
    /// *forward*).
    pub async fn delete_image(&self, name: &str) -> Result<ImageRecord> {
        let img = self.get_image(name).await?;
        let key = name.to_owned();
        let users = self.store.call(move |db| store::image_users(db, &key)).await?;
        if users > 0 {
            return Err(RuntimeError::State(
                hoody_api::envelope::ErrorCode::InUse,
                format!("image {name:?} is used by {users} container(s)"),
            ));
        }
        let key = name.to_owned();
        self.store.call(move |db| store::delete_image(db, &key)).await?;
        super::lifecycle::fault("image-delete-record")?;
        let storage = self.storage.clone();
        let key = name.to_owned();
        tokio::task::spawn_blocking(move || storage.delete_image(&key)).await??;
        self.events.global(EventType::ImageDeleted, EventData { name: Some(name.to_owned()), ..Default::default() });
        Ok(img)
    }

    /// Builds `name` from the host's static busybox if no image of that name exists.
    pub async fn ensure_default_image(&self, name: &str, busybox: &Path) -> Result<()> {
        let key = name.to_owned();
        if self.store.call(move |db| store::get_image(db, &key)).await?.is_some() {
            return Ok(());
        }
        check_static(busybox)?;
        self.import_image(name, ImageSource::Busybox(busybox.to_path_buf())).await.map(drop)
    }
}

/// Refuses a dynamically linked busybox (it would not run inside an image without its libc).
fn check_static(path: &Path) -> Result<()> {
    let bad = |why: &str| {
        RuntimeError::Storage(StorageError::Unsupported {
            driver: "busybox image",
            path: path.to_path_buf(),
            reason: format!("{why}; install Debian's busybox-static"),
        })
    };
    let data = std::fs::read(path).map_err(|_| bad("cannot read it"))?;
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return Err(bad("not a 64-bit ELF binary"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[32..40].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > data.len() {
            break;
        }
        if u32::from_le_bytes(data[o..o + 4].try_into().expect("4 bytes")) == 3 {
            return Err(bad("it is dynamically linked"));
        }
    }
    Ok(())
}
