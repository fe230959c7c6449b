//! The state store: SQLite (bundled) in WAL mode with full synchronous commits, so whatever the
//! API answered as done survives `kill -9` and power loss. All calls run on blocking threads.

mod containers;
mod firewall;
mod images;
mod realms;
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

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
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
        Ok(Store { conn: Arc::new(Mutex::new(conn)) })
    }

    /// An in-memory store for unit tests.
    pub fn memory() -> Result<Store> {
        let mut conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)) })
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

    /// Runs `f` synchronously (startup code, tests).
    pub fn call_sync<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }
}

pub use containers::*;
pub use firewall::*;
pub use images::*;
pub use realms::*;
pub use snapshots::*;
