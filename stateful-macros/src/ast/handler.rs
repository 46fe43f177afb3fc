//! Handlers: the context parameter, the parameters, the return type, `#[route(..)]` and
//! `#[public]`.

use syn::parse::{Parse, ParseStream};
use syn::{Attribute, FnArg, Ident, LitStr, Pat, ReturnType, Signature, Token, Type};

use super::Route;
use crate::diag::{Diagnostics, did_you_mean};

/// `&Ctx<X>` / `&mut Ctx<X>`: returns (mutable, X).
fn ctx_type(ty: &Type) -> Option<(bool, &Type)> {
    let Type::Reference(r) = ty else { return None };
    let Type::Path(p) = &*r.elem else { return None };
    let seg = p.path.segments.last()?;
    if seg.ident != "Ctx" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &seg.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(t) => Some((r.mutability.is_some(), t)),
        _ => None,
    }
}

/// The context parameter of a signature: (name, mutable, the `X` of `Ctx<X>`).
pub fn ctx_param(sig: &Signature) -> Option<(Ident, bool, Type)> {
    let FnArg::Typed(pt) = sig.inputs.first()? else {
        return None;
    };
    let (m, inner) = ctx_type(&pt.ty)?;
    let Pat::Ident(pi) = &*pt.pat else {
        return None;
    };
    Some((pi.ident.clone(), m, inner.clone()))
}

/// Parameters after the context, as (name, type); errors for patterns and `self`.
pub(super) fn params(sig: &Signature, d: &mut Diagnostics) -> Vec<(Ident, Type)> {
    let mut out = Vec::new();
    for arg in sig.inputs.iter().skip(1) {
        match arg {
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) => out.push((pi.ident.clone(), (*pt.ty).clone())),
                other => d.spanned(
                    other,
                    "handler parameters must be plain names (`amount: i64`): they become the \
                     names of the handler's arguments",
                ),
            },
            FnArg::Receiver(r) => d.spanned(r, "handlers take no `self`"),
        }
    }
    out
}

pub(super) fn return_type(sig: &Signature, d: &mut Diagnostics) -> Type {
    match &sig.output {
        ReturnType::Type(_, ty) if surely_not_result(ty) => {
            let shown = crate::diag::type_string(ty);
            d.spanned(
                ty,
                format!(
                    "handler `{}` must return `Result<T, E>`, not `{shown}`: write \
                     `Result<{shown}, Rejection>` (or your own error type)",
                    sig.ident
                ),
            );
            syn::parse_quote!(::core::result::Result<(), ::stateful_runtime::__private::Rejection>)
        }
        ReturnType::Type(_, ty) => (**ty).clone(),
        ReturnType::Default => {
            d.spanned(
                &sig.ident,
                format!(
                    "handler `{}` must return `Result<T, E>` (for example `Result<(), Rejection>`)",
                    sig.ident
                ),
            );
            syn::parse_quote!(::core::result::Result<(), ::stateful_runtime::__private::Rejection>)
        }
    }
}

impl Parse for Route {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let method: Ident = input.parse()?;
        let _: Token![,] = input.parse()?;
        let path: LitStr = input.parse()?;
        let mut new_key = false;
        if input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
            let k: Ident = input.parse()?;
            let _: Token![=] = input.parse()?;
            let v: Ident = input.parse()?;
            if k != "key" || v != "new" {
                return Err(syn::Error::new(
                    k.span(),
                    "the only option of a route is `key = new`",
                ));
            }
            new_key = true;
        }
        Ok(Route {
            method,
            path,
            new_key,
        })
    }
}

/// Parses and checks `#[route(..)]` against the handler's parameter names.
pub(super) fn route(
    attr: &Attribute,
    params: &[(Ident, Type)],
    d: &mut Diagnostics,
) -> Option<Route> {
    let r: Route = match attr.parse_args() {
        Ok(r) => r,
        Err(e) => {
            d.at(
                e.span(),
                format!("{e}; expected `#[route(post, \"/path/{{key}}/{{param}}\")]`"),
            );
            return None;
        }
    };
    const METHODS: [&str; 4] = ["get", "post", "put", "delete"];
    let m = r.method.to_string();
    if !METHODS.contains(&m.as_str()) {
        d.spanned(
            &r.method,
            format!(
                "unknown HTTP method `{m}`{}; use one of get, post, put, delete",
                did_you_mean(&m, METHODS)
            ),
        );
    }
    let path = r.path.value();
    let has_key = path.contains("{key}");
    if !has_key && !r.new_key {
        d.spanned(
            &r.path,
            "this route has no `{key}`: put `{key}` in the path to name the instance, or add \
             `key = new` (`#[route(post, \"/path\", key = new)]`) for a handler that starts a \
             new instance under a fresh key",
        );
    }
    if has_key && r.new_key {
        d.spanned(
            &r.path,
            "`key = new` is for routes without `{key}`: drop one of them",
        );
    }
    let names: Vec<String> = params.iter().map(|(n, _)| n.to_string()).collect();
    let mut rest = path.as_str();
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            d.spanned(&r.path, "unclosed `{` in the route");
            break;
        };
        let name = &rest[open + 1..open + close];
        if name != "key" && !names.iter().any(|n| n == name) {
            let cands = names.iter().map(String::as_str).chain(["key"]);
            d.spanned(
                &r.path,
                format!(
                    "`{{{name}}}` in the route is neither `{{key}}` nor a parameter of the \
                     handler{}",
                    did_you_mean(name, cands)
                ),
            );
        }
        rest = &rest[open + close + 1..];
    }
    Some(r)
}

/// A return type that cannot be a `Result` (an alias of one could be anything else): a
/// primitive, a common std type, a tuple, a reference, an array or a slice.
fn surely_not_result(ty: &Type) -> bool {
    const NOT: &[&str] = &[
        "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize",
        "f32", "f64", "bool", "char", "str", "String", "Vec", "Option", "HashMap", "BTreeMap",
        "HashSet", "BTreeSet", "Box",
    ];
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| NOT.contains(&s.ident.to_string().as_str())),
        Type::Tuple(_) | Type::Reference(_) | Type::Array(_) | Type::Slice(_) => true,
        _ => false,
    }
}
