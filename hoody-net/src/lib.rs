//! Networking for hoody: a routed veth pair per container (netlink), the IPv4 pool, and a
//! deny-all egress nftables firewall in one table (`inet hoody`) that hoodyd owns.
//!
//! The firewall is declarative: [`policy`] describes what each container may do, [`compile`]
//! turns it into nftables operations (pure, unit-tested), and a [`nft::FirewallOps`]
//! implementation applies them as one atomic transaction (or records them, in tests).

pub mod addr;
mod bpf_sys;
pub mod compile;
pub mod elements;
pub mod error;
pub mod failsafe;
pub mod fqdn;
pub mod names;
pub mod netlink;
pub mod nflog;
pub mod nft;
pub mod nlmsg;
pub mod plumb;
pub mod policy;
pub mod regions;
pub mod rules;
mod source_filter;
pub mod sysctl;

pub use error::{Invalid, NetError};
