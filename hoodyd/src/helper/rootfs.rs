//! Building the container's root file system inside its own mount namespace, run by the
//! container's first process while it is still root with full capabilities in its user
//! namespace. Every mount target is resolved inside the new root (`RESOLVE_IN_ROOT`), so a
//! symlink planted by the tenant (say `/dev -> /etc`) can never redirect a mount.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{fchdir, pivot_root, symlinkat};

use super::error::{HelperError, Result, nix_step, step};
use super::sys::{self, FsContext};
use hoody_snapshot::ContainerRoot;

const RESOLVE: ResolveFlag = ResolveFlag::RESOLVE_IN_ROOT.union(ResolveFlag::RESOLVE_NO_MAGICLINKS);

/// Descriptors opened by the helper on the host before the container process was created.
pub struct HostFds {
    /// btrfs: the subvolume; overlay: the `rootfs/` mount point.
    pub root_target: OwnedFd,
    /// overlay only: the image directory and the container directory (upper/, work/).
    pub lower_target: Option<OwnedFd>,
    pub dir_target: Option<OwnedFd>,
}

/// Attaches the idmapped mounts received from the helper and returns a descriptor of the
/// container's root mount.
pub fn attach_root(root: &ContainerRoot, host: &HostFds, mounts: Vec<OwnedFd>) -> Result<OwnedFd> {
    match root {
        ContainerRoot::Btrfs { .. } => {
            let [rootfs]: [OwnedFd; 1] = mounts.try_into().map_err(|_| HelperError::Child("expected one mount".into()))?;
            sys::move_mount(rootfs.as_fd(), host.root_target.as_fd()).map_err(step("attach idmapped root"))?;
            Ok(rootfs)
        }
        ContainerRoot::Overlay { .. } => {
            let [lower, dir]: [OwnedFd; 2] = mounts.try_into().map_err(|_| HelperError::Child("expected two mounts".into()))?;
            let (Some(lt), Some(dt)) = (&host.lower_target, &host.dir_target) else {
                return Err(HelperError::Child("overlay targets missing".into()));
            };
            // Attached in our own mount namespace, the layers become usable by an overlay that
            // our user namespace mounts (the anonymous ones belong to the host's namespace).
            sys::move_mount(lower.as_fd(), lt.as_fd()).map_err(step("attach idmapped image layer"))?;
            sys::move_mount(dir.as_fd(), dt.as_fd()).map_err(step("attach idmapped container layer"))?;
            let ctx = FsContext::open(c"overlay").map_err(step("open overlay context"))?;
            let fdpath = |fd: &OwnedFd, sub: &str| CString::new(format!("/proc/self/fd/{}{sub}", fd.as_raw_fd())).expect("no NUL");
            ctx.set_string(c"lowerdir", &fdpath(&lower, "")).map_err(step("overlay lowerdir"))?;
            ctx.set_string(c"upperdir", &fdpath(&dir, "/upper")).map_err(step("overlay upperdir"))?;
            ctx.set_string(c"workdir", &fdpath(&dir, "/work")).map_err(step("overlay workdir"))?;
            ctx.set_flag(c"userxattr").map_err(step("overlay userxattr"))?;
            let ovl = ctx.mount(0).map_err(step("create overlay mount"))?;
            sys::move_mount(ovl.as_fd(), host.root_target.as_fd()).map_err(step("attach overlay root"))?;
            Ok(ovl)
        }
    }
}

/// A descriptor of `rel` inside the root, creating it as a directory (or empty file) if missing.
fn target(root: BorrowedFd<'_>, rel: &str, dir: bool) -> Result<OwnedFd> {
    let how = || OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW).resolve(RESOLVE);
    match openat2(root, rel, how()) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(mount_err("resolve", rel, e)),
    }
    let p = Path::new(rel);
    let parent = p.parent().map(|p| p.to_str().unwrap_or(".")).filter(|p| !p.is_empty()).unwrap_or(".");
    let name = p.file_name().ok_or_else(|| mount_err("resolve", rel, Errno::EINVAL))?;
    let pfd = openat2(root, parent, OpenHow::new().flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).resolve(RESOLVE))
        .map_err(|e| mount_err("resolve parent of", rel, e))?;
    if dir {
        mkdirat(pfd.as_fd(), name, Mode::from_bits_truncate(0o755))
            .or_else(|e| if e == Errno::EEXIST { Ok(()) } else { Err(e) })
            .map_err(|e| mount_err("create", rel, e))?;
    } else {
        let f = nix::fcntl::openat(
            pfd.as_fd(),
            name,
            OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(|e| mount_err("create", rel, e))?;
        drop(f);
    }
    openat2(root, rel, how()).map_err(|e| mount_err("resolve", rel, e))
}

fn exists(root: BorrowedFd<'_>, rel: &str) -> bool {
    openat2(root, rel, OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW).resolve(RESOLVE)).is_ok()
}

fn mount_err(what: &'static str, rel: &str, e: Errno) -> HelperError {
    HelperError::Path { step: what, path: Path::new("/").join(rel), source: e.into() }
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// `mount(2)` onto a resolved target descriptor.
fn mount_on(root: BorrowedFd<'_>, rel: &str, dir: bool, src: &str, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> Result<()> {
    let t = target(root, rel, dir)?;
    mount(Some(src), fd_path(&t).as_str(), fstype, flags, data).map_err(|e| mount_err("mount on", rel, e))
}

/// Bind-mounts `rel` onto itself and remounts it read-only.
fn make_readonly(root: BorrowedFd<'_>, rel: &str) -> Result<()> {
    if !exists(root, rel) {
        return Ok(());
    }
    let t = target(root, rel, true)?;
    let p = fd_path(&t);
    mount(Some(p.as_str()), p.as_str(), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| mount_err("bind", rel, e))?;
    let t2 = target(root, rel, true)?;
    let p2 = fd_path(&t2);
    let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(None::<&str>, p2.as_str(), None::<&str>, ro, None::<&str>).map_err(|e| mount_err("remount read-only", rel, e))
}

/// Hides a /proc or /sys entry: /dev/null over files, an empty read-only tmpfs over directories.
fn mask(root: BorrowedFd<'_>, rel: &str) -> Result<()> {
    let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW).resolve(RESOLVE);
    let Ok(t) = openat2(root, rel, how) else {
        return Ok(());
    };
    let st = nix::sys::stat::fstat(t.as_fd()).map_err(|e| mount_err("stat", rel, e))?;
    let p = fd_path(&t);
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("tmpfs"), p.as_str(), Some("tmpfs"), flags, Some("size=0,mode=0555")).map_err(|e| mount_err("mask", rel, e))
    } else {
        // The host's /dev/null is still reachable: the root has not been pivoted yet.
        mount(Some("/dev/null"), p.as_str(), None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|e| mount_err("mask", rel, e))
    }
}

const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
const MASKED: &[&str] = &[
    "proc/kcore",
    "proc/keys",
    "proc/timer_list",
    "proc/sched_debug",
    "proc/latency_stats",
    "proc/acpi",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];
const READONLY: &[&str] = &["proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"];

/// Mounts /proc, a read-only /sys (and cgroup2), a minimal /dev with its own devpts, /dev/shm
/// and /dev/mqueue, then masks and write-protects the sensitive parts of /proc and /sys.
pub fn populate(root: BorrowedFd<'_>) -> Result<()> {
    let nse = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_on(root, "proc", true, "proc", Some("proc"), nse, None)?;
    mount_on(root, "sys", true, "sysfs", Some("sysfs"), nse | MsFlags::MS_RDONLY, None)?;
    if exists(root, "sys/fs/cgroup") {
        mount_on(root, "sys/fs/cgroup", true, "cgroup2", Some("cgroup2"), nse | MsFlags::MS_RDONLY, None)?;
    }
    mount_on(root, "dev", true, "tmpfs", Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, Some("mode=755,size=65536k"))?;
    for d in DEVICES {
        let rel = format!("dev/{d}");
        let t = target(root, &rel, false)?;
        // The host's device node, bind-mounted: a user namespace cannot create device nodes.
        mount(Some(format!("/dev/{d}").as_str()), fd_path(&t).as_str(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| mount_err("bind device", &rel, e))?;
    }
    mount_on(
        root,
        "dev/pts",
        true,
        "devpts",
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    mount_on(root, "dev/shm", true, "shm", Some("tmpfs"), nse, Some("mode=1777,size=65536k"))?;
    mount_on(root, "dev/mqueue", true, "mqueue", Some("mqueue"), nse, None)?;
    // /dev is now our fresh tmpfs: plain *at calls under it cannot be redirected.
    let dev = openat2(root, "dev", OpenHow::new().flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).resolve(RESOLVE))
        .map_err(nix_step("open /dev"))?;
    for (name, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlinkat(to, dev.as_fd(), name).map_err(|e| mount_err("symlink", &format!("dev/{name}"), e))?;
    }
    resolv_conf(root, dev.as_fd())?;
    for m in MASKED {
        mask(root, m)?;
    }
    for r in READONLY {
        make_readonly(root, r)?;
    }
    Ok(())
}

/// What every container's /etc/resolv.conf says: hoodyd's resolver on the gateway.
pub const RESOLV_CONF: &str =
    "# managed by hoodyd: its resolver on the gateway polices names (firewall dns mode)\nnameserver 169.254.0.1\noptions edns0\n";

/// Mounts the managed resolv.conf read-only over the image's `/etc/resolv.conf` (created when
/// missing; left alone when it is not a regular file, such as a symlink to a local stub). The
/// file lives on the container's own /dev tmpfs, unlinked there once bound: remounted
/// writable by the tenant, it is still only its own memory.
fn resolv_conf(root: BorrowedFd<'_>, dev: BorrowedFd<'_>) -> Result<()> {
    if !exists(root, "etc") {
        return Ok(());
    }
    let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW).resolve(RESOLVE);
    if let Ok(t) = openat2(root, "etc/resolv.conf", how) {
        let st = nix::sys::stat::fstat(t.as_fd()).map_err(|e| mount_err("stat", "etc/resolv.conf", e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(());
        }
    }
    let name = ".hoody-resolv.conf";
    let f = nix::fcntl::openat(
        dev,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(|e| mount_err("create", "dev/.hoody-resolv.conf", e))?;
    nix::unistd::write(&f, RESOLV_CONF.as_bytes()).map_err(|e| mount_err("write", "dev/.hoody-resolv.conf", e))?;
    let t = target(root, "etc/resolv.conf", false)?;
    mount(Some(fd_path(&f).as_str()), fd_path(&t).as_str(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| mount_err("bind", "etc/resolv.conf", e))?;
    let t2 = target(root, "etc/resolv.conf", false)?;
    let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(None::<&str>, fd_path(&t2).as_str(), None::<&str>, ro, None::<&str>)
        .map_err(|e| mount_err("remount read-only", "etc/resolv.conf", e))?;
    nix::unistd::unlinkat(dev, name, nix::unistd::UnlinkatFlags::NoRemoveDir).map_err(|e| mount_err("unlink", "dev/.hoody-resolv.conf", e))
}

/// Makes the current directory (the container's root mount) `/` and drops the host's tree.
pub fn enter(root: BorrowedFd<'_>) -> Result<()> {
    fchdir(root).map_err(nix_step("enter the container root"))?;
    pivot_root(".", ".").map_err(nix_step("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(nix_step("detach the host root"))?;
    nix::unistd::chdir("/").map_err(nix_step("chdir /"))?;
    Ok(())
}
