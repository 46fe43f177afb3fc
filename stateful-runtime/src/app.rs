//! An app: its lambdas (type-erased) and its compile-time graph, as emitted by `#[app]`.

use crate::lambda::{DispatchError, HandlerMeta, Lambda};

/// One lambda of an app, with the type-erased entry points the engine and gateway use.
pub struct LambdaEntry {
    /// Lambda name as written.
    pub name: &'static str,
    /// Index in the app.
    pub id: u16,
    /// Handlers in index order.
    pub handlers: &'static [HandlerMeta],
    pub(crate) json_args: fn(u16, serde_json::Value) -> Result<Vec<u8>, DispatchError>,
    pub(crate) result_json: fn(u16, &[u8]) -> Result<serde_json::Value, DispatchError>,
    pub(crate) args_json: fn(u16, &[u8]) -> Result<serde_json::Value, DispatchError>,
    pub(crate) key_from_str: fn(&str) -> Result<Vec<u8>, DispatchError>,
    pub(crate) state_to_json: fn(&[u8]) -> Result<serde_json::Value, String>,
    pub(crate) key_to_json: fn(&[u8]) -> serde_json::Value,
    pub(crate) runtime: fn() -> Box<dyn crate::engine::LambdaRuntime>,
}

impl std::fmt::Debug for LambdaEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaEntry")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn key_from_str<L: Lambda>(s: &str) -> Result<Vec<u8>, DispatchError> {
    // A path segment is JSON when it parses as the key type, otherwise a JSON string.
    let key: L::Key = serde_json::from_str(s)
        .or_else(|_| serde_json::from_value(serde_json::Value::String(s.to_owned())))
        .map_err(|e| DispatchError::BadKey(format!("`{s}`: {e}")))?;
    Ok(crate::lambda::encode(&key))
}

fn key_to_json<L: Lambda>(bytes: &[u8]) -> serde_json::Value {
    crate::lambda::decode::<L::Key>(bytes)
        .ok()
        .and_then(|k| serde_json::to_value(k).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn state_to_json<L: Lambda>(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let s: L::State = crate::codec::decode_state(bytes).map_err(|e| e.to_string())?;
    serde_json::to_value(s).map_err(|e| e.to_string())
}

impl LambdaEntry {
    /// The entry of lambda `L`.
    pub fn of<L: Lambda>() -> Self {
        LambdaEntry {
            name: L::NAME,
            id: L::ID,
            handlers: L::HANDLERS,
            json_args: L::json_args,
            result_json: L::result_json,
            args_json: L::args_json,
            key_from_str: key_from_str::<L>,
            state_to_json: state_to_json::<L>,
            key_to_json: key_to_json::<L>,
            runtime: crate::engine::lambda_runtime::<L>,
        }
    }

    /// Index of the handler named `name`.
    pub fn handler_index(&self, name: &str) -> Option<u16> {
        self.handlers
            .iter()
            .position(|h| h.name == name)
            .and_then(|i| u16::try_from(i).ok())
    }
}

/// An app as compiled: its lambdas and its graph (IR as JSON, and DOT).
#[derive(Debug)]
pub struct App {
    /// The app module's name.
    pub name: &'static str,
    /// The typed IR graph, serialised as JSON by the macro.
    pub graph_json: &'static str,
    /// The graph rendered to DOT at compile time.
    pub dot: &'static str,
    /// Lambdas in id order.
    pub lambdas: Vec<LambdaEntry>,
}

impl App {
    /// Assembles an app (called by generated code).
    pub fn new(
        name: &'static str,
        graph_json: &'static str,
        dot: &'static str,
        mut lambdas: Vec<LambdaEntry>,
    ) -> Self {
        lambdas.sort_by_key(|l| l.id);
        App {
            name,
            graph_json,
            dot,
            lambdas,
        }
    }

    /// The lambda named `name`.
    pub fn lambda(&self, name: &str) -> Option<&LambdaEntry> {
        self.lambdas.iter().find(|l| l.name == name)
    }
}
