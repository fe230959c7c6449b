//! hoodyd: a daemon that turns a Linux host into a host of isolated containers, and hoodyctl,
//! its client. See DESIGN.md for the contract.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cgroup;
pub mod config;
pub mod daemon;
pub mod dns;
pub mod errors;
pub mod exec_record;
pub mod fault;
pub mod firewall;
pub mod helper;
pub mod idmap;
pub mod ids;
pub mod limits;
pub mod model;
pub mod notify;
pub mod procfs;
pub use hoody_api::proto;
pub mod runtime;
pub mod schedule;
pub mod spec;
pub mod store;
pub mod test_hooks;
pub mod time;
