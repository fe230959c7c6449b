//! The nftables layer against the real kernel, in a namespace of the test's own.

use std::net::Ipv4Addr;
use std::time::Instant;

use hoody_e2e::netns::NetNs;
use hoody_net::compile::{Elem, Op};
use hoody_net::elements;
use hoody_net::nft::FirewallOps;
use hoody_net::nft::kernel::NftFirewall;
use hoody_net::policy::*;
use hoody_net::rules::{Action, Direction, PortRange, Protocol, Rule, RuleSpec};

/// Fewer than the daemon's default: the shard mask is the table's, not a constant.
const SHARDS: u16 = 16;

fn cfg() -> TableConfig {
    TableConfig {
        subnet: "10.77.0.0/16".parse().unwrap(),
        uplink: Some("up0".into()),
        deny_action: DenyAction::Reject,
        nflog_group: 7023,
        log_rate: 10,
        shards: SHARDS,
    }
}

fn ctr(id: &str, n: u8) -> ContainerFirewall {
    ContainerFirewall {
        id: id.into(),
        ipv4: Ipv4Addr::new(10, 77, 0, n),
        egress_policy: EgressPolicy::Deny,
        dns: hoody_net::policy::DnsMode::Filtered,
        egress: vec![],
        ingress: vec![],
    }
}

fn rule(id: &str, port: u16) -> Rule {
    Rule {
        id: id.into(),
        spec: RuleSpec {
            direction: Direction::Egress,
            action: Action::Allow,
            protocol: Protocol::Tcp,
            peer: "203.0.113.0/24".parse().unwrap(),
            ports: Some(PortRange { from: port, to: port + 10 }),
            description: String::new(),
            fqdn: None,
        },
    }
}

#[test]
fn transactions_apply_verify_and_roll_back() {
    let ns = NetNs::new(&format!("hoody-e2e-{}-nft", std::process::id()));
    ns.run(|| {
        let fw = NftFirewall::new();
        let a = ctr(&"a".repeat(24), 2);
        let mut b = ctr(&"b".repeat(24), 3);
        let (ops, x) = elements::plan(&cfg(), std::slice::from_ref(&a)).unwrap();
        fw.apply(&ops).expect("full");
        fw.dump().unwrap().expect("table exists").verify(&x).expect("verify after full");
        fw.apply(&elements::diff(&Default::default(), &elements::of(&b, SHARDS).unwrap())).expect("install b");

        // A rule is an element diff of b's own shard; the dump shows it.
        let before_rule = elements::of(&b, SHARDS).unwrap();
        b.egress.push(rule("r1", 443));
        let ops = elements::diff(&before_rule, &elements::of(&b, SHARDS).unwrap());
        assert!(ops.iter().all(|o| matches!(o, Op::AddElems { set, .. } if set == "sh003")), "{ops:?}");
        fw.apply(&ops).expect("add rule");
        let (_, x2) = elements::plan(&cfg(), &[a.clone(), b.clone()]).unwrap();
        fw.dump().unwrap().unwrap().verify(&x2).expect("verify after add");
        let got = fw.set_elems("sh003").unwrap().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].elem.comment.as_deref(), Some("r:r1"), "the element carries its rule id");
        assert_eq!(
            fw.get_elems("denied", &[Elem::key(b.ipv4.octets().to_vec()), Elem::key(vec![10, 77, 9, 9])]).unwrap().len(),
            1,
            "one lookup per key"
        );

        // A rule wholly behind an earlier one owns nothing; deleting the earlier one hands its
        // regions over: the same keys deleted and added again in one transaction.
        let before_shadow = elements::of(&b, SHARDS).unwrap();
        b.egress.push(rule("r2", 443));
        assert_eq!(elements::diff(&before_shadow, &elements::of(&b, SHARDS).unwrap()), vec![], "r2 owns nothing");
        let with_both = elements::of(&b, SHARDS).unwrap();
        b.egress.remove(0);
        fw.apply(&elements::diff(&with_both, &elements::of(&b, SHARDS).unwrap())).expect("hand-over");
        let got = fw.set_elems("sh003").unwrap().unwrap();
        assert_eq!(got.iter().map(|e| e.elem.comment.as_deref()).collect::<Vec<_>>(), [Some("r:r2")]);
        b.egress = vec![rule("r1", 443)];
        fw.apply(&elements::diff(
            &elements::of(&ctr(&"b".repeat(24), 3), SHARDS)
                .map(|mut m| {
                    m.insert("sh003".into(), got.iter().map(|e| e.elem.clone()).collect());
                    m
                })
                .unwrap(),
            &elements::of(&b, SHARDS).unwrap(),
        ))
        .expect("back to r1");

        // A refused transaction leaves everything as it was.
        let before = fw.dump().unwrap();
        let mut bad = elements::diff(&Default::default(), &elements::of(&ctr(&"c".repeat(24), 4), SHARDS).unwrap());
        bad.push(Op::DelElems { set: "sh009".into(), elems: before_rule["ctr"].clone() });
        let err = fw.apply(&bad).unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        assert_eq!(fw.dump().unwrap(), before, "nothing of a refused batch was applied");

        let t = Instant::now();
        fw.apply(&elements::diff(&elements::of(&a, SHARDS).unwrap(), &Default::default())).expect("uninstall");
        let del_ms = t.elapsed().as_secs_f64() * 1000.0;
        let (ops, x3) = elements::plan(&cfg(), std::slice::from_ref(&b)).unwrap();
        fw.dump().unwrap().unwrap().verify(&x3).expect("verify after uninstall");
        eprintln!("uninstall took {del_ms:.1} ms");
        // Rebuilding from scratch in one transaction is idempotent.
        fw.apply(&ops).expect("full again");
        fw.dump().unwrap().unwrap().verify(&x3).expect("verify after rebuild");
        let listed = std::process::Command::new("nft").args(["list", "table", "inet", "hoody"]).output().unwrap();
        let text = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
        assert!(text.contains("comment \"r:r1\""), "nft lists the element with its rule id:\n{text}");
    });
}
