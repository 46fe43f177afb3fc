//! The service: what a generated binary is. The app (its program and JSON codec), the HTTP
//! gateway, the views the CLI and the gateway share, the command line and the launcher of a
//! local cluster.
//!
//! ```text
//! Service::main ─ serve ─▶ Runtime (engine) + http::router (axum)
//!               ├─ graph / inspect / history / log / trace / replay / diff / rescale (tools)
//!               └─ cluster up ─▶ launcher: N processes of this binary
//! ```
//!
//! The top layer: it may use the engine, the tools, storage and the sdk; nothing uses it.

pub mod app;
pub(crate) mod autoscale;
pub mod cli;
pub mod console;
pub mod http;
pub mod json;
pub(crate) mod launcher;
pub(crate) mod live;
pub mod svg;
pub mod views;

pub use app::{App, AppBuilder, JsonClient};
pub use cli::{Service, serve_main};
pub use json::{CodecError, JsonResponse};
