//! `stateful-core`: what the compile-time analyser and the runtime share.
//!
//! - [`keys`]: stable key hashing, key groups and their assignment to workers.
//! - [`ir`]: the typed IR of an app (lambdas, calls, AND-nodes, replies) and its validation.
//! - [`dot`]: rendering the IR to Graphviz DOT.

pub mod dot;
pub mod ir;
pub mod keys;
