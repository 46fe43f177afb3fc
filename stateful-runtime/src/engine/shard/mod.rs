//! One lambda on one worker (a shard of its operator): the state table, the lock table, the
//! invocations being polled and the roots coordinated here.
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
//! - [`table`]: values, before-images, the epoch's changes;
//! - [`locks`]: holders and queues;
//! - [`executor`]: invocations as futures, calls out, replies in, rollbacks of blocks;
//! - [`coordinator`]: the roots that entered here: retries, releases, completions, wounds.
//!
//! Isolation: strict two-phase locking per `(lambda, key)` held by a root attempt until the
//! root ends; re-entry by the same attempt proceeds. Deadlocks cannot form: a younger request
//! only ever waits for an older one (wound-wait on the root's age).

mod cache;
mod clock;
mod coordinator;
mod executor;
mod load;
mod locks;
mod table;

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use stateful_core::keys::{KeyGroup, key_group, worker_of};
use timely::dataflow::operators::{CapabilitySet, InputCapability};
use timely::order::Product;

use super::commit::Snapshot;
use super::metrics::{Metrics, OperatorMetrics};
use super::protocol::{Body, Call, Msg, Txn};
use crate::sdk::{CallError, Lambda, Outcome};
use crate::storage::{CompletionEntry, MessageId, MessageRecord, StateStore, WriteRecord};
use coordinator::Roots;
use executor::Invocations;
use locks::{Acquire, LockTable, Waiter};
use table::StateTable;

/// Timestamps inside the dataflow loop: (epoch in unix ms, hop).
pub type Time = Product<u64, u32>;

/// How many times a request is retried after being chosen as a deadlock victim.
pub const MAX_ATTEMPTS: u32 = 64;

/// The capability a unit of work runs under.
pub enum Cap<'a> {
    /// As received, with the number of message output ports of the operator.
    Input(&'a InputCapability<Time>, usize),
    /// Retained earlier (a woken waiter, a stashed message): one set per output port.
    Held(&'a [CapabilitySet<Time>]),
}

impl Cap<'_> {
    /// Keeps the capability for later, for every message output port.
    pub fn retain(&self) -> Vec<CapabilitySet<Time>> {
        match self {
            Cap::Input(c, ports) => (0..*ports).map(|p| c.retain_stamp(p)).collect(),
            Cap::Held(c) => c.to_vec(),
        }
    }
}

/// A unit of work for a shard.
#[derive(Debug)]
pub enum Work {
    /// A message from the dataflow.
    Msg(Msg),
    /// Fail a queued call (its attempt was aborted).
    Fail(Call, CallError),
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
    pub out: Vec<Msg>,
    /// Work to run later under its own retained capability.
    pub woken: Vec<(u64, Vec<CapabilitySet<Time>>, Work)>,
}

/// Per-worker environment of a shard.
#[derive(Clone)]
pub struct Env {
    /// This worker (global index).
    pub worker: u32,
    /// All workers of all processes.
    pub workers: u32,
    /// Key groups of the data dir.
    pub groups: u16,
    /// For each lambda (by id), the lambdas its calls reach, itself included.
    pub participants: Arc<Vec<Vec<u16>>>,
    /// The durable store.
    pub store: Arc<dyn StateStore>,
    /// Responses of roots that ended on this worker, for the driver to release.
    pub finished: Rc<RefCell<Vec<Finished>>>,
    /// Epoch of the message being handled.
    pub epoch: Rc<std::cell::Cell<u64>>,
    /// Engine counters.
    pub metrics: Arc<Metrics>,
    /// Index of this operator in `metrics.operators`.
    pub op: usize,
    /// The next position in the completion order (shared by all workers).
    pub order: Arc<std::sync::atomic::AtomicU64>,
    /// Whether call trees are recorded for `trace`.
    pub traces: bool,
    /// Processes of the cluster (1 alone).
    pub processes: usize,
    /// Failures injected by tests.
    pub faults: Arc<super::faults::Faults>,
    /// The clock of TTLs.
    pub now: Arc<super::now::Now>,
    /// Bytes of instances this shard may keep cached (`usize::MAX`: no bound).
    pub cache_budget: usize,
    /// The last epoch the store holds (an instance changed later may not be evicted).
    pub materialized: Arc<dyn Fn() -> u64>,
}

impl Env {
    fn op_metrics(&self) -> Option<&OperatorMetrics> {
        self.metrics.operators.get(self.op)
    }

    /// The worker that owns `key`.
    pub(crate) fn owner(&self, key: &[u8]) -> u32 {
        let g = key_group(key, self.groups);
        worker_of(g, self.groups, self.workers as usize) as u32
    }
}

/// The type-erased shard of one lambda, as its operator drives it.
pub trait ShardRuntime {
    /// Prepares the shard for its worker (called once, before any message).
    fn init(&mut self, env: Env);
    /// Handles one unit of work; `cap` is the capability it arrived with.
    fn handle(&mut self, work: Work, cap: &Cap<'_>, fx: &mut Effects);
    /// Takes the changes since the last snapshot (all of them belong to ended roots).
    fn snapshot(&mut self, epoch: u64) -> Result<Snapshot, String>;
    /// Calls waiting in lock queues now.
    fn waiting(&self) -> usize;
    /// The lock table and the roots coordinated here, for a stall report.
    fn describe(&self) -> String;
}

/// A call waiting for a lock, with the capability it must run under.
pub(crate) struct Queued {
    epoch: u64,
    caps: Vec<CapabilitySet<Time>>,
    call: Call,
    /// Its handler writes (needs the lock alone).
    exclusive: bool,
}

impl Waiter for Queued {
    fn txn(&self) -> Txn {
        self.call.txn
    }
    fn exclusive(&self) -> bool {
        self.exclusive
    }
}

/// Whether handler `h` of `L` writes (an unknown handler is treated as writing: it fails
/// when it starts).
fn writes<L: Lambda>(h: u16) -> bool {
    L::HANDLERS.get(usize::from(h)).is_none_or(|m| m.writes)
}

/// The shard of lambda `L` on one worker.
pub(crate) struct Shard<L: Lambda> {
    env: Option<Env>,
    table: Rc<StateTable<L::State>>,
    locks: LockTable<Queued>,
    invs: Invocations,
    roots: Roots,
    completions: Vec<CompletionEntry>,
    _l: PhantomData<L>,
}

impl<L: Lambda> Shard<L> {
    pub(crate) fn new() -> Self {
        Shard {
            env: None,
            table: Rc::new(StateTable::with_stamps(L::SCHEMA, L::TTL_US.is_some())),
            locks: LockTable::new(),
            invs: Invocations::default(),
            roots: Roots::default(),
            completions: Vec::new(),
            _l: PhantomData,
        }
    }

    fn env(&self) -> &Env {
        // `init` runs before any message: the dataflow is built with it.
        self.env
            .as_ref()
            .unwrap_or_else(|| unreachable!("shard used before init"))
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
        let hit = self.table.is_loaded(key);
        if let Some(m) = self.env().op_metrics() {
            let counter = if hit { &m.cache_hits } else { &m.cache_misses };
            counter.fetch_add(1, Relaxed);
        }
        if hit {
            self.table.touch(key);
        } else {
            self.load(key)?;
        }
        if let Some(ttl) = L::TTL_US
            && self.table.expired(key, self.env().now.us(), ttl)
        {
            self.table.expire(key);
        }
        Ok(())
    }

    /// Keeps the cache within its budget (after a snapshot: the epoch's changes are clean
    /// once the store holds them).
    fn evict(&self) {
        let env = self.env();
        if self.table.cached_bytes() > env.cache_budget {
            let locks = &self.locks;
            let n = self
                .table
                .evict(env.cache_budget, (env.materialized)(), |k| {
                    locks.is_locked(k)
                });
            if let Some(m) = env.op_metrics() {
                m.evictions.fetch_add(n as u64, Relaxed);
            }
        }
        if let Some(m) = env.op_metrics() {
            m.cached_bytes
                .store(self.table.cached_bytes() as u64, Relaxed);
        }
    }

    /// Loads the value of `key` from the store (with its write time, for a TTL).
    fn load(&self, key: &[u8]) -> Result<(), CallError> {
        let env = self.env();
        let group: KeyGroup = key_group(key, env.groups);
        let (value, stamp, size) = match env.store.get_stamped(L::ID, group, key) {
            Ok(Some((epoch, bytes))) => {
                let v = crate::sdk::schema::decode::<L>(&bytes)
                    .map_err(|e| CallError::Codec(format!("stored state of {}: {e}", L::NAME)))?;
                (Some(v), Some(epoch), bytes.len())
            }
            Ok(None) => (None, None, 0),
            Err(e) => return Err(CallError::Storage(format!("state of {}: {e}", L::NAME))),
        };
        self.table.load_stamped(key, value, stamp, size);
        Ok(())
    }

    fn on_call(&mut self, call: Call, cap: &Cap<'_>, fx: &mut Effects) {
        let txn = call.txn;
        if self.roots.is_aborted(txn) {
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
        if !self.roots.admit(&call) {
            // A stale duplicate of an attempt that already ended.
            return;
        }
        if call.handler == crate::engine::load::LOAD_HANDLER {
            return self.on_load(call, fx);
        }
        if let Err(e) = self.ensure_loaded(&call.key) {
            self.reply(&call.reply, txn, Err(e), Vec::new(), None, fx);
            return;
        }
        let exclusive = writes::<L>(call.handler);
        match self.locks.acquire(&call.key, txn, exclusive) {
            Acquire::Granted | Acquire::Reentrant => self.start(call, fx),
            Acquire::Busy { .. } => self.wait(call, exclusive, cap, fx),
        }
        self.send_wounds(fx);
    }

    /// Queues a call behind the holders of its lock (the lock table names the younger
    /// holders to wound).
    fn wait(&mut self, call: Call, exclusive: bool, cap: &Cap<'_>, fx: &mut Effects) {
        let key = call.key.clone();
        let queued = Queued {
            epoch: self.env().epoch.get(),
            caps: cap.retain(),
            call,
            exclusive,
        };
        self.locks.enqueue(&key, queued);
        self.env().metrics.lock_waits.fetch_add(1, Relaxed);
        if let Some(m) = self.env().op_metrics() {
            m.lock_waits.fetch_add(1, Relaxed);
        }
        self.send_wounds(fx);
    }

    /// Wound-wait: an older request never waits for a younger one, so the lock table's
    /// younger holders are aborted (their roots retry).
    fn send_wounds(&mut self, fx: &mut Effects) {
        for holder in self.locks.take_wounds() {
            fx.out.push(Msg {
                worker: holder.worker,
                lambda: holder.lambda,
                body: Body::Wound { txn: holder },
            });
        }
    }

    fn on_release(&mut self, txn: Txn, key: Vec<u8>, commit: bool, fx: &mut Effects) {
        if !self.locks.holds(&key, txn) {
            return;
        }
        // Only a writer has writes to undo or keep; a reader just leaves.
        if self.locks.holds_exclusive(&key, txn) {
            if !commit {
                self.table.undo(&key, &[], txn.root.0);
            }
            self.table.release(&key);
        }
        let roots = &self.roots;
        let released = self
            .locks
            .release(&key, txn, |age| roots.is_aborted_age(age));
        self.send_wounds(fx);
        let worker = self.env().worker;
        for q in released.failed {
            fx.woken
                .push((q.epoch, q.caps, Work::Fail(q.call, CallError::Aborted)));
        }
        for q in released.granted {
            let msg = Msg {
                worker,
                lambda: L::ID,
                body: Body::Call(q.call),
            };
            fx.woken.push((q.epoch, q.caps, Work::Msg(msg)));
        }
    }

    fn on_rollback(&mut self, txn: Txn, key: &[u8], scope: &[u64]) {
        if self.locks.holds_exclusive(key, txn) {
            self.table.undo(key, scope, txn.root.0);
        }
    }
}

impl<L: Lambda> ShardRuntime for Shard<L> {
    fn init(&mut self, env: Env) {
        self.env = Some(env);
    }

    fn handle(&mut self, work: Work, cap: &Cap<'_>, fx: &mut Effects) {
        let msg = match work {
            Work::Fail(call, e) => {
                return self.reply(&call.reply, call.txn, Err(e), Vec::new(), None, fx);
            }
            Work::Msg(msg) => msg,
        };
        match msg.body {
            Body::Call(call) => self.on_call(call, cap, fx),
            Body::Reply {
                inv,
                slot,
                result,
                participants,
                trace,
                clock,
            } => {
                let answer = executor::Answer {
                    result,
                    participants,
                    trace,
                    clock,
                };
                self.on_reply(inv, slot, answer, fx)
            }
            Body::Rollback {
                txn,
                key,
                scope,
                ack_worker,
                ack_lambda,
                inv,
                slot,
            } => {
                self.on_rollback(txn, &key, &scope);
                fx.out.push(Msg {
                    worker: ack_worker,
                    lambda: ack_lambda,
                    body: Body::RollbackAck { inv, slot },
                });
            }
            Body::RollbackAck { inv, slot } => self.on_rollback_ack(inv, slot, fx),
            Body::Release {
                txn,
                key,
                commit,
                order,
            } => {
                self.env().observed(order);
                self.on_release(txn, key, commit, fx)
            }
            Body::Wound { txn } => self.on_wound(txn, fx),
            Body::Wounded { txn } => self.on_wounded(txn, fx),
            Body::Completed(done) => self.completed(*done),
        }
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for l in self.locks.describe() {
            let holders: Vec<String> = l
                .holders
                .iter()
                .map(|h| {
                    format!(
                        "root {} attempt {} (coordinator w{})",
                        h.root.0, h.attempt, h.worker
                    )
                })
                .collect();
            out.push_str(&format!(
                "lock {}:{} held by {}; waiters {:?}; ",
                L::ID,
                String::from_utf8_lossy(&l.key),
                holders.join(", "),
                l.waiters
            ));
        }
        out.push_str(&self.roots.describe());
        out.push_str(&format!("{} invocations suspended", self.invs.len()));
        out
    }

    fn waiting(&self) -> usize {
        self.locks.waiting()
    }

    fn snapshot(&mut self, epoch: u64) -> Result<Snapshot, String> {
        let groups = self.env().groups;
        let writes = self
            .table
            .take_dirty(self.env().now.us(), epoch)
            .map_err(|e| format!("the state of {} no longer encodes: {e}", L::NAME))?
            .into_iter()
            .map(|c| WriteRecord {
                lambda: L::ID,
                group: key_group(&c.key, groups),
                key: c.key,
                value: c.value,
                writers: c.writers,
            })
            .collect();
        let messages = self
            .table
            .take_outbox()
            .into_iter()
            .map(|m| MessageRecord {
                // The committer numbers the epoch's messages.
                id: MessageId { epoch, index: 0 },
                sender: m.sender,
                from_lambda: L::ID,
                from_key: m.from_key,
                lambda: m.message.lambda,
                key: m.message.key,
                handler: m.message.handler,
                args: m.message.args,
                due_us: m.message.due_us,
            })
            .collect();
        self.roots.forget_aborted_up_to(epoch);
        self.evict();
        Ok(Snapshot {
            epoch,
            writes,
            completions: std::mem::take(&mut self.completions),
            messages,
            last: false,
        })
    }
}

/// A one-lambda app and a one-worker environment for the shard's unit tests.
#[cfg(test)]
pub(super) mod fixture {
    use super::*;

    #[stateful_macros::app]
    pub(crate) mod one {
        use crate::prelude::*;

        #[lambda(key = String, state = i64)]
        impl Cell {
            async fn get(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
                Ok(*ctx.state())
            }
        }
    }

    /// Worker 0 of 1, 16 key groups, no cache bound, on `store`.
    pub(crate) fn env(store: Arc<dyn StateStore>) -> Env {
        Env {
            worker: 0,
            workers: 1,
            groups: 16,
            participants: Arc::new(vec![vec![0]]),
            store,
            finished: Rc::new(RefCell::new(Vec::new())),
            epoch: Rc::new(std::cell::Cell::new(0)),
            metrics: Arc::new(Metrics::new(1, 1)),
            op: 0,
            order: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            traces: false,
            processes: 1,
            faults: Arc::default(),
            now: Arc::default(),
            cache_budget: usize::MAX,
            materialized: Arc::new(|| 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{
        Checkpoint, CommitRecord, CompactError, Compacted, Completion, Horizon, OpenError,
        ReadError, Version, WriteError,
    };

    use super::fixture::{env, one};

    /// A store whose reads fail (a disk gone bad).
    struct Unreadable;

    fn bad() -> ReadError {
        ReadError::Backend("the disk is gone".into())
    }

    impl StateStore for Unreadable {
        fn checkpoint(&self) -> Result<Checkpoint, ReadError> {
            Err(bad())
        }
        fn apply(&self, _: &[Arc<CommitRecord>]) -> Result<(), WriteError> {
            Err(WriteError::Backend("the disk is gone".into()))
        }
        fn flush(&self) -> Result<(), WriteError> {
            Err(WriteError::Backend("the disk is gone".into()))
        }
        fn get(&self, _: u16, _: KeyGroup, _: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
            Err(bad())
        }
        fn get_at(
            &self,
            _: u16,
            _: KeyGroup,
            _: &[u8],
            _: u64,
        ) -> Result<Option<Vec<u8>>, ReadError> {
            Err(bad())
        }
        fn history(&self, _: u16, _: KeyGroup, _: &[u8]) -> Result<Vec<Version>, ReadError> {
            Err(bad())
        }
        fn completion(&self, _: u64) -> Result<Option<Completion>, ReadError> {
            Err(bad())
        }
        fn completion_by_idempotency_key(&self, _: &str) -> Result<Option<Completion>, ReadError> {
            Err(bad())
        }
        fn completions_from(&self, _: u64, _: usize) -> Result<Vec<Completion>, ReadError> {
            Err(bad())
        }
        fn keys(&self, _: u16) -> Result<Vec<(KeyGroup, Vec<u8>)>, ReadError> {
            Err(bad())
        }
        fn pending_messages(&self) -> Result<Vec<crate::storage::MessageRecord>, ReadError> {
            Err(bad())
        }
        fn get_stamped(
            &self,
            _: u16,
            _: KeyGroup,
            _: &[u8],
        ) -> Result<Option<(u64, Vec<u8>)>, ReadError> {
            Err(bad())
        }
        fn expire(&self, _: u16, _: u64) -> Result<u64, CompactError> {
            Err(CompactError::Backend("unreadable".into()))
        }
        fn writers(&self, _: u16, _: KeyGroup, _: &[u8], _: u64) -> Result<Vec<u64>, ReadError> {
            Err(bad())
        }
        fn horizon(&self) -> Result<Horizon, ReadError> {
            Err(bad())
        }
        fn compact(&self, _: u64) -> Result<Compacted, CompactError> {
            Err(CompactError::Backend("the disk is gone".into()))
        }
        fn check_app(&self, _: &str) -> Result<(), OpenError> {
            Ok(())
        }
    }

    #[test]
    fn a_store_read_failure_is_a_storage_error_naming_the_lambda() {
        let mut shard = Shard::<one::Cell>::new();
        shard.init(env(Arc::new(Unreadable)));
        match shard.ensure_loaded(b"k") {
            Err(CallError::Storage(m)) => {
                assert!(m.contains("Cell") && m.contains("the disk is gone"), "{m}");
            }
            other => panic!("expected a storage error, got {other:?}"),
        }
        assert!(!shard.table.is_loaded(b"k"), "nothing was cached");
    }
}
