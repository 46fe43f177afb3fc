//! What `#[app]` adds so that an app needs nothing but `stateful-runtime`: the prelude in
//! scope in the module, and serde's derives pointed at the runtime's re-export of serde (no
//! `serde` line in the app's `Cargo.toml`).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Item};

/// `use ::stateful_runtime::prelude::*;` for the top of the module, unless the module
/// imports a prelude itself (it would then be reported unused).
pub(super) fn prelude(items: &[Item]) -> TokenStream {
    let has_one = items.iter().any(
        |i| matches!(i, Item::Use(u) if u.tree.to_token_stream().to_string().contains("prelude")),
    );
    if has_one {
        return TokenStream::new();
    }
    quote!(
        #[allow(unused_imports)]
        use ::stateful_runtime::prelude::*;
    )
}

/// Adds `#[serde(crate = "::stateful_runtime::__private::serde")]` to every struct and enum of
/// the module that derives `Serialize` or `Deserialize` and does not name a serde crate itself.
pub(super) fn serde_through_runtime(items: &mut [Item]) {
    for item in items {
        let attrs = match item {
            Item::Struct(s) => &mut s.attrs,
            Item::Enum(e) => &mut e.attrs,
            _ => continue,
        };
        if derives_serde(attrs) && !names_serde_crate(attrs) {
            attrs.push(syn::parse_quote!(#[serde(crate = "::stateful_runtime::__private::serde")]));
        }
    }
}

fn derives_serde(attrs: &[Attribute]) -> bool {
    crate::state_check::derives(attrs, "Serialize")
        || crate::state_check::derives(attrs, "Deserialize")
}

fn names_serde_crate(attrs: &[Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .any(|a| a.meta.to_token_stream().to_string().contains("crate"))
}

use quote::ToTokens;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_serde_derives_without_a_crate_get_the_runtime_path() {
        let file: syn::File = syn::parse_str(
            r#"
            #[derive(Serialize, Deserialize)] struct A;
            #[derive(Clone)] struct B;
            #[derive(serde::Serialize)] #[serde(crate = "my_serde")] enum C { X }
            "#,
        )
        .expect("parses");
        let mut items = file.items;
        serde_through_runtime(&mut items);
        let text: Vec<String> = items
            .iter()
            .map(|i| i.to_token_stream().to_string())
            .collect();
        assert!(
            text[0].contains("::stateful_runtime::__private::serde"),
            "{}",
            text[0]
        );
        assert!(!text[1].contains("serde"), "{}", text[1]);
        assert!(!text[2].contains("__private"), "{}", text[2]);
    }
}
