//! `#[derive(Keyed)]`: an event that declares the key of the instance it is for.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Index};

use crate::diag::Diagnostics;

/// Expands `#[derive(Keyed)]`.
pub fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let mut d = Diagnostics::default();
    let name = &input.ident;
    let p = quote!(::stateful_runtime::__private);
    let Data::Struct(s) = &input.data else {
        return syn::Error::new(
            name.span(),
            "`#[derive(Keyed)]` works on structs: mark the key field with `#[key]`",
        )
        .to_compile_error();
    };
    let mut keys = Vec::new();
    for (i, f) in s.fields.iter().enumerate() {
        for a in f.attrs.iter().filter(|a| a.path().is_ident("key")) {
            if !matches!(a.meta, syn::Meta::Path(_)) {
                d.spanned(a, "write the key marker as plain `#[key]`");
            }
            keys.push((i, f, a));
        }
    }
    match keys.len() {
        0 => d.at(
            match &s.fields {
                Fields::Unit => name.span(),
                fields => fields.span(),
            },
            format!(
                "`{name}` derives `Keyed` but no field is marked `#[key]`: mark the field that \
                 addresses the lambda instance, e.g. `#[key] user_id: String`"
            ),
        ),
        1 => {}
        _ => {
            for (_, _, a) in &keys[1..] {
                d.spanned(
                    a,
                    format!("`{name}` has more than one `#[key]` field; an event has one key"),
                );
            }
        }
    }
    if !d.is_empty() {
        return d.to_compile_errors();
    }
    let (i, field, _) = keys[0];
    let ty = &field.ty;
    let access = match &field.ident {
        Some(id) => quote!(#id),
        None => {
            let idx = Index::from(i);
            quote!(#idx)
        }
    };
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    let check = quote_spanned!(ty.span()=> #p::assert_key::<#ty>(););
    quote! {
        #[automatically_derived]
        impl #impl_g #p::Keyed for #name #ty_g #where_c {
            type Key = #ty;
            fn key(&self) -> &Self::Key {
                &self.#access
            }
        }
        const _: () = {
            #[allow(dead_code)]
            fn check() {
                #check
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_field() {
        let out = derive(quote!(
            struct Paid {
                #[key]
                user: String,
                amount: i64,
            }
        ))
        .to_string();
        assert!(out.contains("type Key = String"), "{out}");
        assert!(out.contains("& self . user"), "{out}");
    }

    #[test]
    fn missing_and_double_keys_are_errors() {
        let out = derive(quote!(
            struct Paid {
                user: String,
            }
        ))
        .to_string();
        assert!(out.contains("no field is marked"), "{out}");
        let out = derive(quote!(
            struct Paid {
                #[key]
                a: String,
                #[key]
                b: String,
            }
        ))
        .to_string();
        assert!(out.contains("more than one"), "{out}");
    }
}
