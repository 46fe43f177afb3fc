//! A value that does not encode fails its invocation with a clear error and writes nothing:
//! a state type whose `Serialize` fails, a result type postcard cannot write
//! (`#[serde(flatten)]`).
#![allow(missing_docs)]

use serde_json::json;
use stateful_runtime::{CallError, Config, JsonResponse};

#[stateful_runtime::app]
pub mod flat {
    use stateful_runtime::prelude::*;

    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Inner {
        pub a: i64,
    }

    /// `flatten` needs a self-describing format: postcard refuses to write it.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Flat {
        #[serde(flatten)]
        pub inner: Inner,
    }

    /// A state whose `Serialize` fails once it holds a value (a type serde cannot write).
    #[derive(Debug, Default, Clone, Deserialize)]
    pub struct Refuses {
        pub inner: Inner,
    }

    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if self.inner.a != 0 {
                return Err(serde::ser::Error::custom("this value cannot be written"));
            }
            s.serialize_unit_struct("Refuses")
        }
    }

    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Plain {
        pub n: i64,
    }

    #[lambda(key = String, state = Refuses)]
    impl Broken {
        async fn set(ctx: &mut Ctx<Self>, a: i64) -> Result<(), Rejection> {
            ctx.state_mut().inner.a = a;
            Ok(())
        }

        async fn get(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
            Ok(ctx.state().inner.a)
        }
    }

    #[lambda(key = String, state = Plain)]
    impl Fine {
        /// Answers with a value that does not encode.
        async fn answer(ctx: &mut Ctx<Self>) -> Result<Flat, Rejection> {
            let _ = ctx.key();
            Ok(Flat::default())
        }

        /// Writes its own state, then calls a handler whose state does not encode.
        async fn bump_then_broken(ctx: &mut Ctx<Self>, k: String) -> Result<i64, Rejection> {
            ctx.state_mut().n += 1;
            ctx.call::<Broken>(&k).set(5).await?;
            Ok(ctx.state().n)
        }
    }
}

fn codec_message(r: &JsonResponse) -> String {
    match r {
        JsonResponse::Failed(CallError::Codec(m)) => m.clone(),
        other => panic!("expected a codec failure, got {other:?}"),
    }
}

#[test]
fn a_state_that_does_not_encode_fails_the_request_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = flat::app();
    let rt = app.start(Config::durable(dir.path(), 2)).expect("start");
    let j = app.json(rt.handle());
    let r = j
        .invoke_blocking("Broken", "k", "set", json!(7))
        .expect("answered");
    let msg = codec_message(&r);
    assert!(msg.contains("was not written"), "{msg}");
    assert!(msg.contains("Broken"), "{msg}");
    // Nothing was written: the instance reads as never written, now and in the store.
    let r = j
        .invoke_blocking("Broken", "k", "get", json!(null))
        .expect("answered");
    assert_eq!(r, JsonResponse::Ok(json!(0)));
    let h = rt.handle();
    let stored = stateful_runtime::views::state(
        &app,
        h.store().as_ref(),
        h.key_groups(),
        "Broken",
        "k",
        None,
    )
    .expect("readable");
    assert_eq!(stored, serde_json::Value::Null);
    // A caller sees the callee's failure as its call's error.
    let r = j
        .invoke_blocking("Fine", "f", "bump_then_broken", json!("k2"))
        .expect("answered");
    assert!(matches!(r, JsonResponse::Rejected { .. }), "{r:?}");
    drop(j);
    rt.shutdown();
}

#[test]
fn a_result_that_does_not_encode_is_a_clear_error() {
    let app = flat::app();
    let rt = app.start(Config::in_memory(1)).expect("start");
    let j = app.json(rt.handle());
    let r = j
        .invoke_blocking("Fine", "f", "answer", json!(null))
        .expect("answered");
    let msg = codec_message(&r);
    assert!(
        msg.contains("the handler's result does not encode"),
        "{msg}"
    );
}
