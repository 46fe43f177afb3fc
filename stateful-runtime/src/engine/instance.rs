//! One lambda on one worker: state table, lock table, invocations, undo logs, roots.
//!
//! ```text
//! Call ──lock free / held by the same attempt──▶ start: Ctx + handler future, poll
//!      └─held by another attempt──▶ queue (retaining the message's capability);
//!                                   if the caller is older: Wound the holder's root
//! Reply ──▶ wake the suspended invocation, poll   Rollback ──▶ undo scope, ack
//! Release(commit|abort) ──▶ keep|undo, unlock, wake the oldest waiter
//! Wounded ──▶ fail this attempt's waiters and later calls (its root retries)
//! ```
//!
//! Isolation: strict two-phase locking per `(lambda, key)` held by a root attempt until the
//! root ends; re-entry by the same attempt proceeds. Deadlocks cannot form: a younger request
//! only ever waits for an older one (wound-wait on the ingress sequence number).

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, Waker};

use stateful_core::keys::{KeyGroup, key_group, worker_of};
use timely::dataflow::operators::{CapabilitySet, InputCapability};
use timely::order::Product;

use super::{Addr, Body, Call, LambdaRuntime, Msg, ReplyTo, TraceNode, Txn};
use crate::codec;
use crate::lambda::{CallError, Ctx, Invocation, Io, Lambda, Outcome, Reply, StateAccess};
use crate::store::{Completion, StateStore, StateWrite};

/// Timestamps inside the dataflow loop: (epoch in unix ms, hop).
pub type Time = Product<u64, u32>;

/// How many times a request is retried after being chosen as a deadlock victim.
pub const MAX_ATTEMPTS: u32 = 64;

/// The capability a unit of work runs under.
pub enum Cap<'a> {
    /// As received.
    Input(&'a InputCapability<Time>),
    /// Retained earlier (a woken waiter, a stashed message).
    Held(&'a CapabilitySet<Time>),
}

impl Cap<'_> {
    /// Keeps the capability for later (port 0, the message output).
    pub fn retain(&self) -> CapabilitySet<Time> {
        match self {
            Cap::Input(c) => c.retain_stamp(0),
            Cap::Held(c) => (*c).clone(),
        }
    }
}

/// A unit of work for an instance.
#[derive(Debug)]
pub enum Work {
    /// A message from the dataflow.
    #[allow(private_interfaces)]
    Msg(Msg),
    /// Fail a queued call (its attempt was aborted).
    #[allow(private_interfaces)]
    Fail(Call, CallError),
}

/// The recorded call tree of a request (stored with its completion).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RootTrace {
    /// Attempts it took (more than one: it was a deadlock victim and was retried).
    pub attempts: u32,
    /// The root invocation.
    pub root: TraceNode,
}

/// A response ready to be released once its epoch is durable.
#[derive(Debug)]
pub struct Finished {
    /// Epoch of the request.
    pub epoch: u64,
    /// Ingress sequence number.
    pub seq: u64,
    /// The result.
    pub result: Result<Outcome, CallError>,
    /// The client's idempotency key, if any.
    pub idempotency_key: Option<String>,
}

/// What handling a unit of work produced.
#[derive(Default)]
pub struct Effects {
    /// Messages to send under the current capability.
    #[allow(private_interfaces)]
    pub out: Vec<Msg>,
    /// Work to run later under its own retained capability.
    pub woken: Vec<(u64, CapabilitySet<Time>, Work)>,
}

/// Per-worker environment of an instance.
#[derive(Clone)]
pub struct Env {
    /// This worker.
    pub worker: u32,
    /// All workers.
    pub workers: u32,
    /// Key groups of the data dir.
    pub groups: u16,
    /// Number of lambdas of the app.
    pub lambdas: u16,
    /// The durable store.
    pub store: Arc<dyn StateStore>,
    /// Responses of roots that ended on this worker, for the driver to release.
    pub finished: Rc<RefCell<Vec<Finished>>>,
    /// Epoch of the message being handled.
    pub epoch: Rc<std::cell::Cell<u64>>,
    /// Commit interval in epochs (ms).
    pub interval: u64,
    /// First epoch of this run (after the last committed one).
    pub start_epoch: u64,
    /// Engine counters.
    pub metrics: Arc<super::runtime::Metrics>,
    /// Index of this operator in `metrics.operators`.
    pub op: usize,
    /// The next position in the completion order (shared by all workers).
    pub order: Arc<std::sync::atomic::AtomicU64>,
    /// Whether call trees are recorded for `trace`.
    pub traces: bool,
    /// Processes of the cluster (1 alone): a root's id is `seq * processes + process`.
    pub processes: u32,
}

impl Env {
    fn op_metrics(&self) -> Option<&super::runtime::OperatorMetrics> {
        self.metrics.operators.get(self.op)
    }
}

impl Env {
    fn owner(&self, key: &[u8]) -> u32 {
        let g = key_group(key, self.groups);
        worker_of(g, self.groups, self.workers as usize) as u32
    }
}

struct Lock<S> {
    holder: Txn,
    /// Before-images: (scope of the write, value before it).
    undo: Vec<(Vec<u64>, Option<S>)>,
    waiters: Vec<(u64, CapabilitySet<Time>, Call)>,
}

struct TableInner<S> {
    values: HashMap<Vec<u8>, S>,
    locks: HashMap<Vec<u8>, Lock<S>>,
    /// Keys changed in the current epoch, with the requests (seqs) that wrote them.
    dirty: HashMap<Vec<u8>, Vec<u64>>,
}

/// The state table of one lambda on one worker (shared with the contexts of its invocations).
struct Table<S> {
    inner: RefCell<TableInner<S>>,
}

impl<S: crate::lambda::State> StateAccess<S> for Table<S> {
    fn load(&self, key: &[u8]) -> S {
        self.inner
            .borrow()
            .values
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    fn store(&self, key: &[u8], value: S, scope: &[u64], root: u64) {
        let mut t = self.inner.borrow_mut();
        let t = &mut *t;
        let old = t.values.insert(key.to_vec(), value);
        if let Some(lock) = t.locks.get_mut(key) {
            lock.undo.push((scope.to_vec(), old));
        }
        let writers = t.dirty.entry(key.to_vec()).or_default();
        if !writers.contains(&root) {
            writers.push(root);
        }
    }
}

struct Inv {
    fut: Option<Invocation>,
    io: Rc<Io>,
    txn: Txn,
    key: Vec<u8>,
    reply: ReplyTo,
    participants: Vec<Addr>,
    /// Set after a panic inside a transaction block: reply with this once rolled back.
    failing: Option<CallError>,
    /// For traces: what was called, what it called, when it started.
    handler: u16,
    args: Vec<u8>,
    children: Vec<TraceNode>,
    rollbacks: u32,
    started: std::time::Instant,
}

struct RootRec {
    attempt: u32,
    wounded: bool,
    call: Call,
}

/// The per-worker runtime of lambda `L`.
pub(crate) struct Instance<L: Lambda> {
    env: Option<Env>,
    table: Rc<Table<L::State>>,
    invs: HashMap<u64, Inv>,
    next_inv: u64,
    roots: HashMap<u64, RootRec>,
    /// Aborted attempts known here, with the epoch they were aborted in (for clean-up).
    aborted: HashMap<(u64, u32), u64>,
    rollback_waits: HashMap<(u64, u32), u32>,
    completions: Vec<Completion>,
    _l: PhantomData<L>,
}

/// Slot used for the rollback after a panic inside a block.
const PANIC_SLOT: u32 = u32::MAX;

impl<L: Lambda> Instance<L> {
    pub(crate) fn new() -> Self {
        Instance {
            env: None,
            table: Rc::new(Table {
                inner: RefCell::new(TableInner {
                    values: HashMap::new(),
                    locks: HashMap::new(),
                    dirty: HashMap::new(),
                }),
            }),
            invs: HashMap::new(),
            next_inv: 1,
            roots: HashMap::new(),
            aborted: HashMap::new(),
            rollback_waits: HashMap::new(),
            completions: Vec::new(),
            _l: PhantomData,
        }
    }

    fn env(&self) -> &Env {
        // `init` runs before any message: the dataflow is built with it.
        self.env
            .as_ref()
            .unwrap_or_else(|| unreachable!("instance used before init"))
    }

    fn me(&self) -> (u32, u16) {
        (self.env().worker, L::ID)
    }

    fn msg_to(&self, lambda: u16, key: &[u8], body: Body) -> Msg {
        Msg {
            worker: self.env().owner(key),
            lambda,
            body,
        }
    }

    /// Makes sure the value of `key` is in the table (loading it from the store).
    fn ensure_loaded(&self, key: &[u8]) -> Result<(), CallError> {
        if self.table.inner.borrow().values.contains_key(key) {
            return Ok(());
        }
        let env = self.env();
        let group: KeyGroup = key_group(key, env.groups);
        let value = match env.store.get(L::ID, group, key) {
            Ok(Some(bytes)) => codec::decode_state::<L::State>(&bytes)
                .map_err(|e| CallError::Codec(format!("stored state of {}: {e}", L::NAME)))?,
            Ok(None) => L::State::default(),
            Err(e) => return Err(CallError::Codec(format!("state store: {e}"))),
        };
        self.table
            .inner
            .borrow_mut()
            .values
            .insert(key.to_vec(), value);
        Ok(())
    }

    fn reply(
        &mut self,
        reply: &ReplyTo,
        txn: Txn,
        result: Result<Outcome, CallError>,
        participants: Vec<Addr>,
        trace: Option<Box<TraceNode>>,
        fx: &mut Effects,
    ) {
        match reply {
            ReplyTo::Caller {
                worker,
                lambda,
                inv,
                slot,
            } => fx.out.push(Msg {
                worker: *worker,
                lambda: *lambda,
                body: Body::Reply {
                    inv: *inv,
                    slot: *slot,
                    result,
                    participants,
                    trace,
                },
            }),
            ReplyTo::Root { .. } => self.root_ended(txn, result, participants, trace, fx),
        }
    }

    fn root_ended(
        &mut self,
        txn: Txn,
        result: Result<Outcome, CallError>,
        participants: Vec<Addr>,
        trace: Option<Box<TraceNode>>,
        fx: &mut Effects,
    ) {
        let env = self.env().clone();
        let Some(rec) = self.roots.get_mut(&txn.root) else {
            return;
        };
        if rec.attempt != txn.attempt {
            return;
        }
        let aborted = rec.wounded || matches!(result, Err(CallError::Aborted));
        let commit = !aborted;
        let mut releases = Vec::with_capacity(participants.len());
        for p in &participants {
            releases.push(Msg {
                worker: env.owner(&p.key),
                lambda: p.lambda,
                body: Body::Release {
                    txn,
                    key: p.key.clone(),
                    commit,
                },
            });
        }
        fx.out.extend(releases);
        if aborted {
            env.metrics.aborts.fetch_add(1, Relaxed);
        }
        if aborted && rec.attempt + 1 < MAX_ATTEMPTS {
            rec.attempt += 1;
            rec.wounded = false;
            let mut call = rec.call.clone();
            call.txn.attempt = rec.attempt;
            fx.out.push(Msg {
                worker: env.worker,
                lambda: L::ID,
                body: Body::Call(call),
            });
            return;
        }
        let Some(rec) = self.roots.remove(&txn.root) else {
            return;
        };
        let result = if aborted {
            Err(CallError::Deadlocked(rec.attempt + 1))
        } else {
            result
        };
        let (idempotency_key, ingress) = match &rec.call.reply {
            ReplyTo::Root {
                idempotency_key,
                ingress,
            } => (idempotency_key.clone(), *ingress),
            ReplyTo::Caller { .. } => (None, env.worker),
        };
        let order = env.order.fetch_add(1, Relaxed);
        let trace = trace.map(|t| {
            crate::lambda::encode(&RootTrace {
                attempts: txn.attempt + 1,
                root: *t,
            })
        });
        let done = super::RemoteCompletion {
            seq: txn.root / u64::from(env.processes.max(1)),
            idempotency_key,
            result,
            order,
            trace: trace.unwrap_or_default(),
        };
        if ingress == env.worker {
            self.completed(done);
        } else {
            // The completion belongs with the request's log, on the ingress worker. Sent
            // within this epoch, it is recorded there before the epoch's commit.
            fx.out.push(Msg {
                worker: ingress,
                lambda: L::ID,
                body: Body::Completed(Box::new(done)),
            });
        }
    }

    /// Records a completed request of this worker's ingress and queues its response.
    fn completed(&mut self, done: super::RemoteCompletion) {
        let super::RemoteCompletion {
            seq,
            idempotency_key,
            result,
            order,
            trace,
        } = done;
        let ok = matches!(&result, Ok(o) if o.ok);
        let response = crate::lambda::encode(&result);
        self.completions.push(Completion {
            seq,
            idempotency_key: idempotency_key.clone(),
            ok,
            response,
            order,
            epoch: 0,
            trace,
        });
        let env = self.env();
        env.finished.borrow_mut().push(Finished {
            epoch: env.epoch.get(),
            seq,
            result,
            idempotency_key,
        });
    }

    fn on_call(&mut self, call: Call, cap: &Cap<'_>, fx: &mut Effects) {
        let txn = call.txn;
        if self.aborted.contains_key(&(txn.root, txn.attempt)) {
            self.reply(
                &call.reply,
                txn,
                Err(CallError::Aborted),
                Vec::new(),
                None,
                fx,
            );
            return;
        }
        if let ReplyTo::Root { .. } = call.reply {
            let rec = self.roots.entry(txn.root).or_insert_with(|| RootRec {
                attempt: txn.attempt,
                wounded: false,
                call: call.clone(),
            });
            if rec.attempt != txn.attempt {
                // A stale duplicate of an attempt that already ended.
                return;
            }
        }
        if let Err(e) = self.ensure_loaded(&call.key) {
            self.reply(&call.reply, txn, Err(e), Vec::new(), None, fx);
            return;
        }
        let mut table = self.table.inner.borrow_mut();
        match table.locks.get_mut(&call.key) {
            None => {
                table.locks.insert(
                    call.key.clone(),
                    Lock {
                        holder: txn,
                        undo: Vec::new(),
                        waiters: Vec::new(),
                    },
                );
            }
            Some(lock) if lock.holder == txn => {}
            Some(lock) => {
                let holder = lock.holder;
                self.env().metrics.lock_waits.fetch_add(1, Relaxed);
                if let Some(m) = self.env().op_metrics() {
                    m.lock_waits.fetch_add(1, Relaxed);
                }
                lock.waiters
                    .push((self.env().epoch.get(), cap.retain(), call));
                drop(table);
                if holder.root != txn.root && txn.root < holder.root {
                    // Wound-wait: an older request never waits for a younger one.
                    fx.out.push(Msg {
                        worker: holder.worker,
                        lambda: holder.lambda,
                        body: Body::Wound { txn: holder },
                    });
                }
                return;
            }
        }
        drop(table);
        self.start(call, fx);
    }

    fn start(&mut self, call: Call, fx: &mut Effects) {
        let key: L::Key = match crate::lambda::decode(&call.key) {
            Ok(k) => k,
            Err(e) => {
                let err = CallError::Codec(format!("key of {}: {e}", L::NAME));
                self.reply(
                    &call.reply,
                    call.txn,
                    Err(err),
                    vec![self.addr(&call.key)],
                    None,
                    fx,
                );
                return;
            }
        };
        let id = self.next_inv;
        self.next_inv += 1;
        self.env().metrics.invocations.fetch_add(1, Relaxed);
        if let Some(m) = self.env().op_metrics() {
            m.invocations.fetch_add(1, Relaxed);
        }
        let (worker, lambda) = self.me();
        let io = Rc::new(Io {
            base_scope: call.scope.clone(),
            root: call.txn.root,
            next_block: std::cell::Cell::new(
                (u64::from(worker) << 56) ^ (u64::from(lambda) << 48) ^ (id << 16),
            ),
            ..Io::default()
        });
        let table: Rc<dyn StateAccess<L::State>> = self.table.clone();
        let ctx = Ctx::<L>::new(key, call.key.clone(), table, io.clone());
        match L::dispatch(call.handler, ctx, &call.args) {
            Err(e) => {
                let err = match e {
                    crate::lambda::DispatchError::UnknownHandler { .. } => {
                        CallError::NoSuchTarget(e.to_string())
                    }
                    other => CallError::Codec(other.to_string()),
                };
                self.reply(
                    &call.reply,
                    call.txn,
                    Err(err),
                    vec![self.addr(&call.key)],
                    None,
                    fx,
                );
            }
            Ok(fut) => {
                self.invs.insert(
                    id,
                    Inv {
                        fut: Some(fut),
                        io,
                        txn: call.txn,
                        key: call.key,
                        reply: call.reply,
                        participants: Vec::new(),
                        failing: None,
                        handler: call.handler,
                        args: call.args,
                        children: Vec::new(),
                        rollbacks: 0,
                        started: std::time::Instant::now(),
                    },
                );
                self.poll(id, fx);
            }
        }
    }

    fn addr(&self, key: &[u8]) -> Addr {
        Addr {
            lambda: L::ID,
            key: key.to_vec(),
        }
    }

    fn poll(&mut self, id: u64, fx: &mut Effects) {
        let Some(inv) = self.invs.get_mut(&id) else {
            return;
        };
        let Some(fut) = inv.fut.as_mut() else {
            return;
        };
        let mut cx = Context::from_waker(Waker::noop());
        let polled = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)));
        let io = inv.io.clone();
        let txn = inv.txn;
        let (worker, lambda) = (self.env().worker, L::ID);
        // Calls registered during the poll.
        for c in io.calls.borrow_mut().drain(..) {
            fx.out.push(Msg {
                worker: self.env().owner(&c.key),
                lambda: c.lambda,
                body: Body::Call(Call {
                    txn,
                    key: c.key,
                    handler: c.handler,
                    args: c.args,
                    scope: c.scope,
                    reply: ReplyTo::Caller {
                        worker,
                        lambda,
                        inv: id,
                        slot: c.slot,
                    },
                }),
            });
        }
        let rollbacks: Vec<_> = io.rollbacks.borrow_mut().drain(..).collect();
        for r in rollbacks {
            self.send_rollback(id, r.slot, txn, r.scope, r.participants, fx);
        }
        match polled {
            Ok(Poll::Pending) => {}
            Ok(Poll::Ready(outcome)) => self.finish(id, Ok(outcome), fx),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_owned());
                io.failed.set(true);
                let Some(inv) = self.invs.get_mut(&id) else {
                    return;
                };
                inv.fut = None;
                let blocks = io.blocks.borrow();
                if let Some(outer) = blocks.first() {
                    // Undo everything the open blocks did, then fail.
                    let mut scope = io.base_scope.clone();
                    scope.push(outer.id);
                    let mut parts: Vec<Addr> = blocks
                        .iter()
                        .flat_map(|b| b.participants.iter().cloned())
                        .collect();
                    parts.push(Addr {
                        lambda: L::ID,
                        key: inv.key.clone(),
                    });
                    inv.failing = Some(CallError::Panicked(msg));
                    drop(blocks);
                    self.send_rollback(id, PANIC_SLOT, txn, scope, parts, fx);
                } else {
                    drop(blocks);
                    self.finish(id, Err(CallError::Panicked(msg)), fx);
                }
            }
        }
    }

    fn send_rollback(
        &mut self,
        inv: u64,
        slot: u32,
        txn: Txn,
        scope: Vec<u64>,
        mut parts: Vec<Addr>,
        fx: &mut Effects,
    ) {
        self.env().metrics.rollbacks.fetch_add(1, Relaxed);
        if let Some(i) = self.invs.get_mut(&inv) {
            i.rollbacks += 1;
        }
        parts.sort();
        parts.dedup();
        let (worker, lambda) = self.me();
        self.rollback_waits.insert((inv, slot), parts.len() as u32);
        for p in parts {
            let m = self.msg_to(
                p.lambda,
                &p.key,
                Body::Rollback {
                    txn,
                    key: p.key.clone(),
                    scope: scope.clone(),
                    ack_worker: worker,
                    ack_lambda: lambda,
                    inv,
                    slot,
                },
            );
            fx.out.push(m);
        }
    }

    fn finish(&mut self, id: u64, result: Result<Outcome, CallError>, fx: &mut Effects) {
        let Some(inv) = self.invs.remove(&id) else {
            return;
        };
        let mut participants = inv.participants;
        participants.push(self.addr(&inv.key));
        participants.sort();
        participants.dedup();
        drop(inv.fut);
        let trace = self.env().traces.then(|| {
            Box::new(TraceNode {
                lambda: L::ID,
                key: inv.key.clone(),
                handler: inv.handler,
                args: inv.args,
                result: crate::lambda::encode(&result),
                rollbacks: inv.rollbacks,
                micros: inv.started.elapsed().as_micros() as u64,
                children: inv.children,
            })
        });
        self.reply(&inv.reply, inv.txn, result, participants, trace, fx);
    }

    fn on_reply(
        &mut self,
        inv: u64,
        slot: u32,
        result: Result<Outcome, CallError>,
        participants: Vec<Addr>,
        trace: Option<Box<TraceNode>>,
        fx: &mut Effects,
    ) {
        let Some(i) = self.invs.get_mut(&inv) else {
            return;
        };
        if let Some(t) = trace {
            i.children.push(*t);
        }
        if let Some(b) = i.io.blocks.borrow_mut().last_mut() {
            b.participants.extend(participants.iter().cloned());
        }
        i.participants.extend(participants);
        let reply = match result {
            Ok(o) => Reply::Done(o),
            Err(e) => Reply::Failed(e),
        };
        i.io.replies.borrow_mut().insert(slot, reply);
        self.poll(inv, fx);
    }

    fn undo(&self, key: &[u8], txn: Txn, scope: &[u64]) {
        let mut t = self.table.inner.borrow_mut();
        let t = &mut *t;
        let Some(lock) = t.locks.get_mut(key) else {
            return;
        };
        if lock.holder != txn {
            return;
        }
        let mut i = lock.undo.len();
        while i > 0 {
            i -= 1;
            if lock.undo[i].0.starts_with(scope) {
                let (_, old) = lock.undo.remove(i);
                match old {
                    Some(v) => {
                        t.values.insert(key.to_vec(), v);
                    }
                    None => {
                        t.values.remove(key);
                    }
                }
                t.dirty.entry(key.to_vec()).or_default();
            }
        }
        // Every write of this attempt to the key undone: it is not a writer of this version.
        if lock.undo.is_empty()
            && let Some(writers) = t.dirty.get_mut(key)
        {
            writers.retain(|w| *w != txn.root);
        }
        // Keep the cached value present (default) so that later loads do not hit the store
        // for a value that is being rolled back to "absent".
        if !t.values.contains_key(key) {
            t.values.insert(key.to_vec(), L::State::default());
        }
    }

    fn on_release(&mut self, txn: Txn, key: Vec<u8>, commit: bool, fx: &mut Effects) {
        if !commit {
            self.undo(&key, txn, &[]);
        }
        let mut t = self.table.inner.borrow_mut();
        let holds = t.locks.get(&key).is_some_and(|l| l.holder == txn);
        if !holds {
            return;
        }
        let Some(lock) = t.locks.remove(&key) else {
            return;
        };
        drop(t);
        self.grant_next(key, lock.waiters, fx);
    }

    /// Hands a free lock to the oldest waiting attempt (and wakes only its calls); waiters of
    /// attempts known to be aborted are failed instead.
    fn grant_next(
        &mut self,
        key: Vec<u8>,
        mut waiters: Vec<(u64, CapabilitySet<Time>, Call)>,
        fx: &mut Effects,
    ) {
        let worker = self.env().worker;
        while !waiters.is_empty() {
            let oldest = waiters
                .iter()
                .map(|(_, _, c)| (c.txn.root, c.txn.attempt))
                .min()
                .unwrap_or_default();
            let (mine, rest): (Vec<_>, Vec<_>) = waiters
                .into_iter()
                .partition(|(_, _, c)| (c.txn.root, c.txn.attempt) == oldest);
            waiters = rest;
            let aborted = self.aborted.contains_key(&oldest);
            let txn = mine.first().map(|(_, _, c)| c.txn);
            for (epoch, caps, call) in mine {
                let work = if aborted {
                    Work::Fail(call, CallError::Aborted)
                } else {
                    Work::Msg(Msg {
                        worker,
                        lambda: L::ID,
                        body: Body::Call(call),
                    })
                };
                fx.woken.push((epoch, caps, work));
            }
            if let (false, Some(holder)) = (aborted, txn) {
                self.table.inner.borrow_mut().locks.insert(
                    key,
                    Lock {
                        holder,
                        undo: Vec::new(),
                        waiters,
                    },
                );
                return;
            }
        }
    }

    fn on_wound(&mut self, txn: Txn, fx: &mut Effects) {
        let Some(rec) = self.roots.get_mut(&txn.root) else {
            return;
        };
        if rec.attempt != txn.attempt || rec.wounded {
            return;
        }
        rec.wounded = true;
        let env = self.env();
        for w in 0..env.workers {
            for l in 0..env.lambdas {
                fx.out.push(Msg {
                    worker: w,
                    lambda: l,
                    body: Body::Wounded { txn },
                });
            }
        }
    }

    fn on_wounded(&mut self, txn: Txn, fx: &mut Effects) {
        let epoch = self.env().epoch.get();
        self.aborted.insert((txn.root, txn.attempt), epoch);
        for inv in self.invs.values() {
            if inv.txn == txn {
                inv.io.aborted.set(true);
            }
        }
        let mut t = self.table.inner.borrow_mut();
        for lock in t.locks.values_mut() {
            let mut i = 0;
            while i < lock.waiters.len() {
                if lock.waiters[i].2.txn == txn {
                    let (epoch, caps, call) = lock.waiters.swap_remove(i);
                    fx.woken
                        .push((epoch, caps, Work::Fail(call, CallError::Aborted)));
                } else {
                    i += 1;
                }
            }
        }
    }
}

impl<L: Lambda> LambdaRuntime for Instance<L> {
    fn init(&mut self, env: Env) {
        self.env = Some(env);
    }

    fn handle(&mut self, work: Work, cap: &Cap<'_>, fx: &mut Effects) {
        match work {
            Work::Fail(call, e) => self.reply(&call.reply, call.txn, Err(e), Vec::new(), None, fx),
            Work::Msg(msg) => match msg.body {
                Body::Call(call) => self.on_call(call, cap, fx),
                Body::Reply {
                    inv,
                    slot,
                    result,
                    participants,
                    trace,
                } => self.on_reply(inv, slot, result, participants, trace, fx),
                Body::Rollback {
                    txn,
                    key,
                    scope,
                    ack_worker,
                    ack_lambda,
                    inv,
                    slot,
                } => {
                    self.undo(&key, txn, &scope);
                    // Suspended invocations of this attempt at this key must re-read.
                    fx.out.push(Msg {
                        worker: ack_worker,
                        lambda: ack_lambda,
                        body: Body::RollbackAck { inv, slot },
                    });
                }
                Body::RollbackAck { inv, slot } => {
                    let left = self.rollback_waits.get_mut(&(inv, slot)).map(|n| {
                        *n = n.saturating_sub(1);
                        *n
                    });
                    if left == Some(0) {
                        self.rollback_waits.remove(&(inv, slot));
                        if slot == PANIC_SLOT {
                            let err = self
                                .invs
                                .get_mut(&inv)
                                .and_then(|i| i.failing.take())
                                .unwrap_or(CallError::Panicked("panic".into()));
                            self.finish(inv, Err(err), fx);
                        } else if let Some(i) = self.invs.get(&inv) {
                            i.io.replies.borrow_mut().insert(slot, Reply::RolledBack);
                            self.poll(inv, fx);
                        }
                    }
                }
                Body::Release { txn, key, commit } => self.on_release(txn, key, commit, fx),
                Body::Wound { txn } => self.on_wound(txn, fx),
                Body::Wounded { txn } => self.on_wounded(txn, fx),
                Body::Completed(done) => self.completed(*done),
            },
        }
    }

    fn describe(&self) -> String {
        let t = self.table.inner.borrow();
        let mut out = String::new();
        for (key, lock) in &t.locks {
            out.push_str(&format!(
                "lock {}:{} held by root {} attempt {} (coordinator w{}); waiters {:?}; ",
                L::ID,
                String::from_utf8_lossy(key),
                lock.holder.root,
                lock.holder.attempt,
                lock.holder.worker,
                lock.waiters
                    .iter()
                    .map(|(e, _, c)| (c.txn.root, c.txn.attempt, *e))
                    .collect::<Vec<_>>()
            ));
        }
        for (root, r) in &self.roots {
            out.push_str(&format!(
                "root {root} attempt {} wounded {}; ",
                r.attempt, r.wounded
            ));
        }
        out.push_str(&format!(
            "{} invocations suspended, aborted {:?}",
            self.invs.len(),
            self.aborted.keys().collect::<Vec<_>>()
        ));
        out
    }

    fn waiting(&self) -> usize {
        self.table
            .inner
            .borrow()
            .locks
            .values()
            .map(|l| l.waiters.len())
            .sum()
    }

    fn snapshot(&mut self, epoch: u64) -> (Vec<StateWrite>, Vec<Completion>) {
        let env = self.env().clone();
        let mut t = self.table.inner.borrow_mut();
        let t = &mut *t;
        let mut writes = Vec::with_capacity(t.dirty.len());
        for (key, writers) in t.dirty.drain() {
            let value = t.values.get(&key).map(codec::encode_state);
            writes.push(StateWrite {
                lambda: L::ID,
                group: key_group(&key, env.groups),
                key,
                value,
                writers,
            });
        }
        self.aborted.retain(|_, e| *e > epoch);
        (writes, std::mem::take(&mut self.completions))
    }
}
