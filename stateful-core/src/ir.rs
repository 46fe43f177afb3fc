//! The typed IR of an app: lambdas are nodes, calls are typed edges, transaction and join
//! blocks are AND-nodes, and reply edges close the cycles.
//!
//! ```text
//!  Ingress ──checkout()──▶ Order ──enter──▶ ◇ tx (Order::checkout) ──subtract(i64)──▶ Stock
//!                           ▲                                                      │
//!                           └─────────── Result<(), ShopError> (reply) ────────────┘
//! ```
//!
//! The `#[app]` macro builds an [`AppGraph`] while analysing a module, validates it with
//! [`AppGraph::validate`], embeds it as JSON and renders it with [`crate::dot::render`].

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use serde::{Deserialize, Serialize};

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

/// Why a graph is not a valid app.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IrError {
    /// Two lambdas share a name.
    #[error("lambda `{0}` is defined twice")]
    DuplicateLambda(String),
    /// Two handlers of one lambda share a name.
    #[error("lambda `{lambda}` has two handlers named `{handler}`")]
    DuplicateHandler {
        /// Lambda name.
        lambda: String,
        /// Handler name.
        handler: String,
    },
    /// A call names a lambda the app does not define.
    #[error("no lambda named `{name}`{}", did_you_mean_suffix(.suggestion))]
    UnknownLambda {
        /// The name used.
        name: String,
        /// A close existing name.
        suggestion: Option<String>,
    },
    /// A call names a handler the callee does not have.
    #[error("lambda `{lambda}` has no handler `{handler}`{}", did_you_mean_suffix(.suggestion))]
    UnknownHandler {
        /// Callee lambda.
        lambda: String,
        /// The handler name used.
        handler: String,
        /// A close existing name.
        suggestion: Option<String>,
    },
    /// A call passes the wrong number of arguments.
    #[error("`{lambda}::{handler}` takes {expected} argument(s) but {given} were given")]
    Arity {
        /// Callee lambda.
        lambda: String,
        /// Callee handler.
        handler: String,
        /// Parameter count.
        expected: usize,
        /// Argument count.
        given: usize,
    },
    /// An AND-node is not reached from its owning lambda.
    #[error("block of `{lambda}::{handler}` is not entered from its lambda")]
    DetachedBlock {
        /// Owning lambda.
        lambda: String,
        /// Owning handler.
        handler: String,
    },
}

fn did_you_mean_suffix(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Levenshtein distance between two strings (by chars).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `name` within a third of its length (at least 1 edit), if any.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
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
    /// The called handler.
    pub handler: &'a str,
    /// How many arguments the call passes.
    pub given: usize,
    /// Whether the call is inside a `transaction!` block.
    pub in_transaction: bool,
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

    /// Adds a lambda, with an ingress edge per handler (every handler is callable from
    /// outside).
    pub fn add_lambda(&mut self, lambda: LambdaNode) -> NodeIndex {
        let handlers: Vec<String> = lambda.handlers.iter().map(|h| h.name.clone()).collect();
        let n = self.graph.add_node(Node::Lambda(lambda));
        for handler in handlers {
            self.graph
                .add_edge(self.ingress, n, Edge::Ingress { handler });
        }
        n
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

    /// All lambdas, in insertion order.
    pub fn lambdas(&self) -> impl Iterator<Item = &LambdaNode> {
        self.graph.node_weights().filter_map(|n| match n {
            Node::Lambda(l) => Some(l),
            _ => None,
        })
    }

    /// Adds a call with its reply edge. Checks that the callee and handler exist and the
    /// argument count matches.
    pub fn add_call(&mut self, call: CallSpec<'_>) -> Result<(), IrError> {
        let CallSpec {
            caller,
            from,
            caller_handler,
            callee,
            handler,
            given,
            in_transaction,
        } = call;
        let names: Vec<String> = self.lambdas().map(|l| l.name.clone()).collect();
        let Some((to, lambda)) = self.lambda(callee) else {
            return Err(IrError::UnknownLambda {
                name: callee.to_owned(),
                suggestion: did_you_mean(callee, names.iter().map(String::as_str)),
            });
        };
        let Some(h) = lambda.handlers.iter().find(|h| h.name == handler) else {
            return Err(IrError::UnknownHandler {
                lambda: callee.to_owned(),
                handler: handler.to_owned(),
                suggestion: did_you_mean(handler, lambda.handlers.iter().map(|h| h.name.as_str())),
            });
        };
        if h.params.len() != given {
            return Err(IrError::Arity {
                lambda: callee.to_owned(),
                handler: handler.to_owned(),
                expected: h.params.len(),
                given,
            });
        }
        let args = h.params.iter().map(|p| p.ty.clone()).collect();
        let ty = h.output.clone();
        self.graph.add_edge(
            from,
            to,
            Edge::Call {
                caller: caller_handler.to_owned(),
                callee: handler.to_owned(),
                args,
                in_transaction,
            },
        );
        self.graph.add_edge(
            to,
            caller,
            Edge::Reply {
                callee: handler.to_owned(),
                caller: caller_handler.to_owned(),
                ty,
            },
        );
        Ok(())
    }

    /// Checks the whole graph: unique lambda and handler names, every call edge to an existing
    /// handler with the right arity, every AND-node entered. Returns every problem found.
    pub fn validate(&self) -> Vec<IrError> {
        let mut errors = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for l in self.lambdas() {
            if !seen.insert(l.name.as_str()) {
                errors.push(IrError::DuplicateLambda(l.name.clone()));
            }
            let mut hs = std::collections::HashSet::new();
            for h in &l.handlers {
                if !hs.insert(h.name.as_str()) {
                    errors.push(IrError::DuplicateHandler {
                        lambda: l.name.clone(),
                        handler: h.name.clone(),
                    });
                }
            }
        }
        for e in self.graph.edge_references() {
            if let Edge::Call { callee, args, .. } = e.weight()
                && let Node::Lambda(l) = &self.graph[e.target()]
            {
                match l.handlers.iter().find(|h| &h.name == callee) {
                    None => errors.push(IrError::UnknownHandler {
                        lambda: l.name.clone(),
                        handler: callee.clone(),
                        suggestion: None,
                    }),
                    Some(h) if h.params.len() != args.len() => errors.push(IrError::Arity {
                        lambda: l.name.clone(),
                        handler: callee.clone(),
                        expected: h.params.len(),
                        given: args.len(),
                    }),
                    Some(_) => {}
                }
            }
        }
        for i in self.graph.node_indices() {
            if let Node::And(a) = &self.graph[i]
                && self
                    .graph
                    .edges_directed(i, Direction::Incoming)
                    .all(|e| !matches!(e.weight(), Edge::Enter { .. }))
            {
                errors.push(IrError::DetachedBlock {
                    lambda: a.lambda.clone(),
                    handler: a.handler.clone(),
                });
            }
        }
        errors
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn handler(name: &str, params: &[(&str, &str)], output: &str) -> Handler {
        Handler {
            name: name.into(),
            params: params
                .iter()
                .map(|(n, t)| Param {
                    name: (*n).into(),
                    ty: (*t).into(),
                })
                .collect(),
            output: output.into(),
            route: None,
        }
    }

    /// A small shop: Order::checkout calls Stock::subtract and Payment::pay inside a
    /// transaction.
    pub(crate) fn shop() -> AppGraph {
        let mut g = AppGraph::new("shop");
        let lambda = |name: &str, handlers| LambdaNode {
            name: name.into(),
            form: Form::Entity,
            key: "String".into(),
            state: format!("{name}State"),
            handlers,
        };
        let mut subtract = handler("subtract", &[("amount", "i64")], "Result<(), ShopError>");
        subtract.route = Some(Route {
            method: "POST".into(),
            path: "/stock/subtract/{key}/{amount}".into(),
        });
        g.add_lambda(lambda("Stock", vec![subtract]));
        g.add_lambda(lambda(
            "Payment",
            vec![handler(
                "pay",
                &[("amount", "i64")],
                "Result<(), ShopError>",
            )],
        ));
        let order = g.add_lambda(lambda(
            "Order",
            vec![handler("checkout", &[], "Result<(), ShopError>")],
        ));
        let tx = g.add_and(
            order,
            AndNode {
                kind: AndKind::Transaction,
                lambda: "Order".into(),
                handler: "checkout".into(),
                line: 42,
            },
        );
        g.add_call(CallSpec {
            caller: order,
            from: tx,
            caller_handler: "checkout",
            callee: "Stock",
            handler: "subtract",
            given: 1,
            in_transaction: true,
        })
        .expect("valid call");
        g.add_call(CallSpec {
            caller: order,
            from: tx,
            caller_handler: "checkout",
            callee: "Payment",
            handler: "pay",
            given: 1,
            in_transaction: true,
        })
        .expect("valid call");
        g
    }

    #[test]
    fn shop_is_valid_and_cyclic_through_replies() {
        let g = shop();
        assert_eq!(g.validate(), vec![]);
        assert!(g.has_cycle());
        assert!(!g.has_call_cycle());
    }

    #[test]
    fn unknown_callee_suggests_a_name() {
        let mut g = shop();
        let (order, _) = g.lambda("Order").expect("order");
        let err = g
            .add_call(CallSpec {
                caller: order,
                from: order,
                caller_handler: "checkout",
                callee: "Stok",
                handler: "subtract",
                given: 1,
                in_transaction: false,
            })
            .expect_err("unknown lambda");
        assert_eq!(
            err.to_string(),
            "no lambda named `Stok`; did you mean `Stock`?"
        );
    }

    #[test]
    fn unknown_handler_and_arity_are_errors() {
        let mut g = shop();
        let (order, _) = g.lambda("Order").expect("order");
        let err = g
            .add_call(CallSpec {
                caller: order,
                from: order,
                caller_handler: "checkout",
                callee: "Stock",
                handler: "substract",
                given: 1,
                in_transaction: false,
            })
            .expect_err("unknown handler");
        assert_eq!(
            err.to_string(),
            "lambda `Stock` has no handler `substract`; did you mean `subtract`?"
        );
        let err = g
            .add_call(CallSpec {
                caller: order,
                from: order,
                caller_handler: "checkout",
                callee: "Stock",
                handler: "subtract",
                given: 2,
                in_transaction: false,
            })
            .expect_err("arity");
        assert_eq!(
            err,
            IrError::Arity {
                lambda: "Stock".into(),
                handler: "subtract".into(),
                expected: 1,
                given: 2
            }
        );
    }

    #[test]
    fn validate_reports_duplicates_and_detached_blocks() {
        let mut g = shop();
        g.add_lambda(LambdaNode {
            name: "Stock".into(),
            form: Form::Function,
            key: "String".into(),
            state: "()".into(),
            handlers: vec![handler("a", &[], "R"), handler("a", &[], "R")],
        });
        g.graph.add_node(Node::And(AndNode {
            kind: AndKind::Join,
            lambda: "Stock".into(),
            handler: "a".into(),
            line: 1,
        }));
        let errors = g.validate();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.contains(&IrError::DuplicateLambda("Stock".into())));
    }

    #[test]
    fn call_cycles_are_detected() {
        let mut g = AppGraph::new("ping");
        let a = g.add_lambda(LambdaNode {
            name: "A".into(),
            form: Form::Entity,
            key: "u64".into(),
            state: "()".into(),
            handlers: vec![handler("ping", &[], "Result<(), Rejection>")],
        });
        let b = g.add_lambda(LambdaNode {
            name: "B".into(),
            form: Form::Entity,
            key: "u64".into(),
            state: "()".into(),
            handlers: vec![handler("pong", &[], "Result<(), Rejection>")],
        });
        g.add_call(CallSpec {
            caller: a,
            from: a,
            caller_handler: "ping",
            callee: "B",
            handler: "pong",
            given: 0,
            in_transaction: false,
        })
        .expect("a→b");
        assert!(!g.has_call_cycle());
        g.add_call(CallSpec {
            caller: b,
            from: b,
            caller_handler: "pong",
            callee: "A",
            handler: "ping",
            given: 0,
            in_transaction: false,
        })
        .expect("b→a");
        assert!(g.has_call_cycle());
    }

    #[test]
    fn json_round_trips() {
        let g = shop();
        let back = AppGraph::from_json(&g.to_json()).expect("parses");
        assert_eq!(back.to_json(), g.to_json());
        assert_eq!(back.lambdas().count(), 3);
    }

    #[test]
    fn did_you_mean_needs_a_close_name() {
        assert_eq!(
            did_you_mean("paymnt", ["Payment", "Stock"]),
            Some("Payment".into())
        );
        assert_eq!(did_you_mean("Zebra", ["Payment", "Stock"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn shop_json_snapshot() {
        insta::assert_snapshot!(shop().to_json());
    }
}
