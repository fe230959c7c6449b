//! Image rows.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, StoreError};

pub use hoody_api::images::Image as ImageRecord;

pub fn insert_image(conn: &Connection, img: &ImageRecord) -> Result<()> {
    let r = conn.execute(
        "INSERT INTO images (name, driver, created_at, files, bytes, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![img.name, img.driver, img.created_at, img.files as i64, img.bytes as i64, img.source],
    );
    if let Err(rusqlite::Error::SqliteFailure(e, _)) = &r
        && e.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return Err(StoreError::ImageTaken(img.name.clone()));
    }
    r?;
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRecord> {
    Ok(ImageRecord {
        name: r.get(0)?,
        driver: r.get(1)?,
        created_at: r.get(2)?,
        files: r.get::<_, i64>(3)? as u64,
        bytes: r.get::<_, i64>(4)? as u64,
        source: r.get(5)?,
    })
}

pub fn get_image(conn: &Connection, name: &str) -> Result<Option<ImageRecord>> {
    Ok(conn.query_row("SELECT name, driver, created_at, files, bytes, source FROM images WHERE name = ?1", [name], row).optional()?)
}

pub fn list_images(conn: &Connection) -> Result<Vec<ImageRecord>> {
    let mut st = conn.prepare_cached("SELECT name, driver, created_at, files, bytes, source FROM images ORDER BY name")?;
    Ok(st.query_map([], row)?.collect::<rusqlite::Result<_>>()?)
}

pub fn delete_image(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM images WHERE name = ?1", [name])? > 0)
}
