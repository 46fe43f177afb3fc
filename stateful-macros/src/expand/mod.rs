//! Code generation for `#[app]`: the `Lambda` impls, typed clients, the app constructor, the
//! graph constants and `main`; plus the DOT file written during expansion.

use std::path::PathBuf;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{ImplItem, Item, ItemMod, LitStr};

use crate::analyse::{Findings, Scope, Walker};
use crate::ast::{AppArgs, AppModule, Lambda, ctx_param, parse_module};
use crate::check::{RefusedCall, check};
use crate::diag::Diagnostics;

mod file_lambda;
mod lambda;
mod onboarding;
mod output;

pub use file_lambda::file_lambda;
use lambda::{Membership, lambda_items};
use output::{calls_impls, member_impls, write_dot};

pub(crate) fn private() -> TokenStream {
    quote!(::stateful_runtime::__private)
}

/// Walks the handlers of one lambda (rewriting their transactions, recording their calls) and
/// checks its helper functions for state access and `transaction!`.
fn analyse_lambda(l: &mut Lambda, d: &mut Diagnostics) -> Vec<Findings> {
    let mut per = Vec::new();
    for h in &mut l.handlers {
        let scope = Scope::Handler {
            ctx: h.ctx.clone(),
            ctx_mut: h.ctx_mut,
            ret: Box::new(h.ret.clone()),
        };
        per.push(Walker::new(scope, d).walk(&mut h.block));
    }
    for item in &mut l.helpers {
        if let ImplItem::Fn(f) = item {
            walk_other(&f.sig, &mut f.block, d);
        }
    }
    per
}

/// Walks every function of the module: handlers get their transactions rewritten and their
/// calls recorded; other functions are checked for state access and `transaction!`. A file
/// module's lambdas are walked for their calls only: `#[lambda]` reports their errors.
fn analyse(app: &mut AppModule, d: &mut Diagnostics) -> Vec<Vec<Findings>> {
    let mut all = Vec::new();
    for l in &mut app.lambdas {
        let mut scratch = Diagnostics::default();
        let d = if l.file.is_some() {
            &mut scratch
        } else {
            &mut *d
        };
        let mut found = analyse_lambda(l, d);
        if l.file.is_some() {
            // Spans of a file read by the macro do not carry the file's lines.
            found
                .iter_mut()
                .flat_map(|f| &mut f.blocks)
                .for_each(|b| b.line = 0);
        }
        all.push(found);
    }
    for item in &mut app.items {
        match item {
            Item::Fn(f) => walk_other(&f.sig, &mut f.block, d),
            Item::Impl(imp) => {
                for it in &mut imp.items {
                    if let ImplItem::Fn(f) = it {
                        walk_other(&f.sig, &mut f.block, d);
                    }
                }
            }
            _ => {}
        }
    }
    all
}

fn walk_other(sig: &syn::Signature, block: &mut syn::Block, d: &mut Diagnostics) {
    let scope = Scope::Other {
        name: sig.ident.clone(),
        has_ctx: ctx_param(sig).is_some()
            || sig.inputs.iter().any(|a| match a {
                syn::FnArg::Typed(pt) => {
                    matches!(&*pt.pat, syn::Pat::Ident(pi) if pi.ident == "ctx")
                }
                syn::FnArg::Receiver(_) => false,
            }),
    };
    Walker::new(scope, d).walk(block);
}

/// Expands `#[app]` on a module.
///
/// `source` is the file the module is written in (where its file modules are found).
pub fn app(attr: TokenStream, item: TokenStream, source: Option<PathBuf>) -> TokenStream {
    let out = app_inner(attr, item, source);
    if std::env::var("STATEFUL_MACROS_DEBUG").is_ok_and(|v| v == "1") {
        eprintln!("{out}");
    }
    out
}

fn app_inner(attr: TokenStream, item: TokenStream, source: Option<PathBuf>) -> TokenStream {
    let mut d = Diagnostics::default();
    let args = match syn::parse2::<AppArgs>(attr) {
        Ok(a) => a,
        Err(e) => {
            d.push(e);
            AppArgs { main: false }
        }
    };
    let module: ItemMod = match syn::parse2(item) {
        Ok(m) => m,
        Err(e) => {
            let mut e2 = syn::Error::new(
                e.span(),
                format!("{e}; `#[app]` goes on a module: `#[app] mod shop {{ .. }}`"),
            );
            e2.combine(e);
            return e2.to_compile_error();
        }
    };
    let source = source.and_then(|s| std::env::current_dir().ok().map(|cwd| cwd.join(s)));
    let dirs = source.map_or_else(Vec::new, |s| crate::files::app_dirs(&s, &module.ident));
    let Some(mut app) = parse_module(module, &dirs, &mut d) else {
        return d.to_compile_errors();
    };
    onboarding::serde_through_runtime(&mut app.items);
    let all_items: Vec<Item> = app.items.iter().chain(&app.file_items).cloned().collect();
    for l in &mut app.lambdas {
        l.schema = crate::schema::fingerprint(&l.state, &all_items);
    }
    crate::state_check::check_state_types(&app, &mut d);
    let findings = analyse(&mut app, &mut d);
    let mut refused = Vec::new();
    let graph = check(&app, &findings, &mut d, &mut refused);
    let p = private();
    let AppModule {
        attrs,
        vis,
        name,
        lambdas,
        items,
        types,
        ..
    } = &app;
    let name_str = name.to_string();
    let crate_main = args.main.then(|| {
        quote! {
            /// Runs the app (generated by `#[app(main)]`).
            fn main() -> ::std::process::ExitCode {
                #name::main()
            }
        }
    });
    if !d.is_empty() {
        return fallback(&app, (&graph, &refused), &d, crate_main);
    }
    let json = graph.to_json();
    let dot = stateful_core::dot::render(&graph);
    write_dot(&name_str, &dot);
    let generated = lambdas.iter().enumerate().map(|(i, l)| {
        let id = u16::try_from(i).unwrap_or(u16::MAX);
        match &l.file {
            None => lambda_items(
                l,
                &Membership::Inline { id },
                !types.contains(&l.name.to_string()),
            ),
            Some(_) => TokenStream::new(),
        }
    });
    let members = member_impls(lambdas);
    let entries = lambdas.iter().map(|l| {
        let n = l.path();
        quote!(.lambda::<#n>())
    });
    let calls = calls_impls(&graph, &refused, lambdas, |_| true);
    let prelude = onboarding::prelude(items);
    let json = LitStr::new(&json, Span::call_site());
    let dot = LitStr::new(&dot, Span::call_site());
    quote! {
        #(#attrs)*
        #vis mod #name {
            #prelude
            #(#items)*
            #(#generated)*
            #members
            #calls

            /// The app's typed IR graph as JSON (generated by `#[app]`).
            pub const GRAPH_JSON: &str = #json;
            /// The app's dataflow graph as Graphviz DOT (generated by `#[app]`).
            pub const GRAPH_DOT: &str = #dot;

            /// The app: its lambdas and graph, ready for the runtime.
            pub fn app() -> #p::App {
                #p::App::builder(#name_str, GRAPH_JSON, GRAPH_DOT)#(#entries)*.build()
            }

            /// The app's command line (`graph` prints the DOT graph).
            pub fn main() -> ::std::process::ExitCode {
                #p::serve_main(app())
            }
        }
        #crate_main
    }
}

/// On errors: the errors, next to the items other code names (one mistake, one error).
fn fallback(
    app: &AppModule,
    (graph, refused): (&stateful_core::ir::AppGraph, &[RefusedCall]),
    d: &Diagnostics,
    crate_main: Option<TokenStream>,
) -> TokenStream {
    let p = private();
    let AppModule {
        attrs,
        vis,
        name,
        lambdas,
        items,
        types,
        ..
    } = app;
    let name_str = name.to_string();
    let errors = d.to_compile_errors();
    // File modules' lambdas are expanded by `#[lambda]` whatever happens here: they still need
    // their membership and the calls between them, or each would add errors of its own.
    let members = member_impls(lambdas);
    let calls = calls_impls(graph, refused, lambdas, |l| l.file.is_some());
    let prelude = onboarding::prelude(items);
    let mut defined = types.clone();
    let structs = lambdas
        .iter()
        .filter(|l| l.file.is_none() && defined.insert(l.name.to_string()))
        .map(|l| {
            let n = &l.name;
            quote!(#[allow(dead_code)] pub struct #n;)
        });
    quote! {
        #errors
        #(#attrs)*
        #vis mod #name {
            #![allow(unused_imports, dead_code)]
            #prelude
            #(#items)*
            #(#structs)*
            #members
            #calls
            /// The app's IR graph as JSON (empty: the app did not compile).
            pub const GRAPH_JSON: &str = "";
            /// The app's graph as DOT (empty: the app did not compile).
            pub const GRAPH_DOT: &str = "";
            /// The app (empty: it did not compile).
            pub fn app() -> #p::App {
                #p::App::builder(#name_str, GRAPH_JSON, GRAPH_DOT).build()
            }
            /// The app's command line (fails: it did not compile).
            pub fn main() -> ::std::process::ExitCode {
                ::std::process::ExitCode::FAILURE
            }
        }
        #crate_main
    }
}
