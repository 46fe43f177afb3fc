//! A replay with a deliberately changed handler shows the expected diff; bad input to the
//! time-travel commands is a clear error.
#![allow(missing_docs)]

use serde_json::json;
use stateful_runtime::{Config, JsonResponse};

/// The original code.
#[stateful_runtime::app]
pub mod v1 {
    use stateful_runtime::prelude::*;

    /// A count.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Count {
        pub n: i64,
    }

    #[lambda(key = String, state = Count)]
    impl Counter {
        async fn add(ctx: &mut Ctx<Self>, by: i64) -> Result<i64, Rejection> {
            ctx.state_mut().n += by;
            Ok(ctx.state().n)
        }
    }
}

/// The "fixed" code: `add` ignores negative amounts.
#[stateful_runtime::app]
pub mod v2 {
    use stateful_runtime::prelude::*;

    /// A count.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Count {
        pub n: i64,
    }

    #[lambda(key = String, state = Count)]
    impl Counter {
        async fn add(ctx: &mut Ctx<Self>, by: i64) -> Result<i64, Rejection> {
            if by < 0 {
                return Err(Rejection::new("negative amounts are not allowed"));
            }
            ctx.state_mut().n += by;
            Ok(ctx.state().n)
        }
    }
}

/// v2 as the same app: in real use the modified build keeps the app's name.
fn v2_as_v1() -> stateful_runtime::App {
    stateful_runtime::App::builder("v1", v2::GRAPH_JSON, v2::GRAPH_DOT)
        .lambda::<v2::Counter>()
        .build()
}

fn diff(
    app: &stateful_runtime::App,
    old: &std::path::Path,
    new: &std::path::Path,
    at: Option<u64>,
) -> Result<stateful_runtime::views::DiffView, stateful_runtime::tools::replay::ReplayError> {
    stateful_runtime::tools::diff::diff_at(app.program(), old, new, at)
        .map(|d| stateful_runtime::views::diff(app, d))
}

#[test]
fn a_changed_handler_shows_the_expected_diff() {
    let root = tempfile::tempdir().expect("tempdir");
    let (old, new) = (root.path().join("old"), root.path().join("new"));
    let rt = v1::app().start(Config::durable(&old, 2)).expect("start");
    let h = v1::app().json(rt.handle());
    for (key, by) in [("a", 5), ("b", 7), ("a", -2), ("c", 1)] {
        let r = h
            .invoke_blocking("Counter", key, "add", json!(by))
            .expect("answered");
        assert!(matches!(r, JsonResponse::Ok(_)), "{r:?}");
    }
    drop(h);
    rt.shutdown();

    let report =
        stateful_runtime::tools::replay::replay(v2_as_v1().program().clone(), &old, &new, None)
            .expect("replay");
    assert_eq!(report.replayed, 4);
    let d = diff(&v2_as_v1(), &old, &new, None).expect("diff");
    assert_eq!(d.instances.len(), 1, "{:?}", d.instances);
    assert_eq!(d.instances[0].lambda, "Counter");
    assert_eq!(d.instances[0].key, json!("a"));
    assert_eq!(
        (&d.instances[0].old["n"], &d.instances[0].new["n"]),
        (&json!(3), &json!(5))
    );
    assert_eq!(d.responses.len(), 1, "{:?}", d.responses);
    assert_eq!(d.responses[0].old["Ok"], json!(3));
    assert!(
        d.responses[0].new.get("Err").is_some(),
        "{:?}",
        d.responses[0]
    );

    // As of request 2 (a=5, b=7) nothing differs yet; as of request 3 the counter does.
    let at2 = diff(&v2_as_v1(), &old, &new, Some(2)).expect("diff");
    assert!(at2.instances.is_empty(), "{:?}", at2.instances);
    assert!(at2.responses.is_empty(), "{:?}", at2.responses);
    let at3 = diff(&v2_as_v1(), &old, &new, Some(3)).expect("diff");
    assert_eq!(at3.instances.len(), 1, "{:?}", at3.instances);
    assert_eq!(at3.instances[0].old["n"], json!(3));
    assert_eq!(at3.responses.len(), 1);
    assert!(diff(&v2_as_v1(), &old, &new, Some(99)).is_err());

    // --until: only the first two requests.
    let partial = root.path().join("partial");
    let r = stateful_runtime::tools::replay::replay(
        v1::app().program().clone(),
        &old,
        &partial,
        Some(stateful_runtime::tools::replay::Until::Seq(2)),
    )
    .expect("replay");
    assert_eq!((r.replayed, r.skipped), (2, 2));

    // Bad input.
    assert!(stateful_runtime::tools::replay::Until::parse("whenever").is_err());
    assert!(stateful_runtime::tools::replay::Until::parse("seq:x").is_err());
    assert_eq!(
        stateful_runtime::tools::replay::Until::parse("seq:12").ok(),
        Some(stateful_runtime::tools::replay::Until::Seq(12))
    );
}

/// Another app: its data dirs are not this app's.
#[stateful_runtime::app]
pub mod other {
    use stateful_runtime::prelude::*;

    /// Nothing.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct S {
        pub x: i64,
    }

    #[lambda(key = String, state = S)]
    impl Thing {
        async fn poke(ctx: &mut Ctx<Self>) -> Result<(), Rejection> {
            ctx.state_mut().x += 1;
            Ok(())
        }
    }
}

#[test]
fn a_data_dir_of_another_app_is_a_clear_error() {
    let root = tempfile::tempdir().expect("tempdir");
    let old = root.path().join("old");
    let rt = v1::app().start(Config::durable(&old, 1)).expect("start");
    rt.shutdown();
    let err = stateful_runtime::tools::replay::replay(
        other::app().program().clone(),
        &old,
        &root.path().join("n"),
        None,
    )
    .expect_err("another app's dir");
    assert!(err.to_string().contains("belongs to app"), "{err}");
    // Starting the other app on it is refused too.
    let err = other::app()
        .start(Config::durable(&old, 1))
        .expect_err("wrong app");
    assert!(err.to_string().contains("v1"), "{err}");
}
