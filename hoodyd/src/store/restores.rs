//! Restore intents: written before a restore changes anything, cleared when it is done, so the
//! start after a crash can finish it (see `runtime::restore`).

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;

/// How far a restore got, as the state store knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestorePhase {
    /// Recorded; the swap may or may not have happened (the storage mark tells).
    Started,
    /// The restored root is in place and finished; only the run state is left to put back.
    Swapped,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreIntent {
    pub container_id: String,
    pub snapshot: String,
    pub was_running: bool,
    /// The mark the prepared root carries (unique per restore).
    pub token: String,
    pub phase: RestorePhase,
}

fn phase_name(p: RestorePhase) -> &'static str {
    match p {
        RestorePhase::Started => "started",
        RestorePhase::Swapped => "swapped",
    }
}

pub fn set_restore_intent(conn: &Connection, i: &RestoreIntent) -> Result<()> {
    conn.execute(
        "UPDATE containers SET restore_snapshot = ?2, restore_was_running = ?3, restore_token = ?4, restore_phase = ?5 WHERE id = ?1",
        params![i.container_id, i.snapshot, i.was_running, i.token, phase_name(i.phase)],
    )?;
    Ok(())
}

pub fn set_restore_phase(conn: &Connection, id: &str, phase: RestorePhase) -> Result<()> {
    conn.execute("UPDATE containers SET restore_phase = ?2 WHERE id = ?1", params![id, phase_name(phase)])?;
    Ok(())
}

pub fn clear_restore_intent(conn: &Connection, id: &str) -> Result<()> {
    conn.execute(
        "UPDATE containers SET restore_snapshot = NULL, restore_was_running = NULL, restore_token = NULL, restore_phase = NULL WHERE id = ?1",
        [id],
    )?;
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RestoreIntent> {
    Ok(RestoreIntent {
        container_id: r.get(0)?,
        snapshot: r.get(1)?,
        was_running: r.get(2)?,
        token: r.get(3)?,
        phase: if r.get::<_, String>(4)? == "swapped" { RestorePhase::Swapped } else { RestorePhase::Started },
    })
}

const COLUMNS: &str = "id, restore_snapshot, restore_was_running, restore_token, restore_phase";

pub fn restore_intents(conn: &Connection) -> Result<Vec<RestoreIntent>> {
    let mut st = conn.prepare(&format!("SELECT {COLUMNS} FROM containers WHERE restore_token IS NOT NULL ORDER BY id"))?;
    Ok(st.query_map([], row)?.collect::<rusqlite::Result<_>>()?)
}

pub fn restore_intent(conn: &Connection, id: &str) -> Result<Option<RestoreIntent>> {
    Ok(conn.query_row(&format!("SELECT {COLUMNS} FROM containers WHERE id = ?1 AND restore_token IS NOT NULL"), [id], row).optional()?)
}
