//! Importing a root filesystem from a tar archive (plain, gzip or zstd), entry by entry through
//! [`SafeTreeWriter`]: nothing in the archive can write outside the image.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use tar::EntryType;

use crate::error::{Result, StorageError};
use crate::relpath::RelPath;
use crate::tree_writer::{ImportReport, Meta, SafeTreeWriter};

/// Compression detected from the first bytes of the stream.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn detect(head: &[u8]) -> Compression {
    match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Extracts the archive read from `input` into the writer's root.
pub fn import_tar(input: impl Read, mut writer: SafeTreeWriter) -> Result<ImportReport> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let head = input.fill_buf().map_err(StorageError::Archive)?.to_vec();
    let reader: Box<dyn Read> = match detect(&head) {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(StorageError::Archive)?),
    };
    let mut archive = tar::Archive::new(reader);
    let mut kind_of = ArchiveKind::default();
    for entry in archive.entries().map_err(StorageError::Archive)? {
        let mut entry = entry.map_err(StorageError::Archive)?;
        let raw = entry.path().map_err(StorageError::Archive)?.into_owned();
        kind_of.saw(&raw);
        let hdr = entry.header();
        let meta = Meta {
            mode: hdr.mode().map_err(StorageError::Archive)?,
            uid: hdr.uid().map_err(StorageError::Archive)?,
            gid: hdr.gid().map_err(StorageError::Archive)?,
            mtime: hdr.mtime().map_err(StorageError::Archive)? as i64,
        };
        let kind = hdr.entry_type();
        let Some(rel) = RelPath::sanitize(&raw)? else {
            continue; // the root directory itself keeps the image root's own mode
        };
        match kind {
            EntryType::Regular | EntryType::Continuous => writer.file(&rel, &meta, &mut entry)?,
            EntryType::Directory => writer.dir(&rel, &meta)?,
            EntryType::Symlink => {
                let target = link_name(&entry, &raw)?;
                writer.symlink(&rel, target.as_os_str(), &meta)?
            }
            EntryType::Link => {
                let target = link_name(&entry, &raw)?;
                let target = RelPath::sanitize(&target)?.ok_or_else(|| StorageError::UnsafeEntry {
                    entry: raw.to_string_lossy().into_owned(),
                    reason: "hard link to the root directory",
                })?;
                writer.hardlink(&rel, &target)?
            }
            EntryType::Fifo => writer.fifo(&rel, &meta)?,
            EntryType::Char | EntryType::Block => writer.skip(&raw, "device node (a container gets its own /dev)"),
            other => writer.skip(&raw, &format!("unsupported entry type {other:?}")),
        }
    }
    kind_of.check()?;
    writer.finish()
}

/// What the top of an archive says it is.
#[derive(Default)]
struct ArchiveKind {
    entries: usize,
    top: std::collections::BTreeSet<String>,
}

impl ArchiveKind {
    fn saw(&mut self, raw: &Path) {
        self.entries += 1;
        let mut parts = raw.components().filter(|c| !matches!(c, std::path::Component::CurDir | std::path::Component::RootDir));
        if let Some(first) = parts.next() {
            self.top.insert(first.as_os_str().to_string_lossy().into_owned());
        }
    }

    /// Refuses an archive that is not a root file system, saying what it is.
    fn check(&self) -> Result<()> {
        let has = |n: &str| self.top.contains(n);
        if self.entries == 0 {
            return Err(StorageError::NotARootFs("the archive is empty".into()));
        }
        if has("oci-layout") && has("index.json") {
            return Err(StorageError::NotARootFs(
                "this is an OCI image layout (oci-layout, index.json, blobs/): give a root file system tarball (for example `skopeo copy` then `umoci unpack`, or `docker export` of a container)".into(),
            ));
        }
        if has("manifest.json")
            && (has("repositories") || has("blobs") || self.top.iter().any(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())))
        {
            return Err(StorageError::NotARootFs(
                "this is a `docker save` archive (manifest.json with image layers): give a root file system tarball (`docker export` of a container made from the image)".into(),
            ));
        }
        Ok(())
    }
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, raw: &Path) -> Result<std::path::PathBuf> {
    entry
        .link_name()
        .map_err(StorageError::Archive)?
        .map(|p| p.into_owned())
        .ok_or_else(|| StorageError::UnsafeEntry { entry: raw.to_string_lossy().into_owned(), reason: "link without a target" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree_writer::OwnerPolicy;
    use std::os::unix::fs::MetadataExt;

    /// Builds a raw tar with hand-written headers, so hostile paths are not rejected by the
    /// builder itself.
    fn raw_tar(entries: &[(&str, EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, kind, link, data) in entries {
            let mut h = tar::Header::new_old();
            {
                let bytes = h.as_mut_bytes();
                bytes[..path.len()].copy_from_slice(path.as_bytes());
            }
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(data.len() as u64);
            h.set_mtime(1_700_000_000);
            if !link.is_empty() {
                let bytes = h.as_mut_bytes();
                bytes[157..157 + link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn extract(tar: &[u8]) -> (tempfile::TempDir, Result<ImportReport>) {
        let outer = tempfile::tempdir().unwrap();
        std::fs::create_dir(outer.path().join("root")).unwrap();
        let w = SafeTreeWriter::new(&outer.path().join("root"), OwnerPolicy::Ignore).unwrap();
        let r = import_tar(tar, w);
        (outer, r)
    }

    #[test]
    fn plain_tree_extracts() {
        let t = raw_tar(&[
            ("etc/", EntryType::Directory, "", b""),
            ("etc/hostname", EntryType::Regular, "", b"box\n"),
            ("bin/sh", EntryType::Regular, "", b"#!"),
            ("bin/ash", EntryType::Link, "bin/sh", b""),
            ("bin/s", EntryType::Symlink, "sh", b""),
        ]);
        let (d, r) = extract(&t);
        let r = r.unwrap();
        let root = d.path().join("root");
        assert_eq!(std::fs::read(root.join("etc/hostname")).unwrap(), b"box\n");
        assert_eq!(std::fs::metadata(root.join("bin/sh")).unwrap().ino(), std::fs::metadata(root.join("bin/ash")).unwrap().ino());
        assert_eq!(std::fs::read_link(root.join("bin/s")).unwrap(), Path::new("sh"));
        assert_eq!(r.files, 2);
        assert_eq!(r.hardlinks, 1);
    }

    #[test]
    fn what_is_not_a_root_file_system_is_refused_saying_what_it_is() {
        let not = |t: &[u8]| match extract(t).1 {
            Err(StorageError::NotARootFs(why)) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(not(b""), "the archive is empty");
        assert_eq!(not(&raw_tar(&[])), "the archive is empty");
        let oci = raw_tar(&[
            ("oci-layout", EntryType::Regular, "", b"{\"imageLayoutVersion\": \"1.0.0\"}"),
            ("index.json", EntryType::Regular, "", b"{}"),
            ("blobs/sha256/", EntryType::Directory, "", b""),
        ]);
        assert!(not(&oci).starts_with("this is an OCI image layout"));
        let docker = raw_tar(&[
            ("manifest.json", EntryType::Regular, "", b"[]"),
            ("repositories", EntryType::Regular, "", b"{}"),
            ("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/layer.tar", EntryType::Regular, "", b""),
        ]);
        assert!(not(&docker).starts_with("this is a `docker save` archive"));
        // A root file system that merely has a manifest.json of its own is one.
        let rootfs = raw_tar(&[("manifest.json", EntryType::Regular, "", b"[]"), ("bin/sh", EntryType::Regular, "", b"#!")]);
        extract(&rootfs).1.unwrap();
    }

    #[test]
    fn dotdot_entry_is_refused_and_nothing_escapes() {
        let t = raw_tar(&[("../escaped", EntryType::Regular, "", b"x")]);
        let (d, r) = extract(&t);
        assert!(matches!(r, Err(StorageError::UnsafeEntry { .. })));
        assert!(!d.path().join("escaped").exists());
    }

    #[test]
    fn absolute_path_is_neutralised_into_the_root() {
        let t = raw_tar(&[("/abs-file", EntryType::Regular, "", b"x")]);
        let (d, r) = extract(&t);
        r.unwrap();
        assert!(d.path().join("root/abs-file").exists());
    }

    #[test]
    fn write_through_symlink_pointing_out_stays_inside() {
        // A symlink to the outer directory, then a file "through" it: must land inside the root.
        let outer_hint = "../../../../../../../../../..";
        let t = raw_tar(&[
            ("out", EntryType::Symlink, outer_hint, b""),
            ("out/pwned", EntryType::Regular, "", b"x"),
            ("abs", EntryType::Symlink, "/", b""),
            ("abs/pwned2", EntryType::Regular, "", b"y"),
        ]);
        let (d, r) = extract(&t);
        r.unwrap();
        // The symlinks exist as symlinks; the files were written inside the root.
        assert!(d.path().join("root/pwned").exists());
        assert!(d.path().join("root/pwned2").exists());
        assert!(!d.path().join("pwned").exists());
        assert!(!Path::new("/pwned2").exists());
    }

    #[test]
    fn symlink_leaf_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"original").unwrap();
        let link = victim.to_str().unwrap().to_owned();
        let t = raw_tar(&[("f", EntryType::Symlink, &link, b""), ("f", EntryType::Regular, "", b"new")]);
        let (d, r) = extract(&t);
        r.unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"original");
        assert_eq!(std::fs::read(d.path().join("root/f")).unwrap(), b"new");
    }

    #[test]
    fn hard_link_out_is_refused_or_confined() {
        let t = raw_tar(&[("h", EntryType::Link, "../../etc/passwd", b"")]);
        let (_d, r) = extract(&t);
        assert!(matches!(r, Err(StorageError::UnsafeEntry { .. })));
        // Absolute target: resolved inside the root, where it does not exist.
        let t = raw_tar(&[("h", EntryType::Link, "/etc/passwd", b"")]);
        let (d, r) = extract(&t);
        assert!(r.is_err());
        assert!(!d.path().join("root/h").exists());
    }

    #[test]
    fn hard_link_through_symlinked_dir_stays_inside() {
        let t = raw_tar(&[("up", EntryType::Symlink, "/etc", b""), ("h", EntryType::Link, "up/passwd", b"")]);
        let (_d, r) = extract(&t);
        // /etc inside the root does not exist: the link fails rather than linking the host file.
        assert!(r.is_err());
    }

    #[test]
    fn device_nodes_are_skipped_and_reported() {
        let t = raw_tar(&[("dev/sda", EntryType::Block, "", b""), ("dev/mem", EntryType::Char, "", b"")]);
        let (d, r) = extract(&t);
        let r = r.unwrap();
        assert_eq!(r.skipped.len(), 2);
        assert!(!d.path().join("root/dev/sda").exists());
    }

    #[test]
    fn gzip_and_zstd_are_detected() {
        assert_eq!(detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(detect(b"ustar"), Compression::None);
        let t = raw_tar(&[("a", EntryType::Regular, "", b"zz")]);
        let z = zstd::encode_all(&t[..], 3).unwrap();
        let (d, r) = extract(&z);
        r.unwrap();
        assert_eq!(std::fs::read(d.path().join("root/a")).unwrap(), b"zz");
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut g, &t).unwrap();
        let (d, r) = extract(&g.finish().unwrap());
        r.unwrap();
        assert_eq!(std::fs::read(d.path().join("root/a")).unwrap(), b"zz");
    }
}
