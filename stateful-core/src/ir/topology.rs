//! The channels of the dataflow, derived from the call edges of the IR.
//!
//! ```text
//! A calls B, B calls C          reach(A) = {B, C}, reach(B) = {C}
//! links: A–A A–B A–C B–B B–C C–C   (two lambdas are linked when one reaches the other)
//! ```
//!
//! A call travels A → B and its reply B → A. The root of a request (the lambda it entered at)
//! also talks to every instance its call tree reached: it releases their locks, asks them to
//! roll back a block, and is told by them to abort (wound-wait). Those instances are exactly
//! the lambdas reachable from the root through calls, so each lambda gets a channel to every
//! lambda it reaches, to every lambda that reaches it, and to itself (retries, completions,
//! waiters it wakes). Lambdas that neither call nor are called by each other share no channel.

use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use super::{AppGraph, Edge, Node};

/// Which lambdas exchange messages, by lambda index (declaration order = lambda id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Lambda names in index order.
    pub names: Vec<String>,
    /// `reach[a][b]`: `b` is reachable from `a` through one or more calls.
    reach: Vec<Vec<bool>>,
}

impl Topology {
    pub(super) fn of(g: &AppGraph) -> Topology {
        let names: Vec<String> = g.lambdas().map(|l| l.name.clone()).collect();
        let n = names.len();
        let index = |name: &str| names.iter().position(|x| x == name);
        // Direct calls, resolved through AND-nodes to the lambda that owns them.
        let owner = |i: petgraph::stable_graph::NodeIndex| match &g.graph[i] {
            Node::Lambda(l) => index(&l.name),
            Node::And(a) => index(&a.lambda),
            Node::Ingress => None,
        };
        let mut reach = vec![vec![false; n]; n];
        for e in g.graph.edge_references() {
            if let Edge::Call { .. } = e.weight()
                && let (Some(a), Some(b)) = (owner(e.source()), owner(e.target()))
            {
                reach[a][b] = true;
            }
        }
        // Transitive closure (Floyd–Warshall on booleans; apps have tens of lambdas).
        for k in 0..n {
            let via = reach[k].clone();
            for row in reach.iter_mut() {
                if row[k] {
                    for (b, r) in row.iter_mut().enumerate() {
                        *r |= via[b];
                    }
                }
            }
        }
        Topology { names, reach }
    }

    /// Number of lambdas.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the app has no lambda.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether `to` is reachable from `from` through calls.
    pub fn reaches(&self, from: usize, to: usize) -> bool {
        self.reach
            .get(from)
            .and_then(|r| r.get(to))
            .copied()
            .unwrap_or(false)
    }

    /// Whether `a` and `b` exchange messages: the same lambda, or one reaches the other.
    pub fn linked(&self, a: usize, b: usize) -> bool {
        (a == b && a < self.len()) || self.reaches(a, b) || self.reaches(b, a)
    }

    /// The lambdas `from` sends to (itself included), ascending.
    pub fn links(&self, from: usize) -> Vec<usize> {
        (0..self.len())
            .filter(|&to| self.linked(from, to))
            .collect()
    }

    /// The lambdas reachable from `from` through calls, and itself: where the locks of a
    /// request that entered at `from` can be.
    pub fn participants(&self, from: usize) -> Vec<usize> {
        (0..self.len())
            .filter(|&to| to == from || self.reaches(from, to))
            .collect()
    }

    /// Every channel `(from, to)`, ordered.
    pub fn channels(&self) -> Vec<(usize, usize)> {
        (0..self.len())
            .flat_map(|a| self.links(a).into_iter().map(move |b| (a, b)))
            .collect()
    }
}
