//! Renders an [`AppGraph`] to Graphviz DOT.
//!
//! Lambdas are boxes whose label lists their handlers, AND-nodes are diamonds, call edges are
//! labelled with their argument types, reply edges are dashed and labelled with the result
//! type (so the request/response cycles are visible), messages are dashed blue `send` /
//! `timer` edges. One ingress edge per lambda lists its public handlers, and equal edges
//! between the same two nodes are drawn once with `×N`.

use graphviz_rust::dot_structures::{
    Attribute, Edge as DotEdge, EdgeTy, Graph, GraphAttributes, Id, Node as DotNode, NodeId, Stmt,
    Vertex,
};
use graphviz_rust::printer::{DotPrinter, PrinterContext};
use petgraph::stable_graph::NodeIndex;

use crate::ir::{AndKind, AppGraph, Edge, Form, Node};

/// Escapes backslashes and quotes for a DOT quoted string.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A quoted DOT string.
fn quoted(s: &str) -> Id {
    Id::Escaped(format!("\"{}\"", esc(s)))
}

/// A quoted multi-line label, lines left-justified (`\l`).
fn label(lines: &[String]) -> Id {
    let mut s = String::new();
    for l in lines {
        s.push_str(&esc(l));
        s.push_str("\\l");
    }
    Id::Escaped(format!("\"{s}\""))
}

fn attr(k: &str, v: Id) -> Attribute {
    Attribute(Id::Plain(k.to_owned()), v)
}

fn plain(s: &str) -> Id {
    Id::Plain(s.to_owned())
}

fn node_id(g: &AppGraph, i: NodeIndex) -> Id {
    match &g.graph[i] {
        Node::Ingress => quoted("ingress"),
        Node::Lambda(l) => quoted(&l.name),
        Node::And(_) => quoted(&format!("and{}", i.index())),
    }
}

/// The graph as a `graphviz_rust` structure.
pub fn to_graph(g: &AppGraph) -> Graph {
    let mut stmts = vec![
        Stmt::Attribute(attr("rankdir", plain("LR"))),
        Stmt::Attribute(attr("label", quoted(&format!("app {}", g.name)))),
        // Small type and tight ranks: ten lambdas fit a 1920 x 1080 screen.
        Stmt::Attribute(attr("fontsize", plain("10"))),
        Stmt::Attribute(attr("ranksep", plain("0.3"))),
        Stmt::Attribute(attr("nodesep", plain("0.15"))),
        Stmt::GAttribute(GraphAttributes::Node(vec![attr("fontsize", plain("10"))])),
        Stmt::GAttribute(GraphAttributes::Edge(vec![attr("fontsize", plain("9"))])),
    ];
    for i in g.graph.node_indices() {
        let attrs = match &g.graph[i] {
            Node::Ingress => vec![
                attr("shape", plain("cds")),
                attr("label", quoted("ingress")),
            ],
            Node::Lambda(l) => {
                let form = match l.form {
                    Form::Entity => "entity",
                    Form::Function => "function",
                };
                let mut lines = vec![
                    format!("{} ({form})", l.name),
                    format!("key: {}", l.key),
                    format!("state: {}", l.state),
                    "--".to_owned(),
                ];
                for h in &l.handlers {
                    let params: Vec<String> = h
                        .params
                        .iter()
                        .map(|p| format!("{}: {}", p.name, p.ty))
                        .collect();
                    // The result type is on the reply edges (and in the JSON graph).
                    let mut line = format!("{}({})", h.name, params.join(", "));
                    if let Some(r) = &h.route {
                        line.push_str(&format!("  [{} {}]", r.method, r.path));
                    }
                    lines.push(line);
                }
                vec![attr("shape", plain("box")), attr("label", label(&lines))]
            }
            Node::And(a) => {
                let kind = match a.kind {
                    AndKind::Transaction => "transaction",
                    AndKind::Join => "join",
                };
                let place = match a.line {
                    0 => format!("{}::{}", a.lambda, a.handler),
                    n => format!("{}::{} line {n}", a.lambda, a.handler),
                };
                vec![
                    attr("shape", plain("diamond")),
                    attr(
                        "label",
                        Id::Escaped(format!("\"{kind}\\n{}\"", esc(&place))),
                    ),
                ]
            }
        };
        stmts.push(Stmt::Node(DotNode::new(NodeId(node_id(g, i), None), attrs)));
    }
    for (from, to, attrs) in merged_edges(g) {
        stmts.push(Stmt::Edge(DotEdge {
            ty: EdgeTy::Pair(
                Vertex::N(NodeId(node_id(g, from), None)),
                Vertex::N(NodeId(node_id(g, to), None)),
            ),
            attributes: attrs,
        }));
    }
    Graph::DiGraph {
        id: quoted(&g.name),
        strict: false,
        stmts,
    }
}

/// The edges as drawn: one ingress edge per lambda (labelled with its public handlers), and
/// equal edges between the same two nodes (the same call written twice) once, with `×N`.
fn merged_edges(g: &AppGraph) -> Vec<(NodeIndex, NodeIndex, Vec<Attribute>)> {
    g.drawn_edges()
        .into_iter()
        .map(|d| {
            let attrs = match d.edge {
                Edge::Ingress { .. } => {
                    // Three names a line keeps the edge narrow (`\n`: a DOT line break).
                    let lines: Vec<String> =
                        d.handlers.chunks(3).map(|c| esc(&c.join(", "))).collect();
                    let label = Id::Escaped(format!("\"{}\"", lines.join("\\n")));
                    vec![attr("label", label), attr("style", plain("dotted"))]
                }
                w => edge_attrs(w, d.count),
            };
            (d.from, d.to, attrs)
        })
        .collect()
}

/// The attributes of an edge drawn for `n` equal edges.
fn edge_attrs(e: &Edge, n: usize) -> Vec<Attribute> {
    let times = if n > 1 {
        format!(" ×{n}")
    } else {
        String::new()
    };
    match e {
        Edge::Ingress { handler } => vec![attr("label", quoted(handler))],
        Edge::Enter { handler } => vec![attr("label", quoted(&format!("{handler}: enter")))],
        Edge::Call {
            caller,
            callee,
            args,
            in_transaction,
        } => {
            let label = format!("{caller} → {callee}({}){times}", args.join(", "));
            let mut v = vec![attr("label", quoted(&label))];
            if *in_transaction {
                v.push(attr("penwidth", plain("2")));
            }
            v
        }
        Edge::Send {
            sender,
            receiver,
            args,
            delayed,
        } => {
            let what = if *delayed { "timer" } else { "send" };
            let label = format!("{what}: {sender} ⇢ {receiver}({}){times}", args.join(", "));
            vec![
                attr("label", quoted(&label)),
                attr("style", plain("dashed")),
                attr("color", quoted("#1f6fb4")),
                attr("fontcolor", quoted("#1f6fb4")),
            ]
        }
        Edge::Reply { ty, .. } => {
            vec![
                attr("label", quoted(&format!("{ty}{times}"))),
                attr("style", plain("dashed")),
            ]
        }
    }
}

/// The graph as DOT text.
pub fn render(g: &AppGraph) -> String {
    to_graph(g).print(&mut PrinterContext::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_dot_snapshot() {
        insta::assert_snapshot!(render(&crate::ir::tests::shop()));
    }

    #[test]
    fn dot_parses_back_with_shapes() {
        let dot = render(&crate::ir::tests::shop());
        let parsed = graphviz_rust::parse(&dot).expect("rendered DOT parses");
        let Graph::DiGraph { stmts, .. } = parsed else {
            panic!("expected a digraph");
        };
        let shape = |s: &Stmt| match s {
            Stmt::Node(n) => n
                .attributes
                .iter()
                .find(|a| a.0 == Id::Plain("shape".into()))
                .map(|a| a.1.to_string()),
            _ => None,
        };
        let shapes: Vec<String> = stmts.iter().filter_map(shape).collect();
        assert_eq!(shapes, ["cds", "box", "box", "box", "diamond"]);
        let dashed = stmts
            .iter()
            .filter(|s| match s {
                Stmt::Edge(e) => e
                    .attributes
                    .iter()
                    .any(|a| a.1 == Id::Plain("dashed".into())),
                _ => false,
            })
            .count();
        assert_eq!(dashed, 2, "one reply edge per call");
    }

    #[test]
    fn quotes_in_names_are_escaped() {
        let g = AppGraph::new("a\"b");
        let dot = render(&g);
        assert!(dot.contains("\"a\\\"b\""), "{dot}");
        graphviz_rust::parse(&dot).expect("parses");
    }

    /// Where Graphviz is installed: the DOT of ten lambdas lays out within a 1920 x 1080
    /// screen, less a browser's chrome (`dot` reports points; at 96 dpi a point is 4/3 px).
    /// Says it is skipped where `dot` is missing.
    #[test]
    fn ten_lambdas_fit_a_full_hd_screen_in_graphviz() {
        use std::io::Write;
        let dot = render(&crate::ir::tests::ten_lambdas());
        let child = std::process::Command::new("dot")
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("SKIPPED: graphviz `dot` is not installed");
            return;
        };
        if let Some(mut stdin) = child.stdin.take() {
            assert!(stdin.write_all(dot.as_bytes()).is_ok());
        }
        let out = child.wait_with_output().expect("dot runs");
        let svg = String::from_utf8_lossy(&out.stdout);
        let pt = |name: &str| {
            let from = svg.find(&format!("{name}=\"")).map(|i| i + name.len() + 2);
            let v = from.and_then(|i| svg[i..].split("pt").next());
            v.and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::MAX)
        };
        let (w, h) = (pt("width") * 4.0 / 3.0, pt("height") * 4.0 / 3.0);
        eprintln!("ten lambdas in graphviz: {w:.0} x {h:.0} px");
        assert!(w <= 1920.0 && h <= 1000.0, "{w} x {h}");
    }
}
