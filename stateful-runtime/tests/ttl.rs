//! State TTL: `#[lambda(.., ttl = "30m")]` instances not written for that long read as absent
//! (a `missing = not_found` handler answers "not found"); a write renews them; the write time
//! comes back from the store after a restart.
#![allow(missing_docs)]

use std::time::Duration;

use stateful_runtime::testing::TestApp;
use stateful_runtime::{CallError, Config};

#[stateful_runtime::app]
pub mod sessions {
    #[lambda(key = String, state = u32, missing = not_found, ttl = "30m")]
    impl Session {
        #[create]
        #[public]
        async fn open(ctx: &mut Ctx<Self>) -> Result<(), Rejection> {
            ctx.set_state(0);
            Ok(())
        }

        #[public]
        async fn touch(ctx: &mut Ctx<Self>) -> Result<u32, Rejection> {
            *ctx.state_mut() += 1;
            Ok(*ctx.state())
        }

        #[public]
        async fn hits(ctx: &Ctx<Self>) -> Result<u32, Rejection> {
            Ok(*ctx.state())
        }
    }

    #[lambda(key = String, state = u32, missing = not_found, ttl = "1500ms")]
    impl Flash {
        #[create]
        #[public]
        async fn set(ctx: &mut Ctx<Self>, v: u32) -> Result<(), Rejection> {
            ctx.set_state(v);
            Ok(())
        }

        #[public]
        async fn get(ctx: &Ctx<Self>) -> Result<u32, Rejection> {
            Ok(*ctx.state())
        }
    }
}

use sessions::{Flash, Session};

fn gone(r: Result<u32, Rejection>) -> bool {
    matches!(r, Err(Rejection::Call(CallError::NotFound(_))))
}

use stateful_runtime::Rejection;

#[test]
fn an_instance_expires_after_its_ttl_and_not_before_and_a_write_renews_it() {
    let t = TestApp::new(sessions::app());
    t.call::<Session>("s1").open().wait().expect("opens");
    t.call::<Session>("s2").open().wait().expect("opens");
    t.advance(Duration::from_secs(20 * 60));
    assert_eq!(t.call::<Session>("s2").touch().wait(), Ok(1), "renewed");
    t.advance(Duration::from_secs(9 * 60));
    assert_eq!(
        t.call::<Session>("s1").hits().wait(),
        Ok(0),
        "29 minutes: alive"
    );
    t.advance(Duration::from_secs(2 * 60));
    assert!(
        gone(t.call::<Session>("s1").hits().wait()),
        "31 minutes: expired"
    );
    assert!(
        gone(t.call::<Session>("s1").touch().wait()),
        "for writers too"
    );
    assert_eq!(
        t.call::<Session>("s2").hits().wait(),
        Ok(1),
        "11 minutes after its last write"
    );
    assert_eq!(t.state::<Session>("s2"), Some(1));
    // An expired instance can be created again, from scratch.
    t.call::<Session>("s1").open().wait().expect("opens again");
    assert_eq!(t.call::<Session>("s1").hits().wait(), Ok(0));
}

#[test]
fn the_last_write_time_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = || TestApp::start(sessions::app(), Config::durable(dir.path(), 1)).expect("starts");
    let t = start();
    t.call::<Flash>("f").set(7).wait().expect("sets");
    drop(t);
    let t = start();
    assert_eq!(t.call::<Flash>("f").get().wait(), Ok(7), "within its TTL");
    drop(t);
    std::thread::sleep(Duration::from_millis(1600));
    let t = start();
    assert!(
        gone(t.call::<Flash>("f").get().wait()),
        "expired while down"
    );
}

#[test]
fn the_compactor_deletes_expired_instances_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::durable(dir.path(), 1);
    config.history = stateful_runtime::HistoryRetention {
        keep_for_ms: None,
        max_bytes: None,
        check_every_ms: 50,
    };
    let t = TestApp::start(sessions::app(), config).expect("starts");
    t.call::<Flash>("old").set(1).wait().expect("sets");
    let stored = |key: &str| {
        let h = t.handle();
        stateful_runtime::views::state(
            t.app(),
            h.store().as_ref(),
            h.key_groups(),
            "Flash",
            key,
            None,
        )
        .expect("readable")
    };
    assert_eq!(stored("old"), serde_json::json!(1));
    std::thread::sleep(Duration::from_millis(1000));
    t.call::<Flash>("new").set(2).wait().expect("sets");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        stored("old"),
        serde_json::Value::Null,
        "deleted by the compactor"
    );
    assert_eq!(
        stored("new"),
        serde_json::json!(2),
        "written 0.8 s ago: kept"
    );
}
