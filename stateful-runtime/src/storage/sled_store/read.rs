//! Reads of the sled store: versions, history, completions, keys.

use stateful_core::keys::KeyGroup;
use stateful_core::records::completion::CompletionRecord;
use stateful_core::records::decode;

use super::super::error::ReadError;
use super::super::store::{Completion, Horizon, Version};
use super::layout::*;

/// See [`super::super::store::StateStore::get`].
pub(super) fn get(
    db: &sled::Db,
    lambda: u16,
    group: KeyGroup,
    key: &[u8],
) -> Result<Option<Vec<u8>>, ReadError> {
    Ok(get_stamped(db, lambda, group, key)?.map(|(_, v)| v))
}

/// See [`super::super::store::StateStore::get_stamped`].
pub(super) fn get_stamped(
    db: &sled::Db,
    lambda: u16,
    group: KeyGroup,
    key: &[u8],
) -> Result<Option<(u64, Vec<u8>)>, ReadError> {
    match db
        .scan_prefix(instance_prefix(lambda, group, key)?)
        .next_back()
    {
        Some(item) => {
            let (k, v) = item?;
            let (_, _, epoch) = parse_version_key(&k)?;
            Ok(decode_value(&v)?.map(|v| (epoch, v)))
        }
        None => Ok(None),
    }
}

/// See [`super::super::store::StateStore::get_at`].
pub(super) fn get_at(
    db: &sled::Db,
    lambda: u16,
    group: KeyGroup,
    key: &[u8],
    epoch: u64,
) -> Result<Option<Vec<u8>>, ReadError> {
    let horizon = horizon(db)?.epoch;
    if epoch < horizon {
        return Err(ReadError::Compacted {
            asked: epoch,
            horizon,
        });
    }
    let start = version_key(lambda, group, key, 0)?;
    let end = version_key(lambda, group, key, epoch)?;
    match db.range(start..=end).next_back() {
        Some(item) => Ok(decode_value(&item?.1)?),
        None => Ok(None),
    }
}

/// See [`super::super::store::StateStore::history`].
pub(super) fn history(
    db: &sled::Db,
    lambda: u16,
    group: KeyGroup,
    key: &[u8],
) -> Result<Vec<Version>, ReadError> {
    let prefix = instance_prefix(lambda, group, key)?;
    let mut out = Vec::new();
    for item in db.scan_prefix(&prefix) {
        let (k, v) = item?;
        let epoch = decode_u64(&k[prefix.len()..])?;
        out.push((epoch, decode_value(&v)?));
    }
    Ok(out)
}

/// See [`super::super::store::StateStore::writers`].
pub(super) fn writers(
    db: &sled::Db,
    lambda: u16,
    group: KeyGroup,
    key: &[u8],
    epoch: u64,
) -> Result<Vec<u64>, ReadError> {
    // Before the horizon, writers are part of the compacted history.
    if epoch < horizon(db)?.epoch {
        return Ok(Vec::new());
    }
    Ok(match db.get(version_key(lambda, group, key, epoch)?)? {
        Some(v) => decode_version(&v)?.1,
        None => Vec::new(),
    })
}

/// See [`super::super::store::StateStore::horizon`].
pub(super) fn horizon(db: &sled::Db) -> Result<Horizon, ReadError> {
    Ok(match db.get(HORIZON)? {
        Some(v) if v.len() == 16 => Horizon {
            epoch: decode_u64(&v[..8])?,
            forgotten_below_seq: decode_u64(&v[8..])?,
        },
        Some(_) => return Err(ReadError::Corrupt("horizon record".into())),
        None => Horizon::default(),
    })
}

/// A stored completion; before the horizon its call tree is part of the compacted history.
fn visible(c: CompletionRecord, horizon: u64) -> Completion {
    if c.epoch < horizon {
        Completion {
            trace: Vec::new(),
            ..c
        }
    } else {
        c
    }
}

/// See [`super::super::store::StateStore::completion`].
pub(super) fn completion(db: &sled::Db, seq: u64) -> Result<Option<Completion>, ReadError> {
    let Some(v) = db.get(completion_key(seq))? else {
        return Ok(None);
    };
    Ok(Some(visible(decode(&v)?, horizon(db)?.epoch)))
}

/// See [`super::super::store::StateStore::completions_from`].
pub(super) fn completions_from(
    db: &sled::Db,
    from_seq: u64,
    limit: usize,
) -> Result<Vec<Completion>, ReadError> {
    let h = horizon(db)?.epoch;
    let mut out = Vec::new();
    for item in db.range(completion_key(from_seq)..[COMPLETION + 1].to_vec()) {
        if out.len() >= limit {
            break;
        }
        let (_, v) = item?;
        out.push(visible(decode(&v)?, h));
    }
    Ok(out)
}

/// See [`super::super::store::StateStore::keys`].
pub(super) fn keys(db: &sled::Db, lambda: u16) -> Result<Vec<(KeyGroup, Vec<u8>)>, ReadError> {
    let mut prefix = vec![VERSION];
    prefix.extend_from_slice(&lambda.to_be_bytes());
    let mut out = Vec::new();
    // The latest version of the instance being scanned: (group, key, live).
    let mut current: Option<(KeyGroup, Vec<u8>, bool)> = None;
    for item in db.scan_prefix(&prefix) {
        let (k, v) = item?;
        let (group, key, _) = parse_version_key(&k)?;
        let live = decode_value(&v)?.is_some();
        match &mut current {
            Some((g, cur, l)) if *g == group && cur.as_slice() == key => *l = live,
            _ => {
                if let Some((g, cur, true)) = current.take() {
                    out.push((g, cur));
                }
                current = Some((group, key.to_vec(), live));
            }
        }
    }
    if let Some((g, cur, true)) = current {
        out.push((g, cur));
    }
    // The layout orders by key length first; the contract orders by (group, key).
    out.sort_unstable();
    Ok(out)
}
