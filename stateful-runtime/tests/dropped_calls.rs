//! A handler that sends a call and returns without waiting for it (it dropped the call's
//! future after polling it once): the request answers once the call has, so the instance
//! the call reached is released with the request's and the call's change commits with it.
//! Before, the request answered at once, the callee's lock was never released, and the next
//! request on that instance waited forever.
#![allow(missing_docs)]

use std::time::Duration;

use stateful_runtime::Config;
use stateful_runtime::testing::TestApp;

#[stateful_runtime::app]
pub mod hasty {
    use std::future::Future;
    use std::task::Poll;

    #[lambda(key = u64, state = u64)]
    impl Counter {
        #[public]
        async fn incr(ctx: &mut Ctx<Self>) -> Result<u64, Rejection> {
            *ctx.state_mut() += 1;
            Ok(*ctx.state())
        }
    }

    #[lambda(key = u64, state = ())]
    impl Caller {
        /// Sends `Counter(counter).incr()` and returns without its answer.
        #[public]
        async fn poke(ctx: &mut Ctx<Self>, counter: u64) -> Result<(), Rejection> {
            let call = ctx.call::<Counter>(&counter).incr();
            let mut call = std::pin::pin!(call);
            std::future::poll_fn(|cx| {
                let _ = call.as_mut().poll(cx);
                Poll::Ready(())
            })
            .await;
            Ok(())
        }
    }
}

#[test]
fn a_call_the_handler_did_not_wait_for_is_released_with_the_request() {
    let t = TestApp::start(hasty::app(), Config::in_memory(2)).expect("starts");
    assert_eq!(t.call::<hasty::Caller>(1u64).poke(7).wait(), Ok(()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let next = runtime.block_on(async {
        let incr = t.call::<hasty::Counter>(7u64).incr();
        tokio::time::timeout(Duration::from_secs(10), incr).await
    });
    if next.is_err() {
        // A locked counter would hold the engine's shutdown too: fail without it.
        std::mem::forget(t);
        panic!("the counter stayed locked: the next request waited 10 s");
    }
    // The dropped call ran (and committed with its request); the counter is not held.
    assert_eq!(next.ok(), Some(Ok(2)));
}
