//! The loop of one timely worker: it moves its inputs to the clock's open epoch, feeds the
//! requests of its channel into the dataflow, steps it, and releases the answers whose epoch
//! is durable (alone: the committer said so; in a cluster: the probe passed the epoch, so it
//! is durable on every operator of every process).
//!
//! ```text
//! loop: inputs to clock.open() (a request after a quiet spell: a fresh epoch) ─ requests
//!       from the channel ─▶ input[lambda] ─ entered(epoch)
//!       step_or_park (until woken; a cluster: until the next tick) ─ release what is durable
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
use super::operator::Batch;
use super::protocol::{Body, Call, Msg, ReplyTo, Txn};
use super::runtime::Shared;
use super::shard::Finished;

type Responders = HashMap<u64, oneshot::Sender<Response>>;
type Inputs = [InputHandle<u64, CapacityContainerBuilder<Batch>>];

/// Runs one worker until shutdown.
pub(crate) fn run(worker: &mut timely::worker::Worker, shared: Arc<Shared>) {
    let index = worker.index() as u32;
    // Channels, threads, metrics and committers are per process: indexed locally.
    let local = worker.index().saturating_sub(shared.placement.base());
    let Some(rx) = shared.take_receiver(local) else {
        return;
    };
    shared.clock.register(local, std::thread::current());
    let Dataflow {
        mut inputs,
        probe,
        finished,
    } = super::dataflow::build(worker, &shared);
    let mut responders: Responders = HashMap::new();
    let mut epoch = shared.clock.open();
    for i in inputs.iter_mut() {
        i.advance_to(epoch);
    }
    let mut waiting: Vec<Finished> = Vec::new();
    loop {
        advance(&mut inputs, &mut epoch, shared.clock.open());
        let first = rx.try_recv().ok();
        if first.is_some() {
            advance(&mut inputs, &mut epoch, shared.clock.epoch_for_arrival());
        }
        let mut n = 0;
        for req in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            send_request(&mut inputs, req, &mut responders, index, &shared);
            n += 1;
        }
        if n > 0 {
            for i in inputs.iter_mut() {
                i.flush();
            }
            shared.clock.entered(epoch);
        }
        if shared.admission.stopping.load(Ordering::Acquire) {
            break;
        }
        worker.step_or_park(shared.clock.park_for());
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

fn advance(inputs: &mut Inputs, epoch: &mut u64, to: u64) {
    if to > *epoch {
        *epoch = to;
        for i in inputs.iter_mut() {
            i.advance_to(to);
        }
    }
}

fn send_request(
    inputs: &mut Inputs,
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
                at_ms: req.at_ms,
            },
        }),
    });
}

/// The last epoch durable everywhere: alone, what the committer made durable; in a cluster,
/// what the probe passed (`None`: the dataflow is done, everything is).
fn durable_everywhere(probe: &ProbeHandle<u64>, shared: &Shared) -> Option<u64> {
    if shared.placement.processes == 1 {
        return Some(shared.clock.durable_epoch());
    }
    let frontier = probe.with_frontier(|f| f.iter().min().copied());
    let durable = frontier.map(|t| t.saturating_sub(1));
    let reached = durable.unwrap_or(u64::MAX);
    if shared
        .committed_everywhere
        .fetch_max(reached, Ordering::AcqRel)
        < reached
    {
        shared.materializer.poke();
    }
    durable
}

/// Answers the finished requests whose epoch is durable everywhere.
fn release(
    probe: &ProbeHandle<u64>,
    waiting: &mut Vec<Finished>,
    responders: &mut Responders,
    shared: &Shared,
) {
    let durable = durable_everywhere(probe, shared);
    if waiting.is_empty() {
        return;
    }
    let done = |e: u64| durable.is_none_or(|d| d >= e);
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
            shared.admission.idempotency.done(k, &response, f.epoch);
        }
        if let Some(tx) = responders.remove(&f.seq) {
            shared.admission.leave();
            let _ = tx.send(response);
        }
    }
}
