//! The start-up check of a data dir's stored state against the build's lambdas: part of
//! recovery, after the store is brought up to date and before anything runs.
//!
//! ```text
//! schema.json (what the last start recorded) vs the build's lambdas, per lambda:
//!   stored under another position ──▶ refused (instances are stored by position)
//!   another key type               ──▶ refused
//!   another state schema (or older values still stored, or nothing recorded)
//!                                  ──▶ read every stored instance once; one that the current
//!                                      type and its migration cannot read refuses the start
//! then schema.json records the build's lambdas
//! ```
//!
//! A lambda without stored instances can change in any way. Lambdas the build no longer has
//! keep their entries (their instances stay stored).

use std::collections::BTreeSet;

use stateful_core::records::schema::{StoredLambda, StoredSchemas};

use super::program::LambdaDef;
use crate::storage::{DataDir, OpenError, ReadError, StateStore};

/// Why the stored state does not fit the build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// A lambda whose instances are stored under another position.
    #[error(
        "lambda `{lambda}` is stored as lambda #{stored} of the app but is #{build} in this build: instances are stored by position, so keep the lambdas' order and add new ones at the end"
    )]
    Moved {
        /// The lambda.
        lambda: String,
        /// Its position in the data dir.
        stored: u16,
        /// Its position in this build.
        build: u16,
    },
    /// A position whose instances belong to a lambda the build replaced by another.
    #[error(
        "lambda #{id} of the data dir is `{stored}`, whose instances are stored, but this build has `{build}` there: keep `{stored}` in its place (add new lambdas at the end)"
    )]
    Replaced {
        /// The position.
        id: u16,
        /// The lambda stored there.
        stored: String,
        /// The build's lambda there.
        build: String,
    },
    /// A lambda whose key type changed while instances are stored.
    #[error(
        "lambda `{lambda}` has stored keys of type `{stored}`, but this build's keys are `{build}`: the data dir cannot be read with another key type (keep `{stored}`, or use a new --data-dir)"
    )]
    KeyType {
        /// The lambda.
        lambda: String,
        /// The stored key type.
        stored: String,
        /// This build's key type.
        build: String,
    },
    /// A stored instance that the current state type cannot read.
    #[error(
        "lambda `{lambda}`: stored instance {key} does not read as `{state}`: {message}. Give a new field #[serde(default)], read a renamed one with #[serde(alias = \"old\")], or convert old values with #[lambda(.., migrate = from_old)]"
    )]
    Unreadable {
        /// The lambda.
        lambda: String,
        /// The instance's key.
        key: String,
        /// This build's state type.
        state: String,
        /// What the decoder said (it names the field).
        message: String,
    },
    /// The store could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// `schema.json` could not be read or written.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// What the check did: instances read per lambda whose schema changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaReport {
    /// `(lambda, instances read)` for each lambda that was read through.
    pub scanned: Vec<(String, usize)>,
}

/// Checks the stored state of `dir` against `lambdas` and records the build's schemas.
pub(crate) fn check(
    dir: &DataDir,
    store: &dyn StateStore,
    lambdas: &[LambdaDef],
) -> Result<SchemaReport, SchemaError> {
    let stored = dir.read_schemas()?.unwrap_or_default();
    check_positions(store, &stored, lambdas)?;
    let mut next = StoredSchemas::default();
    for old in &stored.lambdas {
        if !lambdas.iter().any(|l| l.name == old.name) {
            next.lambdas.push(old.clone());
        }
    }
    let mut report = SchemaReport::default();
    for l in lambdas {
        let older = check_lambda(store, l, stored.lambda(l.name), &mut report)?;
        next.lambdas.push(StoredLambda {
            name: l.name.to_owned(),
            id: l.id,
            key: l.key_type.to_owned(),
            state: l.state_type.to_owned(),
            schema: l.schema,
            older,
        });
    }
    next.lambdas.sort_by_key(|l| l.id);
    if next != stored {
        dir.write_schemas(&next)?;
    }
    Ok(report)
}

/// Every lambda with stored instances is still at its position.
fn check_positions(
    store: &dyn StateStore,
    stored: &StoredSchemas,
    lambdas: &[LambdaDef],
) -> Result<(), SchemaError> {
    for l in lambdas {
        if let Some(s) = stored.lambda(l.name)
            && s.id != l.id
            && has_instances(store, s.id)?
        {
            return Err(SchemaError::Moved {
                lambda: l.name.to_owned(),
                stored: s.id,
                build: l.id,
            });
        }
    }
    for s in &stored.lambdas {
        if let Some(l) = lambdas.iter().find(|l| l.id == s.id)
            && l.name != s.name
            && has_instances(store, s.id)?
        {
            return Err(SchemaError::Replaced {
                id: s.id,
                stored: s.name.clone(),
                build: l.name.to_owned(),
            });
        }
    }
    Ok(())
}

/// Checks one lambda; the older schemas whose values it still stores.
fn check_lambda(
    store: &dyn StateStore,
    l: &LambdaDef,
    stored: Option<&StoredLambda>,
    report: &mut SchemaReport,
) -> Result<Vec<u32>, SchemaError> {
    if let Some(s) = stored {
        if s.key != l.key_type && has_instances(store, l.id)? {
            return Err(SchemaError::KeyType {
                lambda: l.name.to_owned(),
                stored: s.key.clone(),
                build: l.key_type.to_owned(),
            });
        }
        if s.schema == l.schema && s.older.is_empty() {
            return Ok(Vec::new());
        }
    }
    read_through(store, l, report)
}

/// Reads every stored instance of `l`: the older schemas found, or the first it cannot read.
fn read_through(
    store: &dyn StateStore,
    l: &LambdaDef,
    report: &mut SchemaReport,
) -> Result<Vec<u32>, SchemaError> {
    let keys = store.keys(l.id)?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut older = BTreeSet::new();
    for (group, key) in &keys {
        let Some(bytes) = store.get(l.id, *group, key)? else {
            continue;
        };
        match (l.read_state)(&bytes) {
            Ok(schema) if schema != l.schema => {
                older.insert(schema);
            }
            Ok(_) => {}
            Err(message) => {
                return Err(SchemaError::Unreadable {
                    lambda: l.name.to_owned(),
                    key: (l.key_text)(key),
                    state: l.state_type.to_owned(),
                    message,
                });
            }
        }
    }
    report.scanned.push((l.name.to_owned(), keys.len()));
    Ok(older.into_iter().collect())
}

fn has_instances(store: &dyn StateStore, id: u16) -> Result<bool, ReadError> {
    Ok(!store.keys(id)?.is_empty())
}
