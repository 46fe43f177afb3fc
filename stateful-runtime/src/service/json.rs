//! The one JSON codec: how keys, arguments, results and states of an app's lambdas look as
//! JSON, built for each lambda from `L: Lambda` by [`register`].
//!
//! ```text
//! "/stock/find/apple" ─key_from_str─▶ key bytes     {"amount": 5} ─args_from_json─▶ arg bytes
//! result bytes ─result_to_json─▶ {"Ok": ..} | {"Err": .., "message": ..}   state bytes ─▶ JSON
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::sdk::{
    CallError, HandlerArgs, HandlerMeta, HandlerResult, HandlerVisitor, Lambda, Outcome, wire,
};

/// Why a value does not convert between JSON and its encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The arguments do not match the handler's parameters.
    #[error("arguments do not match the handler's parameters: {0}")]
    BadArguments(String),
    /// The key does not parse as the lambda's key type.
    #[error("the key does not match the lambda's key type: {0}")]
    BadKey(String),
    /// No handler with this index.
    #[error("no handler {0}")]
    UnknownHandler(u16),
    /// Stored or returned bytes do not decode with this build.
    #[error("does not decode: {0}")]
    Decode(String),
}

/// The JSON conversions of one handler.
#[derive(Clone, Copy)]
struct HandlerCodec {
    meta: &'static HandlerMeta,
    args_from_json: fn(Value, &[&str]) -> Result<Vec<u8>, CodecError>,
    args_to_json: fn(&[u8], &[&str]) -> Result<Value, CodecError>,
    result_to_json: fn(&[u8]) -> Result<Value, CodecError>,
}

/// The JSON conversions of one lambda.
pub struct LambdaCodec {
    /// The lambda's name.
    pub name: &'static str,
    key_from_str: fn(&str) -> Result<Vec<u8>, CodecError>,
    key_to_json: fn(&[u8]) -> Result<Value, CodecError>,
    state_to_json: fn(&[u8]) -> Result<Value, CodecError>,
    handlers: Vec<HandlerCodec>,
}

impl std::fmt::Debug for LambdaCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaCodec")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

struct Collect(Vec<HandlerCodec>);

impl HandlerVisitor for Collect {
    fn handler<A: HandlerArgs, R: HandlerResult>(
        &mut self,
        _index: u16,
        meta: &'static HandlerMeta,
    ) {
        self.0.push(HandlerCodec {
            meta,
            args_from_json: args_from_json::<A>,
            args_to_json: args_to_json::<A>,
            result_to_json: result_to_json::<R>,
        });
    }
}

/// The JSON codec of lambda `L`.
pub fn register<L: Lambda>() -> LambdaCodec {
    let mut handlers = Collect(Vec::new());
    L::visit_handlers(&mut handlers);
    LambdaCodec {
        name: L::NAME,
        key_from_str: key_from_str::<L::Key>,
        key_to_json: key_to_json::<L::Key>,
        state_to_json: state_to_json::<L>,
        handlers: handlers.0,
    }
}

fn key_from_str<K: Serialize + DeserializeOwned>(s: &str) -> Result<Vec<u8>, CodecError> {
    // A path segment is JSON when it parses as the key type, otherwise a JSON string.
    let key: K = serde_json::from_str(s)
        .or_else(|_| serde_json::from_value(Value::String(s.to_owned())))
        .map_err(|e| CodecError::BadKey(format!("`{s}`: {e}")))?;
    wire::encode("the key", &key).map_err(|e| CodecError::BadKey(e.to_string()))
}

fn key_to_json<K: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<Value, CodecError> {
    let k: K = wire::decode("a key", bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
    serde_json::to_value(k).map_err(|e| CodecError::Decode(e.to_string()))
}

fn state_to_json<L: Lambda>(bytes: &[u8]) -> Result<Value, CodecError> {
    let s =
        crate::sdk::schema::decode::<L>(bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
    serde_json::to_value(s).map_err(|e| CodecError::Decode(e.to_string()))
}

/// JSON arguments to the encoded tuple `A` of a handler's parameters named `names`: an object
/// by name, an array in order, or (one parameter) the bare value; `null` or no body for a
/// handler without parameters.
fn args_from_json<A: HandlerArgs>(json: Value, names: &[&str]) -> Result<Vec<u8>, CodecError> {
    let bad = |m: String| CodecError::BadArguments(m);
    let array = match (json, names.len()) {
        // The tuple of no parameters is `()`, which reads from `null`.
        (Value::Null, 0) => Value::Null,
        (Value::Array(a), 0) if a.is_empty() => Value::Null,
        (Value::Object(m), 0) if m.is_empty() => Value::Null,
        (other, 0) => return Err(bad(format!("this handler takes no arguments, got {other}"))),
        (Value::Array(a), n) if n != 1 || a.len() == 1 => Value::Array(a),
        (Value::Object(m), n) if n != 1 || names.iter().all(|k| m.contains_key(*k)) => {
            by_name(m, names)?
        }
        (other, 1) => Value::Array(vec![other]),
        (other, _) => {
            return Err(bad(format!(
                "expected an object with {names:?}, got {other}"
            )));
        }
    };
    let tuple: A = serde_json::from_value(array).map_err(|e| bad(e.to_string()))?;
    wire::encode("the arguments", &tuple).map_err(|e| bad(e.to_string()))
}

fn by_name(mut m: serde_json::Map<String, Value>, names: &[&str]) -> Result<Value, CodecError> {
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        match m.remove(*n) {
            Some(v) => out.push(v),
            None => return Err(CodecError::BadArguments(format!("missing argument `{n}`"))),
        }
    }
    if let Some(extra) = m.keys().next() {
        return Err(CodecError::BadArguments(format!(
            "unknown argument `{extra}`; expected {names:?}"
        )));
    }
    Ok(Value::Array(out))
}

/// The encoded argument tuple `A` back to JSON, by parameter name.
fn args_to_json<A: HandlerArgs>(bytes: &[u8], names: &[&str]) -> Result<Value, CodecError> {
    let tuple: A =
        wire::decode("arguments", bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
    let values = match serde_json::to_value(&tuple) {
        Ok(Value::Array(a)) => a,
        Ok(Value::Null) => Vec::new(),
        Ok(other) => vec![other],
        Err(e) => return Err(CodecError::Decode(e.to_string())),
    };
    Ok(Value::Object(
        names.iter().map(|n| (*n).to_owned()).zip(values).collect(),
    ))
}

/// An encoded handler result to JSON (`{"Ok": ..}` or `{"Err": .., "message": ..}`).
fn result_to_json<R: HandlerResult>(bytes: &[u8]) -> Result<Value, CodecError> {
    let r: R = wire::decode("a result", bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
    let mut v = serde_json::to_value(&r).map_err(|e| CodecError::Decode(e.to_string()))?;
    if let (Some(msg), Value::Object(m)) = (r.error_message(), &mut v) {
        m.insert("message".to_owned(), Value::String(msg));
    }
    Ok(v)
}

/// A handler's answer as JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonResponse {
    /// The handler returned `Ok(value)`.
    Ok(Value),
    /// The handler returned `Err(value)` (a business rejection).
    Rejected {
        /// The error's `Display`.
        message: String,
        /// The error value as JSON.
        detail: Value,
    },
    /// The runtime could not run the handler to completion.
    Failed(CallError),
}

impl LambdaCodec {
    fn handler(&self, h: u16) -> Result<&HandlerCodec, CodecError> {
        self.handlers
            .get(usize::from(h))
            .ok_or(CodecError::UnknownHandler(h))
    }

    fn names(&self, h: u16) -> Result<Vec<&'static str>, CodecError> {
        Ok(self
            .handler(h)?
            .meta
            .params
            .iter()
            .map(|(n, _)| *n)
            .collect())
    }

    /// A key from its text (JSON, or a bare string).
    pub fn key_from_str(&self, s: &str) -> Result<Vec<u8>, CodecError> {
        (self.key_from_str)(s)
    }

    /// An encoded key as JSON.
    pub fn key_to_json(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        (self.key_to_json)(bytes)
    }

    /// An encoded state as JSON.
    pub fn state_to_json(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        (self.state_to_json)(bytes)
    }

    /// An optional encoded state as JSON (`null` when absent).
    pub fn maybe_state_to_json(&self, bytes: Option<&[u8]>) -> Result<Value, CodecError> {
        bytes.map_or(Ok(Value::Null), |b| self.state_to_json(b))
    }

    /// JSON arguments of handler `h` to their encoding.
    pub fn args_from_json(&self, h: u16, json: Value) -> Result<Vec<u8>, CodecError> {
        (self.handler(h)?.args_from_json)(json, &self.names(h)?)
    }

    /// Encoded arguments of handler `h` as JSON (by parameter name).
    pub fn args_to_json(&self, h: u16, bytes: &[u8]) -> Result<Value, CodecError> {
        (self.handler(h)?.args_to_json)(bytes, &self.names(h)?)
    }

    /// An encoded result of handler `h` as JSON.
    pub fn result_to_json(&self, h: u16, bytes: &[u8]) -> Result<Value, CodecError> {
        (self.handler(h)?.result_to_json)(bytes)
    }

    /// The answer of handler `h` (`Result<Outcome, CallError>`) as JSON.
    pub fn response(&self, h: u16, result: Result<Outcome, CallError>) -> JsonResponse {
        let outcome = match result {
            Err(e) => return JsonResponse::Failed(e),
            Ok(o) => o,
        };
        let v = match self.result_to_json(h, &outcome.bytes) {
            Err(e) => return JsonResponse::Failed(CallError::Codec(e.to_string())),
            Ok(v) => v,
        };
        let (inner, message) = match v {
            Value::Object(mut m) => {
                let message = m
                    .remove("message")
                    .and_then(|v| v.as_str().map(str::to_owned));
                let inner = m
                    .remove("Ok")
                    .or_else(|| m.remove("Err"))
                    .unwrap_or(Value::Null);
                (inner, message)
            }
            other => (other, None),
        };
        if outcome.ok {
            JsonResponse::Ok(inner)
        } else {
            JsonResponse::Rejected {
                message: message.unwrap_or_else(|| inner.to_string()),
                detail: inner,
            }
        }
    }

    /// A stored answer (postcard `Result<Outcome, CallError>`) of handler `h` as JSON:
    /// `{"Ok"|"Err": ..}`, `{"failed": ..}` or `{"undecodable": ..}`.
    pub fn stored_response_json(&self, h: u16, encoded: &[u8]) -> Value {
        match postcard::from_bytes::<Result<Outcome, CallError>>(encoded) {
            Ok(Ok(o)) => self
                .result_to_json(h, &o.bytes)
                .unwrap_or_else(|e| serde_json::json!({ "undecodable": e.to_string() })),
            Ok(Err(e)) => serde_json::json!({ "failed": e.to_string() }),
            Err(e) => serde_json::json!({ "undecodable": e.to_string() }),
        }
    }
}
