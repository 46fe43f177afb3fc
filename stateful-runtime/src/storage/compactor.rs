//! History retention: the policy ([`HistoryRetention`]) and the background thread that
//! compacts the store's history by it, and deletes instances whose TTL ran out.
//!
//! ```text
//! every check_every_ms: target horizon = max(now - keep_for, halfway to now while too big)
//!                       -> StateStore::compact (which stops at the store's checkpoint)
//!                       per lambda with a TTL: StateStore::expire(lambda, now - ttl)
//! ```

use std::sync::Arc;
use std::time::Duration;

use super::store::StateStore;

/// How much history to keep: older history is compacted (see [`StateStore::compact`]) by a
/// background thread once per [`HistoryRetention::check_every_ms`].
///
/// The current state and the answers of requests that carried an idempotency key are never
/// compacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRetention {
    /// Keep the history of the last this many milliseconds (`None`: keep everything;
    /// `Some(0)`: history off, only the current state stays).
    pub keep_for_ms: Option<u64>,
    /// When the store takes more bytes on disk than this, the horizon moves halfway towards
    /// now on every check until it fits (or history is gone).
    pub max_bytes: Option<u64>,
    /// Milliseconds between two checks.
    pub check_every_ms: u64,
}

impl Default for HistoryRetention {
    fn default() -> Self {
        HistoryRetention {
            keep_for_ms: Some(24 * 3600 * 1000),
            max_bytes: None,
            check_every_ms: 1000,
        }
    }
}

impl HistoryRetention {
    /// Keeps everything (no compaction).
    pub fn forever() -> Self {
        HistoryRetention {
            keep_for_ms: None,
            max_bytes: None,
            ..HistoryRetention::default()
        }
    }

    /// Where the horizon (an epoch, unix µs) should be now, given the current one and the
    /// store's size.
    pub(crate) fn target(&self, now_us: u64, current: u64, size_on_disk: u64) -> Option<u64> {
        let by_age = self
            .keep_for_ms
            .map(|keep| now_us.saturating_sub(keep.saturating_mul(1000)));
        let by_size = self
            .max_bytes
            .filter(|max| size_on_disk > *max)
            .map(|_| current + (now_us.saturating_sub(current)) / 2);
        match (by_age, by_size) {
            (None, None) => None,
            (a, b) => a.max(b).filter(|t| *t > current),
        }
    }
}

/// The background thread that compacts history.
pub(crate) struct Compactor {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// What the compactor expires: `(lambda, ttl µs)` per lambda with a TTL, judged by `now` (unix
/// µs; tests move it).
pub(crate) struct Expiry {
    pub ttls: Vec<(u16, u64)>,
    pub now: Box<dyn Fn() -> u64 + Send>,
}

impl Compactor {
    pub(crate) fn start(
        store: Arc<dyn StateStore>,
        retention: HistoryRetention,
        expiry: Expiry,
    ) -> Option<Compactor> {
        let compacts = retention.keep_for_ms.is_some() || retention.max_bytes.is_some();
        if !compacts && expiry.ttls.is_empty() {
            return None;
        }
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let every = Duration::from_millis(retention.check_every_ms.max(1));
        let thread = std::thread::Builder::new()
            .name("stateful-compactor".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    let step = || -> Result<(), Box<dyn std::error::Error>> {
                        if compacts {
                            compact_once(store.as_ref(), &retention)?;
                        }
                        let now = (expiry.now)();
                        for (lambda, ttl) in &expiry.ttls {
                            let n = store.expire(*lambda, now.saturating_sub(*ttl))?;
                            if n > 0 {
                                tracing::debug!(lambda, instances = n, "expired by their TTL");
                            }
                        }
                        Ok(())
                    };
                    if let Err(e) = step() {
                        tracing::warn!(error = %e, "history compaction failed; retrying later");
                    }
                }
            })
            .ok()?;
        Some(Compactor { stop, thread })
    }

    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// One compaction step by the retention policy.
fn compact_once(
    store: &dyn StateStore,
    retention: &HistoryRetention,
) -> Result<(), Box<dyn std::error::Error>> {
    let current = store.horizon()?.epoch;
    let size = match retention.max_bytes {
        Some(_) => store.size_on_disk()?,
        None => 0,
    };
    if let Some(target) = retention.target(super::unix_us(), current, size) {
        let done = store.compact(target)?;
        tracing::debug!(?done, "compacted history");
    }
    Ok(())
}
