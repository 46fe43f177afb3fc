//! `stateful-core`: what the compile-time analyser and the runtime share.
//!
//! - [`keys`]: stable key hashing, key groups and their assignment to workers.

pub mod keys;
