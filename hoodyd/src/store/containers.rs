//! Container rows.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{Result, StoreError};
use crate::idmap::{IdPool, RANGE};
use crate::model::{Container, Egress, Status};
use crate::spec::IdMap;

const COLUMNS: &str = "id, name, image, project_id, limits, egress, autostart, command, env, idmap_base, idmap_size, ipv4, status, pid, pid_start, exit_code, created_at, started_at, finished_at, snapshot_schedule, snapshot_expiry, error, dns";

fn corrupt(id: &str, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt { id: id.to_owned(), what: what.into() }
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<(Container, [String; 4])> {
    let id: String = r.get(0)?;
    let raw = [r.get::<_, String>(4)?, r.get::<_, String>(7)?, r.get::<_, String>(8)?, r.get::<_, String>(12)?];
    let c = Container {
        id,
        name: r.get(1)?,
        image: r.get(2)?,
        realm_ids: vec![],
        project_id: r.get(3)?,
        limits: Default::default(),
        egress: if r.get::<_, String>(5)? == "allow" { Egress::Allow } else { Egress::Deny },
        autostart: r.get(6)?,
        command: vec![],
        env: vec![],
        idmap: IdMap { host_base: r.get(9)?, size: r.get(10)? },
        ipv4: r.get::<_, Option<String>>(11)?.and_then(|s| s.parse().ok()),
        status: Status::Created,
        pid: r.get(13)?,
        pid_start: r.get::<_, Option<i64>>(14)?.map(|v| v as u64),
        exit_code: r.get(15)?,
        created_at: r.get(16)?,
        started_at: r.get(17)?,
        finished_at: r.get(18)?,
        snapshot_schedule: r.get(19)?,
        snapshot_expiry: r.get(20)?,
        error: r.get(21)?,
        dns: r.get::<_, String>(22)?.parse().unwrap_or(hoody_net::policy::DnsMode::Filtered),
    };
    Ok((c, raw))
}

/// Decodes the JSON and enum columns of a row.
fn finish_fields((mut c, [limits, command, env, status]): (Container, [String; 4])) -> Result<Container> {
    c.limits = serde_json::from_str(&limits).map_err(|e| corrupt(&c.id, format!("limits: {e}")))?;
    c.command = serde_json::from_str(&command).map_err(|e| corrupt(&c.id, format!("command: {e}")))?;
    c.env = serde_json::from_str(&env).map_err(|e| corrupt(&c.id, format!("env: {e}")))?;
    c.status = Status::parse(&status).ok_or_else(|| corrupt(&c.id, format!("status {status:?}")))?;
    Ok(c)
}

/// A whole container: its row and its realms.
fn finish(conn: &Connection, row: (Container, [String; 4])) -> Result<Container> {
    let mut c = finish_fields(row)?;
    let mut st =
        conn.prepare_cached("SELECT realm_id FROM container_realms WHERE container_id = ?1 AND realm_id != '' ORDER BY realm_id")?;
    c.realm_ids = st.query_map([&c.id], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(c)
}

/// Which containers a listing returns.
#[derive(Clone, Debug, Default)]
pub struct ContainerFilter {
    /// `None`: all (administrator). `Some(realms)`: only containers in one of these realms.
    pub realms: Option<Vec<String>>,
}

/// Inserts a new container, allocating its id range and its IPv4 address in the same
/// transaction (the record's `idmap` and `ipv4` are ignored); returns what was allocated.
#[cfg(test)]
pub fn insert_container(conn: &mut Connection, c: &Container, pool: IdPool, net: hoody_net::addr::Pool) -> Result<(IdMap, Ipv4Addr)> {
    insert_container_with_rules(conn, c, &[], pool, net)
}

/// [`insert_container`] with its firewall `rules` (a fork's, copied from its source) in the
/// same transaction.
pub fn insert_container_with_rules(
    conn: &mut Connection,
    c: &Container,
    rules: &[hoody_net::rules::Rule],
    pool: IdPool,
    net: hoody_net::addr::Pool,
) -> Result<(IdMap, Ipv4Addr)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let used: BTreeSet<u32> = {
        let mut st = tx.prepare("SELECT idmap_base FROM containers")?;
        st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    let base = pool.allocate(&used).ok_or(StoreError::IdsExhausted)?;
    let used_ips: BTreeSet<Ipv4Addr> = {
        let mut st = tx.prepare("SELECT ipv4 FROM containers WHERE ipv4 IS NOT NULL")?;
        st.query_map([], |r| r.get::<_, String>(0))?.filter_map(|s| s.ok().and_then(|s| s.parse().ok())).collect()
    };
    let ip = net.allocate(&used_ips).ok_or_else(|| StoreError::AddressesExhausted(net.net.to_string()))?;
    // The host interface is named after the first 8 hex digits of the id: they must be unique.
    let clash: Option<String> =
        tx.query_row("SELECT id FROM containers WHERE substr(id, 1, 8) = substr(?1, 1, 8)", [&c.id], |r| r.get(0)).optional()?;
    if clash.is_some() {
        return Err(StoreError::InterfaceTaken(hoody_net::names::host_ifname(&c.id)));
    }
    tx.execute(
        &format!("INSERT INTO containers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)"),
        params![
            c.id,
            c.name,
            c.image,
            c.project_id,
            serde_json::to_string(&c.limits).expect("limits serialise"),
            c.egress.as_str(),
            c.autostart,
            serde_json::to_string(&c.command).expect("strings serialise"),
            serde_json::to_string(&c.env).expect("strings serialise"),
            base,
            RANGE,
            ip.to_string(),
            c.status.as_str(),
            c.pid,
            c.pid_start.map(|v| v as i64),
            c.exit_code,
            c.created_at,
            c.started_at,
            c.finished_at,
            c.snapshot_schedule,
            c.snapshot_expiry,
            c.error,
            c.dns.as_str(),
        ],
    )?;
    let realms: Vec<&str> = if c.realm_ids.is_empty() { vec![""] } else { c.realm_ids.iter().map(String::as_str).collect() };
    for realm in realms {
        let r = tx.execute("INSERT INTO container_realms (container_id, realm_id, name) VALUES (?1, ?2, ?3)", params![c.id, realm, c.name]);
        if let Err(rusqlite::Error::SqliteFailure(e, _)) = &r
            && e.code == rusqlite::ErrorCode::ConstraintViolation
        {
            return Err(StoreError::NameTaken { name: c.name.clone(), realm: realm.to_owned() });
        }
        r?;
    }
    for r in rules {
        super::insert_rule(&tx, &c.id, r, &c.created_at)?;
    }
    tx.commit()?;
    Ok((IdMap { host_base: base, size: RANGE }, ip))
}

/// True when another container's host interface would have the same name as `id`'s.
pub fn ifname_taken(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .query_row("SELECT id FROM containers WHERE substr(id, 1, 8) = substr(?1, 1, 8)", [id], |r| r.get::<_, String>(0))
        .optional()?
        .is_some())
}

pub fn get_container(conn: &Connection, id: &str) -> Result<Option<Container>> {
    let row = conn.query_row(&format!("SELECT {COLUMNS} FROM containers WHERE id = ?1"), [id], from_row).optional()?;
    row.map(|r| finish(conn, r)).transpose()
}

#[cfg(test)]
/// Ids of the containers named `name` that the filter lets the caller see.
pub fn find_by_name(conn: &Connection, name: &str, filter: &ContainerFilter) -> Result<Vec<String>> {
    let mut st = conn.prepare_cached("SELECT DISTINCT container_id, realm_id FROM container_realms WHERE name = ?1")?;
    let rows: Vec<(String, String)> = st.query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    let mut ids: Vec<String> = rows
        .into_iter()
        .filter(|(_, realm)| filter.realms.as_ref().is_none_or(|rs| rs.iter().any(|r| r == realm)))
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

pub fn list_containers(conn: &Connection, filter: &ContainerFilter) -> Result<Vec<Container>> {
    // One pass: each container's realms come joined to it (a query per container costs more
    // than the rows themselves).
    let cols: String = COLUMNS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ");
    let mut st = conn.prepare_cached(&format!(
        "SELECT {cols}, r.realm_id FROM containers c LEFT JOIN container_realms r ON r.container_id = c.id AND r.realm_id != '' \
         ORDER BY c.created_at, c.id, r.realm_id"
    ))?;
    let mut rows = st.query([])?;
    let mut out: Vec<Container> = Vec::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let realm: Option<String> = row.get(COLUMNS.split(", ").count())?;
        if out.last().is_none_or(|c| c.id != id) {
            out.push(finish_fields(from_row(row)?)?);
        }
        if let Some(r) = realm {
            out.last_mut().expect("pushed above").realm_ids.push(r);
        }
    }
    out.retain(|c| filter.realms.as_ref().is_none_or(|rs| c.realm_ids.iter().any(|r| rs.contains(r))));
    Ok(out)
}

/// Records that the init `pid` runs.
pub fn mark_running(conn: &Connection, id: &str, pid: i32, pid_start: u64, at: &str) -> Result<()> {
    conn.execute(
        "UPDATE containers SET status = 'running', pid = ?2, pid_start = ?3, exit_code = NULL, started_at = ?4, finished_at = NULL WHERE id = ?1",
        params![id, pid, pid_start as i64, at],
    )?;
    Ok(())
}

/// Records that the init `pid` ended. Does nothing if another init has been recorded since.
pub fn mark_stopped(conn: &Connection, id: &str, pid: Option<i32>, exit_code: Option<i32>, at: &str) -> Result<bool> {
    let n = match pid {
        Some(pid) => conn.execute(
            "UPDATE containers SET status = 'stopped', pid = NULL, pid_start = NULL, exit_code = ?3, finished_at = ?4 WHERE id = ?1 AND pid = ?2",
            params![id, pid, exit_code, at],
        )?,
        None => conn.execute(
            "UPDATE containers SET status = CASE status WHEN 'created' THEN 'created' WHEN 'deleting' THEN 'deleting' ELSE 'stopped' END, pid = NULL, pid_start = NULL, exit_code = ?2, finished_at = ?3 WHERE id = ?1",
            params![id, exit_code, at],
        )?,
    };
    Ok(n > 0)
}

pub fn update_limits(conn: &Connection, id: &str, limits: &crate::limits::Limits) -> Result<()> {
    conn.execute("UPDATE containers SET limits = ?2 WHERE id = ?1", params![id, serde_json::to_string(limits).expect("limits serialise")])?;
    Ok(())
}

pub fn set_autostart(conn: &Connection, id: &str, autostart: bool) -> Result<()> {
    conn.execute("UPDATE containers SET autostart = ?2 WHERE id = ?1", params![id, autostart])?;
    Ok(())
}

/// The egress policy and the dns mode, in one statement.
pub fn set_firewall_policy(conn: &Connection, id: &str, egress: Egress, dns: hoody_net::policy::DnsMode) -> Result<()> {
    conn.execute("UPDATE containers SET egress = ?2, dns = ?3 WHERE id = ?1", params![id, egress.as_str(), dns.as_str()])?;
    Ok(())
}

/// Marks the container as being deleted, with why the last attempt failed (`None`: none yet).
pub fn mark_deleting(conn: &Connection, id: &str, error: Option<&str>) -> Result<()> {
    conn.execute(
        "UPDATE containers SET status = 'deleting', pid = NULL, pid_start = NULL, autostart = 0, error = ?2 WHERE id = ?1",
        params![id, error],
    )?;
    Ok(())
}

pub fn delete_container(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM containers WHERE id = ?1", [id])? > 0)
}

/// Number of containers created from `image`.
pub fn image_users(conn: &Connection, image: &str) -> Result<u64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM containers WHERE image = ?1", [image], |r| r.get::<_, i64>(0))? as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn net() -> hoody_net::addr::Pool {
        hoody_net::addr::Pool::new("10.77.0.0/16".parse().unwrap()).unwrap()
    }

    pub(crate) fn sample(id: &str, name: &str, realms: &[&str]) -> Container {
        Container {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            realm_ids: realms.iter().map(|s| s.to_string()).collect(),
            project_id: None,
            limits: Default::default(),
            egress: Egress::Deny,
            autostart: false,
            command: vec!["/sbin/init".into()],
            env: vec![],
            idmap: IdMap { host_base: 0, size: 0 },
            ipv4: None,
            status: Status::Created,
            pid: None,
            pid_start: None,
            exit_code: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            started_at: None,
            finished_at: None,
            snapshot_schedule: None,
            snapshot_expiry: None,
            error: None,
            dns: hoody_net::policy::DnsMode::Filtered,
        }
    }

    #[test]
    fn ranges_are_unique_and_names_unique_per_realm() {
        let s = Store::memory().unwrap();
        let pool = IdPool { first: 1 << 20, slots: 10 };
        s.call_sync(|c| {
            let a = insert_container(c, &sample("a", "web", &[]), pool, net()).map(|v| v.0)?;
            let b = insert_container(c, &sample("b", "db", &[]), pool, net()).map(|v| v.0)?;
            assert_ne!(a.host_base, b.host_base);
            assert!(matches!(insert_container(c, &sample("c", "web", &[]), pool, net()).map(|v| v.0), Err(StoreError::NameTaken { .. })));
            // Same name in another realm is fine; the failed insert left nothing behind.
            insert_container(c, &sample("d", "web", &["r1"]), pool, net()).map(|v| v.0)?;
            assert!(get_container(c, "c")?.is_none());
            assert!(matches!(
                insert_container(c, &sample("e", "web", &["r2", "r1"]), pool, net()).map(|v| v.0),
                Err(StoreError::NameTaken { .. })
            ));
            assert_eq!(find_by_name(c, "web", &ContainerFilter::default())?, vec!["a".to_string(), "d".to_string()]);
            let only_r1 = ContainerFilter { realms: Some(vec!["r1".into()]) };
            assert_eq!(find_by_name(c, "web", &only_r1)?, vec!["d".to_string()]);
            assert_eq!(list_containers(c, &only_r1)?.len(), 1);
            // Deleting releases the range and the name.
            delete_container(c, "a")?;
            let again = insert_container(c, &sample("f", "web", &[]), pool, net()).map(|v| v.0)?;
            assert_eq!(again.host_base, a.host_base);
            Ok(())
        })
        .unwrap();
    }

    #[tokio::test]
    async fn the_cached_listing_follows_every_write() {
        let s = Store::memory().unwrap();
        s.call_sync(|c| insert_container(c, &sample("a", "web", &["r1", "r2"]), IdPool::default(), net()).map(|_| ())).unwrap();
        let all = ContainerFilter::default();
        let first = s.containers(&all).await.unwrap();
        assert_eq!((first.len(), first[0].realm_ids.clone()), (1, vec!["r1".to_string(), "r2".to_string()]));
        s.call_sync(|c| mark_running(c, "a", 42, 7, "2026-01-01T00:00:01Z")).unwrap();
        assert_eq!(s.containers(&all).await.unwrap()[0].status, Status::Running, "a stale listing");
        s.call_sync(|c| insert_container(c, &sample("b", "db", &["r3"]), IdPool::default(), net()).map(|_| ())).unwrap();
        assert_eq!(s.containers(&all).await.unwrap().len(), 2);
        assert_eq!(s.containers(&ContainerFilter { realms: Some(vec!["r3".into()]) }).await.unwrap().len(), 1);
        s.call_sync(|c| delete_container(c, "a")).unwrap();
        assert_eq!(s.containers(&all).await.unwrap().iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn running_and_stopped_round_trip() {
        let s = Store::memory().unwrap();
        s.call_sync(|c| {
            insert_container(c, &sample("a", "web", &[]), IdPool::default(), net())?;
            mark_running(c, "a", 42, 7, "t1")?;
            let got = get_container(c, "a")?.unwrap();
            assert_eq!((got.status, got.pid, got.pid_start), (Status::Running, Some(42), Some(7)));
            assert!(!mark_stopped(c, "a", Some(41), Some(0), "t2")?, "a stale pid does not stop the container");
            assert!(mark_stopped(c, "a", Some(42), Some(3), "t2")?);
            let got = get_container(c, "a")?.unwrap();
            assert_eq!((got.status, got.pid, got.exit_code), (Status::Stopped, None, Some(3)));
            Ok(())
        })
        .unwrap();
    }
}
