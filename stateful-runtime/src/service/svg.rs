//! The graph as SVG: Graphviz's layout where its `dot` program is installed, else the
//! built-in layered layout of `stateful_core::svg` (so a fresh machine gets a picture too).

use std::io::Write;
use std::process::{Command, Stdio};

/// Renders DOT to SVG with Graphviz's `dot` program.
pub fn render_svg(dot: &str) -> Result<String, String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run Graphviz `dot` ({e}); install Graphviz (apt-get install graphviz) or use the DOT output")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .map_err(|e| format!("writing to dot: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("running dot: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("dot printed non-UTF-8: {e}"))
}

/// Which layout draws the SVG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Graphviz where `dot` is installed, else the built-in one.
    Auto,
    /// The built-in layered layout.
    Builtin,
}

/// The app's graph as SVG by `layout`.
pub fn graph_svg(app: &super::App, layout: Layout) -> Result<String, String> {
    if layout == Layout::Auto && dot_installed() {
        return render_svg(app.dot());
    }
    app.program()
        .graph()
        .map(stateful_core::svg::render)
        .map_err(|e| format!("the app's graph does not parse: {e}"))
}

/// Whether Graphviz's `dot` runs.
fn dot_installed() -> bool {
    Command::new("dot")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
