//! An app as the service runs it: the engine's program and the JSON codec of every lambda,
//! assembled by the code `#[app]` generates (`App::builder(..).lambda::<Stock>()..build()`).
//!
//! ```text
//! AppBuilder::lambda::<L>() ── engine::register::<L>() ─▶ Program (shards, graph)
//!                           └─ json::register::<L>()   ─▶ codecs (keys, args, results, states)
//! ```

use std::sync::Arc;

use serde_json::Value;
use stateful_core::ir::AppGraph;

use super::json::{JsonResponse, LambdaCodec};
use crate::engine::{
    Config, Handle, InvokeError, LambdaDef, Program, Response, Runtime, StartError,
};
use crate::sdk::Lambda;

/// An app: its lambdas, its compile-time graph, and their JSON codecs.
#[derive(Debug, Clone)]
pub struct App {
    program: Arc<Program>,
    codecs: Arc<Vec<LambdaCodec>>,
}

/// Assembles an [`App`] lambda by lambda.
#[derive(Debug)]
pub struct AppBuilder {
    name: &'static str,
    graph: Result<AppGraph, &'static str>,
    dot: &'static str,
    lambdas: Vec<LambdaDef>,
    codecs: Vec<LambdaCodec>,
}

impl AppBuilder {
    /// Adds lambda `L` (in id order).
    pub fn lambda<L: Lambda>(mut self) -> Self {
        self.lambdas.push(crate::engine::register::<L>());
        self.codecs.push(super::json::register::<L>());
        self
    }

    /// Uses a graph built in code instead of the embedded JSON (hand-written `Lambda`s).
    pub fn graph(mut self, graph: AppGraph) -> Self {
        self.graph = Ok(graph);
        self
    }

    /// The app.
    pub fn build(self) -> App {
        // Lambdas and their codecs in id order.
        let mut pairs: Vec<(LambdaDef, LambdaCodec)> =
            self.lambdas.into_iter().zip(self.codecs).collect();
        pairs.sort_by_key(|(l, _)| l.id);
        let (lambdas, codecs): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let program = match self.graph {
            Ok(g) => Program::with_graph(self.name, g, self.dot, lambdas),
            Err(json) => Program::new(self.name, json, self.dot, lambdas),
        };
        App {
            program: Arc::new(program),
            codecs: Arc::new(codecs),
        }
    }
}

impl App {
    /// An app named `name` with its graph as the macro embeds it (JSON) and as DOT.
    pub fn builder(name: &'static str, graph_json: &'static str, dot: &'static str) -> AppBuilder {
        AppBuilder {
            name,
            graph: Err(graph_json),
            dot,
            lambdas: Vec::new(),
            codecs: Vec::new(),
        }
    }

    /// The app module's name.
    pub fn name(&self) -> &'static str {
        self.program.name()
    }

    /// The graph rendered to DOT at compile time.
    pub fn dot(&self) -> &'static str {
        self.program.dot()
    }

    /// The engine's view of the app.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// Lambdas in id order.
    pub fn lambdas(&self) -> &[LambdaDef] {
        self.program.lambdas()
    }

    /// The lambda named `name`.
    pub fn lambda(&self, name: &str) -> Option<&LambdaDef> {
        self.program.lambda_named(name)
    }

    /// The JSON codec of lambda `id`.
    pub fn codec(&self, id: u16) -> Option<&LambdaCodec> {
        self.codecs.get(usize::from(id))
    }

    /// Starts the engine for this app.
    pub fn start(&self, config: Config) -> Result<Runtime, StartError> {
        Runtime::start(self.program.clone(), config)
    }

    /// A client of a running engine that speaks JSON, with lambdas and handlers by name.
    pub fn json(&self, handle: Handle) -> JsonClient {
        JsonClient {
            handle,
            app: self.clone(),
        }
    }
}

/// Invokes handlers by name with JSON arguments (what the gateway and tests use).
#[derive(Debug, Clone)]
pub struct JsonClient {
    handle: Handle,
    app: App,
}

impl JsonClient {
    /// The engine's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The app.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Resolves names and converts JSON to the encoded key and arguments.
    pub fn prepare(
        &self,
        lambda: &str,
        key: &str,
        handler: &str,
        args: Value,
    ) -> Result<(u16, u16, Vec<u8>, Vec<u8>), InvokeError> {
        let def = self
            .app
            .lambda(lambda)
            .ok_or_else(|| InvokeError::UnknownLambda(lambda.to_owned()))?;
        let h = def
            .handler_index(handler)
            .ok_or_else(|| InvokeError::UnknownHandler {
                lambda: lambda.to_owned(),
                handler: handler.to_owned(),
            })?;
        let codec = self
            .app
            .codec(def.id)
            .ok_or_else(|| InvokeError::UnknownLambda(lambda.to_owned()))?;
        let bad = |e: super::json::CodecError| InvokeError::BadRequest(e.to_string());
        let key = codec.key_from_str(key).map_err(bad)?;
        let args = codec.args_from_json(h, args).map_err(bad)?;
        Ok((def.id, h, key, args))
    }

    /// A response as JSON.
    pub fn to_json(&self, lambda: u16, handler: u16, resp: Response) -> JsonResponse {
        match self.app.codec(lambda) {
            Some(c) => c.response(handler, resp.result),
            None => JsonResponse::Failed(crate::sdk::CallError::NoSuchTarget(lambda.to_string())),
        }
    }

    /// Invokes by names with JSON, waiting for the durable response.
    pub async fn invoke(
        &self,
        lambda: &str,
        key: &str,
        handler: &str,
        args: Value,
        idempotency_key: Option<String>,
    ) -> Result<JsonResponse, InvokeError> {
        let (l, h, key, args) = self.prepare(lambda, key, handler, args)?;
        let rx = self.handle.submit(l, key, h, args, idempotency_key)?;
        let resp = rx.await.map_err(|_| InvokeError::ShuttingDown)?;
        Ok(self.to_json(l, h, resp))
    }

    /// Blocking variant of [`JsonClient::invoke`] (not for async contexts).
    pub fn invoke_blocking(
        &self,
        lambda: &str,
        key: &str,
        handler: &str,
        args: Value,
    ) -> Result<JsonResponse, InvokeError> {
        let (l, h, key, args) = self.prepare(lambda, key, handler, args)?;
        let rx = self.handle.submit(l, key, h, args, None)?;
        let resp = rx.blocking_recv().map_err(|_| InvokeError::ShuttingDown)?;
        Ok(self.to_json(l, h, resp))
    }
}
