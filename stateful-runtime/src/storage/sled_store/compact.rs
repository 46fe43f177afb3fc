//! Compaction of the sled store: history before a horizon goes (superseded versions, traces,
//! the completion records of requests without an idempotency key), chunked and paced so
//! that the materialiser keeps its core.

use std::collections::BTreeSet;

use stateful_core::records::completion::CompletionRecord;
use stateful_core::records::index::IndexEntry;
use stateful_core::records::{decode, encode};

use super::super::error::CompactError;
use super::super::store::{Compacted, Horizon};
use super::layout::*;

/// See [`super::super::store::StateStore::compact`]; `old` is the current horizon and
/// `committed` the store's checkpoint epoch (nothing after it is in the store).
pub(super) fn compact(
    db: &sled::Db,
    old: Horizon,
    committed: Option<u64>,
    up_to: u64,
) -> Result<Compacted, CompactError> {
    let mut done = Compacted {
        horizon: old,
        ..Compacted::default()
    };
    let Some(h) = committed.map(|c| c.min(up_to)) else {
        return Ok(done);
    };
    if h <= old.epoch {
        return Ok(done);
    }
    // Raise the horizon first: from now on no read can ask for what gets deleted.
    db.insert(
        HORIZON,
        &encode_horizon(Horizon {
            epoch: h,
            forgotten_below_seq: old.forgotten_below_seq,
        }),
    )?;
    done.horizon.epoch = h;
    drop_superseded(db, h, &mut done)?;
    // Durable when it returns, with everything applied before it.
    db.flush()?;
    Ok(done)
}

/// Walks every index entry up to the horizon `h` in chunks: each of its versions supersedes
/// every older version of the same instance (the survivors of earlier compactions among
/// them). An entry at the horizon itself stays (its writers and completions are still in
/// reach), so that the next compaction finds it again; the chunks walk past it.
fn drop_superseded(db: &sled::Db, h: u64, done: &mut Compacted) -> Result<(), CompactError> {
    let end = index_key(h + 1);
    let mut from = [INDEX].to_vec();
    loop {
        let chunk = db
            .range(from.clone()..end.clone())
            .take(COMPACT_CHUNK)
            .collect::<Result<Vec<_>, _>>()?;
        let Some((last, _)) = chunk.last() else {
            return Ok(());
        };
        from = last.to_vec();
        from.push(0);
        let mut b = sled::Batch::default();
        let mut removed = BTreeSet::new();
        for (k, v) in chunk {
            let entry: IndexEntry = decode(&v)?;
            for vk in &entry.versions {
                drop_older_versions(db, vk, &mut b, &mut removed, done)?;
            }
            if decode_u64(&k[1..9])? < h {
                forget_completions(db, &entry, &mut b, done)?;
                b.remove(k);
            }
        }
        // The watermark moves with the deletions it covers.
        b.insert(HORIZON, &encode_horizon(done.horizon));
        db.apply_batch(b)?;
        // Leave the workers and the committer the cores between chunks.
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Every version of the instance of version key `vk` older than it.
fn drop_older_versions(
    db: &sled::Db,
    vk: &[u8],
    b: &mut sled::Batch,
    removed: &mut BTreeSet<Vec<u8>>,
    done: &mut Compacted,
) -> Result<(), CompactError> {
    let (group, key, _) = parse_version_key(vk)?;
    let lambda = u16::from_be_bytes([vk[1], vk[2]]);
    let first = version_key(lambda, group, key, 0)?;
    for item in db.range(first..vk.to_vec()) {
        let (old, _) = item?;
        if removed.insert(old.to_vec()) {
            b.remove(old);
            done.versions += 1;
        }
    }
    Ok(())
}

/// The completions of an index entry before the horizon: records without an idempotency
/// key go, those kept for theirs lose their trace (traces before the horizon are hidden when
/// read already).
fn forget_completions(
    db: &sled::Db,
    entry: &IndexEntry,
    b: &mut sled::Batch,
    done: &mut Compacted,
) -> Result<(), CompactError> {
    for (seq, idem) in &entry.completions {
        let ck = completion_key(*seq);
        if idem.is_none() {
            b.remove(ck);
            done.completions += 1;
            done.horizon.forgotten_below_seq = done.horizon.forgotten_below_seq.max(seq + 1);
            continue;
        }
        let Some(bytes) = db.get(&ck)? else {
            continue;
        };
        let mut s: CompletionRecord = decode(&bytes)?;
        if !s.trace.is_empty() {
            s.trace = Vec::new();
            b.insert(ck, encode(&s)?);
            done.stripped += 1;
        }
    }
    Ok(())
}

/// See [`super::super::store::StateStore::expire`]: one scan of the lambda's versions, in key
/// order (an instance's versions are adjacent, oldest first).
pub(super) fn expire(db: &sled::Db, lambda: u16, written_before: u64) -> Result<u64, CompactError> {
    let mut prefix = vec![VERSION];
    prefix.extend_from_slice(&lambda.to_be_bytes());
    let mut batch = sled::Batch::default();
    let mut expired = 0u64;
    // The versions of the instance being scanned, and its latest epoch.
    let mut current: Option<(Vec<u8>, Vec<sled::IVec>, u64)> = None;
    let mut finish = |c: Option<(Vec<u8>, Vec<sled::IVec>, u64)>, batch: &mut sled::Batch| {
        if let Some((_, keys, latest)) = c
            && latest < written_before
        {
            expired += 1;
            for k in keys {
                batch.remove(k);
            }
        }
    };
    for item in db.scan_prefix(&prefix) {
        let (k, _) = item?;
        let (group, key, epoch) = parse_version_key(&k)?;
        let mut id = group.to_be_bytes().to_vec();
        id.extend_from_slice(key);
        match &mut current {
            Some((cur, keys, latest)) if *cur == id => {
                keys.push(k.clone());
                *latest = epoch;
            }
            _ => {
                finish(current.take(), &mut batch);
                current = Some((id, vec![k.clone()], epoch));
            }
        }
    }
    finish(current.take(), &mut batch);
    db.apply_batch(batch)?;
    Ok(expired)
}
