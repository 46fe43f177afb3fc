//! The typed IR of an app: lambdas are nodes, calls are typed edges, transaction and join
//! blocks are AND-nodes, and reply edges close the cycles.
//!
//! ```text
//!  Ingress ──checkout()──▶ Order ──enter──▶ ◇ tx (Order::checkout) ──subtract(i64)──▶ Stock
//!                           ▲                                                      │
//!                           └─────────── Result<(), ShopError> (reply) ────────────┘
//! ```
//!
//! The `#[app]` macro builds an [`AppGraph`] while analysing a module: [`AppGraph::add_lambda`]
//! and [`AppGraph::add_call`] apply the rules of [`rules`] as they go (the macro turns each
//! [`IrError`] into a compile error on the user's token), the graph is embedded as JSON and
//! rendered with [`crate::dot::render`]. At run time the engine reads the graph back,
//! re-checks it with [`AppGraph::validate`] (the same rules) and builds its dataflow from
//! [`AppGraph::topology`].

mod rules;
#[cfg(test)]
pub(crate) mod tests;
mod topology;

use petgraph::stable_graph::{NodeIndex, StableGraph};
use serde::{Deserialize, Serialize};

pub use rules::{IrError, did_you_mean, edit_distance};
pub use topology::Topology;

/// How a lambda is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// `#[lambda(key = K, state = S)] impl Name { async fn h(ctx, ..) .. }`: many handlers.
    Entity,
    /// `#[lambda] async fn name(ctx, event) ..`: one handler, the event carries the key.
    Function,
}

/// One parameter of a handler (the context excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// Parameter name as written.
    pub name: String,
    /// Parameter type as written.
    pub ty: String,
}

/// An HTTP route bound to a handler by `#[route(method, "path")]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Upper-case HTTP method (`GET`, `POST`, `PUT`, `DELETE`).
    pub method: String,
    /// Path template; `{key}` binds the instance key, `{name}` a parameter.
    pub path: String,
}

/// One handler of a lambda.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handler {
    /// Handler name as written.
    pub name: String,
    /// Parameters in order.
    pub params: Vec<Param>,
    /// The declared return type as written.
    pub output: String,
    /// The HTTP route, if any.
    pub route: Option<Route>,
    /// Callable from outside (it has a route or `#[public]`); the others are reached only
    /// through calls of other handlers (and in-process by the app's own code).
    #[serde(default)]
    pub public: bool,
}

/// A lambda node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LambdaNode {
    /// Lambda name.
    pub name: String,
    /// How it is written.
    pub form: Form,
    /// Key type as written.
    pub key: String,
    /// State type as written.
    pub state: String,
    /// Handlers in index order.
    pub handlers: Vec<Handler>,
}

/// What an AND-node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AndKind {
    /// A `transaction! { .. }` block: all calls inside commit or roll back together.
    Transaction,
    /// A `join!(..)`: the calls inside run concurrently and are all awaited.
    Join,
}

/// An AND-node: a block of a handler whose calls belong together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AndNode {
    /// Transaction or join.
    pub kind: AndKind,
    /// The lambda owning the block.
    pub lambda: String,
    /// The handler owning the block.
    pub handler: String,
    /// Source line of the block (0 when unknown).
    pub line: u32,
}

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "node", rename_all = "snake_case")]
pub enum Node {
    /// Where requests from outside enter.
    Ingress,
    /// A lambda.
    Lambda(LambdaNode),
    /// A transaction or join block.
    And(AndNode),
}

/// An edge of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edge", rename_all = "snake_case")]
pub enum Edge {
    /// Ingress → lambda: the handler is callable from outside.
    Ingress {
        /// Handler name.
        handler: String,
    },
    /// Caller (lambda or enclosing AND-node) → AND-node: the block starts.
    Enter {
        /// The handler owning the block.
        handler: String,
    },
    /// A call: caller handler (directly or through its AND-node) → callee handler.
    Call {
        /// Calling handler.
        caller: String,
        /// Called handler.
        callee: String,
        /// Argument (or event) types, in order.
        args: Vec<String>,
        /// Whether the call is inside a `transaction!` block.
        in_transaction: bool,
    },
    /// A message after commit (`ctx.send`, or a timer: `ctx.send_after` / `ctx.send_at`):
    /// sender handler (directly or through its AND-node) → receiving handler. No reply
    /// comes back, and no channel of the dataflow carries it: it enters as a request.
    Send {
        /// Sending handler.
        sender: String,
        /// Receiving handler.
        receiver: String,
        /// Argument types, in order.
        args: Vec<String>,
        /// A timer (delivered later), not a message at once.
        delayed: bool,
    },
    /// Callee → caller: the reply, labelled with the result type.
    Reply {
        /// Called handler.
        callee: String,
        /// Calling handler.
        caller: String,
        /// The result type.
        ty: String,
    },
}

/// A call site, as [`AppGraph::add_call`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct CallSpec<'a> {
    /// The calling lambda's node.
    pub caller: NodeIndex,
    /// Where the call leaves from: the calling lambda or its innermost AND-node.
    pub from: NodeIndex,
    /// The calling handler.
    pub caller_handler: &'a str,
    /// The called lambda.
    pub callee: &'a str,
    /// The called handler (`None`: `invoke` of a function-form lambda, whose one handler it is).
    pub handler: Option<&'a str>,
    /// How many arguments the call passes.
    pub given: usize,
    /// Whether the call is inside a `transaction!` block.
    pub in_transaction: bool,
}

/// A message site, as [`AppGraph::add_send`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct SendSpec<'a> {
    /// Where the message leaves from: the sending lambda or its innermost AND-node.
    pub from: NodeIndex,
    /// The sending handler.
    pub sender: &'a str,
    /// The receiving lambda.
    pub receiver: &'a str,
    /// The receiving handler.
    pub handler: Option<&'a str>,
    /// How many arguments the message passes.
    pub given: usize,
    /// A timer.
    pub delayed: bool,
}

/// Edges as the drawings show them ([`AppGraph::drawn_edges`]).
#[derive(Debug, Clone)]
pub struct DrawnEdge<'g> {
    /// Source node.
    pub from: NodeIndex,
    /// Target node.
    pub to: NodeIndex,
    /// The (first) edge.
    pub edge: &'g Edge,
    /// How many equal edges it stands for.
    pub count: usize,
    /// For an ingress edge: the public handlers it stands for.
    pub handlers: Vec<String>,
}

/// The IR of one app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppGraph {
    /// The app module's name.
    pub name: String,
    /// Nodes and edges; node 0 is the ingress.
    pub graph: StableGraph<Node, Edge>,
    ingress: NodeIndex,
}

impl AppGraph {
    /// An app with only its ingress node.
    pub fn new(name: impl Into<String>) -> Self {
        let mut graph = StableGraph::new();
        let ingress = graph.add_node(Node::Ingress);
        AppGraph {
            name: name.into(),
            graph,
            ingress,
        }
    }

    /// The ingress node.
    pub fn ingress(&self) -> NodeIndex {
        self.ingress
    }

    /// Adds a lambda, with an ingress edge per public handler, and returns the rules it breaks (a name
    /// or handler name already taken): the macro reports each on the user's token, and a graph
    /// with such a lambda fails [`AppGraph::validate`].
    pub fn add_lambda(&mut self, lambda: LambdaNode) -> (NodeIndex, Vec<IrError>) {
        let errors = rules::check_lambda(self.lambdas(), &lambda);
        let handlers: Vec<String> = lambda
            .handlers
            .iter()
            .filter(|h| h.public)
            .map(|h| h.name.clone())
            .collect();
        let n = self.graph.add_node(Node::Lambda(lambda));
        for handler in handlers {
            self.graph
                .add_edge(self.ingress, n, Edge::Ingress { handler });
        }
        (n, errors)
    }

    /// Adds an AND-node entered from `parent` (the owning lambda or an enclosing AND-node).
    pub fn add_and(&mut self, parent: NodeIndex, and: AndNode) -> NodeIndex {
        let handler = and.handler.clone();
        let n = self.graph.add_node(Node::And(and));
        self.graph.add_edge(parent, n, Edge::Enter { handler });
        n
    }

    /// The node and description of the lambda named `name`.
    pub fn lambda(&self, name: &str) -> Option<(NodeIndex, &LambdaNode)> {
        self.graph
            .node_indices()
            .find_map(|i| match &self.graph[i] {
                Node::Lambda(l) if l.name == name => Some((i, l)),
                _ => None,
            })
    }

    /// All lambdas, in insertion order (their index is their id).
    pub fn lambdas(&self) -> impl Iterator<Item = &LambdaNode> {
        self.graph.node_weights().filter_map(|n| match n {
            Node::Lambda(l) => Some(l),
            _ => None,
        })
    }

    /// Adds a call with its reply edge, after checking it against the callee
    /// ([`rules::check_call`]: the lambda and handler exist, the form and arity match).
    pub fn add_call(&mut self, call: CallSpec<'_>) -> Result<(), IrError> {
        let names: Vec<&str> = self.lambdas().map(|l| l.name.as_str()).collect();
        let Some((to, lambda)) = self.lambda(call.callee) else {
            return Err(IrError::UnknownLambda {
                name: call.callee.to_owned(),
                app: self.name.clone(),
                suggestion: did_you_mean(call.callee, names),
            });
        };
        let h = rules::check_call(lambda, call.handler, call.given)?;
        let (callee, args, ty) = (
            h.name.clone(),
            h.params.iter().map(|p| p.ty.clone()).collect(),
            h.output.clone(),
        );
        self.graph.add_edge(
            call.from,
            to,
            Edge::Call {
                caller: call.caller_handler.to_owned(),
                callee: callee.clone(),
                args,
                in_transaction: call.in_transaction,
            },
        );
        self.graph.add_edge(
            to,
            call.caller,
            Edge::Reply {
                callee,
                caller: call.caller_handler.to_owned(),
                ty,
            },
        );
        Ok(())
    }

    /// Adds a message edge, after checking it against the receiver as a call is checked.
    pub fn add_send(&mut self, send: SendSpec<'_>) -> Result<(), IrError> {
        let names: Vec<&str> = self.lambdas().map(|l| l.name.as_str()).collect();
        let Some((to, lambda)) = self.lambda(send.receiver) else {
            return Err(IrError::UnknownLambda {
                name: send.receiver.to_owned(),
                app: self.name.clone(),
                suggestion: did_you_mean(send.receiver, names),
            });
        };
        let h = rules::check_call(lambda, send.handler, send.given)?;
        let edge = Edge::Send {
            sender: send.sender.to_owned(),
            receiver: h.name.clone(),
            args: h.params.iter().map(|p| p.ty.clone()).collect(),
            delayed: send.delayed,
        };
        self.graph.add_edge(send.from, to, edge);
        Ok(())
    }

    /// The edges as drawn: one ingress edge per lambda (with its public handlers), and equal
    /// edges between the same two nodes once (with their count); in graph order.
    pub fn drawn_edges(&self) -> Vec<DrawnEdge<'_>> {
        use petgraph::visit::{EdgeRef, IntoEdgeReferences};
        let mut out: Vec<DrawnEdge<'_>> = Vec::new();
        for e in self.graph.edge_references() {
            let (from, to, w) = (e.source(), e.target(), e.weight());
            let same = |d: &&mut DrawnEdge<'_>| {
                d.from == from
                    && d.to == to
                    && (d.edge == w
                        || matches!((d.edge, w), (Edge::Ingress { .. }, Edge::Ingress { .. })))
            };
            let handler = match w {
                Edge::Ingress { handler } => Some(handler.clone()),
                _ => None,
            };
            match out.iter_mut().find(same) {
                Some(d) => {
                    d.count += 1;
                    d.handlers.extend(handler);
                }
                None => out.push(DrawnEdge {
                    from,
                    to,
                    edge: w,
                    count: 1,
                    handlers: handler.into_iter().collect(),
                }),
            }
        }
        out
    }

    /// Checks the whole graph with the rules the builder applies (for a graph read back from
    /// JSON): unique names, every call edge to an existing handler with the right arity,
    /// every AND-node entered. Returns every problem found.
    pub fn validate(&self) -> Vec<IrError> {
        rules::validate(self)
    }

    /// Which lambdas exchange messages at run time: the channels of the dataflow.
    pub fn topology(&self) -> Topology {
        Topology::of(self)
    }

    /// Whether calls and replies form a cycle (they do as soon as anything is called).
    pub fn has_cycle(&self) -> bool {
        petgraph::algo::is_cyclic_directed(&self.graph)
    }

    /// Whether some lambda calls itself back transitively (A → .. → A through call edges).
    pub fn has_call_cycle(&self) -> bool {
        let calls = self.graph.filter_map(
            |_, n| Some(n.clone()),
            |_, e| matches!(e, Edge::Call { .. } | Edge::Enter { .. }).then_some(()),
        );
        petgraph::algo::is_cyclic_directed(&calls)
    }

    /// The IR as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Parses the JSON written by [`AppGraph::to_json`].
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }
}
