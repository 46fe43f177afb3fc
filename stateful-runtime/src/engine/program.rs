//! The engine's view of an app: its lambdas (each a factory of per-worker shards, built by
//! [`register`] from `L: Lambda`) and its compiled graph, from which the dataflow is built.

use stateful_core::ir::{AppGraph, Topology};

use super::config::StartError;
use super::shard::{Shard, ShardRuntime};
use crate::sdk::{HandlerMeta, Lambda};

/// One lambda as the engine sees it.
pub struct LambdaDef {
    /// Lambda name as written.
    pub name: &'static str,
    /// Index in the app.
    pub id: u16,
    /// Handlers in index order.
    pub handlers: &'static [HandlerMeta],
    /// The key type's name.
    pub key_type: &'static str,
    /// The state type's name.
    pub state_type: &'static str,
    /// The state schema's fingerprint ([`Lambda::SCHEMA`]).
    pub schema: u32,
    /// Instances not written for this long expire ([`Lambda::TTL_US`]).
    pub ttl_us: Option<u64>,
    pub(crate) shard: fn() -> Box<dyn ShardRuntime>,
    /// Reads a stored state value: the fingerprint of the schema that wrote it, or why the
    /// current type (with its migration) cannot read it.
    pub(crate) read_state: fn(&[u8]) -> Result<u32, String>,
    /// A stored key, for messages.
    pub(crate) key_text: fn(&[u8]) -> String,
}

impl std::fmt::Debug for LambdaDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaDef")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn new_shard<L: Lambda>() -> Box<dyn ShardRuntime> {
    Box::new(Shard::<L>::new())
}

fn read_state<L: Lambda>(bytes: &[u8]) -> Result<u32, String> {
    let schema = stateful_core::records::state::state_schema(bytes).map_err(|e| e.to_string())?;
    crate::sdk::schema::decode::<L>(bytes).map_err(|e| e.to_string())?;
    Ok(schema)
}

fn key_text<L: Lambda>(bytes: &[u8]) -> String {
    match crate::sdk::wire::decode::<L::Key>("a key", bytes) {
        Ok(k) => format!("{k:?}"),
        Err(_) => format!("{bytes:?}"),
    }
}

/// The engine's view of lambda `L`.
pub fn register<L: Lambda>() -> LambdaDef {
    LambdaDef {
        name: L::NAME,
        id: L::ID,
        handlers: L::HANDLERS,
        key_type: std::any::type_name::<L::Key>(),
        state_type: std::any::type_name::<L::State>(),
        schema: L::SCHEMA,
        ttl_us: L::TTL_US,
        shard: new_shard::<L>,
        read_state: read_state::<L>,
        key_text: key_text::<L>,
    }
}

impl LambdaDef {
    /// Index of the handler named `name`.
    pub fn handler_index(&self, name: &str) -> Option<u16> {
        self.handlers
            .iter()
            .position(|h| h.name == name)
            .and_then(|i| u16::try_from(i).ok())
    }
}

/// An app as the engine runs it.
#[derive(Debug)]
pub struct Program {
    name: &'static str,
    graph: Result<AppGraph, String>,
    dot: &'static str,
    lambdas: Vec<LambdaDef>,
}

impl Program {
    /// An app from its graph (as the macro embeds it: JSON) and its lambdas.
    pub fn new(
        name: &'static str,
        graph_json: &str,
        dot: &'static str,
        lambdas: Vec<LambdaDef>,
    ) -> Program {
        let graph = AppGraph::from_json(graph_json).map_err(|e| e.to_string());
        Self::assemble(name, graph, dot, lambdas)
    }

    /// An app from a graph built in code (apps whose `Lambda` impls are written by hand).
    pub fn with_graph(
        name: &'static str,
        graph: AppGraph,
        dot: &'static str,
        lambdas: Vec<LambdaDef>,
    ) -> Program {
        Self::assemble(name, Ok(graph), dot, lambdas)
    }

    fn assemble(
        name: &'static str,
        graph: Result<AppGraph, String>,
        dot: &'static str,
        mut lambdas: Vec<LambdaDef>,
    ) -> Program {
        lambdas.sort_by_key(|l| l.id);
        Program {
            name,
            graph,
            dot,
            lambdas,
        }
    }

    /// The app module's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The graph rendered to DOT at compile time.
    pub fn dot(&self) -> &'static str {
        self.dot
    }

    /// The compiled graph (an error when it could not be read back).
    pub fn graph(&self) -> Result<&AppGraph, &str> {
        self.graph.as_ref().map_err(String::as_str)
    }

    /// Lambdas in id order.
    pub fn lambdas(&self) -> &[LambdaDef] {
        &self.lambdas
    }

    /// The lambda with id `id`.
    pub fn lambda(&self, id: u16) -> Option<&LambdaDef> {
        self.lambdas.get(usize::from(id))
    }

    /// The lambda named `name`.
    pub fn lambda_named(&self, name: &str) -> Option<&LambdaDef> {
        self.lambdas.iter().find(|l| l.name == name)
    }

    /// The channels of the dataflow, after checking that the graph is valid and describes
    /// exactly these lambdas, in id order.
    pub(crate) fn topology(&self) -> Result<Topology, StartError> {
        let graph = self
            .graph
            .as_ref()
            .map_err(|e| StartError::Graph(format!("its IR does not parse: {e}")))?;
        let errors = graph.validate();
        if let Some(e) = errors.first() {
            return Err(StartError::Graph(e.to_string()));
        }
        let in_graph: Vec<&str> = graph.lambdas().map(|l| l.name.as_str()).collect();
        let defined: Vec<&str> = self.lambdas.iter().map(|l| l.name).collect();
        let ids_in_order = self
            .lambdas
            .iter()
            .enumerate()
            .all(|(i, l)| usize::from(l.id) == i);
        if in_graph != defined || !ids_in_order {
            return Err(StartError::Graph(format!(
                "the graph has lambdas {in_graph:?}, the app {defined:?}"
            )));
        }
        Ok(graph.topology())
    }
}
