//! The default confinement of every process in a container, in the spirit of Docker's defaults:
//! Docker's capability set (no CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_MODULE, …) as the bounding
//! set, and a seccomp filter that refuses module loading, kexec, mounting, namespace creation,
//! BPF, keyrings, raw I/O ports and the like. The x32 ABI and foreign architectures are refused.

use std::collections::{BTreeMap, HashSet};

use caps::{CapSet, Capability};
use seccompiler::{BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch};

use super::error::{HelperError, Result};
use super::sys;

/// Capabilities a container's root keeps (Docker's default list).
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// System calls refused with EPERM, whatever their arguments.
const DENIED: &[i64] = &[
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_keyctl,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_lookup_dcookie,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_uselib,
    libc::SYS_userfaultfd,
    libc::SYS_vhangup,
    libc::SYS_nfsservctl,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_fanotify_init,
];

/// Namespace flags that `clone` may not carry.
const NS_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// btrfs management ioctls a container may not issue: creating, snapshotting or destroying
/// subvolumes (a nested subvolume escapes rollback, delete and the disk quota: it gets a qgroup
/// of its own), changing subvolume flags or received state, and anything touching quotas. The
/// request is compared as 32 bits: the kernel truncates it to unsigned int, so high bits must not
/// hide it. FICLONE, FICLONERANGE and FIDEDUPERANGE (the same 0x94 magic) stay allowed.
fn btrfs_management_ioctls() -> [u64; 13] {
    const VOL_ARGS: usize = 4096; // btrfs_ioctl_vol_args and _v2 are both 4 KiB
    [
        nix::request_code_write!(0x94, 1, VOL_ARGS),  // SNAP_CREATE
        nix::request_code_write!(0x94, 14, VOL_ARGS), // SUBVOL_CREATE
        nix::request_code_write!(0x94, 15, VOL_ARGS), // SNAP_DESTROY
        nix::request_code_write!(0x94, 23, VOL_ARGS), // SNAP_CREATE_V2
        nix::request_code_write!(0x94, 24, VOL_ARGS), // SUBVOL_CREATE_V2
        nix::request_code_write!(0x94, 26, 8),        // SUBVOL_SETFLAGS (u64)
        nix::request_code_readwrite!(0x94, 37, 200),  // SET_RECEIVED_SUBVOL
        nix::request_code_readwrite!(0x94, 40, 16),   // QUOTA_CTL
        nix::request_code_write!(0x94, 41, 24),       // QGROUP_ASSIGN
        nix::request_code_write!(0x94, 42, 16),       // QGROUP_CREATE
        nix::request_code_read!(0x94, 43, 48),        // QGROUP_LIMIT
        nix::request_code_write!(0x94, 44, 64),       // QUOTA_RESCAN
        nix::request_code_write!(0x94, 63, VOL_ARGS), // SNAP_DESTROY_V2
    ]
}

fn compile_eperm() -> Result<BpfProgram> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|&nr| (nr, vec![])).collect();
    // clone(2) with any namespace flag (flags are the first argument on x86_64).
    let clone_rules = NS_FLAGS
        .iter()
        .map(|&f| SeccompRule::new(vec![SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(f), f)?]))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    // personality(2): only the harmless queries/settings Docker allows (0, 8, 0x20000, 0xffffffff).
    let personality_allowed = [0u64, 8, 0x20000, 0xffff_ffff];
    let mut conds = Vec::new();
    for v in personality_allowed {
        conds.push(SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, v)?);
    }
    rules.insert(libc::SYS_personality, vec![SeccompRule::new(conds)?]);
    let ioctl_rules = btrfs_management_ioctls()
        .iter()
        .map(|&r| SeccompRule::new(vec![SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, r)?]))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl_rules);
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), TargetArch::x86_64)?;
    Ok(filter.try_into()?)
}

fn compile_enosys() -> Result<BpfProgram> {
    // clone3 cannot be filtered on its flags (they are behind a pointer): answer ENOSYS so libc
    // falls back to clone(2), which the other filter inspects.
    let rules: BTreeMap<i64, Vec<SeccompRule>> = [(libc::SYS_clone3, vec![])].into_iter().collect();
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32), TargetArch::x86_64)?;
    Ok(filter.try_into()?)
}

/// x32 system calls (number with bit 30 set) share the x86_64 audit arch: refuse them all.
fn x32_block() -> BpfProgram {
    use seccompiler::sock_filter;
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JGE_K: u16 = 0x05 | 0x30;
    const BPF_RET_K: u16 = 0x06;
    vec![
        sock_filter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: 0 }, // seccomp_data.nr
        sock_filter { code: BPF_JGE_K, jt: 0, jf: 1, k: 0x4000_0000 },
        sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32 },
        sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW },
    ]
}

/// The compiled programs, built before any privilege is dropped.
pub struct Confinement {
    programs: Vec<BpfProgram>,
}

impl Confinement {
    pub fn new() -> Result<Self> {
        Ok(Confinement { programs: vec![compile_eperm()?, compile_enosys()?, x32_block()] })
    }

    /// Applies the confinement to the calling process, which must be uid 0 in the container's
    /// user namespace with its full capability set, right before execve.
    pub fn apply(&self) -> Result<()> {
        let keep: HashSet<Capability> = DEFAULT_CAPS.iter().copied().collect();
        for cap in caps::all() {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| HelperError::Caps(format!("drop {cap} from the bounding set: {e}")))?;
            }
        }
        caps::clear(None, CapSet::Ambient).map_err(|e| HelperError::Caps(format!("clear ambient set: {e}")))?;
        // Install the filters while CAP_SYS_ADMIN (in the container's namespace) is still held,
        // so no_new_privs is not needed.
        for p in &self.programs {
            sys::seccomp_install(p).map_err(super::error::step("install seccomp filter"))?;
        }
        caps::set(None, CapSet::Inheritable, &keep).map_err(|e| HelperError::Caps(format!("set inheritable: {e}")))?;
        caps::set(None, CapSet::Effective, &keep).map_err(|e| HelperError::Caps(format!("set effective: {e}")))?;
        caps::set(None, CapSet::Permitted, &keep).map_err(|e| HelperError::Caps(format!("set permitted: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btrfs_management_requests_are_the_kernels() {
        // As <linux/btrfs.h> defines them on x86_64.
        let want = [
            0x5000_9401u64,
            0x5000_940e,
            0x5000_940f,
            0x5000_9417,
            0x5000_9418,
            0x4008_941a,
            0xc0c8_9425,
            0xc010_9428,
            0x4018_9429,
            0x4010_942a,
            0x8030_942b,
            0x4040_942c,
            0x5000_943f,
        ];
        assert_eq!(btrfs_management_ioctls(), want);
        // FICLONE, FICLONERANGE, FIDEDUPERANGE are not among them.
        for allowed in [0x4004_9409u64, 0x4020_940d, 0xc018_9436] {
            assert!(!btrfs_management_ioctls().contains(&allowed));
        }
    }

    #[test]
    fn filters_compile() {
        let c = Confinement::new().unwrap();
        assert_eq!(c.programs.len(), 3);
        assert!(c.programs.iter().all(|p| !p.is_empty() && p.len() < 4096));
    }

    #[test]
    fn default_caps_exclude_the_dangerous_ones() {
        for bad in [
            Capability::CAP_SYS_ADMIN,
            Capability::CAP_SYS_MODULE,
            Capability::CAP_NET_ADMIN,
            Capability::CAP_SYS_PTRACE,
            Capability::CAP_SYS_BOOT,
        ] {
            assert!(!DEFAULT_CAPS.contains(&bad), "{bad}");
        }
    }
}
