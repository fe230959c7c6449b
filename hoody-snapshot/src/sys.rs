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

nix::ioctl_write_int!(ioc_ficlone, 0x94, 9);

/// Makes `dst` share `src`'s extents (a reflink copy). Fails with EOPNOTSUPP/EXDEV/EINVAL where
/// the file system cannot.
pub fn ficlone(dst: BorrowedFd<'_>, src: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: FICLONE takes the source descriptor by value; both descriptors are live.
    unsafe { ioc_ficlone(dst.as_raw_fd(), src.as_raw_fd() as u64) }?;
    Ok(())
}

#[repr(C)]
struct FiemapExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

#[repr(C)]
struct Fiemap<const N: usize> {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [FiemapExtent; N],
}

const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
/// Flags under which the physical address says nothing about the content.
const FIEMAP_UNCOMPARABLE: u32 = 0x2 | 0x4 | 0x8 | 0x100 | 0x200 | 0x400; // unknown, delalloc, encoded, inline, tail, unwritten

/// The physical extents of a file, when they identify its content (shared extents mean shared
/// bytes). `None` when they cannot tell (inline data, delayed allocation, too many extents…).
pub fn extents(fd: BorrowedFd<'_>) -> Option<Vec<(u64, u64, u64)>> {
    const N: usize = 64;
    // SAFETY: Fiemap is plain old data; all-zero is a valid request header.
    let mut m: Fiemap<N> = unsafe { std::mem::zeroed() };
    m.length = u64::MAX;
    m.extent_count = N as u32;
    // SAFETY: `m` is a valid, writable fiemap with room for N extents, as extent_count says.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FIEMAP, &mut m as *mut Fiemap<N>) };
    if rc < 0 {
        return None;
    }
    let n = m.mapped_extents as usize;
    if n > N || (n == N && m.extents[N - 1].flags & FIEMAP_EXTENT_LAST == 0) {
        return None;
    }
    let mut v = Vec::with_capacity(n);
    for e in &m.extents[..n] {
        if e.flags & FIEMAP_UNCOMPARABLE != 0 {
            return None;
        }
        v.push((e.logical, e.physical, e.length));
    }
    Some(v)
}

/// `renameat2(RENAME_EXCHANGE)`: atomically swaps two paths in the same directory.
pub fn exchange(dir: BorrowedFd<'_>, a: &OsStr, b: &OsStr) -> io::Result<()> {
    nix::fcntl::renameat2(dir, a, dir, b, nix::fcntl::RenameFlags::RENAME_EXCHANGE)?;
    Ok(())
}

/// Sets extended attributes on `path` (not following symlinks).
pub fn set_xattrs(path: &std::path::Path, attrs: &[(std::ffi::CString, Vec<u8>)]) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    for (name, val) in attrs {
        // SAFETY: valid C strings and a buffer of the given length.
        let rc = unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), val.as_ptr().cast(), val.len(), 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Extended attributes of the file open at `fd`.
pub fn fxattrs(fd: BorrowedFd<'_>) -> io::Result<Vec<(std::ffi::CString, Vec<u8>)>> {
    let raw = fd.as_raw_fd();
    // SAFETY: a null buffer of size 0 asks for the needed size.
    let n = unsafe { libc::flistxattr(raw, std::ptr::null_mut(), 0) };
    if n <= 0 {
        return Ok(vec![]);
    }
    let mut names = vec![0u8; n as usize];
    // SAFETY: `names` has room for `names.len()` bytes.
    let n = unsafe { libc::flistxattr(raw, names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = vec![];
    for name in names[..n as usize].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::CString::new(name).expect("split at NUL");
        // SAFETY: a null buffer asks for the size of this attribute.
        let len = unsafe { libc::fgetxattr(raw, cname.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            continue;
        }
        let mut val = vec![0u8; len as usize];
        // SAFETY: `val` has room for `val.len()` bytes.
        let len = unsafe { libc::fgetxattr(raw, cname.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if len >= 0 {
            val.truncate(len as usize);
            out.push((cname, val));
        }
    }
    Ok(out)
}

/// `fgetxattr` into `buf`; the length read, or `None` when absent.
pub fn fgetxattr(fd: BorrowedFd<'_>, name: &std::ffi::CStr, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: a valid descriptor and C string; `buf` is writable for its length.
    let n = unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then_some(n as usize)
}

/// `fsetxattr` of one attribute on the file open at `fd`.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &std::ffi::CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: a valid descriptor and C string; `value` is readable for its length.
    let rc = unsafe { libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `fremovexattr`; an attribute that is not there is fine.
pub fn fremovexattr(fd: BorrowedFd<'_>, name: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: a valid descriptor and C string.
    let rc = unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) };
    let e = io::Error::last_os_error();
    if rc < 0 && e.raw_os_error() != Some(libc::ENODATA) { Err(e) } else { Ok(()) }
}

/// Flag of `btrfs_ioctl_vol_args_v2`: the subvolume is named by id, not by name.
const BTRFS_SUBVOL_SPEC_BY_ID: u64 = 1 << 4;
nix::ioctl_write_ptr!(ioc_snap_destroy_v2, BTRFS_IOCTL_MAGIC, 63, VolArgsV2);

/// Deletes the subvolume with id `subvolid` of the file system `fs_fd` is open on, wherever it
/// is linked (no path is walked). Fails with ENOTEMPTY while it holds nested subvolumes.
pub fn subvol_destroy_by_id(fs_fd: BorrowedFd<'_>, subvolid: u64) -> io::Result<()> {
    let mut args = VolArgsV2 { fd: 0, transid: 0, flags: BTRFS_SUBVOL_SPEC_BY_ID, unused: [0; 4], name: [0; BTRFS_SUBVOL_NAME_MAX + 1] };
    // The name union holds the subvolume id (native byte order, as the kernel's __u64).
    args.name[..8].copy_from_slice(&subvolid.to_ne_bytes());
    // SAFETY: `fs_fd` is a valid descriptor; `args` is a fully initialised
    // btrfs_ioctl_vol_args_v2 that the kernel only reads.
    unsafe { ioc_snap_destroy_v2(fs_fd.as_raw_fd(), &args) }?;
    Ok(())
}

#[repr(C)]
struct SearchKey {
    tree_id: u64,
    min_objectid: u64,
    max_objectid: u64,
    min_offset: u64,
    max_offset: u64,
    min_transid: u64,
    max_transid: u64,
    min_type: u32,
    max_type: u32,
    nr_items: u32,
    unused: u32,
    unused1: [u64; 4],
}

const SEARCH_BUF: usize = 4096 - std::mem::size_of::<SearchKey>();

#[repr(C)]
struct SearchArgs {
    key: SearchKey,
    buf: [u8; SEARCH_BUF],
}

nix::ioctl_readwrite!(ioc_tree_search, BTRFS_IOCTL_MAGIC, 17, SearchArgs);

const BTRFS_ROOT_TREE_OBJECTID: u64 = 1;
const BTRFS_ROOT_REF_KEY: u32 = 156;
/// Size of `btrfs_ioctl_search_header`: transid, objectid, offset (u64), type, len (u32).
const SEARCH_HEADER: usize = 32;

/// Ids of the subvolumes linked directly inside subvolume `parent` (its ROOT_REF items in the
/// root tree), found by id without walking any path. Needs CAP_SYS_ADMIN.
pub fn subvol_children(fs_fd: BorrowedFd<'_>, parent: u64) -> io::Result<Vec<u64>> {
    let mut out = vec![];
    let mut min_offset = 0u64;
    loop {
        let mut args = SearchArgs {
            key: SearchKey {
                tree_id: BTRFS_ROOT_TREE_OBJECTID,
                min_objectid: parent,
                max_objectid: parent,
                min_offset,
                max_offset: u64::MAX,
                min_transid: 0,
                max_transid: u64::MAX,
                min_type: BTRFS_ROOT_REF_KEY,
                max_type: BTRFS_ROOT_REF_KEY,
                nr_items: 4096,
                unused: 0,
                unused1: [0; 4],
            },
            buf: [0; SEARCH_BUF],
        };
        // SAFETY: `args` is a fully initialised btrfs_ioctl_search_args (4096 bytes) the kernel
        // reads the key from and writes results and the item count into.
        unsafe { ioc_tree_search(fs_fd.as_raw_fd(), &mut args) }?;
        let n = args.key.nr_items;
        if n == 0 {
            return Ok(out);
        }
        let mut at = 0usize;
        let mut last = None;
        for _ in 0..n {
            if at + SEARCH_HEADER > SEARCH_BUF {
                break;
            }
            let h = &args.buf[at..at + SEARCH_HEADER];
            let word = |i: usize| u64::from_ne_bytes(h[i..i + 8].try_into().expect("8 bytes"));
            let (objectid, offset) = (word(8), word(16));
            let typ = u32::from_ne_bytes(h[24..28].try_into().expect("4 bytes"));
            let len = u32::from_ne_bytes(h[28..32].try_into().expect("4 bytes")) as usize;
            if objectid == parent && typ == BTRFS_ROOT_REF_KEY {
                out.push(offset);
            }
            last = Some(offset);
            at += SEARCH_HEADER + len;
        }
        match last {
            Some(o) if o < u64::MAX => min_offset = o + 1,
            _ => return Ok(out),
        }
    }
}
