//! The tool commands of the CLI: `graph`, `inspect`, `history`, `log`, `trace`, `replay`,
//! `diff` and `rescale`, printing the views of [`crate::service::views`] as text or JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::args::GraphFormat;
use crate::service::{App, views};
use crate::storage::DataDir;
use crate::tools::open::open_for_reading;

/// Prints an error of command `app` and fails.
fn fail(app: &App, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("{}: {e}", app.name());
    ExitCode::from(2)
}

fn print_json(v: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|e| e.to_string())
    );
}

/// Runs `f` on the store of the stopped service's data dir `dir`.
fn with_store<T>(
    app: &App,
    dir: &Path,
    f: impl FnOnce(&DataDir, &dyn crate::storage::StateStore) -> Result<T, String>,
) -> Result<T, String> {
    let (data, store) = open_for_reading(app.name(), dir).map_err(|e| e.to_string())?;
    f(&data, store.as_ref())
}

/// `graph`.
pub(crate) fn graph(app: &App, format: GraphFormat, output: Option<PathBuf>) -> ExitCode {
    let text = match format {
        GraphFormat::Dot => app.dot().to_owned(),
        GraphFormat::Svg => {
            match crate::service::svg::graph_svg(app, crate::service::svg::Layout::Auto) {
                Ok(s) => s,
                Err(e) => return fail(app, e),
            }
        }
    };
    match output {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(&path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(app, format!("cannot write {}: {e}", path.display())),
        },
    }
}

/// `inspect`.
pub(crate) fn inspect(
    app: &App,
    lambda: &str,
    key: &str,
    dir: &Path,
    at: Option<&str>,
) -> ExitCode {
    let r = with_store(app, dir, |data, store| {
        views::state(app, store, data.key_groups(), lambda, key, at).map_err(|e| e.to_string())
    });
    match r {
        Ok(v) => {
            print_json(&v);
            ExitCode::SUCCESS
        }
        Err(e) => fail(app, e),
    }
}

/// `history`.
pub(crate) fn history(app: &App, lambda: &str, key: &str, dir: &Path, json: bool) -> ExitCode {
    let r = with_store(app, dir, |data, store| {
        let place = data
            .meta()
            .cluster
            .map_or((0, 1), |l| (l.process, l.processes));
        views::history(app, store, data.key_groups(), lambda, key, place).map_err(|e| e.to_string())
    });
    let h = match r {
        Ok(h) => h,
        Err(e) => return fail(app, e),
    };
    if json {
        print_json(&serde_json::json!({ "horizon_note": h.horizon_note, "versions": h.versions }));
        return ExitCode::SUCCESS;
    }
    if let Some(note) = &h.horizon_note {
        println!("({note})");
    }
    if h.versions.is_empty() {
        println!("{lambda} {key}: no committed version");
    }
    for v in h.versions {
        println!("{}  {}  {}", v.epoch, v.time, v.state);
        for w in &v.written_by {
            match &w.target {
                Some(t) => println!("    written by request {}: {t} {}", w.seq, w.args),
                None => println!("    written by request {}", w.seq),
            }
        }
    }
    ExitCode::SUCCESS
}

/// `log`.
pub(crate) fn log(
    app: &App,
    lambda: Option<&str>,
    key: Option<&str>,
    dir: &Path,
    json: bool,
) -> ExitCode {
    let r = with_store(app, dir, |_, store| {
        views::log(app, store, lambda, key, None, None).map_err(|e| e.to_string())
    });
    match r {
        Ok(reqs) if json => {
            print_json(&reqs);
            ExitCode::SUCCESS
        }
        Ok(reqs) => {
            for r in reqs {
                println!(
                    "{:>8}  {}  {}.{}({}) {}  {}",
                    r.seq, r.time, r.lambda, r.handler, r.key, r.args, r.outcome
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(app, e),
    }
}

/// `trace`.
pub(crate) fn trace(app: &App, seq: u64, dir: &Path, json: bool) -> ExitCode {
    let r = with_store(app, dir, |data, store| {
        views::trace(app, store, data.key_groups(), seq).map_err(|e| e.to_string())
    });
    match r {
        Ok(t) if json => {
            print_json(&t);
            ExitCode::SUCCESS
        }
        Ok(t) => {
            println!("{}", views::trace_text(&t).trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => fail(app, e),
    }
}

/// `rescale`.
pub(crate) fn rescale(app: &App, from: &[PathBuf], into: &[PathBuf], workers: usize) -> ExitCode {
    match crate::tools::rescale::rescale(app.program(), from, into, workers) {
        Ok(r) => {
            for (dir, n) in into.iter().zip(&r.instances) {
                println!("{}: {n} instances", dir.display());
            }
            println!(
                "carried {} answers kept for idempotency keys and {} undelivered messages",
                r.answers, r.messages
            );
            println!(
                "moved the state as of epoch {} into {} data dir(s); start each with --workers {workers}{}",
                r.epoch,
                into.len(),
                if into.len() > 1 {
                    " and its --process index in the --cluster file (the order of --into)"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(app, e),
    }
}

/// `replay`.
pub(crate) fn replay(
    app: &App,
    old: &[std::path::PathBuf],
    new: &Path,
    until: Option<&str>,
) -> ExitCode {
    use crate::tools::replay::{Until, replay_all};
    let until = match until.map(Until::parse).transpose() {
        Ok(u) => u,
        Err(e) => return fail(app, e),
    };
    match replay_all(app.program().clone(), old, new, until) {
        Ok(r) => {
            println!(
                "replayed {} requests into {} ({} after --until skipped)",
                r.replayed,
                new.display(),
                r.skipped
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(app, e),
    }
}

/// `diff`.
pub(crate) fn diff(
    app: &App,
    dirs: &[std::path::PathBuf],
    at: Option<&str>,
    json: bool,
) -> ExitCode {
    let Some((new, old)) = dirs.split_last().filter(|(_, old)| !old.is_empty()) else {
        return fail(
            app,
            "diff needs the old data dir (or a cluster's) and the new one",
        );
    };
    let at = match at.map(|s| {
        s.strip_prefix("seq:")
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| format!("--at `{s}`: diff compares as of a request: use seq:N"))
    }) {
        None => None,
        Some(Ok(seq)) => Some(seq),
        Some(Err(e)) => return fail(app, e),
    };
    let d = match crate::tools::diff::diff_all(app.program(), old, new, at) {
        Ok(d) => views::diff(app, d),
        Err(e) => return fail(app, e),
    };
    if json {
        print_json(&d);
        return ExitCode::SUCCESS;
    }
    for i in &d.instances {
        println!("{} {}: {} -> {}", i.lambda, i.key, i.old, i.new);
    }
    for r in &d.responses {
        println!("request {} {}: {} -> {}", r.seq, r.target, r.old, r.new);
    }
    println!(
        "{} instances and {} responses differ",
        d.instances.len(),
        d.responses.len()
    );
    ExitCode::SUCCESS
}
