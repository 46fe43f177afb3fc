//! Framing of the records of a segment, and scanning a segment back.
//!
//! ```text
//! record: [len: u32 LE][crc32(payload): u32 LE][payload: a CommitRecord record, len bytes]
//! ```
//!
//! A segment ends at its first incomplete or corrupt record. That is a torn tail (a write
//! cut by a crash) unless an intact record follows it: then the middle of the log is damaged,
//! which is an error, never silently skipped.

use stateful_core::records::commit::CommitRecord;
use stateful_core::records::{decode, encode};

use super::super::crc::crc32;

/// Bytes of a record header.
pub(crate) const HEADER: usize = 8;
/// Largest payload; a larger length is corruption.
pub(crate) const MAX_RECORD: usize = 256 << 20;

/// The framed bytes of a record.
pub(crate) fn frame(record: &CommitRecord) -> Result<Vec<u8>, String> {
    let payload = encode(record).map_err(|e| e.to_string())?;
    if payload.len() > MAX_RECORD {
        return Err(format!(
            "a commit record of {} bytes exceeds the limit of {MAX_RECORD}",
            payload.len()
        ));
    }
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// What scanning a segment found.
#[derive(Debug)]
pub(crate) struct Scanned {
    /// Intact records, in order.
    pub records: Vec<CommitRecord>,
    /// Where each record ends in the segment.
    pub ends: Vec<usize>,
    /// Length of the intact prefix.
    pub good_len: usize,
    /// The segment is damaged before its end (an intact record follows a bad one).
    pub damaged_at: Option<usize>,
    /// A record passed its checksum but does not decode (another version, a bug).
    pub undecodable: Option<(usize, String)>,
}

/// A checksummed record starting at `pos`: its payload and the position after it.
fn record_at(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(pos..pos + HEADER)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(pos + HEADER..pos + HEADER + len)?;
    (crc32(payload) == crc).then_some((payload, pos + HEADER + len))
}

/// Whether an intact record starts anywhere after `from` (the end of a bad one): a
/// corruption in the middle rather than a torn tail.
fn intact_after(bytes: &[u8], from: usize) -> bool {
    (from..bytes.len().saturating_sub(HEADER)).any(|p| record_at(bytes, p).is_some())
}

/// Scans the records of a segment.
pub(crate) fn scan(bytes: &[u8]) -> Scanned {
    let mut out = Scanned {
        records: Vec::new(),
        ends: Vec::new(),
        good_len: 0,
        damaged_at: None,
        undecodable: None,
    };
    let mut pos = 0;
    while pos < bytes.len() {
        let Some((payload, next)) = record_at(bytes, pos) else {
            if intact_after(bytes, pos + 1) {
                out.damaged_at = Some(pos);
            }
            break;
        };
        match decode::<CommitRecord>(payload) {
            Ok(r) => out.records.push(r),
            Err(e) => {
                out.undecodable = Some((pos, e.to_string()));
                break;
            }
        }
        pos = next;
        out.good_len = pos;
        out.ends.push(pos);
    }
    out
}
