//! Messages after commit: `ctx.send::<T>(&key).handler(args)` (one way, no reply) and timers
//! (`ctx.send_after`, `ctx.send_at`). A message is recorded with the sending invocation's
//! writes, undone with them, committed with its epoch, and delivered once that epoch is
//! durable (or when it is due) as a request of its own, exactly once.
//!
//! ```text
//! ctx.send::<Customer>(&k).add_loyalty(5) ── Outgoing ──▶ the instance table (undo scope)
//!   epoch snapshot ─▶ commit record (MessageRecord) ─▶ durable ─▶ postman ─▶ a request
//! ```

use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::call::CallBackend;
use super::contract::HandlerResult;
use super::error::CallError;
use super::wire;

/// A message as the sending handler made it (the engine gives it its id at commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub lambda: u16,
    pub key: Vec<u8>,
    pub handler: u16,
    pub args: Vec<u8>,
    /// Unix µs; 0: at once.
    pub due_us: u64,
}

/// Where a [`RawSend`] puts its message: the sending invocation's context.
pub(crate) trait SendSink {
    /// Records the message (or fails the invocation with why it could not be made).
    fn record_send(&self, message: Result<Outgoing, CallError>);
}

/// The target of a message from a handler: the typed client's backend for
/// [`Ctx::send`](super::Ctx::send). A "call" through it records the message and returns `()`.
pub struct RawSend<'c> {
    sink: &'c dyn SendSink,
    lambda: u16,
    key: Result<Vec<u8>, CallError>,
    due_us: u64,
}

impl<'c> RawSend<'c> {
    pub(crate) fn new(
        sink: &'c dyn SendSink,
        lambda: u16,
        key: Result<Vec<u8>, CallError>,
        due_us: u64,
    ) -> Self {
        RawSend {
            sink,
            lambda,
            key,
            due_us,
        }
    }
}

impl Debug for RawSend<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSend")
            .field("lambda", &self.lambda)
            .field("due_us", &self.due_us)
            .finish_non_exhaustive()
    }
}

impl CallBackend for RawSend<'_> {
    type Future<R: HandlerResult> = ();

    fn call<A: Serialize, R: HandlerResult>(self, handler: u16, args: &A) {
        let message = self.key.and_then(|key| {
            Ok(Outgoing {
                lambda: self.lambda,
                key,
                handler,
                args: wire::encode("the message's arguments", args)?,
                due_us: self.due_us,
            })
        });
        self.sink.record_send(message);
    }
}

/// Unix µs of `at` (0 for a time before 1970: deliver at once).
pub(crate) fn unix_us(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .max(1)
}

/// Unix µs `delay` after `now`.
pub(crate) fn after(now: SystemTime, delay: Duration) -> u64 {
    unix_us(now.checked_add(delay).unwrap_or(now))
}
