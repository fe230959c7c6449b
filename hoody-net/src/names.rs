//! Names derived from a container id: its interfaces and chains.

/// Prefix of every host-side veth; the firewall drops traffic of any `hv*` interface that has no
/// entry in its maps.
pub const IFACE_PREFIX: &str = "hv";

/// Host end of the container's veth pair: `hv` + the first 8 hex digits of the id.
pub fn host_ifname(id: &str) -> String {
    format!("{IFACE_PREFIX}{}", &id[..8.min(id.len())])
}

/// The container's egress chain (its rules, then its policy).
pub fn egress_chain(id: &str) -> String {
    format!("e_{id}")
}

/// The container's ingress allow-list chain.
pub fn ingress_chain(id: &str) -> String {
    format!("i_{id}")
}

/// Where denied egress goes: logged (rate-limited), then rejected or dropped.
pub fn deny_chain(id: &str) -> String {
    format!("d_{id}")
}

/// The container id a chain name belongs to, if it is one of ours.
pub fn chain_owner(chain: &str) -> Option<&str> {
    chain.strip_prefix("e_").or_else(|| chain.strip_prefix("i_")).or_else(|| chain.strip_prefix("d_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let id = "0123456789abcdef01234567";
        assert_eq!(host_ifname(id), "hv01234567");
        assert!(host_ifname(id).len() <= 15, "IFNAMSIZ");
        assert_eq!(chain_owner(&egress_chain(id)), Some(id));
        assert_eq!(chain_owner("forward"), None);
    }
}
