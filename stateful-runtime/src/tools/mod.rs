//! Tools over a data dir: inspect state (now or as of a time), the history of an instance, the
//! request log, one request's call tree, replay and diff, and rescaling between shapes.
//!
//! ```text
//! open (stopped service: DataDir + store; running one: its handle's store)
//!   inspect/history/log/trace ─▶ typed records (bytes of keys, states, results)
//!   replay (a Runtime on a new dir) · diff (two stores) · rescale (old dirs → new dirs)
//! ```
//!
//! A layer above the engine and storage, below the service: tools work on records and bytes
//! and never on JSON; the service turns what they return into JSON or text with the app's
//! codec.

pub mod at;
pub mod diff;
pub mod history;
pub mod inspect;
pub mod log;
pub mod open;
pub mod replay;
pub mod rescale;
pub mod trace;
