//! The contracts between a lambda and the runtime: what a key, a state, an event and a handler
//! result are, and the [`Lambda`] trait the `#[app]` macro implements for every lambda.
//!
//! Each layer of the runtime builds its own view of a lambda from `L: Lambda`: the engine its
//! per-worker shard, the service its JSON codec (through [`Lambda::visit_handlers`]).

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use stateful_core::records::RecordError;

use super::call::CallBackend;
use super::ctx::Ctx;
use super::error::{CallError, DispatchError};

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

/// The tuple of a handler's parameters, as it travels encoded.
pub trait HandlerArgs: Serialize + DeserializeOwned + 'static {}
impl<T: Serialize + DeserializeOwned + 'static> HandlerArgs for T {}

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
    /// Whether it takes `&mut Ctx` (may write: locks its instance exclusively); a `&Ctx`
    /// handler reads and shares the lock with other readers.
    pub writes: bool,
    /// Whether it is callable from outside (a route or `#[public]`): `/invoke` serves only
    /// these.
    pub public: bool,
    /// Of a `missing = not_found` lambda, and not `#[create]`: on an instance that does not
    /// exist it answers [`CallError::NotFound`](super::CallError::NotFound) without running.
    pub needs_existing: bool,
}

/// The encoded result of one invocation: postcard bytes of the handler's `Result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Whether the handler returned `Ok`.
    pub ok: bool,
    /// postcard encoding of the handler's whole `Result<T, E>`.
    pub bytes: Vec<u8>,
}

/// A running invocation: the handler's future, boxed; it resolves to the encoded result, or
/// to the runtime's failure when the result does not encode.
pub type Invocation = Pin<Box<dyn Future<Output = Result<Outcome, CallError>>>>;

/// Sees the handlers of a lambda with their types ([`Lambda::visit_handlers`]).
pub trait HandlerVisitor {
    /// Handler `index` takes the argument tuple `A` and returns `R`.
    fn handler<A: HandlerArgs, R: HandlerResult>(&mut self, index: u16, meta: &'static HandlerMeta);
}

/// A lambda as the runtime sees it. Implemented by the `#[app]` macro, never by hand.
pub trait Lambda: Sized + 'static {
    /// The key type addressing instances.
    type Key: Key;
    /// The state type of one instance.
    type State: State;
    /// The typed call surface (`ctx.call::<Self>(&key).handler(args)`), over any backend.
    type Client<B: CallBackend>;
    /// Name as written.
    const NAME: &'static str;
    /// Index of the lambda in its app (its declaration order).
    const ID: u16;
    /// The handlers, in index order.
    const HANDLERS: &'static [HandlerMeta];
    /// Fingerprint of the state type's definition, stored with every value (`#[app]` hashes
    /// the definition as written; 0: not fingerprinted, for hand-written impls).
    const SCHEMA: u32 = 0;
    /// Instances not written for this long (µs) expire: they read as absent
    /// (`#[lambda(.., ttl = "30d")]`; `None`: they never do).
    const TTL_US: Option<u64> = None;
    /// Reads a value that an older schema wrote, through the lambda's `migrate` function
    /// (`#[lambda(.., migrate = f)]`); `None` when it has none.
    fn migrate(bytes: &[u8]) -> Option<Result<Self::State, RecordError>> {
        let _ = bytes;
        None
    }
    /// Wraps a call target into the typed client.
    fn client<B: CallBackend>(backend: B) -> Self::Client<B>;
    /// Starts handler `handler` with postcard-encoded arguments (a tuple of the parameters).
    fn dispatch(handler: u16, ctx: Ctx<Self>, args: &[u8]) -> Result<Invocation, DispatchError>;
    /// Shows every handler with its argument and result types to `visitor`, in index order.
    fn visit_handlers<V: HandlerVisitor>(visitor: &mut V);
}

/// What the app knows about a lambda declared in one of its file modules
/// (`app_modules! { mod shop { mod stock; } }`): its index and its state's fingerprint. `#[app]`
/// implements it; the lambda's `#[lambda]` expansion reads it.
#[diagnostic::on_unimplemented(
    message = "lambda `{Self}` is not part of an app",
    note = "a `#[lambda]` belongs inside an `#[app] mod name {{ .. }}`, or in a file module that such a module declares (`app_modules! {{ mod shop {{ mod stock; }} }}` for `shop/stock.rs`)"
)]
pub trait AppMember {
    /// Index of the lambda in its app.
    const ID: u16;
    /// Fingerprint of the lambda's state type.
    const SCHEMA: u32;
}

/// A lambda in the paper's function form: one handler whose input event carries the key.
pub trait EventLambda: Lambda {
    /// The input event.
    type Event: Keyed<Key = Self::Key>;
    /// The handler's result.
    type Output: HandlerResult;
}

/// `Self` calls `T`: the app's graph has a call edge from `Self` to `T`. The `#[app]` macro
/// implements it for every pair of lambdas its analysis connects, so a call the graph does not
/// know cannot compile, and the dataflow built from the graph has a channel for every call.
#[diagnostic::on_unimplemented(
    message = "the app's graph has no call from `{Self}` to `{T}`",
    note = "calls are found in handler bodies: write `ctx.call::<{T}>(&key).handler(..)` (or `ctx.invoke::<{T}>(event)`) in a handler of `{Self}`, not in a helper function"
)]
pub trait Calls<T: Lambda> {}

/// `Self` sends messages to `T`: the app's graph has a send edge from `Self` to `T`. The
/// `#[app]` macro implements it for every pair its analysis finds, as it does [`Calls`].
#[diagnostic::on_unimplemented(
    message = "the app's graph has no message from `{Self}` to `{T}`",
    note = "messages are found in handler bodies: write `ctx.send::<{T}>(&key).handler(..)` (or `ctx.send_after::<{T}>(delay, &key)..`) in a handler of `{Self}`, not in a helper function"
)]
pub trait Sends<T: Lambda> {}
