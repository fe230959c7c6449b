//! Network set-up of a new container, run by the start helper between clone and the container's
//! exec: the host side in our namespace, the container side after entering its namespace.

use std::os::fd::AsRawFd;
use std::path::Path;

use hoody_net::netlink::Rtnl;
use hoody_net::plumb::{self, Plumbing};
use hoody_net::sysctl::ProcSys;
use nix::sched::CloneFlags;

use super::error::{HelperError, Result, path_step};
use crate::spec::NetSpec;

pub fn setup(proc_root: &Path, pid: i32, net: &NetSpec) -> Result<()> {
    let ns_path = proc_root.join(pid.to_string()).join("ns/net");
    let container_ns = std::fs::File::open(&ns_path).map_err(path_step("open", &ns_path))?;
    let own_path = proc_root.join("self/ns/net");
    let own_ns = std::fs::File::open(&own_path).map_err(path_step("open", &own_path))?;
    let p = Plumbing { host_ifname: net.host_ifname.clone(), address: net.address };
    let mut sysctl = ProcSys { root: proc_root.join("sys") };
    {
        let mut links = Rtnl::open().map_err(HelperError::Net)?;
        plumb::host_side(&mut links, &mut sysctl, &p, container_ns.as_raw_fd()).map_err(HelperError::Net)?;
    }
    nix::sched::setns(&container_ns, CloneFlags::CLONE_NEWNET)
        .map_err(super::error::nix_step("enter the container's network namespace"))?;
    let inside = Rtnl::open().and_then(|mut links| plumb::container_side(&mut links, &mut sysctl, &p));
    nix::sched::setns(&own_ns, CloneFlags::CLONE_NEWNET).map_err(super::error::nix_step("return to the host's network namespace"))?;
    inside.map_err(HelperError::Net)
}
