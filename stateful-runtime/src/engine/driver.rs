//! The loop of one timely worker: it advances the input epoch with the clock, feeds the
//! requests of its channel into the dataflow, steps it, and releases the responses whose
//! commit epoch the probe has passed (durable on every operator of every process).
//!
//! ```text
//! loop: advance inputs to now ─ requests from the channel ─▶ input[lambda] ─ flush
//!       step_or_park(1 ms) ─ release: probe past commit_epoch_of(e) ⇒ answer, idempotency done
//! stop: close the inputs, step until the dataflow is done, answer anything left (Stopped)
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::{InputHandle, ProbeHandle};
use tokio::sync::oneshot;

use super::admission::Request;
use super::dataflow::Dataflow;
use super::handle::Response;
use super::operator::{Batch, commit_epoch_of};
use super::protocol::{Body, Call, Msg, ReplyTo, Txn};
use super::runtime::Shared;
use super::shard::Finished;

type Responders = HashMap<u64, oneshot::Sender<Response>>;

/// Runs one worker until shutdown.
pub(crate) fn run(worker: &mut timely::worker::Worker, shared: Arc<Shared>) {
    let index = worker.index() as u32;
    // Channels, threads, metrics and committers are per process: indexed locally.
    let local = worker.index().saturating_sub(shared.placement.base());
    let Some(rx) = shared.take_receiver(local) else {
        return;
    };
    shared.register_thread(local, std::thread::current());
    let Dataflow {
        mut inputs,
        probe,
        finished,
    } = super::dataflow::build(worker, &shared);
    let mut responders: Responders = HashMap::new();
    let mut epoch = shared.start_epoch;
    for i in inputs.iter_mut() {
        i.advance_to(epoch);
    }
    // Replay the logged requests of this worker that never completed.
    for req in shared.take_replay(local) {
        send_request(&mut inputs, req, &mut responders, index, &shared);
    }
    let mut waiting: Vec<Finished> = Vec::new();
    loop {
        // Advance first, so that a request enters at an epoch no earlier than its arrival:
        // a version's commit epoch then never precedes the wall-clock time of a request it
        // contains (what `inspect --at TIME` relies on).
        let now = crate::storage::unix_ms().max(shared.start_epoch);
        advance(&mut inputs, &mut epoch, now);
        let mut n = 0;
        while let Ok(req) = rx.try_recv() {
            advance(&mut inputs, &mut epoch, req.at_ms);
            send_request(&mut inputs, req, &mut responders, index, &shared);
            n += 1;
        }
        if n > 0 {
            for i in inputs.iter_mut() {
                i.flush();
            }
        }
        if shared.admission.stopping.load(Ordering::Acquire) {
            break;
        }
        worker.step_or_park(Some(Duration::from_millis(1)));
        waiting.append(&mut finished.borrow_mut());
        release(&probe, &mut waiting, &mut responders, &shared);
    }
    // Clean shutdown: close the inputs and let the last epochs commit.
    drop(inputs);
    while worker.step_or_park(Some(Duration::from_millis(1))) {
        waiting.append(&mut finished.borrow_mut());
        release(&probe, &mut waiting, &mut responders, &shared);
    }
    waiting.append(&mut finished.borrow_mut());
    release(&probe, &mut waiting, &mut responders, &shared);
    // Requests still unanswered (none should be) get an error, never silence.
    for (_, tx) in responders.drain() {
        let _ = tx.send(Response::stopped());
    }
}

fn advance(
    inputs: &mut [InputHandle<u64, CapacityContainerBuilder<Batch>>],
    epoch: &mut u64,
    to: u64,
) {
    if to > *epoch {
        *epoch = to;
        for i in inputs.iter_mut() {
            i.advance_to(to);
        }
    }
}

fn send_request(
    inputs: &mut [InputHandle<u64, CapacityContainerBuilder<Batch>>],
    req: Request,
    responders: &mut Responders,
    ingress: u32,
    shared: &Shared,
) {
    let Some(input) = inputs.get_mut(usize::from(req.lambda)) else {
        return;
    };
    if let Some(tx) = req.responder {
        responders.insert(req.seq, tx);
    }
    let owner = shared.placement.owner(&req.key) as u32;
    input.send(Msg {
        worker: owner,
        lambda: req.lambda,
        body: Body::Call(Call {
            txn: Txn {
                root: shared.placement.root(req.seq),
                attempt: 0,
                worker: owner,
                lambda: req.lambda,
            },
            key: req.key,
            handler: req.handler,
            args: req.args,
            scope: Vec::new(),
            reply: ReplyTo::Root {
                idempotency_key: req.idempotency_key,
                ingress,
            },
        }),
    });
}

/// Answers the finished requests whose commit epoch is durable everywhere.
fn release(
    probe: &ProbeHandle<u64>,
    waiting: &mut Vec<Finished>,
    responders: &mut Responders,
    shared: &Shared,
) {
    let interval = shared.config.commit_interval_ms.max(1);
    // Read the frontier once (`None`: empty, everything committed).
    let frontier = probe.with_frontier(|f| f.iter().min().copied());
    if let Some(t) = frontier {
        // The last commit epoch before the frontier is durable on every process.
        let c = commit_epoch_of(t.saturating_sub(1), interval);
        let c = if c < t { c } else { c.saturating_sub(interval) };
        shared.committed_everywhere.fetch_max(c, Ordering::AcqRel);
    }
    if waiting.is_empty() {
        return;
    }
    // Every operator holds its ack capability at the commit epoch `c` it has not written yet,
    // so the probe passing `c` means every operator committed `c`. A request of epoch `e` is
    // durable once the commit epoch covering it, `commit_epoch_of(e)`, is passed; passing `e`
    // alone is not enough (the probe sits at `c >= e` until `c` commits).
    let done = |e: u64| frontier.is_none_or(|t| t > commit_epoch_of(e, interval));
    let mut i = 0;
    while i < waiting.len() {
        if !done(waiting[i].epoch) {
            i += 1;
            continue;
        }
        let f = waiting.swap_remove(i);
        let response = Response {
            seq: f.seq,
            result: f.result,
        };
        if let Some(k) = &f.idempotency_key {
            shared.admission.idempotency.done(k, &response);
        }
        if let Some(tx) = responders.remove(&f.seq) {
            shared.admission.leave();
            let _ = tx.send(response);
        }
    }
}
