//! Builds the default image from the host's static busybox (Debian's `busybox-static`): a few
//! directories, the binary, one symlink per applet, and the files an init and a shell expect.

use std::fs::File;
use std::path::Path;
use std::process::Command;

use crate::error::{Result, StorageError};
use crate::relpath::RelPath;
use crate::tree_writer::{ImportReport, Meta, SafeTreeWriter};

const FILES: &[(&str, u32, &str)] = &[
    ("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
    ("etc/group", 0o644, "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"),
    ("etc/shadow", 0o600, "root:*:19000:0:99999:7:::\n"),
    // No respawn entries: init idles, reaps orphans, and on SIGTERM runs the shutdown actions.
    ("etc/inittab", 0o644, "::sysinit:/bin/true\n::shutdown:/bin/sync\n"),
    ("etc/hosts", 0o644, "127.0.0.1 localhost\n::1 localhost\n"),
    ("etc/os-release", 0o644, "NAME=\"hoody busybox\"\nID=busybox\n"),
];

const DIRS: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("etc", 0o755),
    ("dev", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("run", 0o755),
    ("var", 0o755),
    ("var/log", 0o755),
    ("home", 0o755),
];

fn rel(p: &str) -> RelPath {
    RelPath::sanitize(Path::new(p)).expect("static path").expect("static path is not the root")
}

/// Writes a busybox root filesystem through `writer`, using the static binary at `busybox`.
pub fn build(busybox: &Path, mut writer: SafeTreeWriter) -> Result<ImportReport> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let meta = |mode| Meta { mode, uid: 0, gid: 0, mtime: now };
    for (d, mode) in DIRS {
        writer.dir(&rel(d), &meta(*mode))?;
    }
    let mut bin = File::open(busybox).map_err(StorageError::io("open", busybox))?;
    writer.file(&rel("bin/busybox"), &meta(0o755), &mut bin)?;
    let out = Command::new(busybox).arg("--list-full").output().map_err(StorageError::io("run", busybox))?;
    if !out.status.success() {
        return Err(StorageError::Unsupported {
            driver: "busybox image",
            path: busybox.to_path_buf(),
            reason: "`busybox --list-full` failed (is it the static busybox?)".into(),
        });
    }
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        writer.symlink(&rel(applet), "/bin/busybox".as_ref(), &meta(0o777))?;
    }
    for (path, mode, content) in FILES {
        writer.file(&rel(path), &meta(*mode), &mut content.as_bytes())?;
    }
    writer.finish()
}
