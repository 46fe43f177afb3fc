//! The versioned compact encoding of stored values.
//!
//! ```text
//! [version: u8 = 1][postcard bytes of the value]
//! ```
//!
//! The version byte lets a later release change the layout and still read old data dirs.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Current version tag of stored values.
pub const FORMAT_VERSION: u8 = 1;

/// Why a stored value could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value is empty.
    #[error("empty stored value")]
    Empty,
    /// The version tag is unknown to this build.
    #[error("stored value has format version {0}, this build reads version {FORMAT_VERSION}")]
    Version(u8),
    /// The bytes do not decode as the expected type.
    #[error("stored value does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

/// Encodes a value with the version tag.
pub fn encode_state<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let out = vec![FORMAT_VERSION];
    match postcard::to_extend(value, out) {
        Ok(v) => v,
        Err(_) => vec![FORMAT_VERSION],
    }
}

/// Decodes a value written by [`encode_state`].
pub fn decode_state<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT_VERSION, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&v, _)) => Err(CodecError::Version(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_version_check() {
        let v = (7u64, String::from("x"));
        let bytes = encode_state(&v);
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: (u64, String) = decode_state(&bytes).expect("decodes");
        assert_eq!(back, v);
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert!(matches!(
            decode_state::<(u64, String)>(&wrong),
            Err(CodecError::Version(9))
        ));
        assert!(matches!(
            decode_state::<(u64, String)>(&[]),
            Err(CodecError::Empty)
        ));
    }
}
