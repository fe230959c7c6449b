//! Snapshot rows and the snapshot schedule of containers.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::{Result, StoreError};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotRecord {
    pub name: String,
    pub created_at: String,
    /// Seconds since the epoch, for the scheduler.
    #[serde(skip)]
    pub created_unix: i64,
    /// Taken by the schedule (these expire); manual snapshots are kept until deleted.
    pub scheduled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_ms: Option<u64>,
    /// What it counts against the container's snapshot space (limits.snapshots_disk).
    pub charge_bytes: u64,
}

pub fn insert_snapshot(conn: &Connection, container_id: &str, s: &SnapshotRecord) -> Result<()> {
    let r = conn.execute(
        "INSERT INTO snapshots (container_id, name, created_at, created_unix, scheduled, bytes, paused_ms, charge_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            container_id,
            s.name,
            s.created_at,
            s.created_unix,
            s.scheduled,
            s.bytes.map(|b| b as i64),
            s.paused_ms.map(|b| b as i64),
            s.charge_bytes as i64
        ],
    );
    if let Err(rusqlite::Error::SqliteFailure(e, _)) = &r
        && e.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return Err(StoreError::SnapshotTaken(s.name.clone()));
    }
    r?;
    Ok(())
}

pub fn list_snapshots(conn: &Connection, container_id: &str) -> Result<Vec<SnapshotRecord>> {
    let mut st = conn.prepare_cached(
        "SELECT name, created_at, created_unix, scheduled, bytes, paused_ms, charge_bytes FROM snapshots WHERE container_id = ?1 ORDER BY created_unix, rowid",
    )?;
    Ok(st
        .query_map([container_id], |r| {
            Ok(SnapshotRecord {
                name: r.get(0)?,
                created_at: r.get(1)?,
                created_unix: r.get(2)?,
                scheduled: r.get(3)?,
                bytes: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                paused_ms: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                charge_bytes: r.get::<_, i64>(6)? as u64,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

pub fn get_snapshot(conn: &Connection, container_id: &str, name: &str) -> Result<Option<SnapshotRecord>> {
    Ok(list_snapshots(conn, container_id)?.into_iter().find(|s| s.name == name))
}

/// Deletes a snapshot row. Its charge passes to the next newer snapshot, if any: what it pinned
/// and is still held is held by newer snapshots, whose own charges did not count it (it was
/// shared with this one when they were taken). In one transaction.
pub fn delete_snapshot(conn: &mut Connection, container_id: &str, name: &str) -> Result<bool> {
    let tx = conn.transaction()?;
    let all = list_snapshots(&tx, container_id)?;
    let Some(i) = all.iter().position(|s| s.name == name) else { return Ok(false) };
    if let Some(next) = all.get(i + 1)
        && all[i].charge_bytes > 0
    {
        tx.execute(
            "UPDATE snapshots SET charge_bytes = charge_bytes + ?3 WHERE container_id = ?1 AND name = ?2",
            params![container_id, next.name, all[i].charge_bytes as i64],
        )?;
    }
    tx.execute("DELETE FROM snapshots WHERE container_id = ?1 AND name = ?2", params![container_id, name])?;
    tx.commit()?;
    Ok(true)
}

/// The sum of the snapshots' charges of a container.
pub fn snapshot_charges(conn: &Connection, container_id: &str) -> Result<u64> {
    let n: i64 =
        conn.query_row("SELECT COALESCE(SUM(charge_bytes), 0) FROM snapshots WHERE container_id = ?1", [container_id], |r| r.get(0))?;
    Ok(n as u64)
}

pub fn set_snapshot_policy(conn: &Connection, id: &str, schedule: Option<&str>, expiry: Option<&str>) -> Result<()> {
    conn.execute("UPDATE containers SET snapshot_schedule = ?2, snapshot_expiry = ?3 WHERE id = ?1", params![id, schedule, expiry])?;
    Ok(())
}

/// A container's snapshot policy: (id, schedule, expiry).
pub type SnapshotPolicy = (String, Option<String>, Option<String>);

/// The policy of every container with a schedule or an expiry.
pub fn snapshot_policies(conn: &Connection) -> Result<Vec<SnapshotPolicy>> {
    let mut st = conn.prepare_cached(
        "SELECT id, snapshot_schedule, snapshot_expiry FROM containers WHERE snapshot_schedule IS NOT NULL OR snapshot_expiry IS NOT NULL",
    )?;
    Ok(st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?)
}
