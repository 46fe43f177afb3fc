//! Procedural macros of `stateful`. Use them through `stateful_runtime` (its `prelude`
//! re-exports them).
//!
//! Pipeline: [`ast`] parses an `#[app]` module into lambdas and handlers, [`analyse`] walks
//! their bodies (finding calls, state accesses, transactions and joins, and rewriting
//! `transaction!`), [`check`] validates and builds the IR graph, [`expand`] generates code.
extern crate proc_macro;
use proc_macro::TokenStream;

mod analyse;
mod ast;
mod check;
mod diag;
mod expand;
mod files;
mod keyed;
mod schema;
mod state_check;

/// Marks the module that holds an app's lambdas: `#[app] mod shop { .. }`.
///
/// Analyses every `#[lambda]` of the module into a typed dataflow graph, validates it, and
/// generates the `Lambda` implementations, typed clients, `app()`, `GRAPH_DOT`, `GRAPH_JSON`
/// and `main()`. `#[app(main)]` also emits a crate-level `fn main` calling the module's.
#[proc_macro_attribute]
pub fn app(attr: TokenStream, item: TokenStream) -> TokenStream {
    let source = proc_macro::Span::call_site().local_file();
    expand::app(attr.into(), item.into(), source).into()
}

/// An app whose lambdas live in files: `app_modules! { pub mod shop { mod stock; mod order; } }`
/// reads `shop/stock.rs` and `shop/order.rs` (next to this file, as rustc would find them)
/// for the graph, and compiles them as the module's submodules. Everything else is as
/// `#[app]` (which cannot take `mod name;` lines: rustc refuses file modules in an attribute
/// macro's input).
#[proc_macro]
pub fn app_modules(item: TokenStream) -> TokenStream {
    let source = proc_macro::Span::call_site().local_file();
    expand::app(proc_macro2::TokenStream::new(), item.into(), source).into()
}

/// Declares a lambda of an `#[app]` module. Inside the module's braces `#[app]` consumes it;
/// in a file module of an app (`app_modules! { mod shop { mod stock; } }`) it generates the lambda's
/// code here, and `#[app]` adds the lambda to the app's graph.
#[proc_macro_attribute]
pub fn lambda(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::file_lambda(attr.into(), item.into()).into()
}

/// An atomic block, `transaction! { .. }.on_failure_return(v)`; only meaningful inside a
/// handler of an `#[app]` module, which rewrites it.
#[proc_macro]
pub fn transaction(_input: TokenStream) -> TokenStream {
    syn::Error::new(
        proc_macro2::Span::call_site(),
        "transaction! can only be used inside a handler of an #[app] module",
    )
    .to_compile_error()
    .into()
}

/// Derives `Keyed` for an event: the field marked `#[key]` addresses the lambda instance.
#[proc_macro_derive(Keyed, attributes(key))]
pub fn derive_keyed(input: TokenStream) -> TokenStream {
    keyed::derive(input.into()).into()
}
