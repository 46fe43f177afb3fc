//! Validation: checks the module's lambdas and the calls found in their bodies, and builds the
//! IR graph ([`stateful_core::ir::AppGraph`]). Every problem is reported on the user's token.

use petgraph::stable_graph::NodeIndex;
use stateful_core::ir::{self, AppGraph, CallSpec, IrError, SendSpec};
use syn::Type;

use crate::analyse::{BlockKind, CallSite, Findings};
use crate::ast::{AppModule, Form, Lambda};
use crate::diag::{Diagnostics, type_string};

/// The name a call uses for its callee: the last path segment of the type.
fn callee_name(t: &Type) -> String {
    match t {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        other => type_string(other),
    }
}

/// The IR description of a lambda.
fn lambda_node(l: &Lambda) -> ir::LambdaNode {
    let key = match (&l.key, &l.event) {
        (Some(k), _) => type_string(k),
        (None, Some(e)) => format!("<{} as Keyed>::Key", type_string(e)),
        (None, None) => "?".into(),
    };
    ir::LambdaNode {
        name: l.name.to_string(),
        form: match l.form {
            Form::Entity => ir::Form::Entity,
            Form::Function => ir::Form::Function,
        },
        key,
        state: type_string(&l.state),
        handlers: l
            .handlers
            .iter()
            .map(|h| ir::Handler {
                name: h.name().to_string(),
                params: h
                    .params
                    .iter()
                    .map(|(n, t)| ir::Param {
                        name: n.to_string(),
                        ty: type_string(t),
                    })
                    .collect(),
                output: type_string(&h.ret),
                route: h.route.as_ref().map(|r| ir::Route {
                    method: r.method.to_string().to_uppercase(),
                    path: r.path.value(),
                }),
                public: h.public,
            })
            .collect(),
    }
}

/// Builds the graph, reporting every rule it breaks ([`stateful_core::ir`] holds the rules) on
/// the user's token. `findings[l][h]` are the findings of handler `h` of lambda `l`.
///
/// A call of a file module's lambda that the rules refuse is not reported here (rustc reports
/// it on the call, in the file); if both ends are lambdas of the app, the pair goes into
/// `refused` so that its `Calls` impl still exists and rustc's error is the only one.
pub fn check(
    app: &AppModule,
    findings: &[Vec<Findings>],
    d: &mut Diagnostics,
    refused: &mut Vec<RefusedCall>,
) -> AppGraph {
    let mut g = AppGraph::new(app.name.to_string());
    let mut nodes = Vec::new();
    for l in &app.lambdas {
        let (node, errors) = g.add_lambda(lambda_node(l));
        for e in errors {
            match &e {
                // rustc reports a file module's duplicate handler in the file.
                IrError::DuplicateHandler { .. } if l.file.is_some() => {}
                IrError::DuplicateHandler { handler, .. } => {
                    // The second handler of that name is the one in the way.
                    let second = l.handlers.iter().filter(|h| *h.name() == handler).nth(1);
                    match second {
                        Some(h) => d.spanned(h.name(), e),
                        None => d.spanned(&l.name, e),
                    }
                }
                // A file module's lambda is reported on the module's name in the app.
                _ => match &l.file {
                    Some(m) => d.spanned(m, format!("{e} (again in module `{m}`)")),
                    None => d.spanned(&l.name, e),
                },
            }
        }
        nodes.push(node);
    }
    for ((l, node), found) in app.lambdas.iter().zip(&nodes).zip(findings) {
        for (h, f) in l.handlers.iter().zip(found) {
            let caller_handler = h.name().to_string();
            let blocks = add_blocks(&mut g, *node, l, &caller_handler, f);
            for c in &f.calls {
                let callee = callee_name(&c.callee);
                let handler = c.handler.as_ref().map(ToString::to_string);
                let from = c.block.map_or(*node, |b| blocks[b]);
                let res = match c.send {
                    Some(delayed) => g.add_send(SendSpec {
                        from,
                        sender: &caller_handler,
                        receiver: &callee,
                        handler: handler.as_deref(),
                        given: c.args,
                        delayed,
                    }),
                    None => g.add_call(CallSpec {
                        caller: *node,
                        from,
                        caller_handler: &caller_handler,
                        callee: &callee,
                        handler: handler.as_deref(),
                        given: c.args,
                        in_transaction: c.in_transaction,
                    }),
                };
                match res {
                    Ok(()) => {}
                    Err(e) if l.file.is_none() => report_call_error(d, c, e),
                    Err(_) => {
                        if app.lambdas.iter().any(|x| x.name == callee) {
                            refused.push(RefusedCall {
                                caller: l.name.to_string(),
                                callee,
                                send: c.send.is_some(),
                            });
                        }
                    }
                }
            }
        }
    }
    g
}

/// A call between two lambdas of the app that the rules refused, in a file module.
pub struct RefusedCall {
    /// The calling lambda.
    pub caller: String,
    /// The called lambda.
    pub callee: String,
    /// A message, not a call.
    pub send: bool,
}

/// The AND-nodes of one handler, in source order (parents before children).
fn add_blocks(
    g: &mut AppGraph,
    node: NodeIndex,
    l: &Lambda,
    handler: &str,
    f: &Findings,
) -> Vec<NodeIndex> {
    let mut blocks: Vec<NodeIndex> = Vec::new();
    for b in &f.blocks {
        let parent = b.parent.map_or(node, |p| blocks[p]);
        let and = ir::AndNode {
            kind: match b.kind {
                BlockKind::Transaction => ir::AndKind::Transaction,
                BlockKind::Join => ir::AndKind::Join,
            },
            lambda: l.name.to_string(),
            handler: handler.to_owned(),
            line: b.line,
        };
        blocks.push(g.add_and(parent, and));
    }
    blocks
}

/// A call the rules refuse, on the token at fault.
fn report_call_error(d: &mut Diagnostics, c: &CallSite, e: IrError) {
    match (&e, &c.handler) {
        (IrError::Arity { .. }, _) => d.at(c.args_span, e),
        (IrError::UnknownHandler { .. } | IrError::WrongForm { .. }, Some(h)) => d.spanned(h, e),
        _ => d.spanned(&c.callee, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::{Scope, Walker};
    use crate::ast::parse_module;

    fn run(module: syn::ItemMod) -> (AppGraph, Vec<String>) {
        let mut d = Diagnostics::default();
        let mut app = parse_module(module, &[], &mut d).expect("a module");
        let findings: Vec<Vec<Findings>> = app
            .lambdas
            .iter_mut()
            .map(|l| {
                l.handlers
                    .iter_mut()
                    .map(|h| {
                        let scope = Scope::Handler {
                            ctx: h.ctx.clone(),
                            ctx_mut: h.ctx_mut,
                            ret: Box::new(h.ret.clone()),
                        };
                        Walker::new(scope, &mut d).walk(&mut h.block)
                    })
                    .collect()
            })
            .collect();
        let g = check(&app, &findings, &mut d, &mut Vec::new());
        (g, d.messages())
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let (_, errs) = run(syn::parse_quote! {
            mod shop {
                #[lambda(key = String, state = i64)]
                impl Stock {
                    async fn subtract(ctx: &mut Ctx<Self>, n: i64) -> Result<(), Rejection> { Ok(()) }
                    async fn subtract(ctx: &mut Ctx<Self>) -> Result<(), Rejection> { Ok(()) }
                }
                #[lambda(key = String)]
                impl Order {
                    async fn checkout(ctx: &mut Ctx<Self>) -> Result<(), Rejection> {
                        ctx.call::<Stok>(&k).subtract(1).await?;
                        ctx.call::<Stock>(&k).substract(1).await?;
                        ctx.call::<Stock>(&k).subtract(1, 2).await
                    }
                }
            }
        });
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(errs[0].contains("already has a handler named `subtract`"));
        assert!(errs[1].contains("did you mean `Stock`?"));
        assert!(errs[2].contains("did you mean `subtract`?"));
        assert!(errs[3].contains("takes 1 argument (n: i64) but 2 were given"));
    }

    #[test]
    fn graph_has_and_nodes_and_reply_edges() {
        let (g, errs) = run(syn::parse_quote! {
            mod shop {
                #[lambda(key = String, state = i64)]
                impl Stock {
                    async fn subtract(ctx: &mut Ctx<Self>, n: i64) -> Result<(), Rejection> { Ok(()) }
                }
                #[lambda(key = String)]
                impl Order {
                    async fn checkout(ctx: &mut Ctx<Self>) -> Result<(), Rejection> {
                        transaction! {
                            ctx.call::<Stock>(&k).subtract(1).await?;
                            Ok(())
                        }.on_failure_return(Ok(()))
                    }
                }
            }
        });
        assert!(errs.is_empty(), "{errs:?}");
        assert!(g.validate().is_empty());
        assert!(g.has_cycle());
        let json = g.to_json();
        assert!(json.contains("\"kind\": \"transaction\""), "{json}");
        assert!(json.contains("\"in_transaction\": true"), "{json}");
        assert!(json.contains("\"edge\": \"reply\""), "{json}");
    }
}
