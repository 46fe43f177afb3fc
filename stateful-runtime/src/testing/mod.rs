//! A test harness: the app in process, in memory, driven from test code with the typed
//! clients handlers use, with inspection of any instance, a clock to step for timers, and
//! failures to inject. It starts the engine (no HTTP), so what a test sees is what the
//! service does: transactions, messages after commit, locks, rollbacks.
//!
//! ```
//! use std::time::Duration;
//! use stateful_runtime::testing::{Fault, TestApp};
//!
//! #[stateful_runtime::app]
//! mod hotel {
//!     use std::time::Duration;
//!     use stateful_runtime::prelude::*;
//!
//!     #[lambda(key = String, state = u64)]
//!     impl Guest {
//!         async fn add_points(ctx: &mut Ctx<Self>, points: u64) -> Result<(), Rejection> {
//!             *ctx.state_mut() += points;
//!             Ok(())
//!         }
//!     }
//!
//!     #[lambda(key = String, state = Option<String>)]
//!     impl Room {
//!         #[public]
//!         async fn book(ctx: &mut Ctx<Self>, guest: String) -> Result<(), Rejection> {
//!             if ctx.state().is_some() {
//!                 return Err(Rejection::new("taken"));
//!             }
//!             ctx.set_state(Some(guest.clone()));
//!             ctx.call::<Guest>(&guest).add_points(10).await?;
//!             let me = ctx.key().clone();
//!             ctx.send_after::<Room>(Duration::from_secs(3600), &me).checkout();
//!             Ok(())
//!         }
//!
//!         async fn checkout(ctx: &mut Ctx<Self>) -> Result<(), Rejection> {
//!             ctx.set_state(None);
//!             Ok(())
//!         }
//!     }
//! }
//!
//! let t = TestApp::new(hotel::app());
//! t.call::<hotel::Room>("101").book("ann".into()).wait().unwrap();
//! assert!(t.call::<hotel::Room>("101").book("bob".into()).wait().is_err(), "taken");
//! assert_eq!(t.state::<hotel::Guest>("ann"), Some(10));
//!
//! // The timer is due in an hour: step the clock.
//! assert_eq!(t.state::<hotel::Room>("101"), Some(Some("ann".to_owned())));
//! t.advance(Duration::from_secs(3600));
//! assert_eq!(t.state::<hotel::Room>("101"), Some(None));
//!
//! // Make the callee fail once: the booking fails and changes nothing.
//! t.fail_next::<hotel::Guest>("add_points", Fault::Reject("points are down".into()));
//! let err = t.call::<hotel::Room>("102").book("cid".into()).wait().unwrap_err();
//! assert!(err.to_string().contains("points are down"), "{err}");
//! assert_eq!(t.state::<hotel::Room>("102"), None, "never written");
//! ```

mod call;

use std::time::{Duration, Instant};

use stateful_core::keys::key_group;

pub use crate::engine::Fault;
use crate::engine::{Config, Handle, HandleCall, Runtime, StartError};
use crate::sdk::{Lambda, schema, wire};
use crate::service::App;
pub use call::{TestCall, TestCallFuture};

/// How long [`TestApp::settle`] waits before it gives up.
const SETTLE: Duration = Duration::from_secs(10);

/// An app running in process, in memory, for tests. Stops when dropped.
pub struct TestApp {
    app: App,
    handle: Handle,
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl TestApp {
    /// Starts `app` in memory on two workers. Panics if it cannot start (the message says
    /// why: a test has nothing better to do).
    pub fn new(app: App) -> TestApp {
        match Self::start(app, Config::in_memory(2)) {
            Ok(t) => t,
            Err(e) => panic!("the app does not start: {e}"),
        }
    }

    /// Starts `app` with `config` (a data dir, other worker counts).
    pub fn start(app: App, config: Config) -> Result<TestApp, StartError> {
        let runtime = app.start(config)?;
        Ok(TestApp {
            app,
            handle: runtime.handle(),
            runtime: Some(runtime),
        })
    }

    /// A typed call of instance `key` of lambda `T`: `t.call::<Booking>("b1").book(..)`, then
    /// `.wait()` (or `.await`) for the handler's `Result`. Panics if the engine refuses the
    /// request (it is not running), which a test cannot go on from.
    pub fn call<T: Lambda>(&self, key: impl Into<T::Key>) -> T::Client<TestCall<'_>> {
        let key = key.into();
        T::client(TestCall(HandleCall::of::<T>(&self.handle, &key)))
    }

    /// The committed state of instance `key` of `T` (`None`: it does not exist).
    pub fn state<T: Lambda>(&self, key: impl Into<T::Key>) -> Option<T::State> {
        let key = match wire::encode("the key", &key.into()) {
            Ok(k) => k,
            Err(e) => panic!("the key of {} does not encode: {e}", T::NAME),
        };
        let group = key_group(&key, self.handle.key_groups());
        match self.handle.store().get(T::ID, group, &key) {
            Ok(None) => None,
            Ok(Some(bytes)) => match schema::decode::<T>(&bytes) {
                Ok(v) => Some(v),
                Err(e) => panic!("the stored state of {} does not decode: {e}", T::NAME),
            },
            Err(e) => panic!("the store could not be read: {e}"),
        }
    }

    /// Moves the clock that timers and TTLs are judged by forward by `by`, then waits until
    /// what is due by then has been delivered ([`TestApp::settle`]).
    pub fn advance(&self, by: Duration) {
        self.handle.advance_clock(by);
        self.settle();
    }

    /// Waits until every message sent so far has been delivered (and every request it caused
    /// answered), except timers not due yet. Panics after 10 s.
    pub fn settle(&self) {
        let mail = self.handle.mail();
        let asked = mail.ask();
        let deadline = Instant::now() + SETTLE;
        while !(mail.settled(asked) && self.handle.in_flight() == 0) {
            assert!(
                Instant::now() < deadline,
                "messages still undelivered after {SETTLE:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The next invocation of `T`'s handler `handler` fails with `fault` without running:
    /// [`Fault::Reject`] as a failed call (its caller's `?` returns it), [`Fault::Panic`] as a
    /// panic (the whole request fails and is undone). Panics on a handler `T` does not have.
    pub fn fail_next<T: Lambda>(&self, handler: &str, fault: Fault) {
        if let Err(e) = self.handle.inject::<T>(handler, fault) {
            panic!("{e}");
        }
    }

    /// Sets the state of many instances of `T` at once ([`Handle::load`]: thousands per
    /// request and per commit), waiting on this thread; call it outside an async context
    /// (in a `#[tokio::test]`, `.await` `t.handle().load` instead).
    pub fn load<T: Lambda>(
        &self,
        instances: impl IntoIterator<Item = (T::Key, T::State)>,
    ) -> Result<crate::engine::Loaded, crate::engine::LoadError> {
        self.handle.load_blocking::<T, _>(instances)
    }

    /// The engine's handle (submit encoded requests, metrics, the store).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The app.
    pub fn app(&self) -> &App {
        &self.app
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown();
        }
    }
}
