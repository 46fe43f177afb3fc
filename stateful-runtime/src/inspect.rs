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

/// One committed version of an instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Version {
    /// The commit epoch (milliseconds since the Unix epoch).
    pub epoch: u64,
    /// The epoch as an RFC 3339 time.
    pub time: String,
    /// The state after that commit (`null` when deleted).
    pub state: serde_json::Value,
}

fn entry_and_key<'a>(
    app: &'a App,
    lambda: &str,
    key: &str,
) -> Result<(&'a crate::app::LambdaEntry, Vec<u8>), InspectError> {
    let entry = app
        .lambda(lambda)
        .ok_or_else(|| InspectError::UnknownLambda(lambda.to_owned()))?;
    let key = (entry.key_from_str)(key).map_err(|e| InspectError::BadKey(e.to_string()))?;
    Ok((entry, key))
}

/// Formats an epoch (unix ms) as RFC 3339.
pub fn epoch_time(epoch: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(epoch);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses `--at`: a commit epoch (a number) or an RFC 3339 time (`2026-11-26T18:00:00Z`).
pub fn parse_at(s: &str) -> Result<u64, String> {
    if let Ok(epoch) = s.parse::<u64>() {
        return Ok(epoch);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!(
            "`{s}` is neither a commit epoch nor an RFC 3339 time (like 2026-11-26T18:00:00Z): {e}"
        )
    })?;
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .map_err(|_| format!("`{s}` is before 1970"))
}

/// Every committed version of one instance, oldest first.
pub fn history(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    lambda: &str,
    key: &str,
) -> Result<Vec<Version>, InspectError> {
    let (entry, key) = entry_and_key(app, lambda, key)?;
    let mut out = Vec::new();
    for (epoch, value) in store.history(entry.id, key_group(&key, groups), &key)? {
        let state = match value {
            None => serde_json::Value::Null,
            Some(bytes) => (entry.state_to_json)(&bytes).map_err(InspectError::Decode)?,
        };
        out.push(Version {
            epoch,
            time: epoch_time(epoch),
            state,
        });
    }
    Ok(out)
}

/// The committed state of one instance as it was at `epoch` (the latest version at or before
/// it); `null` when it had not been written yet.
pub fn state_at(
    app: &App,
    store: &dyn StateStore,
    groups: u16,
    lambda: &str,
    key: &str,
    epoch: u64,
) -> Result<serde_json::Value, InspectError> {
    let (entry, key) = entry_and_key(app, lambda, key)?;
    match store.get_at(entry.id, key_group(&key, groups), &key, epoch)? {
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
