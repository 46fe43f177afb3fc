//! The two forms of a lambda: an entity (`#[lambda(key = K, state = S)] impl Name { .. }`)
//! and a function (`#[lambda] async fn name(ctx: &mut Ctx<S>, event: E) -> R`).

use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, ImplItem, ItemFn, ItemImpl, Signature, Token, Type};

use super::handler::{ctx_param, params, return_type, route};
use super::{Form, Handler, Lambda, take_attr};
use crate::diag::{Diagnostics, did_you_mean, upper_camel};

/// Key/state/name arguments of `#[lambda(..)]`.
#[derive(Default)]
struct LambdaArgs {
    key: Option<Type>,
    state: Option<Type>,
    name: Option<Ident>,
    missing_not_found: bool,
    migrate: Option<syn::Path>,
    ttl_us: Option<u64>,
}

fn lambda_args(attr: &Attribute, d: &mut Diagnostics) -> LambdaArgs {
    let mut args = LambdaArgs::default();
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return args;
    }
    let res = attr.parse_args_with(|input: ParseStream| {
        while !input.is_empty() {
            let id: Ident = input.parse()?;
            let _: Token![=] = input.parse()?;
            match id.to_string().as_str() {
                "key" => args.key = Some(input.parse()?),
                "state" => args.state = Some(input.parse()?),
                "name" => args.name = Some(input.parse()?),
                "migrate" => args.migrate = Some(input.parse()?),
                "ttl" => {
                    let lit: syn::LitStr = input.parse()?;
                    let us = duration_us(&lit.value())
                        .ok_or_else(|| syn::Error::new(lit.span(), TTL_HELP))?;
                    args.ttl_us = Some(us);
                }
                "missing" => {
                    let v: Ident = input.parse()?;
                    if v != "not_found" {
                        return Err(syn::Error::new(
                            v.span(),
                            "`missing = not_found` is the only rule: handlers that do not \
                             `#[create]` answer \"not found\" for an instance never written",
                        ));
                    }
                    args.missing_not_found = true;
                }
                other => {
                    return Err(syn::Error::new(
                        id.span(),
                        format!(
                            "unknown `#[lambda]` argument `{other}`{}; expected `key`, `state`, \
                             `missing`, `migrate`, `ttl` or `name`",
                            did_you_mean(
                                other,
                                ["key", "state", "missing", "migrate", "ttl", "name"]
                            )
                        ),
                    ));
                }
            }
            if !input.is_empty() {
                let _: Token![,] = input.parse()?;
            }
        }
        Ok(())
    });
    if let Err(e) = res {
        d.push(e);
    }
    args
}

const TTL_HELP: &str = "`ttl` is how long an instance lives after its last write: a \
                        positive number and a unit, as in \"30d\", \"12h\", \"15m\", \"90s\" \
                        or \"500ms\"";

/// `"30d"`, `"12h"`, `"15m"`, `"90s"`, `"500ms"` in microseconds (`None`: not a duration).
fn duration_us(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
    let per: u64 = match unit.trim() {
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" | "min" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => return None,
    };
    n.checked_mul(per)
}

/// A function of an entity lambda's impl block: a handler, or a plain helper.
enum ImplFn {
    Handler(Box<Handler>),
    Helper(Box<syn::ImplItemFn>),
}

/// Classifies a function of `impl Name`; `None` (with an error) for a malformed handler.
fn impl_fn(name: &Ident, mut f: syn::ImplItemFn, d: &mut Diagnostics) -> Option<ImplFn> {
    if let Some(a) = take_attr(&mut f.attrs, "lambda") {
        d.spanned(
            &a,
            format!(
                "`#[lambda]` is not needed here: every `async fn` taking \
                 `ctx: &mut Ctx<Self>` inside `#[lambda] impl {name}` is a handler"
            ),
        );
    }
    let route_attr = take_attr(&mut f.attrs, "route");
    let public_attr = take_attr(&mut f.attrs, "public");
    let create_attr = take_attr(&mut f.attrs, "create");
    let ctx = ctx_param(&f.sig);
    let is_async = f.sig.asyncness.is_some();
    match (is_async, ctx) {
        (true, Some((ctx, ctx_mut, _))) => {
            let params = params(&f.sig, d);
            let ret = return_type(&f.sig, d);
            let route = route_attr.and_then(|a| route(&a, &params, d));
            let public = public_attr.is_some() || route.is_some();
            let creates = create_attr.is_some() || route.as_ref().is_some_and(|r| r.new_key);
            Some(ImplFn::Handler(Box::new(Handler {
                attrs: f.attrs,
                vis: f.vis,
                sig: f.sig,
                block: f.block,
                ctx,
                ctx_mut,
                params,
                ret,
                route,
                public,
                creates,
            })))
        }
        (true, None) => {
            d.at(
                if f.sig.inputs.is_empty() {
                    f.sig.ident.span()
                } else {
                    f.sig.inputs.span()
                },
                format!(
                    "handler `{}` must take the context first: \
                     `async fn {}(ctx: &mut Ctx<Self>, ..)`",
                    f.sig.ident, f.sig.ident
                ),
            );
            None
        }
        (false, Some(_)) => {
            d.spanned(
                f.sig.fn_token,
                format!(
                    "handler `{}` must be an `async fn` (it takes the context)",
                    f.sig.ident
                ),
            );
            None
        }
        (false, None) => {
            if let Some(a) = route_attr {
                d.spanned(
                    &a,
                    "`#[route]` goes on a handler (an `async fn` taking ctx)",
                );
            }
            for (a, what) in [(public_attr, "public"), (create_attr, "create")] {
                if let Some(a) = a {
                    d.spanned(
                        &a,
                        format!("`#[{what}]` goes on a handler (an `async fn` taking ctx)"),
                    );
                }
            }
            Some(ImplFn::Helper(Box::new(f)))
        }
    }
}

pub(crate) fn entity(attr: &Attribute, mut imp: ItemImpl, d: &mut Diagnostics) -> Option<Lambda> {
    let args = lambda_args(attr, d);
    if let Some(n) = &args.name {
        d.spanned(
            n,
            "`name = ..` is for the function form; an entity lambda is named by its type",
        );
    }
    let name = match (&imp.trait_, &*imp.self_ty) {
        (None, Type::Path(p)) if p.qself.is_none() && p.path.get_ident().is_some() => {
            p.path.get_ident().cloned()
        }
        _ => None,
    };
    let Some(name) = name else {
        d.spanned(
            &imp.self_ty,
            "`#[lambda]` goes on an inherent impl of a plain type name: `impl Stock { .. }`",
        );
        return None;
    };
    if !imp.generics.params.is_empty() {
        d.spanned(&imp.generics, "lambdas cannot be generic");
    }
    let mut state = args.state;
    let mut handlers = Vec::new();
    let mut helpers = Vec::new();
    for item in std::mem::take(&mut imp.items) {
        match item {
            ImplItem::Type(t) if t.ident == "State" => {
                if state.is_some() {
                    d.spanned(
                        &t.ident,
                        "the state type is given twice (`state = ..` and here)",
                    );
                }
                state = Some(t.ty);
            }
            ImplItem::Fn(f) => match impl_fn(&name, f, d) {
                Some(ImplFn::Handler(h)) => handlers.push(*h),
                Some(ImplFn::Helper(f)) => helpers.push(ImplItem::Fn(*f)),
                None => {}
            },
            other => helpers.push(other),
        }
    }
    let key = args.key;
    if key.is_none() {
        d.spanned(
            attr,
            format!(
                "lambda `{name}` needs a key type: `#[lambda(key = String, state = {name}State)]`"
            ),
        );
    }
    Some(Lambda {
        name,
        form: Form::Entity,
        key,
        state: state.unwrap_or_else(|| syn::parse_quote!(())),
        event: None,
        handlers,
        missing_not_found: args.missing_not_found,
        migrate: args.migrate,
        ttl_us: args.ttl_us,
        schema: 0,
        helpers,
        attrs: imp.attrs,
        file: None,
    })
}

/// Replaces `Ctx<State>` by `Ctx<Name>` in the first parameter.
fn rewrite_ctx(sig: &mut Signature, name: &Ident) {
    if let Some(FnArg::Typed(pt)) = sig.inputs.first_mut()
        && let Type::Reference(r) = &mut *pt.ty
        && let Type::Path(p) = &mut *r.elem
        && let Some(seg) = p.path.segments.last_mut()
        && let syn::PathArguments::AngleBracketed(args) = &mut seg.arguments
        && let Some(syn::GenericArgument::Type(t)) = args.args.first_mut()
    {
        *t = syn::parse_quote!(#name);
    }
}

pub(crate) fn function(attr: &Attribute, mut f: ItemFn, d: &mut Diagnostics) -> Option<Lambda> {
    let args = lambda_args(attr, d);
    if let Some(k) = &args.key {
        d.spanned(
            k,
            "a function-form lambda takes its key from its event (`#[key]` field)",
        );
    }
    if let Some(s) = &args.state {
        d.spanned(
            s,
            "a function-form lambda takes its state type from `ctx: &mut Ctx<State>`",
        );
    }
    if f.sig.asyncness.is_none() {
        d.spanned(
            f.sig.fn_token,
            "`#[lambda]` goes on an `impl` block (entity form) or an `async fn` (function form)",
        );
        return None;
    }
    let Some((ctx, ctx_mut, state)) = ctx_param(&f.sig) else {
        d.spanned(
            &f.sig.ident,
            format!(
                "a function-form lambda takes the context first: `async fn {}(ctx: &mut \
                 Ctx<State>, event: Event)`",
                f.sig.ident
            ),
        );
        return None;
    };
    let params = params(&f.sig, d);
    if params.len() != 1 {
        d.spanned(
            &f.sig.inputs,
            "a function-form lambda takes the context and exactly one event (a `#[derive(Keyed)]` \
             type)",
        );
        return None;
    }
    let ret = return_type(&f.sig, d);
    let route_attr = take_attr(&mut f.attrs, "route");
    let public_attr = take_attr(&mut f.attrs, "public");
    // A function-form lambda runs on any instance: its one handler always creates.
    let _ = take_attr(&mut f.attrs, "create");
    let route = route_attr.and_then(|a| route(&a, &params, d));
    let public = public_attr.is_some() || route.is_some();
    let name = args
        .name
        .unwrap_or_else(|| Ident::new(&upper_camel(&f.sig.ident.to_string()), f.sig.ident.span()));
    rewrite_ctx(&mut f.sig, &name);
    let event = params[0].1.clone();
    Some(Lambda {
        name,
        form: Form::Function,
        key: None,
        state,
        event: Some(event),
        handlers: vec![Handler {
            attrs: f.attrs,
            vis: f.vis,
            sig: f.sig,
            block: *f.block,
            ctx,
            ctx_mut,
            params,
            ret,
            route,
            public,
            creates: true,
        }],
        missing_not_found: args.missing_not_found,
        migrate: args.migrate,
        ttl_us: args.ttl_us,
        schema: 0,
        helpers: Vec::new(),
        attrs: Vec::new(),
        file: None,
    })
}
