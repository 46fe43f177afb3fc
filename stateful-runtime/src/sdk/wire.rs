//! The binary encoding of what travels between lambdas (keys, arguments, results): postcard.
//! Every failure is an error for the caller to report, never empty bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::CallError;

/// postcard encoding of a value; a value postcard cannot write is a [`CallError::Codec`].
pub fn encode<T: Serialize + ?Sized>(what: &str, v: &T) -> Result<Vec<u8>, CallError> {
    postcard::to_stdvec(v).map_err(|e| CallError::Codec(format!("{what} does not encode: {e}")))
}

/// Decodes what [`encode`] wrote.
pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, CallError> {
    postcard::from_bytes(bytes)
        .map_err(|e| CallError::Codec(format!("{what} does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_postcard_cannot_write_is_an_error() {
        #[derive(Serialize)]
        struct Inner {
            a: u8,
        }
        #[derive(Serialize)]
        struct Flat {
            #[serde(flatten)]
            inner: Inner,
        }
        let err = encode(
            "the key",
            &Flat {
                inner: Inner { a: 1 },
            },
        )
        .expect_err("flatten");
        assert!(err.to_string().contains("the key does not encode"), "{err}");
        assert_eq!(
            decode::<(u8, u8)>("x", &encode("x", &(1u8, 2u8)).expect("ok")),
            Ok((1, 2))
        );
        assert!(decode::<String>("args", &[0xff]).is_err());
    }
}
