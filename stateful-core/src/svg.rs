//! Draws an [`AppGraph`] as SVG without Graphviz: a layered layout of its own (the ingress on
//! the left, each lambda one column right of its callers, AND-nodes between a lambda and the
//! lambdas its block calls), straight forward edges, and replies as dashed curves back.
//! Used where the `dot` program is not installed.

use std::collections::BTreeMap;
use std::fmt::Write;

use petgraph::stable_graph::NodeIndex;
use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use crate::ir::{AndKind, AppGraph, Edge, Node};

const LINE: f64 = 16.0;
const CHAR: f64 = 7.0;
const GAP_X: f64 = 150.0;
const GAP_Y: f64 = 30.0;
const MARGIN: f64 = 20.0;

/// A node as drawn.
struct Shape {
    lines: Vec<String>,
    kind: Kind,
    w: f64,
    h: f64,
    x: f64,
    y: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ingress,
    Lambda,
    And,
}

/// The graph as an SVG document.
pub fn render(g: &AppGraph) -> String {
    let layers = layers(g);
    let mut shapes: BTreeMap<NodeIndex, Shape> =
        g.graph.node_indices().map(|i| (i, shape(g, i))).collect();
    place(&layers, &mut shapes);
    let (width, height) = shapes.values().fold((0.0f64, 0.0f64), |(w, h), s| {
        (w.max(s.x + s.w + MARGIN), h.max(s.y + s.h + MARGIN + 40.0))
    });
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="monospace" font-size="12"><title>app {}</title>"#,
        esc(&g.name)
    );
    out.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>"##);
    // Replies between the same two lambdas dip further each, so their labels do not overlap.
    let mut replies: BTreeMap<(NodeIndex, NodeIndex), usize> = BTreeMap::new();
    for d in g.drawn_edges() {
        let (from, to, edge, n) = (d.from, d.to, d.edge, d.count);
        let k = match edge {
            Edge::Reply { .. } => {
                let c = replies.entry((from, to)).or_default();
                *c += 1;
                *c - 1
            }
            _ => 0,
        };
        let skips = layers[&to] > layers[&from] + 1;
        let kind = match edge {
            Edge::Ingress { .. } => "ingress",
            Edge::Enter { .. } => "enter",
            Edge::Call { .. } => "call",
            Edge::Send { .. } => "send",
            Edge::Reply { .. } => "reply",
        };
        // Named by the lambdas at both ends, for the console's live numbers.
        let _ = write!(
            out,
            r#"<g class="edge" data-kind="{kind}" data-from="{}" data-to="{}">"#,
            esc(&owner(g, from)),
            esc(&owner(g, to))
        );
        draw_edge(&mut out, &shapes[&from], &shapes[&to], (edge, n), k, skips);
        out.push_str("</g>");
    }
    for (i, s) in &shapes {
        let kind = match s.kind {
            Kind::Ingress => "ingress",
            Kind::Lambda => "lambda",
            Kind::And => "and",
        };
        let _ = write!(
            out,
            r#"<g class="node" data-kind="{kind}" data-name="{}">"#,
            esc(&owner(g, *i))
        );
        draw_node(&mut out, s);
        out.push_str("</g>");
    }
    out.push_str("</svg>\n");
    out
}

/// The lambda a node belongs to (`ingress` for the ingress).
fn owner(g: &AppGraph, i: NodeIndex) -> String {
    match &g.graph[i] {
        Node::Ingress => "ingress".to_owned(),
        Node::Lambda(l) => l.name.clone(),
        Node::And(a) => a.lambda.clone(),
    }
}

/// Each node's column: the longest path of forward edges (not replies) from the ingress,
/// cycles cut at the number of nodes.
fn layers(g: &AppGraph) -> BTreeMap<NodeIndex, usize> {
    let n = g.graph.node_count();
    let mut layer: BTreeMap<NodeIndex, usize> = g.graph.node_indices().map(|i| (i, 0)).collect();
    for _ in 0..n {
        let mut changed = false;
        for e in g.graph.edge_references() {
            if matches!(e.weight(), Edge::Reply { .. }) || e.source() == e.target() {
                continue;
            }
            let want = (layer[&e.source()] + 1).min(n);
            if layer[&e.target()] < want {
                layer.insert(e.target(), want);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    layer
}

fn shape(g: &AppGraph, i: NodeIndex) -> Shape {
    let (lines, kind) = match &g.graph[i] {
        Node::Ingress => (vec!["ingress".to_owned()], Kind::Ingress),
        Node::Lambda(l) => {
            let mut lines = vec![l.name.clone(), format!("key: {}", l.key)];
            for h in &l.handlers {
                let params: Vec<&str> = h.params.iter().map(|p| p.name.as_str()).collect();
                let public = if h.public { "" } else { " (internal)" };
                lines.push(format!("{}({}){public}", h.name, params.join(", ")));
            }
            (lines, Kind::Lambda)
        }
        Node::And(a) => {
            let kind = match a.kind {
                AndKind::Transaction => "transaction",
                AndKind::Join => "join",
            };
            (vec![kind.to_owned(), a.handler.clone()], Kind::And)
        }
    };
    let longest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    let (w, h) = match kind {
        Kind::And => (longest * CHAR + 60.0, 56.0),
        _ => (longest * CHAR + 20.0, lines.len() as f64 * LINE + 12.0),
    };
    Shape {
        lines,
        kind,
        w,
        h,
        x: 0.0,
        y: 0.0,
    }
}

/// Columns left to right, each as wide as its widest node; nodes stacked in a column.
fn place(layers: &BTreeMap<NodeIndex, usize>, shapes: &mut BTreeMap<NodeIndex, Shape>) {
    let mut columns: BTreeMap<usize, Vec<NodeIndex>> = BTreeMap::new();
    for (i, l) in layers {
        columns.entry(*l).or_default().push(*i);
    }
    let mut x = MARGIN;
    for nodes in columns.values() {
        let width = nodes.iter().map(|i| shapes[i].w).fold(0.0, f64::max);
        let mut y = MARGIN + 40.0;
        for i in nodes {
            if let Some(s) = shapes.get_mut(i) {
                s.x = x + (width - s.w) / 2.0;
                s.y = y;
                y += s.h + GAP_Y;
            }
        }
        x += width + GAP_X;
    }
}

fn edge_label(e: &Edge, n: usize) -> String {
    let times = if n > 1 {
        format!(" ×{n}")
    } else {
        String::new()
    };
    match e {
        Edge::Ingress { .. } => format!("{n} public"),
        Edge::Enter { .. } => "enter".to_owned(),
        Edge::Call { callee, args, .. } => format!("{callee}({}){times}", args.join(", ")),
        Edge::Send {
            receiver, delayed, ..
        } => {
            let what = if *delayed { "timer" } else { "send" };
            format!("{what}: {receiver}{times}")
        }
        Edge::Reply { ty, .. } => format!("{ty}{times}"),
    }
}

/// Draws one edge; `k`: how many replies between the same nodes came before it; `skips`: a
/// forward edge past a column (drawn over the top, not through the nodes between).
fn draw_edge(
    out: &mut String,
    a: &Shape,
    b: &Shape,
    (e, n): (&Edge, usize),
    k: usize,
    skips: bool,
) {
    let label = esc(&edge_label(e, n));
    let (style, color) = match e {
        Edge::Ingress { .. } => (r#" stroke-dasharray="2,3""#, "#888"),
        Edge::Send { .. } => (r#" stroke-dasharray="6,4""#, "#1f6fb4"),
        Edge::Call {
            in_transaction: true,
            ..
        } => (r#" stroke-width="2""#, "#444"),
        _ => ("", "#444"),
    };
    if let Edge::Reply { .. } = e {
        // Back from callee to caller, below the nodes' centres.
        let (x1, y1) = (b.x + b.w, a.y + a.h * 0.75);
        let (x2, y2) = (a.x, b.y + b.h * 0.75);
        let (x1, x2) = if a.x > b.x {
            (a.x, b.x + b.w)
        } else {
            (x1, x2)
        };
        let dip = 40.0 + 26.0 * k as f64;
        let _ = write!(
            out,
            r##"<path d="M{x1:.0},{y1:.0} C{:.0},{:.0} {:.0},{:.0} {x2:.0},{y2:.0}" fill="none" stroke="#999" stroke-dasharray="4,3" marker-end="url(#arrow)"/><text x="{:.0}" y="{:.0}" fill="#777" font-size="10" text-anchor="middle">{label}</text>"##,
            x1 - 30.0,
            y1 + dip,
            x2 + 30.0,
            y2 + dip,
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0 + dip * 0.8
        );
        return;
    }
    let (x1, y1) = (a.x + a.w, a.y + a.h / 2.0);
    let (x2, y2) = (b.x, b.y + b.h / 2.0);
    if skips {
        let top = 6.0;
        let _ = write!(
            out,
            r#"<path d="M{:.0},{:.0} C{:.0},{top:.0} {:.0},{top:.0} {:.0},{:.0}" fill="none" stroke="{color}"{style} marker-end="url(#arrow)"/><text x="{:.0}" y="{:.0}" fill="{color}" font-size="10" text-anchor="middle">{label}</text>"#,
            a.x + a.w / 2.0,
            a.y,
            a.x + a.w / 2.0,
            b.x + b.w / 2.0,
            b.x + b.w / 2.0,
            b.y,
            (a.x + a.w / 2.0 + b.x + b.w / 2.0) / 2.0,
            top + 16.0
        );
        return;
    }
    let _ = write!(
        out,
        r#"<line x1="{x1:.0}" y1="{y1:.0}" x2="{x2:.0}" y2="{y2:.0}" stroke="{color}"{style} marker-end="url(#arrow)"/><text x="{:.0}" y="{:.0}" fill="{color}" font-size="10" text-anchor="middle">{label}</text>"#,
        (x1 + x2) / 2.0,
        (y1 + y2) / 2.0 - 4.0
    );
}

fn draw_node(out: &mut String, s: &Shape) {
    match s.kind {
        Kind::And => {
            let (cx, cy) = (s.x + s.w / 2.0, s.y + s.h / 2.0);
            let _ = write!(
                out,
                r##"<polygon points="{cx:.0},{:.0} {:.0},{cy:.0} {cx:.0},{:.0} {:.0},{cy:.0}" fill="#fff4d6" stroke="#b07d00"/>"##,
                s.y,
                s.x + s.w,
                s.y + s.h,
                s.x
            );
            for (k, l) in s.lines.iter().enumerate() {
                let y = cy - 2.0 + (k as f64) * 13.0;
                let _ = write!(
                    out,
                    r#"<text x="{cx:.0}" y="{y:.0}" text-anchor="middle" font-size="11">{}</text>"#,
                    esc(l)
                );
            }
        }
        Kind::Ingress | Kind::Lambda => {
            let (fill, rx) = if s.kind == Kind::Ingress {
                ("#eeeeee", 12)
            } else {
                ("#e8f1fb", 4)
            };
            let _ = write!(
                out,
                r##"<rect x="{:.0}" y="{:.0}" width="{:.0}" height="{:.0}" rx="{rx}" fill="{fill}" stroke="#335"/>"##,
                s.x, s.y, s.w, s.h
            );
            for (k, l) in s.lines.iter().enumerate() {
                let y = s.y + 18.0 + k as f64 * LINE;
                let weight = if k == 0 { r#" font-weight="bold""# } else { "" };
                let _ = write!(
                    out,
                    r#"<text x="{:.0}" y="{y:.0}"{weight}>{}</text>"#,
                    s.x + 10.0,
                    esc(l)
                );
            }
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shop_is_drawn_with_its_lambdas_its_block_and_its_edges() {
        let g = crate::ir::tests::shop();
        let svg = super::render(&g);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        for name in ["Stock", "Payment", "Order", "ingress", "transaction"] {
            assert!(svg.contains(&format!(">{name}</text>")), "{name}: {svg}");
        }
        assert_eq!(svg.matches("<polygon").count(), 1, "one AND-node");
        assert!(
            svg.contains("Result&lt;(), ShopError&gt;"),
            "escaped reply labels"
        );
        // Every element that opens closes (a cheap well-formedness check).
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches("<g ").count(), svg.matches("</g>").count());
        // Named groups for the console's live numbers.
        assert!(svg.contains(r#"<g class="node" data-kind="lambda" data-name="Stock">"#));
        assert!(
            svg.contains(r#"<g class="edge" data-kind="call" data-from="Order" data-to="Stock">"#)
        );
    }

    fn size(svg: &str) -> (f64, f64) {
        let attr = |name: &str| {
            let from = svg.find(&format!("{name}=\"")).map(|i| i + name.len() + 2);
            let v = from.and_then(|i| svg[i..].split('"').next());
            v.and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::MAX)
        };
        (attr("width"), attr("height"))
    }

    #[test]
    fn ten_lambdas_fit_a_laptop_screen() {
        let svg = super::render(&crate::ir::tests::ten_lambdas());
        let (w, h) = size(&svg);
        eprintln!("ten lambdas: {w} x {h}");
        // A 1440 x 900 laptop screen, less a browser's chrome.
        assert!(w <= 1440.0 && h <= 820.0, "{w} x {h}");
    }
}
