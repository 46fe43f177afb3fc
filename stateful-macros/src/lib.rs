//! Procedural macros of `stateful`. Use them through `stateful_runtime`.
extern crate proc_macro;
use proc_macro::TokenStream;

/// Marks the module that holds an app's lambdas (placeholder until the analyser lands).
#[proc_macro_attribute]
pub fn app(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
