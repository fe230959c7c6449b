//! The state store: SQLite (bundled) in WAL mode with full synchronous commits, so whatever the
//! API answered as done survives `kill -9` and power loss. All calls run on blocking threads.

mod containers;
mod firewall;
mod idempotency;
mod images;
mod realms;
mod restores;
mod schema;
mod snapshots;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

pub use containers::ContainerFilter;
pub use images::ImageRecord;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a container named {name:?} already exists{}", realm_suffix(.realm))]
    NameTaken { name: String, realm: String },
    #[error("image {0:?} already exists")]
    ImageTaken(String),
    #[error("no free id range is left for a new container")]
    IdsExhausted,
    #[error("no free address is left in {0}")]
    AddressesExhausted(String),
    #[error("interface name {0} is taken")]
    InterfaceTaken(String),
    #[error("firewall rule {0:?} not found")]
    RuleNotFound(String),
    #[error("snapshot {0:?} already exists")]
    SnapshotTaken(String),
    #[error("corrupt record {id}: {what}")]
    Corrupt { id: String, what: String },
    #[error("state database task failed")]
    Join(#[from] tokio::task::JoinError),
}

fn realm_suffix(realm: &str) -> String {
    if realm.is_empty() { String::new() } else { format!(" in realm {realm}") }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Every container as of a count of changed rows on the connection.
type ContainerCache = Option<(u64, Arc<Vec<crate::model::Container>>)>;

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    containers: Arc<Mutex<ContainerCache>>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        schema::migrate(&mut conn).map_err(open_err)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)), containers: Arc::default() })
    }

    /// An in-memory store for unit tests.
    pub fn memory() -> Result<Store> {
        let mut conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)), containers: Arc::default() })
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await?
    }

    /// The containers `filter` lets through. Listing is the hottest read of the API, so every
    /// container is kept decoded between calls; the copy is exact because every write goes
    /// through this one connection, whose count of changed rows moves with each of them.
    pub async fn containers(&self, filter: &ContainerFilter) -> Result<Vec<crate::model::Container>> {
        let all = self.all_containers().await?;
        Ok(all.iter().filter(|c| filter.realms.as_ref().is_none_or(|rs| c.realm_ids.iter().any(|r| rs.contains(r)))).cloned().collect())
    }

    /// Every container, decoded. When the connection is free and nothing changed since the last
    /// call, this answers from memory without leaving the caller's thread (`try_lock` never
    /// waits); otherwise it reads the database on a blocking thread.
    pub async fn all_containers(&self) -> Result<Arc<Vec<crate::model::Container>>> {
        if let Ok(conn) = self.conn.try_lock() {
            let version = conn.total_changes();
            let cached = self.containers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((v, all)) = &*cached
                && *v == version
            {
                return Ok(all.clone());
            }
        }
        let cache = self.containers.clone();
        self.call(move |conn| {
            let version = conn.total_changes();
            let mut cached = cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((v, all)) = &*cached
                && *v == version
            {
                return Ok(all.clone());
            }
            let all = Arc::new(list_containers(conn, &ContainerFilter::default())?);
            *cached = Some((version, all.clone()));
            Ok(all)
        })
        .await
    }

    /// Runs `f` synchronously (startup code, tests).
    pub fn call_sync<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }
}

pub use containers::*;
pub use firewall::*;
pub use idempotency::*;
pub use images::*;
pub use realms::*;
pub use restores::*;
pub use snapshots::*;
