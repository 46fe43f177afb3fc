//! The layers of the runtime import one way: `{service, testing} → tools → engine → {sdk,
//! storage}` (testing: beside the service, on the engine).
//! This reads every source file of every layer and fails on a path that points up or sideways
//! (`crate::x`, or `super::` climbing out of the layer), and on an outside crate a layer must
//! not know (timely in the sdk, JSON in the tools, ...).
#![allow(missing_docs)]

use std::path::{Path, PathBuf};

/// Each layer and the layers it may name.
const ALLOWED: &[(&str, &[&str])] = &[
    ("sdk", &["sdk"]),
    ("storage", &["storage"]),
    ("engine", &["engine", "sdk", "storage"]),
    ("tools", &["tools", "engine", "storage", "sdk"]),
    ("service", &["service", "tools", "engine", "storage", "sdk"]),
    (
        "testing",
        &["testing", "service", "engine", "storage", "sdk"],
    ),
];

/// Each layer and the outside crates it must not name.
const FORBIDDEN_CRATES: &[(&str, &[&str])] = &[
    ("sdk", &["timely", "sled", "axum", "tokio", "hyper"]),
    ("storage", &["timely", "axum", "tokio", "serde_json"]),
    ("engine", &["axum", "serde_json"]),
    ("tools", &["axum", "serde_json", "timely"]),
    ("testing", &["axum", "timely"]),
];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/` (`engine/shard/mod.rs` → `[engine, shard]`).
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The identifier starting at `s` (letters, digits, `_`).
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules (layers) named by `crate::x` and `super::` paths in `text`, for a
/// file whose module path is `module`.
fn named_layers(module: &[String], text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().last();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue; // `stateful_runtime::…` in a doc example, not a crate path
            }
            out.push(ident(rest).to_owned());
        }
        let mut rest = line;
        while let Some(i) = rest.find("super::") {
            let before = rest[..i].chars().last();
            rest = &rest[i..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                rest = &rest["super::".len()..];
                continue;
            }
            let mut ups = 0;
            while let Some(r) = rest.strip_prefix("super::") {
                ups += 1;
                rest = r;
            }
            let mut path: Vec<String> = module.to_vec();
            for _ in 0..ups {
                path.pop();
            }
            path.push(ident(rest).to_owned());
            out.push(path[0].clone());
        }
    }
    out
}

/// What a file of `layer` at `module` names that its layer may not.
fn violations(layer: &str, module: &[String], text: &str) -> Vec<String> {
    let allowed = ALLOWED
        .iter()
        .find(|(l, _)| *l == layer)
        .map_or(&[][..], |(_, a)| *a);
    let mut out: Vec<String> = named_layers(module, text)
        .into_iter()
        .filter(|l| ALLOWED.iter().any(|(x, _)| x == l) && !allowed.contains(&l.as_str()))
        .map(|l| format!("names the {l} layer"))
        .collect();
    let forbidden = FORBIDDEN_CRATES
        .iter()
        .find(|(l, _)| *l == layer)
        .map_or(&[][..], |(_, f)| *f);
    for c in forbidden {
        let pat = format!("{c}::");
        let hit = text.lines().any(|line| {
            line.match_indices(&pat).any(|(i, _)| {
                let before = line[..i].chars().last();
                !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == '_' || b == ':')
            })
        });
        if hit {
            out.push(format!("names the `{c}` crate"));
        }
    }
    out
}

#[test]
fn every_layer_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    let mut checked = 0;
    for (layer, _) in ALLOWED {
        let mut files = Vec::new();
        rs_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "no sources for layer {layer}");
        for f in files {
            let rel = f.strip_prefix(&src).expect("under src");
            let text = std::fs::read_to_string(&f).expect("readable");
            for v in violations(layer, &module_path(rel), &text) {
                problems.push(format!("{}: {v}", rel.display()));
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} files found");
    assert!(
        problems.is_empty(),
        "imports against the layers:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_upward_and_sideways_paths() {
    let m = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        violations("engine", &m(&["engine", "x"]), "use crate::service::App;").len(),
        1
    );
    assert_eq!(
        violations("storage", &m(&["storage"]), "use super::engine::Handle;").len(),
        1
    );
    assert_eq!(
        violations(
            "tools",
            &m(&["tools", "a", "b"]),
            "use super::super::super::service::x;"
        )
        .len(),
        1
    );
    assert!(
        violations(
            "engine",
            &m(&["engine", "shard", "table"]),
            "use super::super::protocol;"
        )
        .is_empty()
    );
    assert!(
        violations(
            "engine",
            &m(&["engine"]),
            "use crate::storage::X; use crate::sdk::Y;"
        )
        .is_empty()
    );
    assert_eq!(
        violations("sdk", &m(&["sdk", "ctx"]), "fn f(x: timely::Scope) {}").len(),
        1
    );
    assert!(
        violations(
            "sdk",
            &m(&["sdk"]),
            "/// see stateful_runtime::engine in docs"
        )
        .is_empty()
    );
}
