//! Reading process facts from procfs (the root is passed in, never assumed).

use std::io;
use std::path::Path;

/// Start time of process `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
/// Together with the pid it names one process across pid reuse.
pub fn start_time(proc_root: &Path, pid: i32) -> io::Result<u64> {
    let s = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat"))?;
    parse_start_time(&s).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("malformed stat of pid {pid}")))
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts with field 3 (state); starttime is field 22 → index 19 here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The parent of process `pid` (field 4 of `/proc/<pid>/stat`).
pub fn parent_of(proc_root: &Path, pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    s[s.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// True when `pid` exists and still has the start time recorded for it.
pub fn is_same_process(proc_root: &Path, pid: i32, start: u64) -> bool {
    start_time(proc_root, pid).map(|s| s == start).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_time_with_odd_comm() {
        let stat = "1234 (we ird) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000000 100 18446744073709551615";
        assert_eq!(parse_start_time(stat), Some(987654));
    }

    #[test]
    fn reads_own_start_time() {
        let me = std::process::id() as i32;
        let t = start_time(Path::new("/proc"), me).unwrap();
        assert!(is_same_process(Path::new("/proc"), me, t));
        assert!(!is_same_process(Path::new("/proc"), me, t + 1));
    }
}
