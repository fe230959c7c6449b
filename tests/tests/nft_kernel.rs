//! The nftables layer against the real kernel, in a namespace of the test's own.

use std::net::Ipv4Addr;
use std::time::Instant;

use hoody_e2e::netns::NetNs;
use hoody_net::compile::{self, Op, expected, full, insert_after, install, uninstall};
use hoody_net::nft::FirewallOps;
use hoody_net::nft::kernel::NftFirewall;
use hoody_net::policy::*;
use hoody_net::rules::{Action, Direction, PortRange, Protocol, Rule, RuleSpec};

fn cfg() -> TableConfig {
    TableConfig {
        subnet: "10.77.0.0/16".parse().unwrap(),
        uplink: Some("up0".into()),
        deny_action: DenyAction::Reject,
        nflog_group: 7023,
        log_rate: 10,
    }
}

fn ctr(id: &str, n: u8) -> ContainerFirewall {
    ContainerFirewall {
        id: id.into(),
        ipv4: Ipv4Addr::new(10, 77, 0, n),
        egress_policy: EgressPolicy::Deny,
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
        fw.apply(&full(&cfg(), std::slice::from_ref(&a))).expect("full");
        fw.dump().unwrap().expect("table exists").verify(&expected(&cfg(), std::slice::from_ref(&a)), None).expect("verify after full");
        fw.apply(&install(&cfg(), &b)).expect("install b");

        // A positioned add lands before the policy; the dump shows it in order.
        let chain = hoody_net::names::egress_chain(&b.id);
        let after = insert_after(&fw.chain(&chain).unwrap());
        let r1 = rule("r1", 443);
        fw.apply(&[Op::AddRule { chain: chain.clone(), rule: compile::egress_rule(&b.id, &r1), after }]).expect("add rule");
        b.egress.push(r1);
        fw.dump().unwrap().unwrap().verify(&expected(&cfg(), &[a.clone(), b.clone()]), None).expect("verify after add");

        // A refused transaction leaves everything as it was.
        let before = fw.dump().unwrap();
        let bad = vec![Op::AddChain("zzz".into()), Op::DelChain(hoody_net::names::deny_chain(&b.id))];
        let err = fw.apply(&bad).unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        assert_eq!(fw.dump().unwrap(), before, "nothing of a refused batch was applied");

        let t = Instant::now();
        fw.apply(&uninstall(&a.id)).expect("uninstall");
        let del_ms = t.elapsed().as_secs_f64() * 1000.0;
        fw.dump().unwrap().unwrap().verify(&expected(&cfg(), std::slice::from_ref(&b)), None).expect("verify after uninstall");
        eprintln!("uninstall took {del_ms:.1} ms");
        // Rebuilding from scratch in one transaction is idempotent.
        fw.apply(&full(&cfg(), std::slice::from_ref(&b))).expect("full again");
        fw.dump().unwrap().unwrap().verify(&expected(&cfg(), std::slice::from_ref(&b)), None).expect("verify after rebuild");
    });
    let out = ns.exec(&["nft", "list", "table", "inet", "hoody"]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(text.contains("iifname vmap @eg"), "{text}");
    assert!(text.contains("ip saddr != 10.77.0.3"), "{text}");
    assert!(text.contains("tcp dport 443-453") || text.contains("th dport 443-453"), "{text}");
    assert!(text.contains("log prefix \"hoody bbbbbbbbbbbbbbbbbbbbbbbb \" group 7023"), "{text}");
    assert!(text.contains("oifname \"up0\" ip saddr 10.77.0.0/16 masquerade"), "{text}");
    assert!(!text.contains("aaaaaaaa"), "the uninstalled container is gone: {text}");
}
