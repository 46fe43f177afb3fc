//! The one validator of the IR: the rules a graph must satisfy, applied by the builder as the
//! macro adds lambdas and calls (each failure becomes a compile error on the user's token) and
//! by [`super::AppGraph::validate`] to a whole graph read back at run time.

use petgraph::Direction;
use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use super::{AppGraph, Edge, Form, Handler, LambdaNode, Node};

/// Why a graph is not a valid app.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IrError {
    /// Two lambdas share a name.
    #[error("lambda `{0}` is defined twice in this app")]
    DuplicateLambda(String),
    /// Two handlers of one lambda share a name.
    #[error("lambda `{lambda}` already has a handler named `{handler}`")]
    DuplicateHandler {
        /// Lambda name.
        lambda: String,
        /// Handler name.
        handler: String,
    },
    /// A call names a lambda the app does not define.
    #[error("no lambda named `{name}` in app `{app}`{}", did_you_mean_suffix(.suggestion))]
    UnknownLambda {
        /// The name used.
        name: String,
        /// The app's name.
        app: String,
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
    #[error("`{lambda}::{handler}` takes {expected} argument{} ({params}) but {given} {} given",
        if *.expected == 1 { "" } else { "s" }, if *.given == 1 { "was" } else { "were" })]
    Arity {
        /// Callee lambda.
        lambda: String,
        /// Callee handler.
        handler: String,
        /// Parameter count.
        expected: usize,
        /// The parameters, as `name: Type, ..`.
        params: String,
        /// Argument count.
        given: usize,
    },
    /// An entity lambda was invoked with an event, or a function-form lambda called by
    /// handler name.
    #[error("{}", wrong_form_message(.lambda, *.form))]
    WrongForm {
        /// Callee lambda.
        lambda: String,
        /// The callee's form.
        form: Form,
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

fn wrong_form_message(lambda: &str, form: Form) -> String {
    match form {
        Form::Entity => format!(
            "`{lambda}` is an entity lambda: call it with `ctx.call::<{lambda}>(&key).handler(..)`, not `invoke`"
        ),
        Form::Function => format!(
            "`{lambda}` is a function-form lambda: invoke it with its event, `ctx.invoke::<{lambda}>(event)`"
        ),
    }
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

/// A new lambda among `existing`: its name is free and its handler names are distinct.
pub(super) fn check_lambda<'a>(
    mut existing: impl Iterator<Item = &'a LambdaNode>,
    new: &LambdaNode,
) -> Vec<IrError> {
    let mut errors = Vec::new();
    if existing.any(|l| l.name == new.name) {
        errors.push(IrError::DuplicateLambda(new.name.clone()));
    }
    let mut seen = std::collections::HashSet::new();
    for h in &new.handlers {
        if !seen.insert(h.name.as_str()) {
            errors.push(IrError::DuplicateHandler {
                lambda: new.name.clone(),
                handler: h.name.clone(),
            });
        }
    }
    errors
}

/// A call of `callee` by handler name (`None`: `invoke` with an event) with `given`
/// arguments: returns the called handler.
pub(super) fn check_call<'l>(
    callee: &'l LambdaNode,
    handler: Option<&str>,
    given: usize,
) -> Result<&'l Handler, IrError> {
    let wrong_form = || IrError::WrongForm {
        lambda: callee.name.clone(),
        form: callee.form,
    };
    let h =
        match (handler, callee.form) {
            (Some(_), Form::Function) | (None, Form::Entity) => return Err(wrong_form()),
            (None, Form::Function) => callee.handlers.first().ok_or_else(wrong_form)?,
            (Some(name), Form::Entity) => callee
                .handlers
                .iter()
                .find(|h| h.name == name)
                .ok_or_else(|| IrError::UnknownHandler {
                    lambda: callee.name.clone(),
                    handler: name.to_owned(),
                    suggestion: did_you_mean(name, callee.handlers.iter().map(|h| h.name.as_str())),
                })?,
        };
    if h.params.len() != given {
        return Err(IrError::Arity {
            lambda: callee.name.clone(),
            handler: h.name.clone(),
            expected: h.params.len(),
            params: h
                .params
                .iter()
                .map(|p| format!("{}: {}", p.name, p.ty))
                .collect::<Vec<_>>()
                .join(", "),
            given,
        });
    }
    Ok(h)
}

/// Every rule over a whole graph.
pub(super) fn validate(g: &AppGraph) -> Vec<IrError> {
    let mut errors = Vec::new();
    let lambdas: Vec<&LambdaNode> = g.lambdas().collect();
    for (i, l) in lambdas.iter().enumerate() {
        errors.extend(check_lambda(lambdas[..i].iter().copied(), l));
    }
    for e in g.graph.edge_references() {
        let called = match e.weight() {
            Edge::Call { callee, args, .. } => Some((callee, args)),
            Edge::Send { receiver, args, .. } => Some((receiver, args)),
            _ => None,
        };
        if let Some((callee, args)) = called
            && let Node::Lambda(l) = &g.graph[e.target()]
        {
            let handler = (l.form == Form::Entity).then_some(callee.as_str());
            if let Err(err) = check_call(l, handler, args.len()) {
                errors.push(err);
            }
        }
    }
    for i in g.graph.node_indices() {
        if let Node::And(a) = &g.graph[i]
            && g.graph
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
