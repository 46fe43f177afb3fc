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
    expand::app(attr.into(), item.into()).into()
}

/// Declares a lambda; only meaningful inside an `#[app]` module, which consumes it.
#[proc_macro_attribute]
pub fn lambda(_attr: TokenStream, _item: TokenStream) -> TokenStream {
    syn::Error::new(
        proc_macro2::Span::call_site(),
        "`#[lambda]` only works inside an app module: put it in `#[app] mod name { .. }`",
    )
    .to_compile_error()
    .into()
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
