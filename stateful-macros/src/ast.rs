//! The typed AST of an `#[app]` module: its lambdas, their handlers and routes, and the other
//! items. Keeps the user's tokens so that every diagnostic points at them.

use std::collections::HashSet;

use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{
    Attribute, Block, FnArg, Ident, ImplItem, Item, ItemFn, ItemImpl, ItemMod, LitStr, Pat,
    ReturnType, Signature, Token, Type, Visibility,
};

use crate::diag::{Diagnostics, did_you_mean, upper_camel};

/// Arguments of `#[app]` / `#[app(main)]`.
pub struct AppArgs {
    /// Also emit a crate-level `fn main` calling the module's `main`.
    pub main: bool,
}

impl Parse for AppArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(AppArgs { main: false });
        }
        let id: Ident = input.parse()?;
        if id != "main" {
            return Err(syn::Error::new(
                id.span(),
                format!(
                    "unknown `#[app]` argument `{id}`; the only one is `main` (`#[app(main)]`)"
                ),
            ));
        }
        Ok(AppArgs { main: true })
    }
}

/// How a lambda is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Form {
    /// `#[lambda(key = K, state = S)] impl Name { .. }`.
    Entity,
    /// `#[lambda] async fn name(ctx: &mut Ctx<S>, event: E) -> R`.
    Function,
}

/// `#[route(method, "path")]` on a handler.
pub struct Route {
    /// `get`, `post`, `put` or `delete`.
    pub method: Ident,
    /// The path template.
    pub path: LitStr,
}

/// A handler: an `async fn` whose first parameter is the context.
pub struct Handler {
    /// Attributes other than `#[route]`.
    pub attrs: Vec<Attribute>,
    /// Visibility as written.
    pub vis: Visibility,
    /// The signature (the function form's `Ctx<State>` already rewritten to `Ctx<Name>`).
    pub sig: Signature,
    /// The body (rewritten by the analyser).
    pub block: Block,
    /// The context parameter's name.
    pub ctx: Ident,
    /// Whether the context is taken as `&mut`.
    pub ctx_mut: bool,
    /// Parameters after the context.
    pub params: Vec<(Ident, Type)>,
    /// The declared return type.
    pub ret: Type,
    /// The HTTP route, if any.
    pub route: Option<Route>,
}

impl Handler {
    /// The handler's name.
    pub fn name(&self) -> &Ident {
        &self.sig.ident
    }
}

/// A lambda of the module.
pub struct Lambda {
    /// The lambda's name (the type that implements `Lambda`).
    pub name: Ident,
    /// How it is written.
    pub form: Form,
    /// The key type (entity form); the function form's key comes from its event.
    pub key: Option<Type>,
    /// The state type.
    pub state: Type,
    /// The input event (function form).
    pub event: Option<Type>,
    /// Handlers in index order.
    pub handlers: Vec<Handler>,
    /// Other items of the entity form's impl block (plain helper functions, constants).
    pub helpers: Vec<ImplItem>,
    /// Attributes of the impl block (entity form) other than `#[lambda]`.
    pub attrs: Vec<Attribute>,
}

/// An `#[app]` module, parsed.
pub struct AppModule {
    /// Module attributes.
    pub attrs: Vec<Attribute>,
    /// Module visibility.
    pub vis: Visibility,
    /// Module name.
    pub name: Ident,
    /// The lambdas, in declaration order (their index is their id).
    pub lambdas: Vec<Lambda>,
    /// Every other item, as written.
    pub items: Vec<Item>,
    /// Names of types the module defines itself.
    pub types: HashSet<String>,
}

fn is_attr(a: &Attribute, name: &str) -> bool {
    a.path().is_ident(name)
}

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
fn params(sig: &Signature, d: &mut Diagnostics) -> Vec<(Ident, Type)> {
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

fn return_type(sig: &Signature, d: &mut Diagnostics) -> Type {
    match &sig.output {
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
        Ok(Route { method, path })
    }
}

/// Parses and checks `#[route(..)]` against the handler's parameter names.
fn route(attr: &Attribute, params: &[(Ident, Type)], d: &mut Diagnostics) -> Option<Route> {
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

/// Key/state/name arguments of `#[lambda(..)]`.
#[derive(Default)]
struct LambdaArgs {
    key: Option<Type>,
    state: Option<Type>,
    name: Option<Ident>,
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
                other => {
                    return Err(syn::Error::new(
                        id.span(),
                        format!(
                            "unknown `#[lambda]` argument `{other}`{}; expected `key`, `state` \
                             or `name`",
                            did_you_mean(other, ["key", "state", "name"])
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

fn take_attr(attrs: &mut Vec<Attribute>, name: &str) -> Option<Attribute> {
    let i = attrs.iter().position(|a| is_attr(a, name))?;
    Some(attrs.remove(i))
}

fn entity(attr: &Attribute, mut imp: ItemImpl, d: &mut Diagnostics) -> Option<Lambda> {
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
            ImplItem::Fn(mut f) => {
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
                let ctx = ctx_param(&f.sig);
                let is_async = f.sig.asyncness.is_some();
                match (is_async, ctx) {
                    (true, Some((ctx, ctx_mut, _))) => {
                        let params = params(&f.sig, d);
                        let ret = return_type(&f.sig, d);
                        let route = route_attr.and_then(|a| route(&a, &params, d));
                        handlers.push(Handler {
                            attrs: f.attrs,
                            vis: f.vis,
                            sig: f.sig,
                            block: f.block,
                            ctx,
                            ctx_mut,
                            params,
                            ret,
                            route,
                        });
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
                    }
                    (false, Some(_)) => d.spanned(
                        f.sig.fn_token,
                        format!(
                            "handler `{}` must be an `async fn` (it takes the context)",
                            f.sig.ident
                        ),
                    ),
                    (false, None) => {
                        if let Some(a) = route_attr {
                            d.spanned(
                                &a,
                                "`#[route]` goes on a handler (an `async fn` taking ctx)",
                            );
                        }
                        helpers.push(ImplItem::Fn(f));
                    }
                }
            }
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
        helpers,
        attrs: imp.attrs,
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

fn function(attr: &Attribute, mut f: ItemFn, d: &mut Diagnostics) -> Option<Lambda> {
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
    let route = route_attr.and_then(|a| route(&a, &params, d));
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
        }],
        helpers: Vec::new(),
        attrs: Vec::new(),
    })
}

/// Parses an `#[app]` module. Errors are recorded in `d`; whatever could be understood is
/// returned so that the rest can still be checked and a fallback emitted.
pub fn parse_module(module: ItemMod, d: &mut Diagnostics) -> Option<AppModule> {
    let Some((_, content)) = module.content else {
        d.spanned(
            &module.ident,
            "`#[app]` needs the module's items inline: `#[app] mod shop { .. }`",
        );
        return None;
    };
    let mut lambdas = Vec::new();
    let mut items = Vec::new();
    let mut types = HashSet::new();
    for item in content {
        match item {
            Item::Impl(mut imp) => match take_attr(&mut imp.attrs, "lambda") {
                Some(attr) => lambdas.extend(entity(&attr, imp, d)),
                None => items.push(Item::Impl(imp)),
            },
            Item::Fn(mut f) => match take_attr(&mut f.attrs, "lambda") {
                Some(attr) => lambdas.extend(function(&attr, f, d)),
                None => items.push(Item::Fn(f)),
            },
            mut other => {
                let attrs = match &mut other {
                    Item::Struct(s) => {
                        types.insert(s.ident.to_string());
                        Some(&mut s.attrs)
                    }
                    Item::Enum(e) => {
                        types.insert(e.ident.to_string());
                        Some(&mut e.attrs)
                    }
                    Item::Type(t) => {
                        types.insert(t.ident.to_string());
                        Some(&mut t.attrs)
                    }
                    Item::Union(u) => {
                        types.insert(u.ident.to_string());
                        Some(&mut u.attrs)
                    }
                    Item::Const(c) => Some(&mut c.attrs),
                    Item::Static(s) => Some(&mut s.attrs),
                    Item::Mod(m) => Some(&mut m.attrs),
                    Item::Trait(t) => Some(&mut t.attrs),
                    _ => None,
                };
                if let Some(a) = attrs.and_then(|a| take_attr(a, "lambda")) {
                    d.spanned(
                        &a,
                        "`#[lambda]` goes on an `impl` block (entity form) or an `async fn` \
                         (function form)",
                    );
                }
                items.push(other);
            }
        }
    }
    Some(AppModule {
        attrs: module.attrs,
        vis: module.vis,
        name: module.ident,
        lambdas,
        items,
        types,
    })
}
