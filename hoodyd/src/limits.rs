//! Resource limits of a container: parsing the API's forms (`"512MiB"`, `1.5`, `512`) into the
//! values written to cgroup v2 files, with validation messages that name the field.

use serde::{Deserialize, Serialize};

/// Limits as stored and applied: bytes, CPUs, process count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// Swap the container may use on top of `memory` (memory.swap.max); none unless asked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub swap: Option<u64>,
    /// Bytes the container's root may hold beyond its image (storage quota).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub disk: Option<u64>,
    /// Bytes its snapshots may hold; `None` = the same as `disk`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub snapshots_disk: Option<u64>,
    /// Inodes its root may hold (overlay's project quotas).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inodes: Option<u64>,
}

/// A memory size as the API accepts it: a number of bytes or a string with a unit.
pub use hoody_api::common::Size as MemoryValue;
pub use hoody_api::containers::LimitsRequest;

pub const MIN_MEMORY: u64 = 6 << 20;
/// The smallest disk limit: a root needs room for its own metadata.
pub const MIN_DISK: u64 = 1 << 20;
pub const MIN_INODES: u64 = 16;
pub const MAX_CPUS: f64 = 1024.0;
pub const MAX_PIDS: u64 = 4_194_304;
pub const CPU_PERIOD_US: u64 = 100_000;

/// A validation failure: the field (dotted path) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// Parses `512MiB`, `1G`, `100m`, `4096` (bytes). Units are binary for `Ki/Mi/Gi/Ti` and for the
/// single letters (as Docker does); `KB/MB/GB/TB` are decimal.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return None;
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    if num.contains('.') {
        let v: f64 = num.parse().ok()?;
        let r = v * mult as f64;
        (r.is_finite() && r >= 0.0 && r < u64::MAX as f64).then_some(r as u64)
    } else {
        num.parse::<u64>().ok()?.checked_mul(mult)
    }
}

/// Formats bytes the way people write them (`512MiB`), exact when possible.
pub fn format_size(b: u64) -> String {
    for (unit, m) in [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if b >= m && b.is_multiple_of(m) {
            return format!("{}{unit}", b / m);
        }
    }
    format!("{b}B")
}

/// Checks a request's `limits` object and turns it into [`Limits`].
pub trait ValidateLimits {
    /// Validates; `prefix` is the field path of the object (`limits`).
    fn validate(&self, prefix: &str) -> Result<Limits, FieldError>;
}

impl ValidateLimits for LimitsRequest {
    fn validate(&self, prefix: &str) -> Result<Limits, FieldError> {
        let size = |field: &str, v: &MemoryValue| {
            match v {
                MemoryValue::Bytes(b) => Some(*b),
                MemoryValue::Text(t) => parse_size(t),
            }
            .ok_or_else(|| FieldError::new(format!("{prefix}.{field}"), "not a size (use a number of bytes or e.g. \"512MiB\")"))
        };
        let swap = self.swap.as_ref().map(|v| size("swap", v)).transpose()?;
        if swap.is_some() && self.memory.is_none() {
            return Err(FieldError::new(format!("{prefix}.swap"), format!("needs {prefix}.memory in the same request")));
        }
        let memory = match &self.memory {
            None => None,
            Some(v) => {
                let bytes = size("memory", v)?;
                if bytes < MIN_MEMORY {
                    return Err(FieldError::new(
                        format!("{prefix}.memory"),
                        format!("{} is below the minimum of {}", format_size(bytes), format_size(MIN_MEMORY)),
                    ));
                }
                Some(bytes)
            }
        };
        if let Some(c) = self.cpus
            && (!c.is_finite() || !(0.01..=MAX_CPUS).contains(&c))
        {
            return Err(FieldError::new(format!("{prefix}.cpus"), format!("must be between 0.01 and {MAX_CPUS}")));
        }
        if let Some(p) = self.pids
            && (p == 0 || p > MAX_PIDS)
        {
            return Err(FieldError::new(format!("{prefix}.pids"), format!("must be between 1 and {MAX_PIDS}")));
        }
        let at_least = |field: &str, v: Option<&MemoryValue>, min: u64| -> Result<Option<u64>, FieldError> {
            let Some(v) = v else { return Ok(None) };
            let b = size(field, v)?;
            if b < min {
                return Err(FieldError::new(
                    format!("{prefix}.{field}"),
                    format!("{} is below the minimum of {}", format_size(b), format_size(min)),
                ));
            }
            Ok(Some(b))
        };
        let disk = at_least("disk", self.disk.as_ref(), MIN_DISK)?;
        let snapshots_disk = at_least("snapshots_disk", self.snapshots_disk.as_ref(), 0)?;
        if let Some(i) = self.inodes
            && i < MIN_INODES
        {
            return Err(FieldError::new(format!("{prefix}.inodes"), format!("must be at least {MIN_INODES}")));
        }
        Ok(Limits { memory, cpus: self.cpus, pids: self.pids, swap, disk, snapshots_disk, inodes: self.inodes })
    }
}

impl Limits {
    /// `cpu.max` quota and period for a number of CPUs.
    pub fn cpu_max(cpus: f64) -> (u64, u64) {
        (((cpus * CPU_PERIOD_US as f64).round() as u64).max(1000), CPU_PERIOD_US)
    }

    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.cpus.is_none() && self.pids.is_none()
    }

    /// Overlays `other`'s set fields on `self` (for live updates).
    pub fn merged(self, other: Limits) -> Limits {
        // A new memory limit brings its own swap (none unless given).
        let swap = if other.memory.is_some() { other.swap } else { self.swap };
        Limits {
            memory: other.memory.or(self.memory),
            cpus: other.cpus.or(self.cpus),
            pids: other.pids.or(self.pids),
            swap,
            disk: other.disk.or(self.disk),
            snapshots_disk: other.snapshots_disk.or(self.snapshots_disk),
            inodes: other.inodes.or(self.inodes),
        }
    }

    /// The storage part, as the storage driver applies it (snapshot space defaults to `disk`).
    pub fn disk_limits(&self) -> hoody_snapshot::DiskLimits {
        hoody_snapshot::DiskLimits { disk: self.disk, snapshots_disk: self.snapshots_disk.or(self.disk), inodes: self.inodes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("100mb"), Some(100_000_000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("12 MiB"), Some(12 << 20));
        for bad in ["", "MiB", "12XB", "-1", "1e9", "99999999999999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(format_size(512 << 20), "512MiB");
        assert_eq!(format_size(1000), "1000B");
    }

    #[test]
    fn validation_names_the_field() {
        let r = LimitsRequest { memory: Some(MemoryValue::Text("lots".into())), ..Default::default() };
        assert_eq!(r.validate("limits").unwrap_err().field, "limits.memory");
        let r = LimitsRequest { memory: Some(MemoryValue::Bytes(1024)), ..Default::default() };
        assert!(r.validate("limits").unwrap_err().message.contains("minimum"));
        let r = LimitsRequest { cpus: Some(0.0), ..Default::default() };
        assert_eq!(r.validate("limits").unwrap_err().field, "limits.cpus");
        let r = LimitsRequest { pids: Some(0), ..Default::default() };
        assert_eq!(r.validate("limits").unwrap_err().field, "limits.pids");
        let ok = LimitsRequest { memory: Some(MemoryValue::Text("512MiB".into())), cpus: Some(1.5), pids: Some(512), ..Default::default() }
            .validate("limits")
            .unwrap();
        assert_eq!(ok, Limits { memory: Some(512 << 20), cpus: Some(1.5), pids: Some(512), ..Default::default() });
        let r = LimitsRequest { swap: Some(MemoryValue::Text("1GiB".into())), ..Default::default() };
        assert_eq!(r.validate("limits").unwrap_err().field, "limits.swap");
        let with_swap =
            LimitsRequest { memory: Some(MemoryValue::Bytes(64 << 20)), swap: Some(MemoryValue::Text("1G".into())), ..Default::default() };
        assert_eq!(with_swap.validate("limits").unwrap().swap, Some(1 << 30));
    }

    #[test]
    fn disk_limits_validate_and_default_the_snapshot_space_to_the_disk() {
        let r = LimitsRequest { disk: Some(MemoryValue::Text("10GiB".into())), inodes: Some(1000), ..Default::default() };
        let l = r.validate("limits").unwrap();
        assert_eq!(
            l.disk_limits(),
            hoody_snapshot::DiskLimits { disk: Some(10 << 30), snapshots_disk: Some(10 << 30), inodes: Some(1000) }
        );
        let r = LimitsRequest { disk: Some(MemoryValue::Text("1KiB".into())), ..Default::default() };
        assert_eq!(r.validate("limits").unwrap_err().field, "limits.disk");
        let r = LimitsRequest { snapshots_disk: Some(MemoryValue::Text("lots".into())), ..Default::default() };
        assert_eq!(r.validate("limits").unwrap_err().field, "limits.snapshots_disk");
        let r = LimitsRequest { inodes: Some(3), ..Default::default() };
        assert_eq!(r.validate("limits").unwrap_err().field, "limits.inodes");
        let merged = l.merged(Limits { snapshots_disk: Some(1 << 30), ..Default::default() });
        assert_eq!(merged.disk_limits().snapshots_disk, Some(1 << 30));
        assert_eq!(merged.disk, Some(10 << 30));
    }

    #[test]
    fn cpu_quota() {
        assert_eq!(Limits::cpu_max(1.5), (150_000, 100_000));
        assert_eq!(Limits::cpu_max(0.5), (50_000, 100_000));
        assert_eq!(Limits::cpu_max(0.001), (1000, 100_000));
    }
}
