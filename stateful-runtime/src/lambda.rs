//! What a lambda is to the runtime: the traits the `#[app]` macro implements, the context a
//! handler receives, typed calls and their futures.
//!
//! ```text
//! handler(ctx: &mut Ctx<Self>, args..) ──ctx.call::<Stock>(&key).subtract(2)──▶ CallFuture
//!        ▲                                    │ registers an OutCall in the invocation's Io
//!        └──── reply arrives, operator polls ◀┘ and suspends until the reply event arrives
//! ```
//!
//! Handlers never see the engine: they read and write their instance's state through
//! [`Ctx::state`]/[`Ctx::state_mut`] and reach other lambdas through [`Ctx::call`] (entity
//! form) or [`Ctx::invoke`] (function form, the key travels in the event).

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A key that addresses one instance of a lambda.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a lambda key",
    note = "a key type must implement Serialize, Deserialize, Clone, Eq, Hash and Debug (String and integers do)"
)]
pub trait Key: Serialize + DeserializeOwned + Clone + Eq + Hash + Debug + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Eq + Hash + Debug + 'static> Key for T {}

/// The state of one lambda instance: one value per key, `Default` when absent.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as lambda state",
    note = "derive Serialize, Deserialize, Default and Clone on the state type: #[derive(Default, Clone, Serialize, Deserialize)]"
)]
pub trait State: Serialize + DeserializeOwned + Default + Clone + 'static {}
impl<T: Serialize + DeserializeOwned + Default + Clone + 'static> State for T {}

/// An input event that declares the key of the instance it is for (the paper's contract).
///
/// Derive it with `#[derive(Keyed)]` and mark one field `#[key]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not declare its key",
    note = "derive it: #[derive(Keyed, Serialize, Deserialize)] and mark the key field with #[key]"
)]
pub trait Keyed: Serialize + DeserializeOwned + 'static {
    /// The key type.
    type Key: Key;
    /// The key this event is addressed to.
    fn key(&self) -> &Self::Key;
}

/// Why a call failed for a reason other than the callee's own answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The callee panicked; the message is the panic payload.
    #[error("the callee panicked: {0}")]
    Panicked(String),
    /// The request was chosen as a deadlock victim (or its transaction was aborted) and will be
    /// retried by the runtime; code seeing this should return.
    #[error("the request was aborted by the runtime and will be retried")]
    Aborted,
    /// Arguments or results could not be encoded or decoded.
    #[error("could not decode a message: {0}")]
    Codec(String),
    /// The request was a deadlock victim too many times in a row and was given up.
    #[error("gave up after {0} attempts as a deadlock victim; retry later")]
    Deadlocked(u32),
    /// The target lambda or handler does not exist.
    #[error("no such lambda or handler: {0}")]
    NoSuchTarget(String),
}

/// The return type of a handler: `Result<T, E>` where `E` can carry a [`CallError`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid handler result",
    note = "a handler returns Result<T, E> where T and E implement Serialize + Deserialize, and E implements Display and From<stateful_runtime::CallError> (or use stateful_runtime::Rejection as E)"
)]
pub trait HandlerResult: Serialize + DeserializeOwned + 'static {
    /// The success type.
    type Ok;
    /// The error (rejection) type.
    type Error;
    /// The result a caller sees when the call failed in the runtime.
    fn from_call_error(e: CallError) -> Self;
    /// Whether this is a success.
    fn is_ok(&self) -> bool;
    /// The rejection's message (its `Display`), if this is an error.
    fn error_message(&self) -> Option<String>;
}

impl<T, E> HandlerResult for Result<T, E>
where
    T: Serialize + DeserializeOwned + 'static,
    E: From<CallError> + Serialize + DeserializeOwned + std::fmt::Display + 'static,
{
    type Ok = T;
    type Error = E;
    fn from_call_error(e: CallError) -> Self {
        Err(E::from(e))
    }
    fn is_ok(&self) -> bool {
        Result::is_ok(self)
    }
    fn error_message(&self) -> Option<String> {
        self.as_ref().err().map(ToString::to_string)
    }
}

/// A ready-made rejection type for handlers that need no error enum of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// The handler rejected the request with this message.
    #[error("{0}")]
    Rejected(String),
    /// A call made by the handler failed in the runtime.
    #[error(transparent)]
    Call(#[from] CallError),
}

impl Rejection {
    /// A rejection with a message.
    pub fn new(msg: impl Into<String>) -> Self {
        Rejection::Rejected(msg.into())
    }
}

/// Static description of a handler, emitted by the `#[app]` macro.
#[derive(Debug, Clone, Copy)]
pub struct HandlerMeta {
    /// Handler name as written.
    pub name: &'static str,
    /// Parameter names and types (as written), without the context.
    pub params: &'static [(&'static str, &'static str)],
    /// The declared return type, as written.
    pub output: &'static str,
    /// HTTP route `(method, path)` declared with `#[route(..)]`, if any.
    pub route: Option<(&'static str, &'static str)>,
}

/// Why an invocation could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The lambda has no handler with this index or name.
    #[error("lambda `{lambda}` has no handler `{handler}`")]
    UnknownHandler {
        /// Lambda name.
        lambda: String,
        /// Handler name or index.
        handler: String,
    },
    /// The arguments did not decode as the handler's parameter types.
    #[error("arguments do not match the handler's parameters: {0}")]
    BadArguments(String),
    /// The key did not decode as the lambda's key type.
    #[error("the key does not match the lambda's key type: {0}")]
    BadKey(String),
}

/// The encoded result of one invocation: postcard bytes of the handler's `Result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Whether the handler returned `Ok`.
    pub ok: bool,
    /// postcard encoding of the handler's whole `Result<T, E>`.
    pub bytes: Vec<u8>,
}

/// A running invocation: the handler's future, boxed.
pub type Invocation = Pin<Box<dyn Future<Output = Outcome>>>;

/// A lambda as the runtime sees it. Implemented by the `#[app]` macro, never by hand.
pub trait Lambda: Sized + 'static {
    /// The key type addressing instances.
    type Key: Key;
    /// The state type of one instance.
    type State: State;
    /// The typed call surface (`ctx.call::<Self>(&key).handler(args)`).
    type Client<'c>;
    /// Name as written.
    const NAME: &'static str;
    /// Index of the lambda in its app (stable for one build).
    const ID: u16;
    /// The handlers, in index order.
    const HANDLERS: &'static [HandlerMeta];
    /// Wraps a raw call target into the typed client.
    fn client(raw: RawCall<'_>) -> Self::Client<'_>;
    /// Starts handler `handler` with postcard-encoded arguments (a tuple of the parameters).
    fn dispatch(handler: u16, ctx: Ctx<Self>, args: &[u8]) -> Result<Invocation, DispatchError>;
    /// Converts JSON arguments (an object by parameter name, an array, or, for one parameter,
    /// the bare value) to the postcard-encoded tuple `dispatch` takes.
    fn json_args(handler: u16, json: serde_json::Value) -> Result<Vec<u8>, DispatchError>;
    /// Converts encoded arguments back to JSON (an object by parameter name), for traces.
    fn args_json(handler: u16, bytes: &[u8]) -> Result<serde_json::Value, DispatchError> {
        let _ = (handler, bytes);
        Ok(serde_json::Value::Null)
    }
    /// Converts an encoded handler result to JSON: `Ok(value)` or `Err(error)` as JSON.
    fn result_json(handler: u16, bytes: &[u8]) -> Result<serde_json::Value, DispatchError>;
}

/// A lambda in the paper's function form: one handler whose input event carries the key.
pub trait EventLambda: Lambda {
    /// The input event.
    type Event: Keyed<Key = Self::Key>;
    /// The handler's result.
    type Output: HandlerResult;
}

// ---------------------------------------------------------------------------------------------
// The engine side of an invocation. Shared between the handler's context and the operator that
// polls the handler's future; both live on one worker thread.

/// A call issued by a handler and not yet sent.
#[derive(Debug)]
pub(crate) struct OutCall {
    pub slot: u32,
    pub lambda: u16,
    pub key: Vec<u8>,
    pub handler: u16,
    pub args: Vec<u8>,
    /// Transaction scope path at the time of the call.
    pub scope: Vec<u64>,
}

/// The answer to a call or to a rollback request.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// The callee finished; postcard bytes of its `Result`.
    Done(Outcome),
    /// The call failed in the runtime.
    Failed(CallError),
    /// A rollback finished on every participant.
    RolledBack,
}

/// An open `transaction!` block of an invocation.
#[derive(Debug, Default)]
pub(crate) struct Block {
    /// Block id, unique within the root.
    pub id: u64,
    /// Instances reached inside the block (encoded addresses), from the replies of its calls.
    pub participants: Vec<crate::engine::Addr>,
}

/// A rollback request issued by a failed block.
#[derive(Debug)]
pub(crate) struct RollbackRequest {
    pub slot: u32,
    /// Scope path of the block: writes under it are undone.
    pub scope: Vec<u64>,
    /// Instances to roll back.
    pub participants: Vec<crate::engine::Addr>,
}

/// Per-invocation exchange area between a handler and its operator.
#[derive(Debug, Default)]
pub(crate) struct Io {
    pub calls: RefCell<Vec<OutCall>>,
    pub rollbacks: RefCell<Vec<RollbackRequest>>,
    pub replies: RefCell<HashMap<u32, Reply>>,
    pub next_slot: Cell<u32>,
    /// Scope path inherited from the caller (root blocks first).
    pub base_scope: Vec<u64>,
    /// Open blocks of this invocation, innermost last.
    pub blocks: RefCell<Vec<Block>>,
    /// Next block id (unique per root: seeded from the invocation id).
    pub next_block: Cell<u64>,
    /// Set when the root was wounded; every later call fails with [`CallError::Aborted`].
    pub aborted: Cell<bool>,
    /// Set when the handler panicked: its unflushed changes are dropped.
    pub failed: Cell<bool>,
    /// Sequence number of the request this invocation works for (names the writer of state).
    pub root: u64,
}

impl Io {
    fn slot(&self) -> u32 {
        let s = self.next_slot.get();
        self.next_slot.set(s.wrapping_add(1));
        s
    }

    /// The current scope path: base scope plus open blocks.
    pub(crate) fn scope(&self) -> Vec<u64> {
        let mut s = self.base_scope.clone();
        s.extend(self.blocks.borrow().iter().map(|b| b.id));
        s
    }
}

/// Access of a context to its lambda's state table on this worker.
pub(crate) trait StateAccess<S> {
    /// The current value (default when absent).
    fn load(&self, key: &[u8]) -> S;
    /// Stores a new value written under `scope` (recorded in the root's undo log) by
    /// request `root`.
    fn store(&self, key: &[u8], value: S, scope: &[u64], root: u64);
}

/// The context of one invocation: its key, its state, and calls to other lambdas.
pub struct Ctx<L: Lambda> {
    key: L::Key,
    key_bytes: Vec<u8>,
    state: RefCell<L::State>,
    dirty: Cell<bool>,
    stale: Cell<bool>,
    table: Rc<dyn StateAccess<L::State>>,
    io: Rc<Io>,
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
            key,
            key_bytes,
            state: RefCell::new(state),
            dirty: Cell::new(false),
            stale: Cell::new(false),
            table,
            io,
        }
    }

    /// The key of this instance.
    pub fn key(&self) -> &L::Key {
        &self.key
    }

    fn refresh(&self) {
        if self.stale.get()
            && let Ok(mut s) = self.state.try_borrow_mut()
        {
            *s = self.table.load(&self.key_bytes);
            self.stale.set(false);
        }
    }

    /// This instance's state (its default if it was never written).
    pub fn state(&self) -> Ref<'_, L::State> {
        self.refresh();
        self.state.borrow()
    }

    /// Mutable access to this instance's state. Changes become visible to other invocations
    /// when this handler next calls out or finishes.
    pub fn state_mut(&self) -> RefMut<'_, L::State> {
        self.refresh();
        self.dirty.set(true);
        self.state.borrow_mut()
    }

    /// Replaces this instance's state.
    pub fn set_state(&self, value: L::State) {
        *self.state_mut() = value;
    }

    /// Writes pending changes to the instance table (before a call, at block ends, at the end).
    pub(crate) fn flush(&self) {
        if self.dirty.get() {
            let value = self.state.borrow().clone();
            self.table
                .store(&self.key_bytes, value, &self.io.scope(), self.io.root);
            self.dirty.set(false);
        }
    }

    /// After a rollback or a re-entrant call the table may hold a newer value.
    pub(crate) fn mark_stale(&self) {
        self.stale.set(true);
    }

    /// A typed call to handler `h` of the instance `key` of lambda `T`:
    /// `ctx.call::<Stock>(&item).subtract(2).await`.
    pub fn call<T: Lambda>(&self, key: &T::Key) -> T::Client<'_> {
        let key_bytes = encode(key);
        T::client(RawCall {
            flush: self,
            io: &self.io,
            lambda: T::ID,
            key: key_bytes,
        })
    }

    /// Invokes a lambda of the function form with its input event; the event names the key.
    pub fn invoke<T: EventLambda>(&self, event: T::Event) -> CallFuture<'_, T::Output> {
        let key = encode(event.key());
        RawCall {
            flush: self,
            io: &self.io,
            lambda: T::ID,
            key,
        }
        .call(0, &(event,))
    }

    /// The invocation's exchange area (for the engine and `transaction!`).
    pub(crate) fn io(&self) -> &Rc<Io> {
        &self.io
    }
}

impl<L: Lambda> Drop for Ctx<L> {
    fn drop(&mut self) {
        // The handler finished: its last changes become visible (unless it panicked).
        if !self.io.failed.get() && !std::thread::panicking() {
            self.flush();
        }
    }
}

impl<L: Lambda> Debug for Ctx<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("lambda", &L::NAME)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Something whose pending state changes must be written before a call leaves.
pub(crate) trait Flush {
    fn flush_before_call(&self);
}

impl<L: Lambda> Flush for Ctx<L> {
    fn flush_before_call(&self) {
        self.flush();
        // The callee may re-enter this instance; read the table again when we resume.
        self.mark_stale();
    }
}

/// An untyped call target; the generated client wraps it.
pub struct RawCall<'c> {
    flush: &'c dyn Flush,
    io: &'c Rc<Io>,
    lambda: u16,
    key: Vec<u8>,
}

impl Debug for RawCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCall")
            .field("lambda", &self.lambda)
            .finish_non_exhaustive()
    }
}

impl<'c> RawCall<'c> {
    /// Calls handler `handler` with `args` (the tuple of its parameters).
    pub fn call<A: Serialize, R: HandlerResult>(self, handler: u16, args: &A) -> CallFuture<'c, R> {
        let args = match postcard::to_stdvec(args) {
            Ok(a) => a,
            Err(e) => {
                return CallFuture {
                    io: self.io,
                    state: CallState::Failed(Some(CallError::Codec(e.to_string()))),
                    _r: PhantomData,
                };
            }
        };
        CallFuture {
            io: self.io,
            state: CallState::Unsent {
                flush: self.flush,
                call: Some((self.lambda, self.key, handler, args)),
            },
            _r: PhantomData,
        }
    }
}

enum CallState<'c> {
    Unsent {
        flush: &'c dyn Flush,
        call: Option<(u16, Vec<u8>, u16, Vec<u8>)>,
    },
    Waiting(u32),
    Failed(Option<CallError>),
    Done,
}

/// The future of a typed call; resolves to the callee's `Result` (or the runtime's failure
/// mapped through `From<CallError>`).
#[must_use = "a call does nothing unless awaited"]
pub struct CallFuture<'c, R> {
    io: &'c Rc<Io>,
    state: CallState<'c>,
    _r: PhantomData<fn() -> R>,
}

impl<R> Unpin for CallFuture<'_, R> {}

impl<R: HandlerResult> Future for CallFuture<'_, R> {
    type Output = R;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                CallState::Unsent { flush, call } => {
                    if this.io.aborted.get() {
                        this.state = CallState::Failed(Some(CallError::Aborted));
                        continue;
                    }
                    flush.flush_before_call();
                    let Some((lambda, key, handler, args)) = call.take() else {
                        this.state = CallState::Done;
                        continue;
                    };
                    let slot = this.io.slot();
                    let scope = this.io.scope();
                    this.io.calls.borrow_mut().push(OutCall {
                        slot,
                        lambda,
                        key,
                        handler,
                        args,
                        scope,
                    });
                    this.state = CallState::Waiting(slot);
                    return Poll::Pending;
                }
                CallState::Waiting(slot) => {
                    let Some(reply) = this.io.replies.borrow_mut().remove(slot) else {
                        return Poll::Pending;
                    };
                    this.state = CallState::Done;
                    return Poll::Ready(match reply {
                        Reply::Done(outcome) => decode::<R>(&outcome.bytes)
                            .unwrap_or_else(|e| R::from_call_error(CallError::Codec(e))),
                        Reply::Failed(e) => R::from_call_error(e),
                        Reply::RolledBack => {
                            R::from_call_error(CallError::Codec("unexpected rollback reply".into()))
                        }
                    });
                }
                CallState::Failed(e) => {
                    let e = e.take().unwrap_or(CallError::Aborted);
                    this.state = CallState::Done;
                    return Poll::Ready(R::from_call_error(e));
                }
                CallState::Done => return Poll::Pending,
            }
        }
    }
}

/// postcard encoding (infallible for the types the macros accept; falls back to empty).
pub(crate) fn encode<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).unwrap_or_default()
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// transaction! support

/// Waits for the answer to a rollback request.
struct RollbackWait<'a> {
    io: &'a Io,
    slot: u32,
}

impl Future for RollbackWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.io.replies.borrow_mut().remove(&self.slot).is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Runs `body` as an atomic block: on `Err`, every state change made inside it (here and in
/// every instance its calls reached) is undone before the error is returned.
pub(crate) async fn run_transaction<L: Lambda, T, E, F>(ctx: &Ctx<L>, body: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    // Writes before the block belong to the enclosing scope.
    ctx.flush();
    let io = ctx.io().clone();
    let id = io.next_block.get();
    io.next_block.set(id.wrapping_add(1));
    io.blocks.borrow_mut().push(Block {
        id,
        participants: Vec::new(),
    });
    let result = body.await;
    ctx.flush();
    let block = io.blocks.borrow_mut().pop().unwrap_or_default();
    match result {
        Ok(v) => {
            // Participants stay reached by the enclosing block (if any).
            if let Some(outer) = io.blocks.borrow_mut().last_mut() {
                outer.participants.extend(block.participants);
            }
            Ok(v)
        }
        Err(e) => {
            let mut scope = io.base_scope.clone();
            scope.extend(io.blocks.borrow().iter().map(|b| b.id));
            scope.push(block.id);
            let mut participants = block.participants.clone();
            participants.push(crate::engine::Addr {
                lambda: L::ID,
                key: ctx.key_bytes.clone(),
            });
            let slot = io.slot();
            io.rollbacks.borrow_mut().push(RollbackRequest {
                slot,
                scope,
                participants,
            });
            RollbackWait { io: &io, slot }.await;
            ctx.dirty.set(false);
            ctx.mark_stale();
            if let Some(outer) = io.blocks.borrow_mut().last_mut() {
                outer.participants.extend(block.participants);
            }
            Err(e)
        }
    }
}
