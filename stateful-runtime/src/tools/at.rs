//! `--at` / `?at=`: a commit epoch, an RFC 3339 time, or right after request `seq:N`.

use crate::storage::{ReadError, StateStore};

/// Why an `--at` value does not name a point in history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AtError {
    /// It does not parse.
    #[error(
        "`{0}` is neither a commit epoch, an RFC 3339 time (like 2026-11-26T18:00:00Z), nor seq:N"
    )]
    Syntax(String),
    /// The time is before 1970.
    #[error("`{0}` is before 1970")]
    BeforeEpoch(String),
    /// No request with this number changed state (reads are not kept), or it never
    /// completed.
    #[error("request {0} is unknown: it changed no state (reads are not kept) or never completed")]
    UnknownRequest(u64),
    /// The request completed before the history horizon.
    #[error("request {0} completed before the history horizon and was compacted")]
    Compacted(u64),
    /// The store could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Parses a commit epoch (a number, unix µs) or an RFC 3339 time into an epoch.
pub fn parse_at(s: &str) -> Result<u64, AtError> {
    if let Ok(epoch) = s.parse::<u64>() {
        return Ok(epoch);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| AtError::Syntax(s.to_owned()))?;
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .map_err(|_| AtError::BeforeEpoch(s.to_owned()))
}

/// Resolves `seq:N` (the commit epoch of request N) or what [`parse_at`] takes.
pub fn resolve_at(store: &dyn StateStore, s: &str) -> Result<u64, AtError> {
    let Some(n) = s.strip_prefix("seq:") else {
        return parse_at(s);
    };
    let seq: u64 = n.parse().map_err(|_| AtError::Syntax(s.to_owned()))?;
    match store.completion(seq)? {
        Some(c) => Ok(c.epoch),
        None if seq < store.horizon()?.forgotten_below_seq => Err(AtError::Compacted(seq)),
        None => Err(AtError::UnknownRequest(seq)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_and_times_parse_and_the_rest_is_an_error() {
        assert_eq!(
            parse_at("1700000000000000").expect("epoch"),
            1_700_000_000_000_000
        );
        assert_eq!(
            parse_at("2023-11-14T22:13:20Z").expect("time"),
            1_700_000_000_000_000
        );
        assert_eq!(
            parse_at("2023-11-14T22:13:20.000123Z").expect("time with µs"),
            1_700_000_000_000_123
        );
        assert!(matches!(parse_at("yesterday"), Err(AtError::Syntax(_))));
        let store = crate::storage::MemoryStore::new();
        assert!(matches!(
            resolve_at(&store, "seq:3"),
            Err(AtError::UnknownRequest(3))
        ));
        assert!(matches!(
            resolve_at(&store, "seq:x"),
            Err(AtError::Syntax(_))
        ));
    }
}
