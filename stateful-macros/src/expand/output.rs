//! What the expansion writes besides code: the DOT file of the graph in the target dir, and
//! the `Calls` implementations that tie typed calls to the graph's call edges.

use std::path::PathBuf;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::private;
use crate::ast::Lambda;
use crate::check::RefusedCall;

/// `impl Calls<Callee> for Caller {}` for every pair of lambdas the graph's call edges
/// connect, and `impl Sends<Receiver> for Sender {}` for its send edges: a typed call or
/// message compiles only along an edge of the graph. Also the `refused` pairs (rustc reports
/// what is wrong with those calls). Only pairs of lambdas that `keep` accepts.
pub(super) fn calls_impls(
    graph: &stateful_core::ir::AppGraph,
    refused: &[RefusedCall],
    lambdas: &[Lambda],
    keep: impl Fn(&Lambda) -> bool,
) -> TokenStream {
    use petgraph::visit::{EdgeRef, IntoEdgeReferences};
    use stateful_core::ir::{Edge, Node};
    let p = private();
    let named = |name: &str| {
        let l = lambdas.iter().find(|l| l.name == name)?;
        keep(l).then(|| (name.to_owned(), l.path()))
    };
    let owner = |i| match &graph.graph[i] {
        Node::Lambda(l) => named(&l.name),
        Node::And(a) => named(&a.lambda),
        Node::Ingress => None,
    };
    let mut pairs = std::collections::BTreeMap::new();
    for e in graph.graph.edge_references() {
        let kind = match e.weight() {
            Edge::Call { .. } => "Calls",
            Edge::Send { .. } => "Sends",
            _ => continue,
        };
        if let (Some((a, pa)), Some((b, pb))) = (owner(e.source()), owner(e.target())) {
            pairs.insert((kind, a, b), (pa, pb));
        }
    }
    for r in refused {
        let kind = if r.send { "Sends" } else { "Calls" };
        if let (Some((a, pa)), Some((b, pb))) = (named(&r.caller), named(&r.callee)) {
            pairs.insert((kind, a, b), (pa, pb));
        }
    }
    let impls = pairs.into_iter().map(|((kind, _, _), (a, b))| {
        let kind = format_ident!("{}", kind);
        quote!(#[automatically_derived] impl #p::#kind<#b> for #a {})
    });
    quote!(#(#impls)*)
}

/// `impl AppMember for stock::Stock { .. }` for every lambda of a file module: its index in
/// the app and its state's fingerprint, which its `#[lambda]` expansion reads.
pub(super) fn member_impls(lambdas: &[Lambda]) -> TokenStream {
    let p = private();
    let impls = lambdas.iter().enumerate().filter(|(_, l)| l.file.is_some());
    let impls = impls.map(|(i, l)| {
        let id = u16::try_from(i).unwrap_or(u16::MAX);
        let (path, schema) = (l.path(), l.schema);
        quote! {
            #[automatically_derived]
            impl #p::AppMember for #path {
                const ID: u16 = #id;
                const SCHEMA: u32 = #schema;
            }
        }
    });
    quote!(#(#impls)*)
}

/// The workspace target directory: `CARGO_TARGET_DIR`, else `target/` next to the workspace
/// manifest above `CARGO_MANIFEST_DIR`, else next to the crate's manifest.
pub fn target_dir(target_env: Option<PathBuf>, manifest_dir: Option<PathBuf>) -> Option<PathBuf> {
    if let Some(t) = target_env {
        return Some(t);
    }
    let manifest = manifest_dir?;
    let workspace = manifest
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .map(|s| s.lines().any(|l| l.trim() == "[workspace]"))
                .unwrap_or(false)
        })
        .unwrap_or(&manifest);
    Some(workspace.join("target"))
}

pub(super) fn write_dot(module: &str, dot: &str) {
    let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
    let Some(target) = target_dir(env("CARGO_TARGET_DIR"), env("CARGO_MANIFEST_DIR")) else {
        return;
    };
    let krate = std::env::var("CARGO_CRATE_NAME")
        .or_else(|_| std::env::var("CARGO_PKG_NAME"))
        .unwrap_or_else(|_| "unknown".into());
    let dir = target.join("stateful").join(krate);
    // Best effort: the graph is also embedded as `GRAPH_DOT`.
    let _ = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{module}.dot")), dot));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_prefers_the_env_var() {
        assert_eq!(
            target_dir(Some("/t".into()), Some("/x".into())),
            Some(PathBuf::from("/t"))
        );
    }

    #[test]
    fn target_dir_finds_the_workspace() {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let ws = here
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        assert_eq!(target_dir(None, Some(here)), Some(ws.join("target")));
        assert_eq!(target_dir(None, None), None);
    }
}
