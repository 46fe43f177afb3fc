//! Invocations of one shard: handler futures polled by this worker, the calls and rollbacks
//! they issue, the replies that wake them, and their answers (to a caller or to the root's
//! coordinator).
//!
//! ```text
//! start: decode key, Ctx + dispatch ─▶ poll ─▶ calls out (Call msgs), rollbacks out
//!        ▲                               │ Pending: wait for a Reply / RollbackAck
//!        └── Reply (participants, trace) ┘ Ready / panic: finish ─▶ Reply or root_ended
//! finish: a failed invocation (Err, or a runtime failure) undoes its own writes to its
//!         instance (those under its own scope: callees' writes outside blocks stay)
//! panic:  the invocation fails at once (no more polls), its callers too as the failure
//!         reaches them (once their calls in flight answered); the root then undoes every
//!         write of the request everywhere it reached (Release without commit)
//! ```

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, Waker};

use stateful_core::records::trace::TraceNode;

use super::{Effects, Shard};
use crate::engine::faults::Fault;
use crate::engine::protocol::{Addr, Body, Call, Msg, ReplyTo, Txn};
use crate::sdk::ctx::StateAccess;
use crate::sdk::io::{Io, Reply};
use crate::sdk::{CallError, Ctx, DispatchError, Invocation, Lambda, Outcome, wire};

/// One running invocation.
struct Inv {
    fut: Option<Invocation>,
    io: Rc<Io>,
    txn: Txn,
    key: Vec<u8>,
    reply: ReplyTo,
    participants: Vec<Addr>,
    /// Calls sent and not yet answered.
    outstanding: u32,
    /// Set after a panic here or in a callee: the invocation fails with this once its calls
    /// in flight have answered (so that every instance they reached is known).
    failing: Option<CallError>,
    /// For traces: what was called, what it called, when it started.
    handler: u16,
    args: Vec<u8>,
    children: Vec<TraceNode>,
    rollbacks: u32,
    started: std::time::Instant,
    /// The largest clock its callees answered with (see `clock`).
    clock: u64,
    /// What the handler returned while calls it sent were still unanswered (it answers once
    /// they are: their instances go with the request's, locks released, clocks counted).
    returned: Option<Result<Outcome, CallError>>,
}

/// What a call answers with: its result, the instances it reached (for locks and rollbacks),
/// its call tree (when traces are recorded) and, in a cluster, its clock (`clock`).
pub(super) struct Answer {
    pub result: Result<Outcome, CallError>,
    pub participants: Vec<Addr>,
    pub trace: Option<Box<TraceNode>>,
    pub clock: u64,
}

/// The invocations of a shard, by id.
#[derive(Default)]
pub(super) struct Invocations {
    map: HashMap<u64, Inv>,
    next: u64,
    /// Rollbacks waiting for acks: (invocation, slot) -> acks still due.
    rollback_waits: HashMap<(u64, u32), u32>,
}

impl Invocations {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Marks every invocation of `txn` aborted: their later calls fail at once.
    pub(super) fn abort(&self, txn: Txn) {
        for inv in self.map.values() {
            if inv.txn == txn {
                inv.io.aborted.set(true);
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

impl<L: Lambda> Shard<L> {
    fn addr(&self, key: &[u8]) -> Addr {
        Addr {
            lambda: L::ID,
            key: key.to_vec(),
        }
    }

    /// Starts the handler a call names (its lock is held).
    pub(super) fn start(&mut self, call: Call, fx: &mut Effects) {
        let key: L::Key = match wire::decode(&format!("the key of {}", L::NAME), &call.key) {
            Ok(k) => k,
            Err(e) => {
                let me = vec![self.addr(&call.key)];
                return self.reply(&call.reply, call.txn, Err(e), me, None, fx);
            }
        };
        let needs_existing = L::HANDLERS
            .get(usize::from(call.handler))
            .is_some_and(|m| m.needs_existing);
        if needs_existing && self.table.get(&call.key).is_none() {
            let e = CallError::NotFound(format!("{} {key:?} does not exist", L::NAME));
            let me = vec![self.addr(&call.key)];
            return self.reply(&call.reply, call.txn, Err(e), me, None, fx);
        }
        self.invs.next += 1;
        let id = self.invs.next;
        self.env().metrics.invocations.fetch_add(1, Relaxed);
        if let Some(m) = self.env().op_metrics() {
            m.invocations.fetch_add(1, Relaxed);
            m.started_by(match &call.reply {
                ReplyTo::Caller { lambda, .. } => Some(*lambda),
                ReplyTo::Root { .. } => None,
            });
        }
        let worker = self.env().worker;
        // Block ids count up from the seed; the invocation's own scope is the top of its
        // range, so its writes (and its callees') can be undone without the caller's.
        let seed = (u64::from(worker) << 56) ^ (u64::from(L::ID) << 48) ^ (id << 16);
        let mut base_scope = call.scope.clone();
        base_scope.push(seed ^ 0xFFFF);
        let io = Rc::new(Io {
            base_scope,
            root: call.txn.root.0,
            clock_offset_us: self.env().now.offset_us(),
            next_block: std::cell::Cell::new(seed),
            ..Io::default()
        });
        let table: Rc<dyn StateAccess<L::State>> = self.table.clone();
        let ctx = Ctx::<L>::new(key, call.key.clone(), table, io.clone());
        match L::dispatch(call.handler, ctx, &call.args) {
            Err(e) => {
                let err = match e {
                    DispatchError::UnknownHandler { .. } => CallError::NoSuchTarget(e.to_string()),
                    other => CallError::Codec(other.to_string()),
                };
                let me = vec![self.addr(&call.key)];
                self.reply(&call.reply, call.txn, Err(err), me, None, fx);
            }
            Ok(fut) => {
                let fut = match self.env().faults.take(L::ID, call.handler) {
                    None => fut,
                    Some(f) => injected(f),
                };
                let inv = Inv {
                    fut: Some(fut),
                    io,
                    txn: call.txn,
                    key: call.key,
                    reply: call.reply,
                    participants: Vec::new(),
                    outstanding: 0,
                    failing: None,
                    handler: call.handler,
                    args: call.args,
                    children: Vec::new(),
                    rollbacks: 0,
                    started: std::time::Instant::now(),
                    clock: 0,
                    returned: None,
                };
                self.invs.map.insert(id, inv);
                self.poll(id, fx);
            }
        }
    }

    /// Polls invocation `id` once and sends what it issued.
    fn poll(&mut self, id: u64, fx: &mut Effects) {
        let Some(inv) = self.invs.map.get_mut(&id) else {
            return;
        };
        let Some(fut) = inv.fut.as_mut() else {
            return;
        };
        let mut cx = Context::from_waker(Waker::noop());
        let polled = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)));
        let (io, txn) = (inv.io.clone(), inv.txn);
        let sent = self.send_calls(id, &io, txn, fx);
        if let Some(inv) = self.invs.map.get_mut(&id) {
            inv.outstanding += sent;
        }
        let rollbacks: Vec<_> = io.rollbacks.borrow_mut().drain(..).collect();
        for r in rollbacks {
            self.send_rollback(id, r.slot, txn, r.scope, r.participants, fx);
        }
        match polled {
            Ok(Poll::Pending) => {}
            Ok(Poll::Ready(result)) => {
                // A state value that did not encode fails the invocation, whatever it returned.
                let result = match io.failure.borrow_mut().take() {
                    Some(e) => Err(e),
                    None => result,
                };
                self.returned(id, result, fx);
            }
            Err(panic) => self.fail_hard(id, CallError::Panicked(panic_message(&*panic)), fx),
        }
    }

    /// Sends the calls the handler issued; how many.
    fn send_calls(&self, id: u64, io: &Io, txn: Txn, fx: &mut Effects) -> u32 {
        let (worker, lambda) = (self.env().worker, L::ID);
        let mut sent = 0;
        for c in io.calls.borrow_mut().drain(..) {
            sent += 1;
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
        sent
    }

    /// The invocation failed for good (it panicked, or a callee did): no more polls and no
    /// flush of its pending changes; it answers `err` once its calls in flight answered.
    fn fail_hard(&mut self, id: u64, err: CallError, fx: &mut Effects) {
        let Some(inv) = self.invs.map.get_mut(&id) else {
            return;
        };
        inv.io.failed.set(true);
        inv.fut = None;
        inv.failing.get_or_insert(err);
        if inv.outstanding == 0 {
            let err = inv
                .failing
                .take()
                .unwrap_or(CallError::Panicked("panic".into()));
            self.finish(id, Err(err), fx);
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
        if let Some(i) = self.invs.map.get_mut(&inv) {
            i.rollbacks += 1;
        }
        parts.sort();
        parts.dedup();
        let worker = self.env().worker;
        self.invs
            .rollback_waits
            .insert((inv, slot), parts.len() as u32);
        for p in parts {
            let body = Body::Rollback {
                txn,
                key: p.key.clone(),
                scope: scope.clone(),
                ack_worker: worker,
                ack_lambda: L::ID,
                inv,
                slot,
            };
            fx.out.push(self.msg_to(p.lambda, &p.key, body));
        }
    }

    /// One participant of a rollback answered; when all have, the block's owner resumes (or,
    /// after a panic, fails).
    pub(super) fn on_rollback_ack(&mut self, inv: u64, slot: u32, fx: &mut Effects) {
        let left = self.invs.rollback_waits.get_mut(&(inv, slot)).map(|n| {
            *n = n.saturating_sub(1);
            *n
        });
        if left != Some(0) {
            return;
        }
        self.invs.rollback_waits.remove(&(inv, slot));
        if let Some(i) = self.invs.map.get(&inv)
            && i.fut.is_some()
        {
            i.io.replies.borrow_mut().insert(slot, Reply::RolledBack);
            self.poll(inv, fx);
        }
    }

    /// The handler returned `result`: the invocation answers now, or, while calls it sent and
    /// did not wait for (a dropped call future) are unanswered, once they are.
    fn returned(&mut self, id: u64, result: Result<Outcome, CallError>, fx: &mut Effects) {
        let Some(inv) = self.invs.map.get_mut(&id) else {
            return;
        };
        if inv.outstanding == 0 {
            return self.finish(id, result, fx);
        }
        // Its last changes flush as the future drops, as at the end of `finish`.
        inv.fut = None;
        inv.returned = Some(result);
    }

    fn finish(&mut self, id: u64, result: Result<Outcome, CallError>, fx: &mut Effects) {
        let Some(inv) = self.invs.map.remove(&id) else {
            return;
        };
        let mut participants = inv.participants;
        participants.push(self.addr(&inv.key));
        participants.sort();
        participants.dedup();
        // The handler's last changes are flushed as its future drops (unless it failed
        // hard); a failed invocation then takes back everything it wrote to its instance.
        drop(inv.fut);
        let failed = !matches!(&result, Ok(o) if o.ok);
        if failed {
            self.table.undo(&inv.key, &inv.io.base_scope, inv.io.root);
        }
        if let Some(m) = self.env().op_metrics() {
            m.ended(inv.started.elapsed(), failed);
        }
        let trace = self.env().traces.then(|| {
            Box::new(TraceNode {
                lambda: L::ID,
                key: inv.key.clone(),
                handler: inv.handler,
                args: inv.args,
                result: crate::engine::protocol::response_bytes(&result),
                rollbacks: inv.rollbacks,
                micros: inv.started.elapsed().as_micros() as u64,
                children: inv.children,
            })
        });
        let answer = Answer {
            result,
            participants,
            trace,
            clock: inv.clock,
        };
        self.answer(&inv.reply, inv.txn, answer, fx);
    }

    /// Answers a call: to the suspended caller, or (for a root) to its coordinator here.
    pub(super) fn reply(
        &mut self,
        reply: &ReplyTo,
        txn: Txn,
        result: Result<Outcome, CallError>,
        participants: Vec<Addr>,
        trace: Option<Box<TraceNode>>,
        fx: &mut Effects,
    ) {
        let answer = Answer {
            result,
            participants,
            trace,
            clock: 0,
        };
        self.answer(reply, txn, answer, fx);
    }

    /// [`Self::reply`] with the whole answer (its callees' clocks in it).
    fn answer(&mut self, reply: &ReplyTo, txn: Txn, mut a: Answer, fx: &mut Effects) {
        a.clock = a.clock.max(self.env().clock());
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
                    result: a.result,
                    participants: a.participants,
                    trace: a.trace,
                    clock: a.clock,
                },
            }),
            ReplyTo::Root { .. } => self.root_ended(txn, a, fx),
        }
    }

    /// The reply to a call of invocation `inv` arrived: record it and poll the invocation.
    pub(super) fn on_reply(&mut self, inv: u64, slot: u32, a: Answer, fx: &mut Effects) {
        let Answer {
            result,
            participants,
            trace,
            clock,
        } = a;
        let Some(i) = self.invs.map.get_mut(&inv) else {
            return;
        };
        i.clock = i.clock.max(clock);
        i.outstanding = i.outstanding.saturating_sub(1);
        if let Some(t) = trace {
            i.children.push(*t);
        }
        if let Some(b) = i.io.blocks.borrow_mut().last_mut() {
            b.participants.extend(participants.iter().cloned());
        }
        i.participants.extend(participants);
        // A panic below fails this invocation too: it never sees the failure as a value.
        if let Err(CallError::Panicked(m)) = &result {
            let err = CallError::Panicked(m.clone());
            return self.fail_hard(inv, err, fx);
        }
        if i.failing.is_some() {
            let err = CallError::Panicked(String::new());
            return self.fail_hard(inv, err, fx);
        }
        if i.returned.is_some() {
            let done = if i.outstanding == 0 {
                i.returned.take()
            } else {
                None
            };
            if let Some(result) = done {
                self.finish(inv, result, fx);
            }
            return;
        }
        let reply = match result {
            Ok(o) => Reply::Done(o),
            Err(e) => Reply::Failed(e),
        };
        i.io.replies.borrow_mut().insert(slot, reply);
        self.poll(inv, fx);
    }
}

/// The invocation of an injected fault: it fails or panics without running the handler.
fn injected(fault: Fault) -> Invocation {
    Box::pin(async move {
        match fault {
            Fault::Reject(message) => Err(CallError::Injected(message)),
            Fault::Panic(message) => panic!("{message}"),
        }
    })
}
