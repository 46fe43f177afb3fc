//! Validation: checks the module's lambdas and the calls found in their bodies, and builds the
//! IR graph ([`stateful_core::ir::AppGraph`]). Every problem is reported on the user's token.

use std::collections::HashMap;

use petgraph::stable_graph::NodeIndex;
use quote::ToTokens;
use stateful_core::ir::{self, AppGraph, CallSpec};
use syn::Type;

use crate::analyse::{BlockKind, Findings};
use crate::ast::{AppModule, Form, Lambda};
use crate::diag::{Diagnostics, did_you_mean, type_string};

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
            })
            .collect(),
    }
}

/// Checks names and calls and builds the graph. `findings[l][h]` are the findings of handler
/// `h` of lambda `l`.
pub fn check(app: &AppModule, findings: &[Vec<Findings>], d: &mut Diagnostics) -> AppGraph {
    let mut g = AppGraph::new(app.name.to_string());
    let mut seen: HashMap<String, ()> = HashMap::new();
    let mut nodes = Vec::new();
    for l in &app.lambdas {
        if seen.insert(l.name.to_string(), ()).is_some() {
            d.spanned(
                &l.name,
                format!("lambda `{}` is defined twice in this app", l.name),
            );
        }
        let mut handlers: HashMap<String, ()> = HashMap::new();
        for h in &l.handlers {
            if handlers.insert(h.name().to_string(), ()).is_some() {
                d.spanned(
                    h.name(),
                    format!(
                        "lambda `{}` already has a handler named `{}`",
                        l.name,
                        h.name()
                    ),
                );
            }
        }
        nodes.push(g.add_lambda(lambda_node(l)));
    }
    let names: Vec<String> = app.lambdas.iter().map(|l| l.name.to_string()).collect();
    for ((l, node), found) in app.lambdas.iter().zip(&nodes).zip(findings) {
        for (h, f) in l.handlers.iter().zip(found) {
            let caller_handler = h.name().to_string();
            let mut blocks: Vec<NodeIndex> = Vec::new();
            for b in &f.blocks {
                let parent = b.parent.map_or(*node, |p| blocks[p]);
                let and = ir::AndNode {
                    kind: match b.kind {
                        BlockKind::Transaction => ir::AndKind::Transaction,
                        BlockKind::Join => ir::AndKind::Join,
                    },
                    lambda: l.name.to_string(),
                    handler: caller_handler.clone(),
                    line: b.line,
                };
                blocks.push(g.add_and(parent, and));
            }
            for c in &f.calls {
                let callee = callee_name(&c.callee);
                let Some(target) = app.lambdas.iter().find(|t| t.name == callee) else {
                    d.spanned(
                        &c.callee,
                        format!(
                            "no lambda named `{callee}` in app `{}`{}",
                            app.name,
                            did_you_mean(&callee, names.iter().map(String::as_str))
                        ),
                    );
                    continue;
                };
                let handler = match (&c.handler, target.form) {
                    (Some(h), _) => h.to_string(),
                    (None, Form::Function) => target.handlers[0].name().to_string(),
                    (None, Form::Entity) => {
                        d.spanned(
                            &c.callee,
                            format!(
                                "`{callee}` is an entity lambda: call it with \
                                 `ctx.call::<{callee}>(&key).handler(..)`, not `invoke`"
                            ),
                        );
                        continue;
                    }
                };
                if let (Some(h), Form::Function) = (&c.handler, target.form) {
                    d.spanned(
                        h,
                        format!(
                            "`{callee}` is a function-form lambda: invoke it with its event, \
                             `ctx.invoke::<{callee}>(event)`"
                        ),
                    );
                    continue;
                }
                let Some(th) = target.handlers.iter().find(|t| *t.name() == handler) else {
                    let cands = target.handlers.iter().map(|t| t.name().to_string());
                    let cands: Vec<String> = cands.collect();
                    let msg = format!(
                        "lambda `{callee}` has no handler `{handler}`{}",
                        did_you_mean(&handler, cands.iter().map(String::as_str))
                    );
                    match &c.handler {
                        Some(h) => d.spanned(h, msg),
                        None => d.spanned(&c.callee, msg),
                    }
                    continue;
                };
                if th.params.len() != c.args {
                    let params: Vec<String> = th
                        .params
                        .iter()
                        .map(|(n, t)| format!("{n}: {}", type_string(t)))
                        .collect();
                    d.at(
                        c.args_span,
                        format!(
                            "`{callee}::{handler}` takes {} argument{} ({}) but {} {} given",
                            th.params.len(),
                            if th.params.len() == 1 { "" } else { "s" },
                            params.join(", "),
                            c.args,
                            if c.args == 1 { "was" } else { "were" }
                        ),
                    );
                    continue;
                }
                let from = c.block.map_or(*node, |b| blocks[b]);
                let res = g.add_call(CallSpec {
                    caller: *node,
                    from,
                    caller_handler: &caller_handler,
                    callee: &callee,
                    handler: &handler,
                    given: c.args,
                    in_transaction: c.in_transaction,
                });
                if let Err(e) = res {
                    d.at(
                        c.callee
                            .to_token_stream()
                            .into_iter()
                            .next()
                            .map_or_else(proc_macro2::Span::call_site, |t| t.span()),
                        e,
                    );
                }
            }
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::{Scope, Walker};
    use crate::ast::parse_module;

    fn run(module: syn::ItemMod) -> (AppGraph, Vec<String>) {
        let mut d = Diagnostics::default();
        let mut app = parse_module(module, &mut d).expect("a module");
        let findings: Vec<Vec<Findings>> = app
            .lambdas
            .iter_mut()
            .map(|l| {
                l.handlers
                    .iter_mut()
                    .map(|h| {
                        let scope = Scope::Handler {
                            ctx: h.ctx.clone(),
                            ret: Box::new(h.ret.clone()),
                        };
                        Walker::new(scope, &mut d).walk(&mut h.block)
                    })
                    .collect()
            })
            .collect();
        let g = check(&app, &findings, &mut d);
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
