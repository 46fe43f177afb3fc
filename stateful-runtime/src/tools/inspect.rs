//! The committed state of one instance: now, or as it was at a commit epoch.

use stateful_core::keys::key_group;

use crate::storage::{ReadError, StateStore};

/// The encoded committed state of instance `key` of lambda `lambda` (`None`: never written or
/// deleted), now or as of commit epoch `at`.
pub fn state(
    store: &dyn StateStore,
    groups: u16,
    lambda: u16,
    key: &[u8],
    at: Option<u64>,
) -> Result<Option<Vec<u8>>, ReadError> {
    let group = key_group(key, groups);
    match at {
        None => store.get(lambda, group, key),
        Some(epoch) => store.get_at(lambda, group, key, epoch),
    }
}
