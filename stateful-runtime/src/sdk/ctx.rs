//! The context of one invocation: its key, its state, and calls to other lambdas.

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::fmt::Debug;
use std::rc::Rc;

use super::call::{Flush, RawCall};
use super::contract::{Calls, EventLambda, Keyed, Lambda, Sends};
use super::error::CallError;
use super::io::Io;
use super::send::{Outgoing, RawSend, SendSink};
use super::wire;

/// Access of a context to its lambda's state table on this worker (the engine implements it).
pub(crate) trait StateAccess<S> {
    /// The current value (`None`: the instance does not exist).
    fn load(&self, key: &[u8]) -> Option<S>;
    /// Stores a new value (and its encoding) written under `scope` by request `root`.
    fn store(&self, key: &[u8], value: S, encoded: Vec<u8>, scope: &[u64], root: u64);
    /// Deletes the instance, under `scope`, for request `root`.
    fn remove(&self, key: &[u8], scope: &[u64], root: u64);
    /// Records a message sent from the instance, under `scope`, by request `root`.
    fn send(&self, key: &[u8], message: Outgoing, scope: &[u64], root: u64);
}

/// What a context shares with the `transaction!` blocks of its handler: the instance's state
/// as the handler sees it, and how it reaches the state table.
pub(crate) struct Core<L: Lambda> {
    key: L::Key,
    key_bytes: Vec<u8>,
    state: RefCell<L::State>,
    /// Whether the instance exists as this handler sees it.
    exists: Cell<bool>,
    dirty: Cell<bool>,
    /// A delete not yet written to the table.
    deleted: Cell<bool>,
    stale: Cell<bool>,
    table: Rc<dyn StateAccess<L::State>>,
    io: Rc<Io>,
}

/// The context of one invocation: its key, its state, and calls to other lambdas.
///
/// A handler that takes `&Ctx<Self>` reads; one that takes `&mut Ctx<Self>` may also write
/// ([`Ctx::state_mut`], [`Ctx::set_state`], [`Ctx::delete`]). An instance exists once a
/// handler wrote it and until one deletes it ([`Ctx::exists`]); one that does not reads as
/// its state's default. A write guard cannot be held
/// across a call (the borrow checker says so), so a call always sees the state written so far.
pub struct Ctx<L: Lambda> {
    core: Rc<Core<L>>,
}

impl<L: Lambda> Core<L> {
    fn refresh(&self) {
        if self.stale.get()
            && let Ok(mut s) = self.state.try_borrow_mut()
        {
            let loaded = self.table.load(&self.key_bytes);
            self.exists.set(loaded.is_some());
            *s = loaded.unwrap_or_default();
            self.stale.set(false);
        }
    }

    /// Writes pending changes to the instance table (before a call, at block ends, at the
    /// end). A value that does not encode is not written: the invocation fails instead.
    pub(crate) fn flush(&self) {
        if self.deleted.replace(false) {
            self.table
                .remove(&self.key_bytes, &self.io.scope(), self.io.root);
        }
        if !self.dirty.get() {
            return;
        }
        self.dirty.set(false);
        let value = self.state.borrow().clone();
        match super::schema::encode::<L>(&value) {
            Ok(encoded) => {
                self.table.store(
                    &self.key_bytes,
                    value,
                    encoded,
                    &self.io.scope(),
                    self.io.root,
                );
            }
            Err(e) => {
                self.io.fail_with(CallError::Codec(format!(
                    "the state of {} `{:?}` was not written: {e}",
                    L::NAME,
                    self.key
                )));
                self.stale.set(true);
            }
        }
    }

    /// Drops pending changes (after a rollback the table holds the restored value).
    pub(crate) fn discard(&self) {
        self.dirty.set(false);
        self.deleted.set(false);
        self.stale.set(true);
    }

    pub(crate) fn key_bytes(&self) -> &[u8] {
        &self.key_bytes
    }

    pub(crate) fn io(&self) -> &Rc<Io> {
        &self.io
    }
}

impl<L: Lambda> Ctx<L> {
    pub(crate) fn new(
        key: L::Key,
        key_bytes: Vec<u8>,
        table: Rc<dyn StateAccess<L::State>>,
        io: Rc<Io>,
    ) -> Self {
        let state = table.load(&key_bytes);
        Ctx {
            core: Rc::new(Core {
                key,
                key_bytes,
                exists: Cell::new(state.is_some()),
                state: RefCell::new(state.unwrap_or_default()),
                dirty: Cell::new(false),
                deleted: Cell::new(false),
                stale: Cell::new(false),
                table,
                io,
            }),
        }
    }

    /// The key of this instance.
    pub fn key(&self) -> &L::Key {
        &self.core.key
    }

    /// This instance's state (its default if it was never written).
    pub fn state(&self) -> Ref<'_, L::State> {
        self.core.refresh();
        self.core.state.borrow()
    }

    /// Whether this instance exists: a handler wrote it (this one included) and none deleted
    /// it since.
    pub fn exists(&self) -> bool {
        self.core.refresh();
        self.core.exists.get()
    }

    /// Mutable access to this instance's state (the instance exists from now on). Changes
    /// become visible to other invocations when this handler next calls out or finishes; if
    /// the handler fails, they are undone.
    pub fn state_mut(&mut self) -> RefMut<'_, L::State> {
        self.core.refresh();
        self.core.dirty.set(true);
        self.core.deleted.set(false);
        self.core.exists.set(true);
        self.core.state.borrow_mut()
    }

    /// Deletes this instance: it no longer exists, and reads as its state's default (undone
    /// like any write if the handler fails).
    pub fn delete(&mut self) {
        self.core.refresh();
        if let Ok(mut s) = self.core.state.try_borrow_mut() {
            *s = L::State::default();
        }
        self.core.dirty.set(false);
        self.core.deleted.set(true);
        self.core.exists.set(false);
    }

    /// Replaces this instance's state.
    pub fn set_state(&mut self, value: L::State) {
        *self.state_mut() = value;
    }

    /// Writes pending changes to the instance table.
    pub(crate) fn flush(&self) {
        self.core.flush();
    }

    /// After a rollback or a re-entrant call the table may hold a newer value.
    pub(crate) fn mark_stale(&self) {
        self.core.stale.set(true);
    }

    /// What a `transaction!` block of this handler holds on to while its body runs.
    pub(crate) fn core(&self) -> Rc<Core<L>> {
        self.core.clone()
    }

    /// A typed call to handler `h` of the instance `key` of lambda `T`:
    /// `ctx.call::<Stock>(&item).subtract(2).await`.
    pub fn call<T: Lambda>(&self, key: &T::Key) -> T::Client<RawCall<'_>>
    where
        L: Calls<T>,
    {
        T::client(RawCall::new(
            self,
            &self.core.io,
            T::ID,
            wire::encode("the key", key),
        ))
    }

    /// Invokes a lambda of the function form with its input event; the event names the key.
    pub fn invoke<T: EventLambda>(&self, event: T::Event) -> super::call::CallFuture<'_, T::Output>
    where
        L: Calls<T>,
    {
        let key = wire::encode("the event's key", event.key());
        super::call::CallBackend::call(RawCall::new(self, &self.core.io, T::ID, key), 0, &(event,))
    }

    /// A message to handler `h` of instance `key` of lambda `T`, delivered once this request
    /// commits (never if it fails or its `transaction!` block rolls back), exactly once, in
    /// order with this instance's other messages to the same instance:
    /// `ctx.send::<Customer>(&id).add_points(5)`. No reply: the handler's result is logged.
    pub fn send<T: Lambda>(&mut self, key: &T::Key) -> T::Client<RawSend<'_>>
    where
        L: Sends<T>,
    {
        T::client(RawSend::new(self, T::ID, wire::encode("the key", key), 0))
    }

    /// A timer: [`Ctx::send`], delivered `delay` after this handler sends it (it survives
    /// restarts; after downtime it fires at once).
    pub fn send_after<T: Lambda>(
        &mut self,
        delay: std::time::Duration,
        key: &T::Key,
    ) -> T::Client<RawSend<'_>>
    where
        L: Sends<T>,
    {
        let due = super::send::after(self.now(), delay);
        T::client(RawSend::new(self, T::ID, wire::encode("the key", key), due))
    }

    /// The time by the engine's clock of timers and TTLs: the wall clock, unless a test
    /// stepped it (`TestApp::advance`). Use it, not `SystemTime::now()`, for times that
    /// timers are compared with.
    pub fn now(&self) -> std::time::SystemTime {
        let offset = std::time::Duration::from_micros(self.core.io.clock_offset_us);
        let now = std::time::SystemTime::now();
        now.checked_add(offset).unwrap_or(now)
    }

    /// A timer: [`Ctx::send`], delivered at `at` by the engine's clock ([`Ctx::now`]; at
    /// once if that has passed).
    pub fn send_at<T: Lambda>(
        &mut self,
        at: std::time::SystemTime,
        key: &T::Key,
    ) -> T::Client<RawSend<'_>>
    where
        L: Sends<T>,
    {
        let due = super::send::unix_us(at);
        T::client(RawSend::new(self, T::ID, wire::encode("the key", key), due))
    }
}

impl<L: Lambda> Drop for Ctx<L> {
    fn drop(&mut self) {
        // The handler finished: its last changes become visible (unless it panicked).
        if !self.core.io.failed.get() && !std::thread::panicking() {
            self.flush();
        }
    }
}

impl<L: Lambda> Debug for Ctx<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("lambda", &L::NAME)
            .field("key", &self.core.key)
            .finish_non_exhaustive()
    }
}

impl<L: Lambda> SendSink for Ctx<L> {
    fn record_send(&self, message: Result<Outgoing, CallError>) {
        let core = &self.core;
        match message {
            Ok(m) => core
                .table
                .send(&core.key_bytes, m, &core.io.scope(), core.io.root),
            Err(e) => core.io.fail_with(e),
        }
    }
}

impl<L: Lambda> Flush for Ctx<L> {
    fn flush_before_call(&self) {
        self.flush();
        // The callee may re-enter this instance; read the table again when we resume.
        self.mark_stale();
    }
}
