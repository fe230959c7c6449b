//! Schema and migrations, versioned with `PRAGMA user_version`.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: containers, their realm memberships (names unique per realm), images.
    r#"
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        image TEXT NOT NULL,
        project_id TEXT,
        limits TEXT NOT NULL,
        egress TEXT NOT NULL,
        autostart INTEGER NOT NULL,
        command TEXT NOT NULL,
        env TEXT NOT NULL,
        idmap_base INTEGER NOT NULL UNIQUE,
        idmap_size INTEGER NOT NULL,
        ipv4 TEXT UNIQUE,
        status TEXT NOT NULL,
        pid INTEGER,
        pid_start INTEGER,
        exit_code INTEGER,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE TABLE container_realms (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        realm_id TEXT NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (container_id, realm_id),
        UNIQUE (realm_id, name)
    );
    CREATE TABLE images (
        name TEXT PRIMARY KEY,
        driver TEXT NOT NULL,
        created_at TEXT NOT NULL,
        files INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        source TEXT NOT NULL
    );
    "#,
    // 2: firewall rules, in the order they were added.
    r#"
    CREATE TABLE firewall_rules (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        direction TEXT NOT NULL,
        action TEXT NOT NULL,
        protocol TEXT NOT NULL,
        peer TEXT NOT NULL,
        ports TEXT,
        description TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX firewall_rules_container ON firewall_rules (container_id, seq);
    "#,
    // 3: snapshots, and the per-container snapshot schedule and expiry.
    r#"
    CREATE TABLE snapshots (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_unix INTEGER NOT NULL,
        scheduled INTEGER NOT NULL,
        bytes INTEGER,
        paused_ms INTEGER,
        PRIMARY KEY (container_id, name)
    );
    ALTER TABLE containers ADD COLUMN snapshot_schedule TEXT;
    ALTER TABLE containers ADD COLUMN snapshot_expiry TEXT;
    "#,
    // 4: realms and realm-scoped tokens (only a keyed hash of each secret).
    r#"
    CREATE TABLE realms (
        id TEXT PRIMARY KEY,
        description TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        hash BLOB NOT NULL,
        realm_ids TEXT NOT NULL,
        scopes TEXT NOT NULL,
        description TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT
    );
    -- Realms named by containers created before realms were records of their own.
    INSERT OR IGNORE INTO realms (id, description, created_at)
        SELECT DISTINCT realm_id, '', strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM container_realms WHERE realm_id != '';
    "#,
    // 5: what each snapshot counts against its container's snapshot space (disk quotas).
    // Snapshots taken before quotas existed are charged nothing.
    r#"
    ALTER TABLE snapshots ADD COLUMN charge_bytes INTEGER NOT NULL DEFAULT 0;
    "#,
    // 6: why deleting a container failed (status 'deleting' keeps the row until its storage is
    // gone, so its address and id range are not handed out again).
    r#"
    ALTER TABLE containers ADD COLUMN error TEXT;
    "#,
    // 7: the intent of a restore in progress (what the start after a crash finishes).
    r#"
    ALTER TABLE containers ADD COLUMN restore_snapshot TEXT;
    ALTER TABLE containers ADD COLUMN restore_was_running INTEGER;
    ALTER TABLE containers ADD COLUMN restore_token TEXT;
    ALTER TABLE containers ADD COLUMN restore_phase TEXT;
    "#,
    // 8: DNS: what a container's resolver answers, and egress rules by host name.
    r#"
    ALTER TABLE containers ADD COLUMN dns TEXT NOT NULL DEFAULT 'filtered';
    UPDATE containers SET dns = 'open' WHERE egress = 'allow';
    ALTER TABLE firewall_rules ADD COLUMN fqdn TEXT;
    "#,
    // 9: answers kept for retries with the same Idempotency-Key (24 h), per caller.
    r#"
    CREATE TABLE idempotency (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        target TEXT NOT NULL,
        created_unix INTEGER NOT NULL,
        done INTEGER NOT NULL,
        body_len INTEGER NOT NULL DEFAULT 0,
        body_sha BLOB,
        body_complete INTEGER NOT NULL DEFAULT 0,
        status INTEGER,
        headers TEXT,
        response BLOB,
        subject TEXT,
        PRIMARY KEY (scope, key)
    );
    CREATE INDEX idempotency_created ON idempotency (created_unix);
    "#,
];

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database as the last release (schema 4) left it, with a container and a snapshot,
    /// opens with every row intact and the new column filled in.
    #[test]
    fn a_release_4_database_migrates_with_its_snapshots() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute_batch(
            "INSERT INTO containers (id, name, image, limits, egress, autostart, command, env, idmap_base, idmap_size, status, created_at)
                 VALUES ('0123456789abcdef01234567', 'old', 'busybox', '{\"memory\":67108864}', 'deny', 0, '[]', '[]', 1048576, 65536, 'stopped', 't');
             INSERT INTO snapshots (container_id, name, created_at, created_unix, scheduled, bytes, paused_ms)
                 VALUES ('0123456789abcdef01234567', 'before', 't', 1, 0, NULL, NULL);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
        let snaps = crate::store::list_snapshots(&conn, "0123456789abcdef01234567").unwrap();
        assert_eq!(snaps.len(), 1);
        assert_eq!((snaps[0].name.as_str(), snaps[0].charge_bytes), ("before", 0));
        // Old limits (no disk fields) still decode.
        let c = crate::store::get_container(&conn, "0123456789abcdef01234567").unwrap().unwrap();
        assert_eq!((c.limits.memory, c.limits.disk), (Some(64 << 20), None));
    }

    /// A database as the last release (schema 5) left it opens with its containers intact and
    /// no delete error; a container can then be marked deleting with one.
    #[test]
    fn a_release_5_database_migrates_and_records_delete_errors() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        conn.execute_batch(
            "INSERT INTO containers (id, name, image, limits, egress, autostart, command, env, idmap_base, idmap_size, ipv4, status, created_at)
                 VALUES ('0123456789abcdef01234567', 'old', 'busybox', '{}', 'deny', 1, '[]', '[]', 1048576, 65536, '10.0.0.2', 'stopped', 't');
             INSERT INTO container_realms (container_id, realm_id, name) VALUES ('0123456789abcdef01234567', '', 'old');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let id = "0123456789abcdef01234567";
        let c = crate::store::get_container(&conn, id).unwrap().unwrap();
        assert_eq!((c.status, c.error.as_deref(), c.autostart), (crate::model::Status::Stopped, None, true));
        crate::store::mark_deleting(&conn, id, Some("delete subvolume: Operation not permitted")).unwrap();
        let c = crate::store::get_container(&conn, id).unwrap().unwrap();
        assert_eq!(c.status, crate::model::Status::Deleting);
        assert_eq!(c.error.as_deref(), Some("delete subvolume: Operation not permitted"));
        assert!(!c.autostart, "a container being deleted is never started at boot");
        assert_eq!(crate::store::list_containers(&conn, &Default::default()).unwrap().len(), 1, "it keeps its row");
    }

    /// A database as the last release (schema 6) left it opens with its containers intact
    /// and no restore in progress; a restore intent can then be written, read and cleared.
    #[test]
    fn a_release_6_database_migrates_and_records_restore_intents() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..6] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 6).unwrap();
        let id = "0123456789abcdef01234567";
        conn.execute_batch(
            "INSERT INTO containers (id, name, image, limits, egress, autostart, command, env, idmap_base, idmap_size, ipv4, status, created_at)
                 VALUES ('0123456789abcdef01234567', 'old', 'busybox', '{}', 'deny', 1, '[]', '[]', 1048576, 65536, '10.0.0.2', 'running', 't');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(crate::store::get_container(&conn, id).unwrap().unwrap().status, crate::model::Status::Running);
        assert!(crate::store::restore_intents(&conn).unwrap().is_empty());
        let mut i = crate::store::RestoreIntent {
            container_id: id.into(),
            snapshot: "before".into(),
            was_running: true,
            token: "t1".into(),
            phase: crate::store::RestorePhase::Started,
        };
        crate::store::set_restore_intent(&conn, &i).unwrap();
        crate::store::set_restore_phase(&conn, id, crate::store::RestorePhase::Swapped).unwrap();
        i.phase = crate::store::RestorePhase::Swapped;
        assert_eq!(crate::store::restore_intents(&conn).unwrap(), vec![i.clone()]);
        assert_eq!(crate::store::restore_intent(&conn, id).unwrap(), Some(i));
        crate::store::clear_restore_intent(&conn, id).unwrap();
        assert!(crate::store::restore_intents(&conn).unwrap().is_empty());
        assert_eq!(crate::store::get_container(&conn, id).unwrap().unwrap().name, "old");
    }

    /// A database as the last release (schema 7) left it: each container gets the dns mode its
    /// policy implies (deny: filtered, allow: open), its rules keep their addresses, none is by
    /// name; a rule by name can then be stored and read back.
    #[test]
    fn a_release_7_database_migrates_with_dns_modes_and_rules_by_name() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 7).unwrap();
        conn.execute_batch(
            "INSERT INTO containers (id, name, image, limits, egress, autostart, command, env, idmap_base, idmap_size, ipv4, status, created_at)
                 VALUES ('0123456789abcdef01234567', 'locked', 'busybox', '{}', 'deny', 0, '[]', '[]', 1048576, 65536, '10.0.0.2', 'stopped', 't'),
                        ('abcdef0123456789abcdef01', 'open', 'busybox', '{}', 'allow', 0, '[]', '[]', 1114112, 65536, '10.0.0.3', 'stopped', 't');
             INSERT INTO firewall_rules (id, container_id, direction, action, protocol, peer, ports, description, created_at)
                 VALUES ('r1', '0123456789abcdef01234567', 'egress', 'allow', 'tcp', '203.0.113.10/32', '443', 'stripe', 't');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        use hoody_net::policy::DnsMode;
        let locked = crate::store::get_container(&conn, "0123456789abcdef01234567").unwrap().unwrap();
        let open = crate::store::get_container(&conn, "abcdef0123456789abcdef01").unwrap().unwrap();
        assert_eq!((locked.dns, open.dns), (DnsMode::Filtered, DnsMode::Open));
        let rules = crate::store::list_rules(&conn, &locked.id).unwrap();
        assert_eq!(
            (rules.len(), rules[0].rule.spec.peer.to_string(), rules[0].rule.spec.fqdn.clone()),
            (1, "203.0.113.10/32".into(), None)
        );
        let mut by_name = rules[0].rule.clone();
        by_name.id = "r2".into();
        by_name.spec.peer = hoody_net::rules::FQDN_PEER;
        by_name.spec.fqdn = Some("api.stripe.com".into());
        crate::store::insert_rule(&conn, &locked.id, &by_name, "t").unwrap();
        assert_eq!(crate::store::list_rules(&conn, &locked.id).unwrap()[1].rule, by_name);
        crate::store::set_firewall_policy(&conn, &open.id, crate::model::Egress::Allow, DnsMode::Off).unwrap();
        assert_eq!(crate::store::get_container(&conn, &open.id).unwrap().unwrap().dns, DnsMode::Off);
    }

    /// A database as the last release (schema 8) left it keeps its containers and gains the
    /// table of kept answers, which then holds one.
    #[test]
    fn a_release_8_database_migrates_and_keeps_answers() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..8] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 8).unwrap();
        conn.execute_batch(
            "INSERT INTO containers (id, name, image, limits, egress, autostart, command, env, idmap_base, idmap_size, ipv4, status, created_at)
                 VALUES ('0123456789abcdef01234567', 'app', 'busybox', '{}', 'deny', 0, '[]', '[]', 1048576, 65536, '10.0.0.2', 'stopped', 't');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert!(crate::store::get_container(&conn, "0123456789abcdef01234567").unwrap().is_some());
        use crate::store::{Claim, claim_key};
        assert_eq!(claim_key(&mut conn, "uid:0", "k", "POST /containers", 10, 0).unwrap(), Claim::New);
        assert!(matches!(claim_key(&mut conn, "uid:0", "k", "POST /containers", 11, 0).unwrap(), Claim::Running { .. }));
    }

    /// A deleted snapshot's charge passes to the next newer one; the newest's is dropped.
    #[test]
    fn a_deleted_snapshots_charge_passes_to_the_next_newer() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO containers (id, name, image, limits, egress, autostart, command, env, idmap_base, idmap_size, status, created_at)
                 VALUES ('0123456789abcdef01234567', 'c', 'busybox', '{}', 'deny', 0, '[]', '[]', 1048576, 65536, 'stopped', 't');",
        )
        .unwrap();
        for (i, (name, charge)) in [("a", 10u64), ("b", 20), ("c", 30)].iter().enumerate() {
            let r = crate::store::SnapshotRecord {
                name: name.to_string(),
                created_at: "t".into(),
                created_unix: i as i64,
                scheduled: false,
                bytes: None,
                paused_ms: None,
                charge_bytes: *charge,
            };
            crate::store::insert_snapshot(&conn, "0123456789abcdef01234567", &r).unwrap();
        }
        let id = "0123456789abcdef01234567";
        assert!(crate::store::delete_snapshot(&mut conn, id, "a").unwrap());
        assert_eq!(crate::store::snapshot_charges(&conn, id).unwrap(), 60);
        let b = crate::store::get_snapshot(&conn, id, "b").unwrap().unwrap();
        assert_eq!(b.charge_bytes, 30);
        assert!(crate::store::delete_snapshot(&mut conn, id, "c").unwrap());
        assert_eq!(crate::store::snapshot_charges(&conn, id).unwrap(), 30);
        assert!(!crate::store::delete_snapshot(&mut conn, id, "nope").unwrap());
    }
}
