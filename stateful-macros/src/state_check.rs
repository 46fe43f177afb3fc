//! The state types the module defines: each must implement what lambda state needs
//! (`Serialize`, `Deserialize`, `Default`, `Clone`), derived or written in the module. One
//! error on the type's name lists what is missing (rustc would report each missing trait,
//! at the lambda). A state type defined elsewhere is left to rustc.

use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Item, Token, Type};

use crate::ast::AppModule;
use crate::diag::Diagnostics;

const NEEDED: [&str; 4] = ["Serialize", "Deserialize", "Default", "Clone"];

/// Checks every lambda's state type that the module defines.
pub fn check_state_types(app: &AppModule, d: &mut Diagnostics) {
    let mut seen = Vec::new();
    for l in app.lambdas.iter().filter(|l| l.file.is_none()) {
        let Some(name) = single_ident(&l.state) else {
            continue;
        };
        if seen.contains(&name.to_string()) {
            continue;
        }
        seen.push(name.to_string());
        let Some((ident, attrs)) = definition(&app.items, name) else {
            continue;
        };
        let missing: Vec<&str> = NEEDED
            .iter()
            .copied()
            .filter(|t| !derives(attrs, t) && !implemented(&app.items, name, t))
            .collect();
        if !missing.is_empty() {
            d.spanned(
                ident,
                format!(
                    "`{name}` is the state of lambda `{}` and must implement {}: add \
                     `#[derive({})]`",
                    l.name,
                    NEEDED.join(", "),
                    missing.join(", ")
                ),
            );
        }
    }
}

fn single_ident(ty: &Type) -> Option<&Ident> {
    match ty {
        Type::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
            Some(&p.path.segments[0].ident)
        }
        _ => None,
    }
}

fn definition<'a>(items: &'a [Item], name: &Ident) -> Option<(&'a Ident, &'a [Attribute])> {
    items.iter().find_map(|i| match i {
        Item::Struct(s) if s.ident == *name => Some((&s.ident, s.attrs.as_slice())),
        Item::Enum(e) if e.ident == *name => Some((&e.ident, e.attrs.as_slice())),
        _ => None,
    })
}

/// Whether `attrs` derive `t` (by its last path segment: `serde::Serialize` counts).
pub(crate) fn derives(attrs: &[Attribute], t: &str) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("derive"))
        .any(|a| {
            a.parse_args_with(Punctuated::<syn::Path, Token![,]>::parse_terminated)
                .is_ok_and(|ps| {
                    ps.iter()
                        .any(|p| p.segments.last().is_some_and(|s| s.ident == t))
                })
        })
}

/// `impl .. t .. for name` written in the module.
fn implemented(items: &[Item], name: &Ident, t: &str) -> bool {
    items.iter().any(|i| match i {
        Item::Impl(imp) => {
            imp.trait_
                .as_ref()
                .is_some_and(|(_, path, _)| path.segments.last().is_some_and(|s| s.ident == t))
                && matches!(&*imp.self_ty, Type::Path(p) if p.path.is_ident(name))
        }
        _ => false,
    })
}
