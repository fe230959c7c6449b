//! hoodyd: a daemon that turns a Linux host into a host of isolated containers, and hoodyctl,
//! its client. See DESIGN.md for the contract.

pub mod api;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod cgroup;
pub mod config;
pub mod daemon;
pub(crate) mod dns;
pub(crate) mod errors;
pub(crate) mod events;
pub(crate) mod exec_record;
pub(crate) mod fault;
pub(crate) mod firewall;
pub mod helper;
pub(crate) mod idmap;
pub(crate) mod ids;
pub(crate) mod limits;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod notify;
pub(crate) mod operations;
pub(crate) mod procfs;
pub use hoody_api::proto;
pub(crate) mod runtime;
pub(crate) mod schedule;
pub(crate) mod spec;
pub(crate) mod store;
pub(crate) mod test_hooks;
pub(crate) mod time;
