//! Keys → key groups → workers.
//!
//! ```text
//! key ──encode (postcard)──▶ bytes ──FNV-1a 64──▶ hash ──mod groups──▶ key group ──range──▶ worker
//! ```
//!
//! The hash is our own (FNV-1a over the key's encoded bytes), not `std`'s `DefaultHasher`,
//! whose output may change between Rust releases: a key group is part of the on-disk layout,
//! so the mapping must stay stable across versions of the compiler and of this crate.
//! Key groups are assigned to workers in contiguous ranges so that a different worker count
//! moves whole groups and never splits one.

/// Default number of key groups of a new data directory.
pub const DEFAULT_KEY_GROUPS: u16 = 256;

/// A key group: the unit of state partitioning and of movement between workers.
pub type KeyGroup = u16;

/// FNV-1a, 64 bit. Stable by construction: the constants are fixed by the algorithm.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    // Final avalanche (splitmix64 finaliser) so that keys differing only in the last byte
    // still spread over all groups.
    crate::mix::finalize(h)
}

/// The key group of an encoded key.
///
/// # Examples
/// ```
/// use stateful_core::keys::{key_group, DEFAULT_KEY_GROUPS};
/// let g = key_group(b"order-1", DEFAULT_KEY_GROUPS);
/// assert!(g < DEFAULT_KEY_GROUPS);
/// assert_eq!(g, key_group(b"order-1", DEFAULT_KEY_GROUPS));
/// ```
pub fn key_group(key_bytes: &[u8], groups: u16) -> KeyGroup {
    let groups = groups.max(1);
    (stable_hash(key_bytes) % u64::from(groups)) as KeyGroup
}

/// The worker (0-based, of `workers`) that owns `group` when there are `groups` groups.
///
/// Groups are split into `workers` contiguous ranges of (almost) equal size.
pub fn worker_of(group: KeyGroup, groups: u16, workers: usize) -> usize {
    let workers = workers.max(1);
    let groups = usize::from(groups.max(1));
    (usize::from(group) * workers) / groups
}

/// The process (0-based, of `processes`) that owns idempotency key `key`: in a cluster, a
/// request with that key is served there, and a rescale moves the key's answer there.
pub fn idempotency_owner(key: &[u8], processes: usize) -> usize {
    let p = u64::try_from(processes.max(1)).unwrap_or(1);
    usize::try_from(stable_hash(key) % p).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED_EMPTY: u64 = 0xf52a_15e9_a9b5_e89b;
    const PINNED_A: u64 = 0x02c0_bdbf_4814_20f8;
    const PINNED_ORDER1_GROUP: KeyGroup = 211;

    #[test]
    fn hash_is_stable_across_versions() {
        // These values are part of the on-disk format: if this test fails, existing data
        // directories would route keys to the wrong key group.
        assert_eq!(stable_hash(b""), PINNED_EMPTY);
        assert_eq!(stable_hash(b"a"), PINNED_A);
        assert_eq!(key_group(b"order-1", 256), PINNED_ORDER1_GROUP);
    }

    #[test]
    fn groups_spread_evenly() {
        let groups = 256u16;
        let mut counts = vec![0u32; usize::from(groups)];
        for i in 0..256_000u32 {
            let key = i.to_string();
            counts[usize::from(key_group(key.as_bytes(), groups))] += 1;
        }
        let (min, max) = (counts.iter().min().copied(), counts.iter().max().copied());
        // 1000 expected per group; allow ±15%.
        assert!(min.is_some_and(|m| m > 850), "min {min:?}");
        assert!(max.is_some_and(|m| m < 1150), "max {max:?}");
    }

    #[test]
    fn workers_get_contiguous_balanced_ranges() {
        for workers in 1..=8usize {
            let mut per = vec![0usize; workers];
            let mut last = 0;
            for g in 0..256u16 {
                let w = worker_of(g, 256, workers);
                assert!(w >= last, "ranges are contiguous");
                last = w;
                per[w] += 1;
            }
            let (min, max) = (
                per.iter().min().copied().unwrap_or(0),
                per.iter().max().copied().unwrap_or(0),
            );
            assert!(max - min <= 1, "{workers} workers: {per:?}");
        }
    }
}
