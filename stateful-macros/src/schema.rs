//! The schema fingerprint of a lambda's state type: a hash of the type's definition as the
//! module writes it (fields, their types, `serde` attributes) and of the definitions of the
//! module's own types that it names, transitively. Doc comments, other attributes and
//! visibility do not count. A type defined outside the module counts by its path only.
//!
//! The runtime stores the fingerprint with every value and in the data dir: when it changes,
//! start-up reads every stored instance once to prove the new type still reads them.

use std::collections::{HashMap, HashSet, VecDeque};

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Attribute, Fields, Item, Type, Visibility};

/// The fingerprint of `state` among the module's `items`.
pub fn fingerprint(state: &Type, items: &[Item]) -> u32 {
    let defs: HashMap<String, String> = items.iter().filter_map(definition).collect();
    let mut text = state.to_token_stream().to_string();
    let mut queue: VecDeque<String> = idents(state.to_token_stream()).into();
    let mut seen = HashSet::new();
    while let Some(name) = queue.pop_front() {
        let Some(def) = defs.get(&name) else { continue };
        if !seen.insert(name) {
            continue;
        }
        text.push('\n');
        text.push_str(def);
        if let Ok(tokens) = def.parse::<TokenStream>() {
            queue.extend(idents(tokens));
        }
    }
    fnv1a(text.as_bytes())
}

/// A type definition, normalised: `(name, tokens)`.
fn definition(item: &Item) -> Option<(String, String)> {
    let mut item = item.clone();
    let name = match &mut item {
        Item::Struct(s) => {
            keep_serde(&mut s.attrs);
            s.vis = Visibility::Inherited;
            fields(&mut s.fields);
            s.ident.to_string()
        }
        Item::Enum(e) => {
            keep_serde(&mut e.attrs);
            e.vis = Visibility::Inherited;
            for v in &mut e.variants {
                keep_serde(&mut v.attrs);
                fields(&mut v.fields);
            }
            e.ident.to_string()
        }
        Item::Type(t) => {
            keep_serde(&mut t.attrs);
            t.vis = Visibility::Inherited;
            t.ident.to_string()
        }
        _ => return None,
    };
    Some((name, item.to_token_stream().to_string()))
}

fn fields(fields: &mut Fields) {
    for f in fields.iter_mut() {
        keep_serde(&mut f.attrs);
        f.vis = Visibility::Inherited;
    }
}

fn keep_serde(attrs: &mut Vec<Attribute>) {
    attrs.retain(|a| a.path().is_ident("serde"));
}

fn idents(tokens: TokenStream) -> Vec<String> {
    let mut out = Vec::new();
    for t in tokens {
        match t {
            TokenTree::Ident(i) => out.push(i.to_string()),
            TokenTree::Group(g) => out.extend(idents(g.stream())),
            _ => {}
        }
    }
    out
}

/// FNV-1a, 32 bits: stable across builds and compilers (std's hasher promises neither).
fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(state: &str, module: &str) -> u32 {
        let file: syn::File = syn::parse_str(module).expect("module parses");
        fingerprint(&syn::parse_str(state).expect("type"), &file.items)
    }

    #[test]
    fn docs_and_derives_do_not_count_fields_and_serde_do() {
        let base = fp("S", "struct S { a: u32 }");
        assert_eq!(
            base,
            fp(
                "S",
                "/// doc\n#[derive(Clone)] pub struct S { /// f\n pub a: u32 }"
            )
        );
        assert_ne!(base, fp("S", "struct S { a: u32, b: u32 }"));
        assert_ne!(base, fp("S", "struct S { a: u64 }"));
        assert_ne!(base, fp("S", "struct S { #[serde(default)] a: u32 }"));
    }

    #[test]
    fn a_named_type_of_the_module_counts_transitively() {
        let m = |inner: &str| format!("struct S {{ a: Vec<A> }} struct A {{ b: B }} {inner}");
        assert_ne!(
            fp("S", &m("struct B { x: u8 }")),
            fp("S", &m("struct B { x: u16 }"))
        );
        assert_eq!(
            fp("S", &m("struct B { x: u8 } struct Unrelated { y: u8 }")),
            fp("S", &m("struct B { x: u8 } struct Unrelated { y: u64 }"))
        );
        assert_ne!(fp("i64", ""), fp("u64", ""));
    }
}
