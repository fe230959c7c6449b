//! The hoody API as code, shared by the daemon and its clients: the exec stream's frames
//! ([`proto`], with a `tokio_util` codec behind the `codec` feature), the answers' envelope and
//! error codes ([`envelope`]), exec requests and instances ([`exec`]), where things are
//! ([`paths`]), the audit log's format and its offline check ([`audit`], feature `audit`), and
//! the typed client of the socket ([`client`], feature `client`).
//! The core depends on serde and thiserror only.

#[cfg(feature = "audit")]
pub mod audit;
#[cfg(feature = "client")]
pub mod client;
pub mod common;
pub mod containers;
pub mod envelope;
pub mod events;
pub mod exec;
pub mod firewall;
pub mod images;
pub mod operations;
pub mod paths;
pub mod proto;
pub mod query;
pub mod realms;
pub mod snapshots;
pub mod system;

/// The README's Rust example of the client, compiled as a doctest (so it cannot rot).
#[cfg(all(doctest, feature = "client"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExample;
