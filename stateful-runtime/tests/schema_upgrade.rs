//! A data dir written by one version of an app, opened by the next: a state type that gained
//! a defaulted field reads the old instances, one whose change is incompatible is refused at
//! start-up naming the lambda and the field (and the dir is left as it was), a `migrate`
//! function converts old values, and a changed key type or lambda order is refused.
#![allow(missing_docs)]

use std::path::Path;

use serde_json::{Value, json};
use stateful_runtime::{App, Config, JsonResponse, StartError};

mod v1 {
    #[stateful_runtime::app]
    pub mod flights {
        use stateful_runtime::prelude::*;

        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        pub struct Seats {
            pub free: u32,
        }

        #[lambda(key = String, state = Seats, missing = not_found)]
        impl Flight {
            #[create]
            #[public]
            async fn open(ctx: &mut Ctx<Self>, free: u32) -> Result<(), Rejection> {
                ctx.set_state(Seats { free });
                Ok(())
            }

            #[public]
            async fn free(ctx: &Ctx<Self>) -> Result<u32, Rejection> {
                Ok(ctx.state().free)
            }
        }
    }
}

/// v1 plus a field with a default.
mod v2 {
    #[stateful_runtime::app]
    pub mod flights {
        use stateful_runtime::prelude::*;

        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        pub struct Seats {
            pub free: u32,
            #[serde(default)]
            pub price: i64,
        }

        #[lambda(key = String, state = Seats, missing = not_found)]
        impl Flight {
            #[public]
            async fn free(ctx: &Ctx<Self>) -> Result<u32, Rejection> {
                Ok(ctx.state().free)
            }

            #[public]
            async fn price(ctx: &Ctx<Self>) -> Result<i64, Rejection> {
                Ok(ctx.state().price)
            }

            #[public]
            async fn set_price(ctx: &mut Ctx<Self>, price: i64) -> Result<(), Rejection> {
                ctx.state_mut().price = price;
                Ok(())
            }
        }
    }
}

/// v1 plus a field without a default: old instances cannot be read.
mod v3 {
    #[stateful_runtime::app]
    pub mod flights {
        use stateful_runtime::prelude::*;

        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        pub struct Seats {
            pub free: u32,
            pub price: i64,
        }

        #[lambda(key = String, state = Seats, missing = not_found)]
        impl Flight {
            #[public]
            async fn free(ctx: &Ctx<Self>) -> Result<u32, Rejection> {
                Ok(ctx.state().free)
            }
        }
    }
}

/// A new shape, with a migration from v1's.
mod v4 {
    #[stateful_runtime::app]
    pub mod flights {
        use stateful_runtime::prelude::*;

        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        pub struct Seats {
            pub seats_left: u64,
            pub price: i64,
        }

        /// How v1 stored a flight.
        #[derive(Deserialize)]
        pub struct SeatsV1 {
            free: u32,
        }

        fn from_v1(old: SeatsV1) -> Seats {
            Seats {
                seats_left: u64::from(old.free),
                price: 100,
            }
        }

        #[lambda(key = String, state = Seats, missing = not_found, migrate = from_v1)]
        impl Flight {
            #[public]
            async fn left(ctx: &Ctx<Self>) -> Result<(u64, i64), Rejection> {
                Ok((ctx.state().seats_left, ctx.state().price))
            }
        }
    }
}

/// v1 with numeric keys.
mod v5 {
    #[stateful_runtime::app]
    pub mod flights {
        use stateful_runtime::prelude::*;

        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        pub struct Seats {
            pub free: u32,
        }

        #[lambda(key = u64, state = Seats, missing = not_found)]
        impl Flight {
            #[public]
            async fn free(ctx: &Ctx<Self>) -> Result<u32, Rejection> {
                Ok(ctx.state().free)
            }
        }
    }
}

/// A new lambda declared before `Flight`.
mod v6 {
    #[stateful_runtime::app]
    pub mod flights {
        use stateful_runtime::prelude::*;

        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        pub struct Seats {
            pub free: u32,
        }

        #[lambda(key = String, state = u32)]
        impl Airline {
            #[public]
            async fn planes(ctx: &Ctx<Self>) -> Result<u32, Rejection> {
                Ok(*ctx.state())
            }
        }

        #[lambda(key = String, state = Seats, missing = not_found)]
        impl Flight {
            #[public]
            async fn free(ctx: &Ctx<Self>) -> Result<u32, Rejection> {
                Ok(ctx.state().free)
            }
        }
    }
}

fn call(app: &App, rt: &stateful_runtime::Runtime, key: &str, h: &str, args: Value) -> Value {
    match app
        .json(rt.handle())
        .invoke_blocking("Flight", key, h, args)
        .expect("answered")
    {
        JsonResponse::Ok(v) => v,
        other => panic!("{h}({key}): {other:?}"),
    }
}

/// A data dir with flights `a` (5 free) and `b` (7 free), written by v1.
fn v1_dir(root: &Path) {
    let app = v1::flights::app();
    let rt = app.start(Config::durable(root, 1)).expect("v1 starts");
    call(&app, &rt, "a", "open", json!(5));
    call(&app, &rt, "b", "open", json!(7));
    rt.shutdown();
}

fn start_error(app: &App, root: &Path) -> String {
    match app.start(Config::durable(root, 1)) {
        Err(e @ StartError::Schema(_)) => e.to_string(),
        Err(other) => panic!("expected a schema error, got {other}"),
        Ok(_) => panic!("expected the start to be refused"),
    }
}

#[test]
fn a_field_with_a_default_reads_old_instances() {
    let dir = tempfile::tempdir().expect("tempdir");
    v1_dir(dir.path());
    let app = v2::flights::app();
    let rt = app
        .start(Config::durable(dir.path(), 1))
        .expect("v2 starts");
    assert_eq!(
        rt.handle().recovered().schema_checked,
        2,
        "both instances read through"
    );
    assert_eq!(call(&app, &rt, "a", "free", Value::Null), json!(5));
    assert_eq!(call(&app, &rt, "a", "price", Value::Null), json!(0));
    call(&app, &rt, "a", "set_price", json!(250));
    rt.shutdown();
    let rt = app.start(Config::durable(dir.path(), 1)).expect("v2 again");
    assert_eq!(
        rt.handle().recovered().schema_checked,
        2,
        "`b` still holds a v1 value: read through again"
    );
    assert_eq!(call(&app, &rt, "a", "price", Value::Null), json!(250));
    assert_eq!(call(&app, &rt, "b", "free", Value::Null), json!(7));
}

#[test]
fn an_incompatible_change_is_refused_at_start_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    v1_dir(dir.path());
    let schema_before = std::fs::read(dir.path().join("schema.json")).expect("recorded");
    let err = start_error(&v3::flights::app(), dir.path());
    assert!(
        err.contains("lambda `Flight`") && err.contains("missing field `price`"),
        "{err}"
    );
    assert!(err.contains("migrate"), "says what to do: {err}");
    assert_eq!(
        std::fs::read(dir.path().join("schema.json")).expect("still there"),
        schema_before
    );
    let app = v1::flights::app();
    let rt = app.start(Config::durable(dir.path(), 1)).expect("v1 again");
    assert_eq!(rt.handle().recovered().schema_checked, 0, "unchanged");
    assert_eq!(call(&app, &rt, "b", "free", Value::Null), json!(7));
}

#[test]
fn a_migration_converts_old_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    v1_dir(dir.path());
    let app = v4::flights::app();
    let rt = app
        .start(Config::durable(dir.path(), 1))
        .expect("v4 starts");
    assert_eq!(call(&app, &rt, "a", "left", Value::Null), json!([5, 100]));
    assert_eq!(call(&app, &rt, "b", "left", Value::Null), json!([7, 100]));
}

#[test]
fn another_key_type_or_lambda_order_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    v1_dir(dir.path());
    let err = start_error(&v5::flights::app(), dir.path());
    assert!(
        err.contains("`Flight`") && err.contains("u64") && err.contains("String"),
        "{err}"
    );
    let err = start_error(&v6::flights::app(), dir.path());
    assert!(
        err.contains("`Flight`") && err.contains("#0") && err.contains("#1"),
        "{err}"
    );
}
