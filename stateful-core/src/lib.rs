//! `stateful-core`: what needs no runtime, shared by the compile-time analyser and the runtime.
//!
//! - [`ir`]: the typed IR of an app (lambdas, calls, AND-nodes, replies), its one validator,
//!   and the topology the runtime's dataflow is built from.
//! - [`dot`]: rendering the IR to Graphviz DOT.
//! - [`keys`]: stable key hashing, key groups and their assignment to workers.
//! - [`records`]: every record that reaches disk, each with a version tag.
//! - [`mix`]: splitmix64, the key hash's finaliser and a deterministic generator.

pub mod dot;
pub mod ir;
pub mod keys;
pub mod mix;
pub mod records;
pub mod svg;
