//! Allocation of private host id ranges: every container gets its own 65536 uids and gids on the
//! host, never shared with another container. The store keeps the allocation (unique column);
//! this module only picks the slot.

use std::collections::BTreeSet;

/// Size of a container's range.
pub const RANGE: u32 = 65536;

/// The pool of ranges: `slots` ranges of [`RANGE`] ids starting at `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdPool {
    pub first: u32,
    pub slots: u32,
}

impl Default for IdPool {
    /// From 2^20 up to just below 2^32 - 1 (which is the invalid id -1).
    fn default() -> Self {
        IdPool { first: 1 << 20, slots: ((u32::MAX as u64 - (1u64 << 20)) / RANGE as u64) as u32 }
    }
}

impl IdPool {
    /// The lowest free range base, given the bases in use. `None` when the pool is exhausted.
    pub fn allocate(&self, used: &BTreeSet<u32>) -> Option<u32> {
        (0..self.slots).map(|i| self.first + i * RANGE).find(|b| !used.contains(b))
    }

    /// True when `base` is a slot of this pool.
    pub fn contains(&self, base: u32) -> bool {
        base >= self.first && (base - self.first).is_multiple_of(RANGE) && (base - self.first) / RANGE < self.slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_slot_and_no_overlap() {
        let pool = IdPool { first: 100_000, slots: 3 };
        let mut used = BTreeSet::new();
        let a = pool.allocate(&used).unwrap();
        used.insert(a);
        let b = pool.allocate(&used).unwrap();
        used.insert(b);
        assert_eq!((a, b), (100_000, 165_536));
        assert!(b >= a + RANGE, "ranges never overlap");
        used.remove(&a);
        assert_eq!(pool.allocate(&used), Some(100_000), "a released range is reused");
        used.insert(a);
        used.insert(pool.allocate(&used).unwrap());
        assert_eq!(pool.allocate(&used), None, "exhausted");
    }

    #[test]
    fn default_pool_stays_below_u32_max() {
        let p = IdPool::default();
        let last = p.first as u64 + (p.slots as u64 - 1) * RANGE as u64;
        assert!(last + RANGE as u64 <= u32::MAX as u64);
        assert!(p.contains(p.first) && !p.contains(p.first + 1));
    }
}
