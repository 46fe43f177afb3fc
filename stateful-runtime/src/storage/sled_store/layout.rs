//! The key and value layout of the sled store (see the module above for the picture).
//!
//! All integers are big-endian, so byte order is numeric order and prefix scans walk an
//! instance's versions oldest first.

use stateful_core::keys::KeyGroup;

use super::super::error::{CompactError, OpenError, ReadError, WriteError};
use super::super::store::{Checkpoint, Horizon};

pub(super) const VERSION: u8 = b'v';
pub(super) const INDEX: u8 = b'e';
pub(super) const COMPLETION: u8 = b'c';
pub(super) const IDEMPOTENCY: u8 = b'i';
pub(super) const MESSAGE: u8 = b'm';
pub(super) const HORIZON: &[u8] = b"h";
pub(super) const CHECKPOINT: &[u8] = b"k";
/// Index entries compacted per sled batch.
pub(super) const COMPACT_CHUNK: usize = 256;
pub(super) const APP: &[u8] = b"a";

pub(super) const TOMBSTONE: u8 = 0;
pub(super) const LIVE: u8 = 1;
/// A tombstone / a live value, preceded by the seqs of the requests that wrote it.
pub(super) const TOMBSTONE_BY: u8 = 2;
pub(super) const LIVE_BY: u8 = 3;

/// Length of `'v' lambda group keylen`.
pub(super) const VERSION_HEADER: usize = 1 + 2 + 2 + 4;

/// What is wrong with a stored key or value.
#[derive(Debug)]
pub(super) enum LayoutError {
    /// Malformed bytes.
    Corrupt(String),
    /// A key longer than `u32::MAX` bytes.
    KeyTooLong(usize),
}

macro_rules! from_layout {
    ($($t:ty),*) => {$(
        impl From<LayoutError> for $t {
            fn from(e: LayoutError) -> Self {
                match e {
                    LayoutError::Corrupt(m) => Self::Corrupt(m),
                    LayoutError::KeyTooLong(n) => Self::Corrupt(format!("key of {n} bytes is too long")),
                }
            }
        }
    )*};
}
from_layout!(OpenError, ReadError, CompactError);

impl From<LayoutError> for WriteError {
    fn from(e: LayoutError) -> Self {
        match e {
            LayoutError::Corrupt(m) => WriteError::Corrupt(m),
            LayoutError::KeyTooLong(len) => WriteError::TooLarge { what: "a key", len },
        }
    }
}

pub(super) fn instance_prefix(
    lambda: u16,
    group: KeyGroup,
    key: &[u8],
) -> Result<Vec<u8>, LayoutError> {
    let len = u32::try_from(key.len()).map_err(|_| LayoutError::KeyTooLong(key.len()))?;
    let mut k = Vec::with_capacity(VERSION_HEADER + key.len() + 8);
    k.push(VERSION);
    k.extend_from_slice(&lambda.to_be_bytes());
    k.extend_from_slice(&group.to_be_bytes());
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(key);
    Ok(k)
}

pub(super) fn version_key(
    lambda: u16,
    group: KeyGroup,
    key: &[u8],
    epoch: u64,
) -> Result<Vec<u8>, LayoutError> {
    let mut k = instance_prefix(lambda, group, key)?;
    k.extend_from_slice(&epoch.to_be_bytes());
    Ok(k)
}

/// Splits a `'v'` key into `(group, key, epoch)`.
pub(super) fn parse_version_key(k: &[u8]) -> Result<(KeyGroup, &[u8], u64), LayoutError> {
    let corrupt = || LayoutError::Corrupt(format!("malformed version key {k:?}"));
    if k.len() < VERSION_HEADER + 8 || k[0] != VERSION {
        return Err(corrupt());
    }
    let group = u16::from_be_bytes([k[3], k[4]]);
    let len = u32::from_be_bytes([k[5], k[6], k[7], k[8]]) as usize;
    if k.len() != VERSION_HEADER + len + 8 {
        return Err(corrupt());
    }
    let key = &k[VERSION_HEADER..VERSION_HEADER + len];
    let epoch = decode_u64(&k[VERSION_HEADER + len..])?;
    Ok((group, key, epoch))
}

pub(super) fn encode_value(value: Option<&[u8]>, writers: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.map_or(0, <[u8]>::len) + 5 + 8 * writers.len());
    if writers.is_empty() {
        out.push(if value.is_some() { LIVE } else { TOMBSTONE });
    } else {
        out.push(if value.is_some() {
            LIVE_BY
        } else {
            TOMBSTONE_BY
        });
        out.extend_from_slice(&(writers.len() as u32).to_be_bytes());
        for s in writers {
            out.extend_from_slice(&s.to_be_bytes());
        }
    }
    if let Some(v) = value {
        out.extend_from_slice(v);
    }
    out
}

/// A version's value and the seqs of its writers.
pub(super) fn decode_version(bytes: &[u8]) -> Result<(Option<Vec<u8>>, Vec<u64>), LayoutError> {
    let malformed = || LayoutError::Corrupt(format!("malformed version value {bytes:?}"));
    let (&tag, rest) = bytes.split_first().ok_or_else(malformed)?;
    let (writers, rest) = match tag {
        TOMBSTONE | LIVE => (Vec::new(), rest),
        TOMBSTONE_BY | LIVE_BY => {
            let n = rest
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(malformed)? as usize;
            let end = n
                .checked_mul(8)
                .and_then(|l| l.checked_add(4))
                .filter(|e| *e <= rest.len())
                .ok_or_else(malformed)?;
            let seqs = rest[4..end]
                .chunks(8)
                .map(decode_u64)
                .collect::<Result<_, _>>()?;
            (seqs, &rest[end..])
        }
        _ => return Err(malformed()),
    };
    match tag {
        TOMBSTONE | TOMBSTONE_BY if rest.is_empty() => Ok((None, writers)),
        LIVE | LIVE_BY => Ok((Some(rest.to_vec()), writers)),
        _ => Err(malformed()),
    }
}

pub(super) fn decode_value(bytes: &[u8]) -> Result<Option<Vec<u8>>, LayoutError> {
    decode_version(bytes).map(|(v, _)| v)
}

pub(super) fn decode_u64(bytes: &[u8]) -> Result<u64, LayoutError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| LayoutError::Corrupt(format!("expected 8 bytes, found {bytes:?}")))?;
    Ok(u64::from_be_bytes(arr))
}

pub(super) fn encode_horizon(h: Horizon) -> [u8; 16] {
    let mut b = [0; 16];
    b[..8].copy_from_slice(&h.epoch.to_be_bytes());
    b[8..].copy_from_slice(&h.forgotten_below_seq.to_be_bytes());
    b
}

pub(super) fn index_key(epoch: u64) -> Vec<u8> {
    let mut k = vec![INDEX];
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

pub(super) fn encode_checkpoint(c: Checkpoint) -> [u8; 24] {
    let mut b = [0; 24];
    b[..8].copy_from_slice(&c.epoch.to_be_bytes());
    b[8..16].copy_from_slice(&c.next_seq.to_be_bytes());
    b[16..].copy_from_slice(&c.next_order.to_be_bytes());
    b
}

pub(super) fn decode_checkpoint(b: &[u8]) -> Result<Checkpoint, LayoutError> {
    if b.len() != 24 {
        return Err(LayoutError::Corrupt("checkpoint record".into()));
    }
    Ok(Checkpoint {
        epoch: decode_u64(&b[..8])?,
        next_seq: decode_u64(&b[8..16])?,
        next_order: decode_u64(&b[16..])?,
    })
}

pub(super) fn completion_key(seq: u64) -> Vec<u8> {
    let mut k = vec![COMPLETION];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn message_key(id: stateful_core::records::message::MessageId) -> Vec<u8> {
    let mut k = vec![MESSAGE];
    k.extend_from_slice(&id.epoch.to_be_bytes());
    k.extend_from_slice(&id.index.to_be_bytes());
    k
}

pub(super) fn idempotency_key(key: &str) -> Vec<u8> {
    let mut k = vec![IDEMPOTENCY];
    k.extend_from_slice(key.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_sort_by_instance_then_epoch() {
        let a = version_key(1, 2, b"ab", 5).expect("key");
        let b = version_key(1, 2, b"ab", 300).expect("key");
        let longer = version_key(1, 2, b"abc", 0).expect("key");
        assert!(a < b);
        // The key length sits before the key, so "ab" is never a prefix scan hit for "abc".
        assert!(!longer.starts_with(&instance_prefix(1, 2, b"ab").expect("prefix")));
        assert_eq!(parse_version_key(&b).expect("parses"), (2, &b"ab"[..], 300));
        assert!(parse_version_key(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn version_values_carry_their_writers_and_malformed_ones_are_errors() {
        for (value, writers) in [
            (None, vec![]),
            (Some(b"abc".to_vec()), vec![]),
            (None, vec![7]),
            (Some(Vec::new()), vec![1, u64::MAX]),
            (Some(b"xyz".to_vec()), vec![3, 4, 5]),
        ] {
            let bytes = encode_value(value.as_deref(), &writers);
            assert_eq!(
                decode_version(&bytes).expect("decodes"),
                (value.clone(), writers)
            );
        }
        for bad in [
            &[][..],
            &[9],
            &[TOMBSTONE, 1],
            &[LIVE_BY, 0, 0],
            &[LIVE_BY, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1],
            &[TOMBSTONE_BY, 0, 0, 0, 0, 5],
        ] {
            assert!(decode_version(bad).is_err(), "{bad:?}");
        }
    }
}
