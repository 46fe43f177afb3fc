//! A stored state value: the postcard encoding of a lambda's state type, tagged.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{RecordError, decode_tagged, encode_tagged};

/// What a state value is, for messages.
pub const KIND: &str = "state value";
/// The version tag of state values.
pub const VERSION: u8 = 1;

/// Encodes a state value.
pub fn encode_state<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RecordError> {
    encode_tagged(KIND, VERSION, value)
}

/// Decodes a value written by [`encode_state`].
pub fn decode_state<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    decode_tagged(KIND, VERSION, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_version_check() {
        let v = (7u64, String::from("x"));
        let bytes = encode_state(&v).expect("encodes");
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode_state::<(u64, String)>(&bytes), Ok(v));
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert!(matches!(
            decode_state::<(u64, String)>(&wrong),
            Err(RecordError::Version { found: 9, .. })
        ));
        assert!(matches!(
            decode_state::<(u64, String)>(&[]),
            Err(RecordError::Empty { .. })
        ));
    }

    #[test]
    fn a_type_postcard_cannot_write_is_an_error_not_empty_bytes() {
        // serde's `flatten` needs a self-describing format: postcard refuses it.
        #[derive(serde::Serialize)]
        struct Inner {
            a: u8,
        }
        #[derive(serde::Serialize)]
        struct Outer {
            #[serde(flatten)]
            inner: Inner,
        }
        let err = encode_state(&Outer {
            inner: Inner { a: 1 },
        })
        .expect_err("flatten");
        assert!(matches!(err, RecordError::Encode { .. }), "{err}");
    }
}
