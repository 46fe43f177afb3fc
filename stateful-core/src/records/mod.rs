//! Every record that reaches disk, each with a version tag.
//!
//! ```text
//! binary records:  [version: u8][postcard(record)]
//!   requests (ingress), completions (completion), call trees (trace), epoch index entries
//!   (index), one epoch's commit in the commit log (commit)
//! state values:    [version: u8][schema: u32][MessagePack with field names] (state)
//! data-dir meta:   meta.json, {"format": N, ..}  (JSON, so that a person can read it)
//! lambda schemas:  schema.json, {"lambdas": [..]} (JSON)
//! ```
//!
//! A reader checks the version before it decodes: a record written by another version of the
//! format is a clear [`RecordError::Version`], never a garbled value. The storage layer frames
//! records (lengths, checksums, keys); this module only says what the bytes of one record are.

pub mod commit;
pub mod completion;
pub mod index;
pub mod ingress;
pub mod message;
pub mod meta;
pub mod schema;
pub mod state;
pub mod trace;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A record type with its kind (for messages) and the version this build writes and reads.
pub trait Record: Serialize + DeserializeOwned {
    /// What the record is, for error messages (`"ingress record"`).
    const KIND: &'static str;
    /// The version tag this build writes and reads.
    const VERSION: u8;
}

/// Why a record could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes are empty.
    #[error("empty {kind}")]
    Empty {
        /// The record's kind.
        kind: &'static str,
    },
    /// The version tag is not the one this build reads.
    #[error("{kind} has format version {found}, this build reads version {expected}")]
    Version {
        /// The record's kind.
        kind: &'static str,
        /// The tag found.
        found: u8,
        /// The tag this build reads.
        expected: u8,
    },
    /// The bytes do not decode as the record.
    #[error("{kind} does not decode: {message}")]
    Decode {
        /// The record's kind.
        kind: &'static str,
        /// What the decoder said.
        message: String,
    },
    /// The value does not encode (a type serde cannot write in this format).
    #[error("{kind} does not encode: {message}")]
    Encode {
        /// The record's kind.
        kind: &'static str,
        /// What the encoder said.
        message: String,
    },
}

/// `[version][postcard(value)]` with an explicit kind and version (for generic values).
pub fn encode_tagged<T: Serialize + ?Sized>(
    kind: &'static str,
    version: u8,
    value: &T,
) -> Result<Vec<u8>, RecordError> {
    postcard::to_extend(value, vec![version]).map_err(|e| RecordError::Encode {
        kind,
        message: e.to_string(),
    })
}

/// Reads what [`encode_tagged`] wrote.
pub fn decode_tagged<T: DeserializeOwned>(
    kind: &'static str,
    version: u8,
    bytes: &[u8],
) -> Result<T, RecordError> {
    match bytes.split_first() {
        None => Err(RecordError::Empty { kind }),
        Some((&v, rest)) if v == version => {
            postcard::from_bytes(rest).map_err(|e| RecordError::Decode {
                kind,
                message: e.to_string(),
            })
        }
        Some((&found, _)) => Err(RecordError::Version {
            kind,
            found,
            expected: version,
        }),
    }
}

/// Encodes a record with its version tag.
pub fn encode<R: Record>(record: &R) -> Result<Vec<u8>, RecordError> {
    encode_tagged(R::KIND, R::VERSION, record)
}

/// Decodes a record, checking its version tag.
pub fn decode<R: Record>(bytes: &[u8]) -> Result<R, RecordError> {
    decode_tagged(R::KIND, R::VERSION, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ingress::IngressRecord;

    fn sample() -> IngressRecord {
        IngressRecord {
            seq: 7,
            timestamp_ms: 1,
            lambda: 2,
            key: b"k".to_vec(),
            handler: 3,
            args: vec![1, 2],
            idempotency_key: Some("x".into()),
        }
    }

    #[test]
    fn records_round_trip_with_their_tag() {
        let bytes = encode(&sample()).expect("encodes");
        assert_eq!(bytes[0], IngressRecord::VERSION);
        assert_eq!(decode::<IngressRecord>(&bytes), Ok(sample()));
    }

    #[test]
    fn another_version_empty_bytes_and_garbage_are_clear_errors() {
        let mut bytes = encode(&sample()).expect("encodes");
        bytes[0] = 99;
        let err = decode::<IngressRecord>(&bytes).expect_err("wrong version");
        assert_eq!(
            err.to_string(),
            format!(
                "ingress record has format version 99, this build reads version {}",
                IngressRecord::VERSION
            )
        );
        assert!(matches!(
            decode::<IngressRecord>(&[]),
            Err(RecordError::Empty { .. })
        ));
        assert!(matches!(
            decode::<IngressRecord>(&[IngressRecord::VERSION, 0xff]),
            Err(RecordError::Decode { .. })
        ));
    }
}
