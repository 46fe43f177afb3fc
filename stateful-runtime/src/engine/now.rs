//! The engine's wall clock for timers and TTLs: unix µs plus an offset that tests move forward
//! (`testing::TestApp::advance`). Epochs keep the real clock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Unix µs, shifted by what tests stepped.
#[derive(Debug, Default)]
pub(crate) struct Now {
    offset_us: AtomicU64,
}

impl Now {
    /// The current time in unix µs.
    pub(crate) fn us(&self) -> u64 {
        crate::storage::unix_us().saturating_add(self.offset_us.load(Ordering::Acquire))
    }

    /// How far the clock is ahead of the wall clock (µs).
    pub(crate) fn offset_us(&self) -> u64 {
        self.offset_us.load(Ordering::Acquire)
    }

    /// Moves the clock forward by `us`.
    pub(crate) fn advance(&self, us: u64) {
        self.offset_us.fetch_add(us, Ordering::AcqRel);
    }
}
