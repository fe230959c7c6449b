//! Firewall rule rows, kept in the order they were added.

use hoody_net::rules::{Action, Direction, PortRange, Protocol, Rule, RuleSpec};
use rusqlite::{Connection, params};

use super::{Result, StoreError};

/// A rule as stored, with when it was added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRule {
    pub rule: Rule,
    pub created_at: String,
}

fn s<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(id: &str, what: &str, v: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
        .map_err(|e| StoreError::Corrupt { id: id.to_owned(), what: format!("{what}: {e}") })
}

pub fn insert_rule(conn: &Connection, container_id: &str, r: &Rule, created_at: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO firewall_rules (id, container_id, direction, action, protocol, peer, ports, description, created_at, fqdn)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            r.id,
            container_id,
            s(&r.spec.direction),
            s(&r.spec.action),
            s(&r.spec.protocol),
            r.spec.peer.to_string(),
            r.spec.ports.map(|p| p.to_string()),
            r.spec.description,
            created_at,
            r.spec.fqdn,
        ],
    )?;
    Ok(())
}

/// A row as read: id, direction, action, protocol, peer, ports, description, created_at,
/// container id, host name.
type RawRule = (String, String, String, String, String, Option<String>, String, String, String, Option<String>);

/// The container's rules in order (both directions).
pub fn list_rules(conn: &Connection, container_id: &str) -> Result<Vec<StoredRule>> {
    let mut st = conn.prepare_cached(
        "SELECT id, direction, action, protocol, peer, ports, description, created_at, container_id, fqdn FROM firewall_rules WHERE container_id = ?1 ORDER BY seq",
    )?;
    let rows: Vec<RawRule> = st.query_map([container_id], raw)?.collect::<rusqlite::Result<_>>()?;
    rows.into_iter().map(|r| cook(r).map(|(_, s)| s)).collect()
}

/// Every rule of every container, in order, by container id.
pub fn all_rules(conn: &mut Connection) -> Result<std::collections::HashMap<String, Vec<StoredRule>>> {
    let mut st = conn.prepare_cached(
        "SELECT id, direction, action, protocol, peer, ports, description, created_at, container_id, fqdn FROM firewall_rules ORDER BY seq",
    )?;
    let rows: Vec<RawRule> = st.query_map([], raw)?.collect::<rusqlite::Result<_>>()?;
    let mut out: std::collections::HashMap<String, Vec<StoredRule>> = Default::default();
    for r in rows {
        let (cid, s) = cook(r)?;
        out.entry(cid).or_default().push(s);
    }
    Ok(out)
}

fn raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRule> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
}

fn cook((id, dir, action, proto, peer, ports, description, created_at, cid, fqdn): RawRule) -> Result<(String, StoredRule)> {
    let spec = RuleSpec {
        direction: parse::<Direction>(&id, "direction", &dir)?,
        action: parse::<Action>(&id, "action", &action)?,
        protocol: parse::<Protocol>(&id, "protocol", &proto)?,
        peer: peer.parse().map_err(|e| StoreError::Corrupt { id: id.clone(), what: format!("peer: {e}") })?,
        ports: ports
            .map(|p| PortRange::parse("ports", &p).map_err(|e| StoreError::Corrupt { id: id.clone(), what: e.to_string() }))
            .transpose()?,
        description,
        fqdn,
    };
    Ok((cid, StoredRule { rule: Rule { id, spec }, created_at }))
}

#[cfg(test)]
pub fn count_rules(conn: &Connection, container_id: &str) -> Result<usize> {
    Ok(conn.query_row("SELECT COUNT(*) FROM firewall_rules WHERE container_id = ?1", [container_id], |r| r.get::<_, i64>(0))? as usize)
}

/// Deletes one rule of a container; `RuleNotFound` if it has no such rule.
pub fn delete_rule(conn: &Connection, container_id: &str, rule_id: &str) -> Result<()> {
    match conn.execute("DELETE FROM firewall_rules WHERE container_id = ?1 AND id = ?2", params![container_id, rule_id])? {
        0 => Err(StoreError::RuleNotFound(rule_id.to_owned())),
        _ => Ok(()),
    }
}

/// Removes every rule of a container and sets its egress policy back to deny, atomically.
pub fn reset_firewall(conn: &mut Connection, container_id: &str) -> Result<()> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM firewall_rules WHERE container_id = ?1", [container_id])?;
    tx.execute("UPDATE containers SET egress = 'deny', dns = 'filtered' WHERE id = ?1", [container_id])?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn rules_round_trip_in_order() {
        let s = Store::memory().unwrap();
        s.call_sync(|c| {
            c.execute_batch(
                "INSERT INTO containers (id, name, image, limits, egress, autostart, command, env, idmap_base, idmap_size, status, created_at)
                 VALUES ('c1', 'n', 'i', '{}', 'allow', 0, '[]', '[]', 1, 65536, 'created', 't')",
            )?;
            let mk = |id: &str, port: &str| Rule {
                id: id.into(),
                spec: RuleSpec {
                    direction: Direction::Egress,
                    action: Action::Allow,
                    protocol: Protocol::Tcp,
                    peer: "203.0.113.0/24".parse().unwrap(),
                    ports: Some(PortRange::parse("p", port).unwrap()),
                    description: "d".into(),
                    fqdn: None,
                },
            };
            for (id, p) in [("r2", "443"), ("r1", "80-90")] {
                insert_rule(c, "c1", &mk(id, p), "t")?;
            }
            let got = list_rules(c, "c1")?;
            assert_eq!(got.iter().map(|r| r.rule.id.as_str()).collect::<Vec<_>>(), ["r2", "r1"], "insertion order, not id order");
            assert_eq!(got[1].rule, mk("r1", "80-90"));
            assert!(matches!(delete_rule(c, "c1", "nope"), Err(StoreError::RuleNotFound(_))));
            delete_rule(c, "c1", "r2")?;
            assert_eq!(count_rules(c, "c1")?, 1);
            reset_firewall(c, "c1")?;
            assert_eq!(count_rules(c, "c1")?, 0);
            let egress: String = c.query_row("SELECT egress FROM containers WHERE id = 'c1'", [], |r| r.get(0))?;
            assert_eq!(egress, "deny");
            Ok(())
        })
        .unwrap();
    }
}
