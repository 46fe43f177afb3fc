//! Reading committed state and rendering the graph, for the CLI and the gateway.

use std::io::Write;
use std::process::{Command, Stdio};

use stateful_core::keys::key_group;

use crate::app::App;
use crate::store::{StateStore, StoreError};

/// Why an inspection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// No lambda of that name.
    #[error("unknown lambda `{0}`")]
    UnknownLambda(String),
    /// The key does not parse as the lambda's key type.
    #[error("bad key: {0}")]
    BadKey(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored value does not decode with this build.
    #[error("stored state does not decode: {0}")]
    Decode(String),
}

/// The committed state of one instance as JSON (`null` when it was never written).
pub fn committed_state(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    lambda: &str,
    key: &str,
) -> Result<serde_json::Value, InspectError> {
    let entry = app
        .lambda(lambda)
        .ok_or_else(|| InspectError::UnknownLambda(lambda.to_owned()))?;
    let key = (entry.key_from_str)(key).map_err(|e| InspectError::BadKey(e.to_string()))?;
    match store.get(entry.id, key_group(&key, groups), &key)? {
        None => Ok(serde_json::Value::Null),
        Some(bytes) => (entry.state_to_json)(&bytes).map_err(InspectError::Decode),
    }
}

/// Renders DOT to SVG with Graphviz's `dot` program.
pub fn render_svg(dot: &str) -> Result<String, String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run Graphviz `dot` ({e}); install Graphviz (apt-get install graphviz) or use the DOT output")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .map_err(|e| format!("writing to dot: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("running dot: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("dot printed non-UTF-8: {e}"))
}
