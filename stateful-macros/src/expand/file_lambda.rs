//! `#[lambda]` on its own: a lambda in a file module of an app (`app_modules! { mod shop { mod stock; } }`
//! with `#[lambda] impl Stock { .. }` in `shop/stock.rs`). It generates the lambda's code where
//! it is written, so every error points into the file; its index and fingerprint come from the
//! app (`AppMember`), which reads the file for the graph.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Item};

use super::analyse_lambda;
use super::lambda::{Membership, lambda_items};
use crate::ast::{Lambda, entity, function};
use crate::diag::Diagnostics;

/// Expands `#[lambda(args)] item` outside an app module's braces.
pub fn file_lambda(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut d = Diagnostics::default();
    let attr: Attribute = if args.is_empty() {
        syn::parse_quote!(#[lambda])
    } else {
        syn::parse_quote!(#[lambda(#args)])
    };
    let lambda = match syn::parse2::<Item>(item) {
        Ok(Item::Impl(imp)) => entity(&attr, imp, &mut d),
        Ok(Item::Fn(f)) => function(&attr, f, &mut d),
        Ok(other) => {
            d.spanned(
                &other,
                "`#[lambda]` goes on an `impl` block (entity form) or an `async fn` (function form)",
            );
            None
        }
        Err(e) => {
            d.push(e);
            None
        }
    };
    let Some(mut lambda) = lambda else {
        return d.to_compile_errors();
    };
    let _findings = analyse_lambda(&mut lambda, &mut d);
    if d.is_empty() {
        return lambda_items(&lambda, &Membership::File, true);
    }
    // The errors, and the lambda with its bodies set aside: its signatures still give the app
    // and the callers what they name, so each mistake is one error.
    stub_bodies(&mut lambda);
    let errors = d.to_compile_errors();
    let items = lambda_items(&lambda, &Membership::File, true);
    quote!(#errors #items)
}

fn stub_bodies(l: &mut Lambda) {
    let stub: syn::Block =
        syn::parse_quote!({ ::core::unreachable!("this lambda did not compile") });
    let quiet: syn::Attribute = syn::parse_quote!(#[allow(unused)]);
    for h in &mut l.handlers {
        h.block = stub.clone();
        h.attrs.push(quiet.clone());
    }
    for item in &mut l.helpers {
        if let syn::ImplItem::Fn(f) = item {
            f.block = stub.clone();
            f.attrs.push(quiet.clone());
        }
    }
}
