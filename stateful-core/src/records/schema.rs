//! The data dir's schema record (`schema.json`): per lambda, the position it is stored under,
//! its key type and the fingerprint of the state schema that last opened the dir.
//!
//! Start-up compares it with the build's lambdas: a lambda stored under another position or
//! with another key type is refused; a changed state schema makes the engine read every stored
//! instance of that lambda once before it serves (see the runtime's schema check).

use serde::{Deserialize, Serialize};

/// What the dir records about the lambdas whose state it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSchemas {
    /// One entry per lambda, by position.
    pub lambdas: Vec<StoredLambda>,
}

/// One lambda as a build that opened the dir declared it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLambda {
    /// Name as written.
    pub name: String,
    /// Position in the app: instances are stored under it.
    pub id: u16,
    /// The key type's name (`alloc::string::String`).
    pub key: String,
    /// The state type's name.
    pub state: String,
    /// Fingerprint of the state schema.
    pub schema: u32,
    /// Fingerprints of older schemas whose values are still stored (read through a
    /// migration or serde's defaults until they are written again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub older: Vec<u32>,
}

impl StoredSchemas {
    /// The file name inside the data dir.
    pub const FILE: &'static str = "schema.json";

    /// The entry of lambda `name`.
    pub fn lambda(&self, name: &str) -> Option<&StoredLambda> {
        self.lambdas.iter().find(|l| l.name == name)
    }

    /// Parses `schema.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// `schema.json`'s text.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec_pretty(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips_through_json() {
        let s = StoredSchemas {
            lambdas: vec![StoredLambda {
                name: "Account".into(),
                id: 0,
                key: "u64".into(),
                state: "bank::Account".into(),
                schema: 7,
                older: vec![3],
            }],
        };
        let back = StoredSchemas::from_json(&s.to_json().expect("json")).expect("parses");
        assert_eq!(back, s);
        assert_eq!(back.lambda("Account").map(|l| l.id), Some(0));
        assert!(back.lambda("Other").is_none());
    }
}
