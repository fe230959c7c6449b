//! A minimal ustar writer for hostile archives (real tar tools refuse to write some of these).

pub enum Kind<'a> {
    File(&'a [u8]),
    /// An executable file (0755).
    Exec(&'a [u8]),
    Dir,
    Symlink(&'a str),
    HardLink(&'a str),
    CharDev,
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}\0", v, width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

/// Builds an uncompressed tar of `(path, kind)` entries, owned by 0:0.
pub fn build(entries: &[(&str, Kind<'_>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, kind) in entries {
        let mut h = [0u8; 512];
        h[..path.len()].copy_from_slice(path.as_bytes());
        let (mode, size, flag, link): (u64, usize, u8, &str) = match kind {
            Kind::File(d) => (0o644, d.len(), b'0', ""),
            Kind::Exec(d) => (0o755, d.len(), b'0', ""),
            Kind::Dir => (0o755, 0, b'5', ""),
            Kind::Symlink(t) => (0o777, 0, b'2', t),
            Kind::HardLink(t) => (0o644, 0, b'1', t),
            Kind::CharDev => (0o666, 0, b'3', ""),
        };
        octal(&mut h[100..108], mode);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size as u64);
        octal(&mut h[136..148], 1_700_000_000);
        h[156] = flag;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        if let Kind::CharDev = kind {
            octal(&mut h[329..337], 1);
            octal(&mut h[337..345], 3);
        }
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        if let Kind::File(d) | Kind::Exec(d) = kind {
            out.extend_from_slice(d);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
    }
    out.resize(out.len() + 1024, 0);
    out
}
