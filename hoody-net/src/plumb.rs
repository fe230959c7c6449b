//! A container's routed network: one veth pair, the container end `eth0` with one /32 and a
//! default route through the host end, which carries the link-local gateway address. No bridge,
//! no shared L2: a container can neither sniff nor ARP-spoof another. IPv6 is disabled on both
//! ends (and dropped by the firewall besides).

use std::net::Ipv4Addr;
use std::os::fd::RawFd;

use crate::addr::{GATEWAY, Ipv4Net};
use crate::error::Result;
use crate::netlink::LinkOps;
use crate::sysctl::SysctlOps;

pub const CONTAINER_IFNAME: &str = "eth0";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plumbing {
    pub host_ifname: String,
    pub address: Ipv4Addr,
}

fn host32(a: Ipv4Addr) -> Ipv4Net {
    Ipv4Net::new(a, 32).expect("/32 is valid")
}

/// In the host's namespace: the veth pair (its container end created inside the container's
/// namespace), then the host end's settings, address, state and route.
pub fn host_side(links: &mut dyn LinkOps, sysctl: &mut dyn SysctlOps, p: &Plumbing, container_netns: RawFd) -> Result<()> {
    // A leftover of a crashed start would make the create fail.
    links.delete_link(&p.host_ifname)?;
    links.create_veth(&p.host_ifname, CONTAINER_IFNAME, container_netns)?;
    let conf = |k: &str| format!("net/ipv4/conf/{}/{k}", p.host_ifname);
    sysctl.set(&format!("net/ipv6/conf/{}/disable_ipv6", p.host_ifname), "1")?;
    sysctl.set(&conf("rp_filter"), "1")?;
    // The reverse-path check looks routes up with the packet's mark, which the failsafe
    // routing rule needs to see (else traffic between containers fails the check).
    sysctl.set(&conf("src_valid_mark"), "1")?;
    sysctl.set(&conf("proxy_arp"), "0")?;
    sysctl.set(&conf("send_redirects"), "0")?;
    links.add_address(&p.host_ifname, GATEWAY, 32)?;
    // Before the link is up: from the first packet on, only the container's own address gets in.
    links.pin_source(&p.host_ifname, p.address)?;
    links.set_up(&p.host_ifname)?;
    links.add_route(host32(p.address), &p.host_ifname, None)?;
    Ok(())
}

/// In the container's namespace (entered by the caller): no IPv6, loopback up, `eth0` with its
/// /32, an on-link route to the gateway and the default route through it.
pub fn container_side(links: &mut dyn LinkOps, sysctl: &mut dyn SysctlOps, p: &Plumbing) -> Result<()> {
    for scope in ["all", "default", CONTAINER_IFNAME] {
        sysctl.set(&format!("net/ipv6/conf/{scope}/disable_ipv6"), "1")?;
    }
    links.set_up("lo")?;
    links.set_up(CONTAINER_IFNAME)?;
    links.add_address(CONTAINER_IFNAME, p.address, 32)?;
    links.add_route(host32(GATEWAY), CONTAINER_IFNAME, None)?;
    links.add_route(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).expect("valid"), CONTAINER_IFNAME, Some(GATEWAY))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::RecordingLinks;
    use crate::sysctl::RecordingSysctl;

    fn plumbing() -> Plumbing {
        Plumbing { host_ifname: "hv01234567".into(), address: Ipv4Addr::new(10, 77, 0, 9) }
    }

    #[test]
    fn host_side_order() {
        let (mut l, mut s) = (RecordingLinks::default(), RecordingSysctl::default());
        host_side(&mut l, &mut s, &plumbing(), 3).unwrap();
        assert_eq!(
            l.calls,
            [
                "delete hv01234567",
                "veth hv01234567 eth0@netns",
                "addr hv01234567 169.254.0.1/32",
                "pin hv01234567 10.77.0.9",
                "up hv01234567",
                "route 10.77.0.9/32 dev hv01234567"
            ]
        );
        assert_eq!(s.calls[0], "net/ipv6/conf/hv01234567/disable_ipv6=1", "IPv6 is off before the link is up");
        assert!(s.calls.contains(&"net/ipv4/conf/hv01234567/rp_filter=1".to_string()));
    }

    #[test]
    fn container_side_order() {
        let (mut l, mut s) = (RecordingLinks::default(), RecordingSysctl::default());
        container_side(&mut l, &mut s, &plumbing()).unwrap();
        assert_eq!(
            l.calls,
            ["up lo", "up eth0", "addr eth0 10.77.0.9/32", "route 169.254.0.1/32 dev eth0", "route 0.0.0.0/0 via 169.254.0.1 dev eth0"]
        );
        assert_eq!(s.calls.len(), 3);
        assert!(s.calls.iter().all(|c| c.ends_with("disable_ipv6=1")));
    }
}
