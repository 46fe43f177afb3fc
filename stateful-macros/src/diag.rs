//! Accumulating diagnostics: every error is reported, each on the user's token.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

/// Collects errors so that all of them are reported at once.
#[derive(Default)]
pub struct Diagnostics {
    error: Option<syn::Error>,
}

impl Diagnostics {
    /// Records an error at `span`.
    pub fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    /// Records an error spanning `tokens`.
    pub fn spanned(&mut self, tokens: impl ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }

    /// Records an error.
    pub fn push(&mut self, e: syn::Error) {
        match &mut self.error {
            Some(all) => all.combine(e),
            None => self.error = Some(e),
        }
    }

    /// Whether nothing went wrong.
    pub fn is_empty(&self) -> bool {
        self.error.is_none()
    }

    /// `compile_error!` invocations for every error (empty when there is none).
    pub fn to_compile_errors(&self) -> TokenStream {
        self.error
            .as_ref()
            .map(syn::Error::to_compile_error)
            .unwrap_or_default()
    }

    /// The messages, for tests.
    #[cfg(test)]
    pub fn messages(&self) -> Vec<String> {
        self.error
            .iter()
            .flat_map(|e| e.clone().into_iter().map(|e| e.to_string()))
            .collect()
    }
}

/// " ; did you mean `x`?" when some candidate is close to `name`.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    stateful_core::ir::did_you_mean(name, candidates)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// A type as written, with the spacing a person would use (`Result<(), E>`).
pub fn type_string(ty: &impl ToTokens) -> String {
    let mut s = ty.to_token_stream().to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" , ", ", "),
        (" ,", ","),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ; ", "; "),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// `create_order` → `CreateOrder`.
pub fn upper_camel(s: &str) -> String {
    s.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_like_source() {
        let ty: syn::Type = syn::parse_quote!(Result<Vec<(String, i64)>, crate::ShopError>);
        assert_eq!(
            type_string(&ty),
            "Result<Vec<(String, i64)>, crate::ShopError>"
        );
        let ty: syn::Type = syn::parse_quote!(&mut Ctx<Self>);
        assert_eq!(type_string(&ty), "&mut Ctx<Self>");
    }

    #[test]
    fn camel_case() {
        assert_eq!(upper_camel("order_payment"), "OrderPayment");
        assert_eq!(upper_camel("pay"), "Pay");
    }

    #[test]
    fn errors_accumulate() {
        let mut d = Diagnostics::default();
        assert!(d.is_empty());
        d.at(Span::call_site(), "one");
        d.at(Span::call_site(), "two");
        assert_eq!(d.messages(), ["one", "two"]);
        assert!(!d.to_compile_errors().is_empty());
    }
}
