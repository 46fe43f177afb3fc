//! The typed AST of an `#[app]` module: its lambdas, their handlers and routes, and the other
//! items. Keeps the user's tokens so that every diagnostic points at them.

use std::collections::HashSet;
use std::path::PathBuf;

use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Block, Ident, ImplItem, Item, ItemMod, LitStr, Signature, Type, Visibility};

mod handler;
mod lambda;

pub use handler::ctx_param;
pub(crate) use lambda::{entity, function};

use crate::diag::Diagnostics;
use crate::files::LoadError;

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

/// `#[route(method, "path")]` or `#[route(method, "path", key = new)]` on a handler.
pub struct Route {
    /// `get`, `post`, `put` or `delete`.
    pub method: Ident,
    /// The path template.
    pub path: LitStr,
    /// `key = new`: the path has no `{key}`; each request gets a fresh key.
    pub new_key: bool,
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
    /// Callable from outside: it has a route or `#[public]`.
    pub public: bool,
    /// May run on an instance that does not exist (`#[create]`, or a `key = new` route).
    pub creates: bool,
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
    /// `missing = not_found`: a handler that does not create answers "not found" on an
    /// instance that does not exist, without running.
    pub missing_not_found: bool,
    /// `migrate = f`: `f(Old) -> State` converts values an older schema of the state wrote.
    pub migrate: Option<syn::Path>,
    /// `ttl = "30d"`: instances not written for this long (µs) expire.
    pub ttl_us: Option<u64>,
    /// Fingerprint of the state type's definition (set by `#[app]` from the module's items).
    pub schema: u32,
    /// Other items of the entity form's impl block (plain helper functions, constants).
    pub helpers: Vec<ImplItem>,
    /// Attributes of the impl block (entity form) other than `#[lambda]`.
    pub attrs: Vec<Attribute>,
    /// The file module that declares it (`mod stock;`), where `#[lambda]` expands it; `None`
    /// for a lambda inside the app module's braces, which `#[app]` expands.
    pub file: Option<Ident>,
}

impl Lambda {
    /// The lambda's type as the app module names it: `Stock` or `stock::Stock`.
    pub fn path(&self) -> proc_macro2::TokenStream {
        let name = &self.name;
        match &self.file {
            Some(m) => quote::quote!(#m::#name),
            None => quote::quote!(#name),
        }
    }
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
    /// The items of its file modules (read for the graph and the state fingerprints; rustc
    /// compiles the files themselves).
    pub file_items: Vec<Item>,
}

pub(crate) fn take_attr(attrs: &mut Vec<Attribute>, name: &str) -> Option<Attribute> {
    let i = attrs.iter().position(|a| is_attr(a, name))?;
    Some(attrs.remove(i))
}

fn is_attr(a: &Attribute, name: &str) -> bool {
    a.path().is_ident(name)
}

/// Parses an `#[app]` module. Errors are recorded in `d`; whatever could be understood is
/// returned so that the rest can still be checked and a fallback emitted.
///
/// `dirs` are where the module's file modules may be (see [`crate::files`]); empty when the
/// compiler did not say where the module is written.
pub fn parse_module(module: ItemMod, dirs: &[PathBuf], d: &mut Diagnostics) -> Option<AppModule> {
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
    let mut file_items = Vec::new();
    for item in content {
        match item {
            Item::Mod(m) if m.content.is_none() => {
                let (item, found, read) = file_module(m, dirs, d);
                lambdas.extend(found);
                file_items.extend(read);
                items.extend(item);
            }
            Item::Impl(mut imp) => match take_attr(&mut imp.attrs, "lambda") {
                Some(attr) => lambdas.extend(lambda::entity(&attr, imp, d)),
                None => items.push(Item::Impl(imp)),
            },
            Item::Fn(mut f) => match take_attr(&mut f.attrs, "lambda") {
                Some(attr) => lambdas.extend(lambda::function(&attr, f, d)),
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
        file_items,
    })
}

/// `mod name;`: the lambdas its file declares and its other items. The file's own errors are
/// left to rustc and `#[lambda]`, which see its real spans.
fn file_module(
    mut m: ItemMod,
    dirs: &[PathBuf],
    d: &mut Diagnostics,
) -> (Option<Item>, Vec<Lambda>, Vec<Item>) {
    if dirs.is_empty() {
        d.spanned(
            &m,
            "cannot find the file of this module: the compiler did not say where the app \
             module is written; put the module's items inside the app's braces",
        );
        return (None, Vec::new(), Vec::new());
    }
    let file = match crate::files::load(dirs, &mut m) {
        Ok(f) => f,
        // A module that cannot be read is left out: rustc would only repeat the error.
        Err(LoadError::Missing(e)) => {
            d.spanned(&m.ident, e);
            return (None, Vec::new(), Vec::new());
        }
        // rustc compiles it and says where it does not parse.
        Err(LoadError::Syntax) => return (Some(Item::Mod(m)), Vec::new(), Vec::new()),
    };
    // Errors in the file are reported by `#[lambda]` and rustc, on the file's own spans.
    let mut scratch = Diagnostics::default();
    let mut lambdas = Vec::new();
    let mut others = Vec::new();
    let mut lambda_attrs = Vec::new();
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .and_then(|d| std::fs::read_to_string(PathBuf::from(d).join("Cargo.toml")).ok());
    for item in &file.items {
        let attrs = match item {
            Item::Impl(i) => &i.attrs,
            Item::Fn(f) => &f.attrs,
            _ => continue,
        };
        lambda_attrs.extend(
            attrs
                .iter()
                .filter(|a| {
                    a.path()
                        .segments
                        .last()
                        .is_some_and(|s| s.ident == "lambda")
                })
                .map(|a| a.path().clone()),
        );
    }
    for lack in crate::files::lacks(&file, &lambda_attrs, manifest.as_deref()) {
        d.spanned(&m.ident, lack);
    }
    for item in file.items {
        let found = match item {
            Item::Impl(mut imp) => match take_attr(&mut imp.attrs, "lambda") {
                Some(attr) => lambda::entity(&attr, imp, &mut scratch),
                None => {
                    others.push(Item::Impl(imp));
                    None
                }
            },
            Item::Fn(mut f) => match take_attr(&mut f.attrs, "lambda") {
                Some(attr) => lambda::function(&attr, f, &mut scratch),
                None => {
                    others.push(Item::Fn(f));
                    None
                }
            },
            other => {
                others.push(other);
                None
            }
        };
        lambdas.extend(found.map(|mut l| {
            l.file = Some(file.ident.clone());
            l
        }));
    }
    (Some(Item::Mod(m)), lambdas, others)
}
