//! Existence is part of the model: `ctx.exists()`, `ctx.delete()`, and `missing = not_found`
//! (handlers that do not `#[create]` answer "not found" for an instance never written).
#![allow(missing_docs)]

use serde_json::{Value, json};
use stateful_runtime::{CallError, Config, JsonResponse};

#[stateful_runtime::app]
pub mod wallets {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = i64, missing = not_found)]
    impl Wallet {
        #[create]
        async fn open(ctx: &mut Ctx<Self>, amount: i64) -> Result<bool, Rejection> {
            let existed = ctx.exists();
            ctx.set_state(amount);
            Ok(existed)
        }

        async fn balance(ctx: &Ctx<Self>) -> Result<i64, Rejection> {
            Ok(*ctx.state())
        }

        /// Deletes the wallet; `fail` rejects afterwards (the delete is then undone).
        async fn close(ctx: &mut Ctx<Self>, fail: bool) -> Result<bool, Rejection> {
            ctx.delete();
            if fail {
                return Err(Rejection::new("closing failed"));
            }
            Ok(ctx.exists())
        }
    }
}

fn call(h: &stateful_runtime::JsonClient, handler: &str, args: Value) -> JsonResponse {
    h.invoke_blocking("Wallet", "w", handler, args)
        .expect("answered")
}

#[test]
fn missing_instances_are_not_found_and_a_delete_removes_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = wallets::app();
    let rt = app.start(Config::durable(dir.path(), 2)).expect("start");
    let h = app.json(rt.handle());
    let not_found = |r: JsonResponse| match r {
        JsonResponse::Failed(CallError::NotFound(m)) => assert!(m.contains("Wallet"), "{m}"),
        other => panic!("expected not found, got {other:?}"),
    };
    not_found(call(&h, "balance", Value::Null));
    not_found(call(&h, "close", json!(false)));
    assert_eq!(call(&h, "open", json!(7)), JsonResponse::Ok(json!(false)));
    assert_eq!(
        call(&h, "open", json!(8)),
        JsonResponse::Ok(json!(true)),
        "exists now"
    );
    assert_eq!(call(&h, "balance", Value::Null), JsonResponse::Ok(json!(8)));
    // A failed close takes its delete back.
    assert!(matches!(
        call(&h, "close", json!(true)),
        JsonResponse::Rejected { .. }
    ));
    assert_eq!(call(&h, "balance", Value::Null), JsonResponse::Ok(json!(8)));
    assert_eq!(
        call(&h, "close", json!(false)),
        JsonResponse::Ok(json!(false))
    );
    not_found(call(&h, "balance", Value::Null));
    let handle = rt.handle();
    let stored = stateful_runtime::views::state(
        &app,
        handle.store().as_ref(),
        handle.key_groups(),
        "Wallet",
        "w",
        None,
    )
    .expect("readable");
    assert_eq!(stored, Value::Null, "deleted in the store too");
    drop((h, handle));
    rt.shutdown();
    // And after a restart.
    let rt = app.start(Config::durable(dir.path(), 1)).expect("restart");
    let h = app.json(rt.handle());
    not_found(call(&h, "balance", Value::Null));
    assert_eq!(call(&h, "open", json!(1)), JsonResponse::Ok(json!(false)));
}
