//! The unsafe corner of hoody-snapshot: btrfs ioctls.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

const BTRFS_IOCTL_MAGIC: u8 = 0x94;
const BTRFS_PATH_NAME_MAX: usize = 4087;
const BTRFS_SUBVOL_NAME_MAX: usize = 4039;
/// Flag of `btrfs_ioctl_vol_args_v2` and of SUBVOL_{GET,SET}FLAGS: read-only subvolume.
pub const BTRFS_SUBVOL_RDONLY: u64 = 1 << 1;

#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; BTRFS_PATH_NAME_MAX + 1],
}

#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; BTRFS_SUBVOL_NAME_MAX + 1],
}

nix::ioctl_write_ptr!(ioc_subvol_create, BTRFS_IOCTL_MAGIC, 14, VolArgs);
nix::ioctl_write_ptr!(ioc_snap_destroy, BTRFS_IOCTL_MAGIC, 15, VolArgs);
nix::ioctl_write_ptr!(ioc_snap_create_v2, BTRFS_IOCTL_MAGIC, 23, VolArgsV2);
nix::ioctl_read!(ioc_subvol_getflags, BTRFS_IOCTL_MAGIC, 25, u64);
nix::ioctl_write_ptr!(ioc_subvol_setflags, BTRFS_IOCTL_MAGIC, 26, u64);

fn copy_name(dst: &mut [u8], name: &OsStr) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= dst.len() || b.contains(&b'/') || b.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    dst[..b.len()].copy_from_slice(b);
    Ok(())
}

/// Creates subvolume `name` inside the directory `parent`.
pub fn subvol_create(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let mut args = VolArgs { fd: 0, name: [0; BTRFS_PATH_NAME_MAX + 1] };
    copy_name(&mut args.name, name)?;
    // SAFETY: `parent` is a valid open fd and `args` is a properly initialised, NUL-terminated
    // btrfs_ioctl_vol_args that outlives the call; the kernel only reads it.
    unsafe { ioc_subvol_create(parent.as_raw_fd(), &args) }?;
    Ok(())
}

/// Snapshots the subvolume open at `src` as `name` inside the directory `parent`.
pub fn snapshot(src: BorrowedFd<'_>, parent: BorrowedFd<'_>, name: &OsStr, readonly: bool) -> io::Result<()> {
    let mut args = VolArgsV2 {
        fd: i64::from(src.as_raw_fd()),
        transid: 0,
        flags: if readonly { BTRFS_SUBVOL_RDONLY } else { 0 },
        unused: [0; 4],
        name: [0; BTRFS_SUBVOL_NAME_MAX + 1],
    };
    copy_name(&mut args.name, name)?;
    // SAFETY: both fds are valid for the duration of the call and `args` is a fully initialised
    // btrfs_ioctl_vol_args_v2 (zeroed qgroup fields) that the kernel only reads.
    unsafe { ioc_snap_create_v2(parent.as_raw_fd(), &args) }?;
    Ok(())
}

/// Deletes subvolume `name` inside the directory `parent`.
pub fn subvol_destroy(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let mut args = VolArgs { fd: 0, name: [0; BTRFS_PATH_NAME_MAX + 1] };
    copy_name(&mut args.name, name)?;
    // SAFETY: `parent` is a valid fd; `args` is initialised and only read by the kernel.
    unsafe { ioc_snap_destroy(parent.as_raw_fd(), &args) }?;
    Ok(())
}

/// Reads the subvolume flags of the subvolume open at `fd`.
pub fn subvol_flags(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut flags = 0u64;
    // SAFETY: `fd` is valid and `flags` is a writable u64 the kernel fills in.
    unsafe { ioc_subvol_getflags(fd.as_raw_fd(), &mut flags) }?;
    Ok(flags)
}

/// Sets or clears the read-only flag of the subvolume open at `fd`.
pub fn subvol_set_readonly(fd: BorrowedFd<'_>, readonly: bool) -> io::Result<()> {
    let mut flags = subvol_flags(fd)?;
    if readonly {
        flags |= BTRFS_SUBVOL_RDONLY;
    } else {
        flags &= !BTRFS_SUBVOL_RDONLY;
    }
    // SAFETY: `fd` is valid and `flags` is a readable u64 for the duration of the call.
    unsafe { ioc_subvol_setflags(fd.as_raw_fd(), &flags) }?;
    Ok(())
}
