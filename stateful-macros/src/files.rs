//! File modules of an app: `app_modules! { mod shop { mod stock; mod order; } }` keeps `mod stock;` for
//! rustc to compile (so every error in `stock.rs` points into `stock.rs`) and reads the file
//! itself, so that the graph and the checks see the lambdas it declares. Part of the `ast`
//! stage of the pipeline.
//!
//! Paths follow rustc's rules for a module declared inside an inline module: next to a crate
//! root or `mod.rs` the app `shop`'s files are in `shop/`, next to `src/x.rs` in `src/x/shop/`;
//! `stock` is `stock.rs` or `stock/mod.rs` there, or what its `#[path = ".."]` says.

use std::path::{Path, PathBuf};

use syn::{Ident, Item, ItemMod, LitStr};

/// A `mod name;` of an app module, read from its file.
pub struct FileModule {
    /// The module's name.
    pub ident: Ident,
    /// The file it was read from.
    pub path: PathBuf,
    /// The file's items, as parsed (their spans do not point into the file).
    pub items: Vec<Item>,
}

/// Where the files of app module `app`, declared in `source`, can be: `shop/` next to
/// `source` when `source` owns its directory (a crate root or a `mod.rs`), `x/shop/` next to it
/// when it is `x.rs`. A macro cannot tell a crate root from a module file, so both are tried.
pub fn app_dirs(source: &Path, app: &Ident) -> Vec<PathBuf> {
    let parent = source.parent().unwrap_or(Path::new(""));
    let mut dirs = vec![parent.join(app.to_string())];
    let stem = source.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if !matches!(stem, "mod" | "main" | "lib") {
        dirs.push(parent.join(stem).join(app.to_string()));
    }
    dirs
}

/// The file of `mod name;` in one of the app's directories `dirs`: exactly one candidate may
/// exist.
pub fn resolve(dirs: &[PathBuf], m: &ItemMod) -> Result<PathBuf, String> {
    let name = m.ident.to_string();
    let candidates: Vec<PathBuf> = match path_attr(m)? {
        Some(p) => dirs.iter().map(|d| d.join(&p)).collect(),
        None => dirs
            .iter()
            .flat_map(|d| [d.join(format!("{name}.rs")), d.join(&name).join("mod.rs")])
            .collect(),
    };
    let found: Vec<&PathBuf> = candidates.iter().filter(|p| p.is_file()).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "module `{name}` of the app has no file: looked for {}",
            list(candidates.iter())
        )),
        many => Err(format!(
            "module `{name}` of the app is more than one file: {}; keep one",
            list(many.iter().copied())
        )),
    }
}

fn list<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> String {
    let all: Vec<String> = paths.map(|p| p.display().to_string()).collect();
    all.join(" or ")
}

fn path_attr(m: &ItemMod) -> Result<Option<String>, String> {
    let Some(a) = m.attrs.iter().find(|a| a.path().is_ident("path")) else {
        return Ok(None);
    };
    match &a.meta {
        syn::Meta::NameValue(nv) => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Ok(Some(s.value())),
            _ => Err("`#[path]` takes a string: `#[path = \"stock.rs\"]`".into()),
        },
        _ => Err("`#[path]` takes a string: `#[path = \"stock.rs\"]`".into()),
    }
}

/// Why a file module was not read.
pub enum LoadError {
    /// No file, or one that cannot be read: the message says which.
    Missing(String),
    /// The file does not parse; rustc, compiling it, reports where.
    Syntax,
}

/// Reads and parses the file of `m`, and points `m` at it (`#[path = "/abs/file.rs"]`), so
/// that rustc compiles the file that was analysed.
pub fn load(dirs: &[PathBuf], m: &mut ItemMod) -> Result<FileModule, LoadError> {
    let path = resolve(dirs, m).map_err(LoadError::Missing)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| LoadError::Missing(format!("cannot read {}: {e}", path.display())))?;
    m.attrs.retain(|a| !a.path().is_ident("path"));
    let lit = LitStr::new(&path.to_string_lossy(), m.ident.span());
    m.attrs.push(syn::parse_quote!(#[path = #lit]));
    let file = syn::parse_file(&text).map_err(|_| LoadError::Syntax)?;
    Ok(FileModule {
        ident: m.ident.clone(),
        path,
        items: file.items,
    })
}

/// What a file module lacks that rustc would report as a cascade of errors elsewhere: the
/// import of `#[lambda]` (the prelude), and a `serde` dependency for types deriving serde's
/// traits. One message each, for the app to report on the module's name.
pub fn lacks(file: &FileModule, lambda_attrs: &[syn::Path], manifest: Option<&str>) -> Vec<String> {
    let shown = file.path.display();
    let mut out = Vec::new();
    let imports = file.items.iter().any(|i| {
        matches!(i, Item::Use(u) if {
            let t = quote::ToTokens::to_token_stream(&u.tree).to_string();
            t.contains("prelude") || t.contains("lambda") || t.contains('*')
        })
    });
    if !imports && lambda_attrs.iter().any(|p| p.is_ident("lambda")) {
        out.push(format!(
            "{shown} uses `#[lambda]` without importing it: add `use stateful_runtime::prelude::*;` at its top (a file module does not get the app module's prelude)"
        ));
    }
    let derived: Vec<String> = file.items.iter().filter_map(serde_derived).collect();
    if let (Some(first), Some(manifest)) = (derived.first(), manifest)
        && !has_serde_dependency(manifest)
    {
        out.push(format!(
            "{shown}: `{first}` derives serde's traits, which in a file module need `serde = {{ version = \"1\", features = [\"derive\"] }}` in Cargo.toml (or keep the type inside the app module's braces, where `#[app]` points the derives at the runtime's serde)"
        ));
    }
    out
}

/// The name of a struct or enum deriving `Serialize` or `Deserialize` without naming a serde
/// crate of its own.
fn serde_derived(item: &Item) -> Option<String> {
    let (ident, attrs) = match item {
        Item::Struct(s) => (&s.ident, &s.attrs),
        Item::Enum(e) => (&e.ident, &e.attrs),
        _ => return None,
    };
    let derives = crate::state_check::derives(attrs, "Serialize")
        || crate::state_check::derives(attrs, "Deserialize");
    let names_crate = attrs.iter().any(|a| {
        a.path().is_ident("serde")
            && quote::ToTokens::to_token_stream(a)
                .to_string()
                .contains("crate")
    });
    (derives && !names_crate).then(|| ident.to_string())
}

/// Whether a `Cargo.toml` lists `serde` among its dependencies.
fn has_serde_dependency(manifest: &str) -> bool {
    manifest.lines().map(str::trim).any(|l| {
        l.starts_with("serde =")
            || l.starts_with("serde=")
            || l.starts_with("serde.")
            || l == "[dependencies.serde]"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(s: &str) -> Ident {
        Ident::new(s, proc_macro2::Span::call_site())
    }

    #[test]
    fn a_serde_dependency_is_recognised() {
        assert!(has_serde_dependency(
            "[dependencies]\nserde = { version = \"1\" }\n"
        ));
        assert!(has_serde_dependency(
            "[dependencies]\nserde.workspace = true\n"
        ));
        assert!(!has_serde_dependency(
            "[dependencies]\nserde_json = \"1\"\n"
        ));
    }

    #[test]
    fn a_file_without_the_prelude_or_serde_is_told_what_to_add() {
        let file = FileModule {
            ident: ident("book"),
            path: PathBuf::from("src/app/book.rs"),
            items: vec![syn::parse_quote! {
                #[derive(Serialize, Deserialize, Default, Clone)]
                pub struct Copies { n: u32 }
            }],
        };
        let lambda: syn::Path = syn::parse_quote!(lambda);
        let got = lacks(
            &file,
            &[lambda],
            Some("[dependencies]\nstateful-runtime = \"1\"\n"),
        );
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("use stateful_runtime::prelude::*;"));
        assert!(got[1].contains("`Copies` derives serde's traits"));
    }

    #[test]
    fn the_app_dirs_follow_rustc() {
        let shop = ident("shop");
        let dirs = |s: &str| app_dirs(Path::new(s), &shop);
        assert_eq!(dirs("/c/src/main.rs"), [PathBuf::from("/c/src/shop")]);
        assert_eq!(dirs("/c/src/a/mod.rs"), [PathBuf::from("/c/src/a/shop")]);
        assert_eq!(
            dirs("/c/src/app.rs"),
            [
                PathBuf::from("/c/src/shop"),
                PathBuf::from("/c/src/app/shop")
            ]
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let m: ItemMod = syn::parse_quote!(
            mod stock;
        );
        let e = resolve(&[PathBuf::from("/nowhere/shop")], &m).err();
        let e = e.unwrap_or_default();
        assert!(e.contains("/nowhere/shop/stock.rs"), "{e}");
        assert!(e.contains("/nowhere/shop/stock/mod.rs"), "{e}");
    }

    #[test]
    fn a_path_attribute_is_followed() {
        let dir = std::env::temp_dir().join(format!("stateful-files-{}", std::process::id()));
        let made = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("inventory.rs"), "pub struct X;"));
        assert!(made.is_ok(), "{made:?}");
        let m: ItemMod = syn::parse_quote!(
            #[path = "inventory.rs"]
            mod stock;
        );
        assert_eq!(
            resolve(std::slice::from_ref(&dir), &m),
            Ok(dir.join("inventory.rs"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
