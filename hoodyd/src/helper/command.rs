//! Preparing a command for execve inside the container: C strings and a PATH search done with
//! the container's own PATH (not ours).

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::error::{HelperError, Result};

pub fn cstrings(v: &[String]) -> Result<Vec<CString>> {
    v.iter().map(|s| CString::new(s.as_bytes()).map_err(|_| HelperError::Child(format!("NUL byte in {s:?}")))).collect()
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Finds `cmd` like execvp would, with the PATH from `env`. Call after entering the container.
pub fn resolve(cmd: &str, env: &[String]) -> Result<CString> {
    let not_found = |source| HelperError::Exec { command: cmd.to_owned(), source };
    if cmd.is_empty() {
        return Err(not_found(std::io::Error::from_raw_os_error(libc::ENOENT)));
    }
    if cmd.contains('/') {
        return CString::new(cmd).map_err(|_| not_found(std::io::Error::from_raw_os_error(libc::EINVAL)));
    }
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(cmd);
        if let Ok(md) = std::fs::metadata(&p)
            && md.is_file()
            && md.permissions().mode() & 0o111 != 0
        {
            return CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| not_found(std::io::Error::from_raw_os_error(libc::EINVAL)));
        }
    }
    Err(not_found(std::io::Error::from_raw_os_error(libc::ENOENT)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_with_given_path() {
        let p = resolve("sh", &["PATH=/nonexistent:/bin".into()]).unwrap();
        assert_eq!(p.to_str().unwrap(), "/bin/sh");
        assert!(matches!(resolve("definitely-not-here", &["PATH=/bin".into()]), Err(HelperError::Exec { .. })));
        assert_eq!(resolve("/x/y", &[]).unwrap().to_str().unwrap(), "/x/y");
    }
}
