//! The roots coordinated by a shard: requests that entered the dataflow at this lambda on this
//! worker. When a root's attempt ends it releases (commits or undoes) every instance it
//! reached, then either retries (it was aborted by wound-wait) or completes.
//!
//! ```text
//! root ended ── Release{commit; undo all when aborted or panicked} ──▶ every participant
//!            ├─ aborted, attempts left: re-send the call as the next attempt
//!            └─ else: completion (order, response, trace) ──▶ the ingress worker records it
//! Wound (an older request waits for our lock) ──▶ Wounded to every operator the root reaches
//! ```

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use stateful_core::records::trace::RootTrace;

use super::executor::Answer;
use super::{Effects, Finished, MAX_ATTEMPTS, Shard};
use crate::engine::protocol::{self, Body, Call, Msg, RemoteCompletion, ReplyTo, RootId, Txn};
use crate::sdk::{CallError, Lambda};
use crate::storage::CompletionEntry;
use stateful_core::records::ingress::IngressRecord;

/// A root coordinated here.
struct RootRec {
    attempt: u32,
    wounded: bool,
    call: Call,
}

/// The roots of a shard and the aborted attempts it knows of.
#[derive(Default)]
pub(super) struct Roots {
    roots: HashMap<RootId, RootRec>,
    /// Aborted attempts known here, with the epoch they were aborted in (for clean-up).
    aborted: HashMap<(RootId, u32), u64>,
}

impl Roots {
    pub(super) fn is_aborted(&self, txn: Txn) -> bool {
        self.aborted.contains_key(&txn.age())
    }

    pub(super) fn is_aborted_age(&self, age: (RootId, u32)) -> bool {
        self.aborted.contains_key(&age)
    }

    /// Registers the call of a root (a no-op for other calls); `false` for a stale duplicate
    /// of an attempt that already ended.
    pub(super) fn admit(&mut self, call: &Call) -> bool {
        let ReplyTo::Root { .. } = call.reply else {
            return true;
        };
        let rec = self.roots.entry(call.txn.root).or_insert_with(|| RootRec {
            attempt: call.txn.attempt,
            wounded: false,
            call: call.clone(),
        });
        rec.attempt == call.txn.attempt
    }

    /// Aborted attempts of epochs up to `epoch` can no longer send anything: forget them.
    pub(super) fn forget_aborted_up_to(&mut self, epoch: u64) {
        self.aborted.retain(|_, e| *e > epoch);
    }

    pub(super) fn describe(&self) -> String {
        let mut out = String::new();
        for (root, r) in &self.roots {
            out.push_str(&format!(
                "root {} attempt {} wounded {}; ",
                root.0, r.attempt, r.wounded
            ));
        }
        out.push_str(&format!(
            "aborted {:?}; ",
            self.aborted
                .keys()
                .map(|(r, a)| (r.0, *a))
                .collect::<Vec<_>>()
        ));
        out
    }
}

impl<L: Lambda> Shard<L> {
    /// The attempt `txn` of a root coordinated here answered.
    pub(super) fn root_ended(&mut self, txn: Txn, a: Answer, fx: &mut Effects) {
        let Answer {
            result,
            participants,
            trace,
            clock,
        } = a;
        let env = self.env().clone();
        let Some(rec) = self.roots.roots.get_mut(&txn.root) else {
            return;
        };
        if rec.attempt != txn.attempt {
            return;
        }
        let aborted = rec.wounded || matches!(result, Err(CallError::Aborted));
        // A panic anywhere fails the request as a whole: nothing it did stays.
        let panicked = matches!(result, Err(CallError::Panicked(_)));
        let retried = aborted && rec.attempt + 1 < MAX_ATTEMPTS;
        // The request's place in the completion order, taken before its locks go.
        let order = if retried { 0 } else { env.next_order(clock) };
        for p in &participants {
            fx.out.push(Msg {
                worker: env.owner(&p.key),
                lambda: p.lambda,
                body: Body::Release {
                    txn,
                    key: p.key.clone(),
                    commit: !aborted && !panicked,
                    order,
                },
            });
        }
        if aborted {
            env.metrics.aborts.fetch_add(1, Relaxed);
        }
        if retried {
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
        let Some(rec) = self.roots.roots.remove(&txn.root) else {
            return;
        };
        let result = if aborted {
            Err(CallError::Deadlocked(rec.attempt + 1))
        } else {
            result
        };
        let (idempotency_key, ingress, at_ms) = match &rec.call.reply {
            ReplyTo::Root {
                idempotency_key,
                ingress,
                at_ms,
            } => (idempotency_key.clone(), *ingress, *at_ms),
            ReplyTo::Caller { .. } => (None, env.worker, 0),
        };
        let trace = trace.map(|t| {
            protocol::trace_bytes(&RootTrace {
                attempts: txn.attempt + 1,
                root: *t,
            })
        });
        let call = rec.call;
        let done = RemoteCompletion {
            request: IngressRecord {
                seq: txn.root.seq(env.processes),
                timestamp_ms: at_ms,
                lambda: L::ID,
                key: call.key,
                handler: call.handler,
                args: call.args,
                idempotency_key,
            },
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
    pub(super) fn completed(&mut self, done: RemoteCompletion) {
        let RemoteCompletion {
            request,
            result,
            order,
            trace,
        } = done;
        let (seq, idempotency_key) = (request.seq, request.idempotency_key.clone());
        self.completions.push(CompletionEntry {
            request,
            ok: matches!(&result, Ok(o) if o.ok),
            response: protocol::response_bytes(&result),
            order,
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

    /// An older request waits for a lock of root attempt `txn`: abort it everywhere it reached.
    pub(super) fn on_wound(&mut self, txn: Txn, fx: &mut Effects) {
        let Some(rec) = self.roots.roots.get_mut(&txn.root) else {
            return;
        };
        if rec.attempt != txn.attempt || rec.wounded {
            return;
        }
        rec.wounded = true;
        let env = self.env();
        let reached = env
            .participants
            .get(usize::from(L::ID))
            .cloned()
            .unwrap_or_default();
        for w in 0..env.workers {
            for &l in &reached {
                fx.out.push(Msg {
                    worker: w,
                    lambda: l,
                    body: Body::Wounded { txn },
                });
            }
        }
    }

    /// Attempt `txn` is aborted: its suspended invocations fail their next call, its queued
    /// calls fail now, and its later calls fail on arrival.
    pub(super) fn on_wounded(&mut self, txn: Txn, fx: &mut Effects) {
        let epoch = self.env().epoch.get();
        self.roots.aborted.insert(txn.age(), epoch);
        self.invs.abort(txn);
        let (removed, granted) = self.locks.remove_waiters_of(txn);
        for q in removed {
            fx.woken.push((
                q.epoch,
                q.caps,
                super::Work::Fail(q.call, CallError::Aborted),
            ));
        }
        let worker = self.env().worker;
        for q in granted {
            let msg = Msg {
                worker,
                lambda: L::ID,
                body: Body::Call(q.call),
            };
            fx.woken.push((q.epoch, q.caps, super::Work::Msg(msg)));
        }
    }
}
