//! A lambda's stored state across versions of its type: values are written with the
//! fingerprint of the current schema and read back whatever schema wrote them.
//!
//! ```text
//! value's schema == L::SCHEMA ──▶ decode as L::State
//! an older schema, L has migrate ──▶ decode as migrate's input, convert (else as L::State)
//! an older schema, no migrate ──▶ decode as L::State (serde's defaults, aliases, skips)
//! ```

use stateful_core::records::RecordError;
use stateful_core::records::state::{decode_state, encode_state, state_schema};

use super::contract::Lambda;

/// Encodes a state value of `L` under its current schema.
pub fn encode<L: Lambda>(value: &L::State) -> Result<Vec<u8>, RecordError> {
    encode_state(L::SCHEMA, value)
}

/// Decodes a stored state value of `L`, migrating one that an older schema wrote.
pub fn decode<L: Lambda>(bytes: &[u8]) -> Result<L::State, RecordError> {
    if state_schema(bytes)? == L::SCHEMA {
        return decode_state(bytes);
    }
    match L::migrate(bytes) {
        None => decode_state(bytes),
        Some(Ok(v)) => Ok(v),
        Some(Err(migrating)) => decode_state(bytes).map_err(|current| RecordError::Decode {
            kind: stateful_core::records::state::KIND,
            message: format!(
                "neither as the input of `migrate` ({migrating}) nor as the current type ({current})"
            ),
        }),
    }
}
