//! A stored state value: a lambda's state in a self-describing encoding, tagged with the
//! fingerprint of the schema that wrote it.
//!
//! ```text
//! [version: u8 = 2][schema: u32 LE][MessagePack, structs as maps of field names]
//! ```
//!
//! MessagePack with field names (not postcard) so that a state type can change: a field added
//! with `#[serde(default)]` reads as its default from old values, a removed field is skipped,
//! a field renamed with `#[serde(alias = "old")]` reads under its old name. The schema
//! fingerprint says which version of the type wrote a value, so a reader can route values of
//! an older schema through a migration. Decode errors name the field (`seats: invalid type`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::RecordError;

/// What a state value is, for messages.
pub const KIND: &str = "state value";
/// The version tag of state values.
pub const VERSION: u8 = 2;
/// Bytes before the encoded value: the version tag and the schema fingerprint.
const HEADER: usize = 5;

/// Encodes a state value written by schema `schema`.
pub fn encode_state<T: Serialize + ?Sized>(schema: u32, value: &T) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(32);
    out.push(VERSION);
    out.extend_from_slice(&schema.to_le_bytes());
    let mut ser = rmp_serde::Serializer::new(&mut out).with_struct_map();
    value.serialize(&mut ser).map_err(|e| RecordError::Encode {
        kind: KIND,
        message: e.to_string(),
    })?;
    Ok(out)
}

/// The fingerprint of the schema that wrote `bytes`.
pub fn state_schema(bytes: &[u8]) -> Result<u32, RecordError> {
    body(bytes).map(|(schema, _)| schema)
}

/// Decodes a value written by [`encode_state`], whatever schema wrote it (serde's rules for
/// defaults, unknown fields and aliases apply).
pub fn decode_state<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    let (_, encoded) = body(bytes)?;
    rmp_serde::from_slice(encoded).map_err(|_| decode_error::<T>(encoded))
}

/// Decodes `encoded` again, tracking the path, to say which field failed (only on errors: the
/// tracking costs more than the decoding).
fn decode_error<T: DeserializeOwned>(encoded: &[u8]) -> RecordError {
    let mut de = rmp_serde::Deserializer::from_read_ref(encoded);
    let message = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(_) => "it does not decode as one value".to_owned(),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            }
        }
    };
    RecordError::Decode {
        kind: KIND,
        message,
    }
}

fn body(bytes: &[u8]) -> Result<(u32, &[u8]), RecordError> {
    match bytes.first() {
        None => Err(RecordError::Empty { kind: KIND }),
        Some(&VERSION) if bytes.len() >= HEADER => {
            let mut schema = [0u8; 4];
            schema.copy_from_slice(&bytes[1..HEADER]);
            Ok((u32::from_le_bytes(schema), &bytes[HEADER..]))
        }
        Some(&VERSION) => Err(RecordError::Decode {
            kind: KIND,
            message: format!("{} bytes, shorter than the header", bytes.len()),
        }),
        Some(&found) => Err(RecordError::Version {
            kind: KIND,
            found,
            expected: VERSION,
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[test]
    fn roundtrip_and_version_check() {
        let v = (7u64, String::from("x"));
        let bytes = encode_state(42, &v).expect("encodes");
        assert_eq!(bytes[0], VERSION);
        assert_eq!(state_schema(&bytes), Ok(42));
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
        assert!(matches!(
            decode_state::<u64>(&[VERSION, 1]),
            Err(RecordError::Decode { .. })
        ));
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V1 {
        seats: u32,
        note: String,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct V2Added {
        seats: u32,
        note: String,
        #[serde(default)]
        price: i64,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct V2Removed {
        seats: u32,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct V2Renamed {
        #[serde(alias = "seats")]
        free_seats: u32,
        note: String,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct V2Required {
        seats: u32,
        note: String,
        price: i64,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct V2Retyped {
        seats: String,
        note: String,
    }

    fn v1() -> Vec<u8> {
        encode_state(
            1,
            &V1 {
                seats: 3,
                note: "n".into(),
            },
        )
        .expect("encodes")
    }

    #[test]
    fn compatible_changes_read_old_values() {
        let added: V2Added = decode_state(&v1()).expect("a defaulted field is added");
        assert_eq!(added.price, 0);
        assert_eq!(added.seats, 3);
        let removed: V2Removed = decode_state(&v1()).expect("a removed field is skipped");
        assert_eq!(removed, V2Removed { seats: 3 });
        let renamed: V2Renamed = decode_state(&v1()).expect("an alias reads the old name");
        assert_eq!(renamed.free_seats, 3);
    }

    #[test]
    fn incompatible_changes_are_errors_naming_the_field() {
        let err = decode_state::<V2Required>(&v1()).expect_err("no default");
        assert!(err.to_string().contains("missing field `price`"), "{err}");
        let err = decode_state::<V2Retyped>(&v1()).expect_err("retyped");
        assert!(err.to_string().contains("seats:"), "{err}");
    }

    #[test]
    fn a_type_the_encoder_cannot_write_is_an_error_not_empty_bytes() {
        struct Unwritable;
        impl Serialize for Unwritable {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let err = encode_state(0, &Unwritable).expect_err("refused");
        assert!(matches!(err, RecordError::Encode { .. }), "{err}");
    }
}
