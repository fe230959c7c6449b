//! The unsafe corner of disk quotas: btrfs quota ioctls, `quotactl_fd(2)` for project quotas
//! (ext4, xfs), and the project id of a directory (`FS_IOC_FS{GET,SET}XATTR`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

const BTRFS_IOCTL_MAGIC: u8 = 0x94;

#[repr(C)]
struct QuotaCtlArgs {
    cmd: u64,
    status: u64,
}

#[repr(C)]
#[derive(Default)]
struct QgroupLimit {
    flags: u64,
    max_rfer: u64,
    max_excl: u64,
    rsv_rfer: u64,
    rsv_excl: u64,
}

#[repr(C)]
struct QgroupLimitArgs {
    qgroupid: u64,
    lim: QgroupLimit,
}

#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

#[repr(C)]
struct FsInfoArgs {
    max_id: u64,
    num_devices: u64,
    fsid: [u8; 16],
    nodesize: u32,
    sectorsize: u32,
    clone_alignment: u32,
    csum_type: u16,
    csum_size: u16,
    flags: u64,
    generation: u64,
    metadata_uuid: [u8; 16],
    reserved: [u8; 944],
}

nix::ioctl_none!(ioc_sync, BTRFS_IOCTL_MAGIC, 8);
nix::ioctl_readwrite!(ioc_ino_lookup, BTRFS_IOCTL_MAGIC, 18, InoLookupArgs);
nix::ioctl_read!(ioc_fs_info, BTRFS_IOCTL_MAGIC, 31, FsInfoArgs);
nix::ioctl_readwrite!(ioc_quota_ctl, BTRFS_IOCTL_MAGIC, 40, QuotaCtlArgs);
// The kernel declares QGROUP_LIMIT as _IOR although it only reads the argument.
nix::ioctl_read!(ioc_qgroup_limit, BTRFS_IOCTL_MAGIC, 43, QgroupLimitArgs);
nix::ioctl_none!(ioc_quota_rescan_wait, BTRFS_IOCTL_MAGIC, 46);

/// `BTRFS_QUOTA_CTL_ENABLE`: full qgroup accounting (not simple quotas).
const QUOTA_CTL_ENABLE: u64 = 1;
/// `BTRFS_QGROUP_LIMIT_MAX_EXCL`.
const LIMIT_MAX_EXCL: u64 = 1 << 1;

/// Enables full qgroup accounting on the file system of `fd` (a no-op when it is on).
pub fn btrfs_quota_enable(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut args = QuotaCtlArgs { cmd: QUOTA_CTL_ENABLE, status: 0 };
    // SAFETY: `fd` is a valid descriptor and `args` a properly laid out btrfs_ioctl_quota_ctl_args
    // that lives across the call.
    unsafe { ioc_quota_ctl(fd.as_raw_fd(), &mut args) }?;
    Ok(())
}

/// Waits for a running qgroup rescan to finish (returns at once when none runs).
pub fn btrfs_rescan_wait(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is a valid descriptor; the ioctl takes no argument.
    unsafe { ioc_quota_rescan_wait(fd.as_raw_fd()) }?;
    Ok(())
}

/// Commits the current transaction of the file system of `fd` (qgroup numbers are updated at
/// commit).
pub fn btrfs_sync(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is a valid descriptor; the ioctl takes no argument.
    unsafe { ioc_sync(fd.as_raw_fd()) }?;
    Ok(())
}

/// Sets (or, with `None`, clears) the exclusive-bytes limit of qgroup `qgroupid`.
pub fn btrfs_qgroup_limit_excl(fd: BorrowedFd<'_>, qgroupid: u64, max_excl: Option<u64>) -> io::Result<()> {
    let mut args = QgroupLimitArgs {
        qgroupid,
        lim: QgroupLimit { flags: LIMIT_MAX_EXCL, max_excl: max_excl.unwrap_or(u64::MAX), ..Default::default() },
    };
    // SAFETY: `fd` is valid and `args` is a fully initialised btrfs_ioctl_qgroup_limit_args.
    unsafe { ioc_qgroup_limit(fd.as_raw_fd(), &mut args) }?;
    Ok(())
}

/// The id of the subvolume (tree) that the directory `fd` belongs to.
pub fn btrfs_subvol_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // BTRFS_FIRST_FREE_OBJECTID: with treeid 0 the kernel answers the tree of `fd`.
    let mut args = InoLookupArgs { treeid: 0, objectid: 256, name: [0; 4080] };
    // SAFETY: `fd` is valid and `args` is a writable btrfs_ioctl_ino_lookup_args.
    unsafe { ioc_ino_lookup(fd.as_raw_fd(), &mut args) }?;
    Ok(args.treeid)
}

/// The file system id of the btrfs that `fd` is on, as sysfs names it (`/sys/fs/btrfs/<uuid>`).
pub fn btrfs_fsid(fd: BorrowedFd<'_>) -> io::Result<String> {
    // SAFETY: FsInfoArgs is plain old data; all-zero is a valid request.
    let mut args: FsInfoArgs = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is valid and `args` is a writable btrfs_ioctl_fs_info_args.
    unsafe { ioc_fs_info(fd.as_raw_fd(), &mut args) }?;
    let h: Vec<String> = args.fsid.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", h[0..4].concat(), h[4..6].concat(), h[6..8].concat(), h[8..10].concat(), h[10..16].concat()))
}

/// `struct if_dqblk` of quotactl(2).
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub struct DqBlk {
    pub bhardlimit: u64,
    pub bsoftlimit: u64,
    pub curspace: u64,
    pub ihardlimit: u64,
    pub isoftlimit: u64,
    pub curinodes: u64,
    pub btime: u64,
    pub itime: u64,
    pub valid: u32,
}

/// `struct if_dqinfo` of quotactl(2).
#[repr(C)]
#[derive(Default)]
struct DqInfo {
    bgrace: u64,
    igrace: u64,
    flags: u32,
    valid: u32,
}

const PRJQUOTA: i32 = 2;
const Q_GETINFO: i32 = 0x80_0005;
const Q_GETQUOTA: i32 = 0x80_0007;
const Q_SETQUOTA: i32 = 0x80_0008;
/// `QIF_BLIMITS | QIF_ILIMITS`: the limits of a `DqBlk` are to be set.
pub const QIF_LIMITS: u32 = 1 | 4;
/// Limits of `if_dqblk` are in blocks of this many bytes.
pub const QIF_DQBLKSIZE: u64 = 1024;

fn qcmd(cmd: i32) -> i32 {
    (cmd << 8) | PRJQUOTA
}

/// Whether project quotas are on (accounted and enforced) for the file system of `fd`.
pub fn project_quota_info(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut info = DqInfo::default();
    // SAFETY: quotactl_fd reads the command and writes at most a `struct if_dqinfo` into `info`,
    // which is valid and writable for the call.
    let rc = unsafe { libc::syscall(libc::SYS_quotactl_fd, fd.as_raw_fd(), qcmd(Q_GETINFO), 0, &mut info as *mut DqInfo) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The usage and limits of project `id`.
pub fn project_quota_get(fd: BorrowedFd<'_>, id: u32) -> io::Result<DqBlk> {
    let mut q = DqBlk::default();
    // SAFETY: as above; the kernel writes a `struct if_dqblk` into `q`.
    let rc = unsafe { libc::syscall(libc::SYS_quotactl_fd, fd.as_raw_fd(), qcmd(Q_GETQUOTA), id, &mut q as *mut DqBlk) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(q) }
}

/// Sets the limits of project `id` (`q.valid` says which).
pub fn project_quota_set(fd: BorrowedFd<'_>, id: u32, q: &DqBlk) -> io::Result<()> {
    // SAFETY: as above; the kernel only reads the `struct if_dqblk` at `q`.
    let rc = unsafe { libc::syscall(libc::SYS_quotactl_fd, fd.as_raw_fd(), qcmd(Q_SETQUOTA), id, q as *const DqBlk) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

nix::ioctl_read!(ioc_fsgetxattr, b'X', 31, FsXattr);
nix::ioctl_write_ptr!(ioc_fssetxattr, b'X', 32, FsXattr);

/// `FS_XFLAG_PROJINHERIT`: what is created inside takes the directory's project id.
const XFLAG_PROJINHERIT: u32 = 0x200;

/// Gives the directory `fd` project id `id` and makes new entries inside inherit it.
pub fn set_project(fd: BorrowedFd<'_>, id: u32) -> io::Result<()> {
    let mut x = FsXattr::default();
    // SAFETY: `fd` is valid and `x` a writable struct fsxattr.
    unsafe { ioc_fsgetxattr(fd.as_raw_fd(), &mut x) }?;
    x.projid = id;
    x.xflags |= XFLAG_PROJINHERIT;
    // SAFETY: `fd` is valid and `x` a fully initialised struct fsxattr the kernel only reads.
    unsafe { ioc_fssetxattr(fd.as_raw_fd(), &x) }?;
    Ok(())
}

/// The project id of `fd` and whether it has PROJINHERIT.
pub fn project_of(fd: BorrowedFd<'_>) -> io::Result<(u32, bool)> {
    let mut x = FsXattr::default();
    // SAFETY: `fd` is valid and `x` a writable struct fsxattr.
    unsafe { ioc_fsgetxattr(fd.as_raw_fd(), &mut x) }?;
    Ok((x.projid, x.xflags & XFLAG_PROJINHERIT != 0))
}
