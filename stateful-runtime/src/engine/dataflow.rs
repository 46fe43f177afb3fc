//! The dataflow of one worker, built from the app's IR: one operator per lambda, one channel
//! for each pair of lambdas the topology links (a call edge, its reply path, and the control
//! traffic of the roots that reach a lambda), and a probe behind every operator's ack.
//!
//! ```text
//! input[L] ─enter─▶ operator L ─out[T]─▶ feedback (L→T, hop +1) ─Exchange(worker)─▶ operator T
//!                        └─ack─▶ concat ─leave─▶ probe   (all operators committed up to ...)
//! ```
//!
//! Timestamps are `(epoch, hop)` inside the loop, so every hop of a request keeps its epoch.
//! `GET /graph` and this dataflow show the same lambdas; `docs/architecture.md` maps one to
//! the other.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Concatenate, ConnectLoop, Enter, Feedback, Leave, Probe};
use timely::dataflow::{InputHandle, ProbeHandle, Stream};
use timely::order::Product;

use super::operator::{Batch, Committer, OperatorSpec};
use super::protocol::Msg;
use super::runtime::Shared;
use super::shard::{Env, Finished, Time};

/// What the driver of a worker holds of its dataflow.
pub(crate) struct Dataflow {
    /// One input per lambda: requests entering at it.
    pub inputs: Vec<InputHandle<u64, CapacityContainerBuilder<Batch>>>,
    /// Passes a commit epoch once every operator everywhere made it durable.
    pub probe: ProbeHandle<u64>,
    /// Responses of roots that ended on this worker.
    pub finished: Rc<RefCell<Vec<Finished>>>,
}

fn route() -> Exchange<Msg, impl FnMut(&Msg) -> u64 + 'static> {
    Exchange::new(|m: &Msg| u64::from(m.worker))
}

/// Passes batches on unchanged, through `pact`.
fn forward<'s, P>(s: Stream<'s, u64, Batch>, pact: P, name: &str) -> Stream<'s, u64, Batch>
where
    P: timely::dataflow::channels::pact::ParallelizationContract<u64, Batch>,
{
    s.unary::<CapacityContainerBuilder<Batch>, _, _, _>(pact, name, |_cap, _info| {
        move |input, output| {
            input.for_each_stamp(|cap, data| {
                output.session(&cap).give_containers(data);
            });
        }
    })
}

/// What every operator of this worker shares.
struct WorkerParts {
    index: usize,
    local: usize,
    lambdas: usize,
    finished: Rc<RefCell<Vec<Finished>>>,
    epoch_cell: Rc<Cell<u64>>,
    participants: Arc<Vec<Vec<u16>>>,
}

impl WorkerParts {
    fn env(&self, shared: &Shared, op: usize) -> Env {
        Env {
            worker: self.index as u32,
            workers: shared.placement.total_workers() as u32,
            groups: shared.placement.groups,
            participants: self.participants.clone(),
            store: shared.store.clone(),
            finished: self.finished.clone(),
            epoch: self.epoch_cell.clone(),
            metrics: shared.metrics.clone(),
            op,
            order: shared.order.clone(),
            traces: shared.config.record_traces,
            processes: shared.placement.processes,
            faults: shared.faults.clone(),
            now: shared.now.clone(),
            cache_budget: shared.cache_budget_per_shard(),
            materialized: {
                let m = shared.materializer.clone();
                Arc::new(move || m.applied())
            },
        }
    }

    fn committer(&self, shared: &Shared, op: usize) -> Committer {
        Committer {
            idx: op,
            pipeline: shared.pipeline.clone(),
            sender: shared.pipeline.sender(),
        }
    }
}

/// The request streams of the inputs: in a cluster, routed to the key's process first.
fn ingress_streams<'s>(
    scope: timely::dataflow::Scope<'s, u64>,
    inputs: &mut [InputHandle<u64, CapacityContainerBuilder<Batch>>],
    clustered: bool,
) -> Vec<Stream<'s, u64, Batch>> {
    inputs
        .iter_mut()
        .map(|i| {
            let s = i.to_stream(scope);
            if clustered {
                // Alone, every request arrives at the worker that owns its key; in a
                // cluster a gateway takes requests for keys of other processes, and the
                // dataflow carries them there. An exchange right after an input is only
                // flushed by the next `advance_to`; an operator in between flushes its
                // output at the end of each activation.
                forward(forward(s, Pipeline, "Ingress"), route(), "Route")
            } else {
                s
            }
        })
        .collect()
}

/// Inside the loop scope: a feedback edge per channel of the topology, an operator per
/// lambda; returns the operators' acks.
fn operators<'s>(
    inner: timely::dataflow::Scope<'s, Time>,
    shared: &Shared,
    parts: &WorkerParts,
    streams: Vec<Stream<'_, u64, Batch>>,
) -> Vec<Stream<'s, Time, Vec<()>>> {
    let lambdas = parts.lambdas;
    let mut handles = HashMap::new();
    let mut incoming: Vec<Vec<Stream<'s, Time, Batch>>> =
        (0..lambdas).map(|_| Vec::new()).collect();
    for (a, b) in shared.topology.channels() {
        let (h, s) = inner.feedback::<Batch>(Product::new(0, 1));
        handles.insert((a, b), h);
        incoming[b].push(s);
    }
    let mut acks = Vec::with_capacity(lambdas);
    for ((def, stream), links_in) in shared.program.lambdas().iter().zip(streams).zip(incoming) {
        let l = usize::from(def.id);
        let links_out: Vec<u16> = shared
            .topology
            .links(l)
            .into_iter()
            .map(|t| t as u16)
            .collect();
        let op = parts.local * lambdas + l;
        let spec = OperatorSpec {
            name: def.name.to_owned(),
            ingress: stream.enter(inner),
            links_in,
            links_out: links_out.clone(),
            lambdas,
            shard: (def.shard)(),
            env: parts.env(shared, op),
            clock: shared.clock.clone(),
            committer: parts.committer(shared, op),
        };
        let (outs, ack) = super::operator::build(inner, spec);
        for (t, out) in links_out.iter().zip(outs) {
            match handles.remove(&(l, usize::from(*t))) {
                Some(h) => out.connect_loop(h),
                None => super::commit::fatal("a channel of the topology was built twice"),
            }
        }
        acks.push(ack);
    }
    acks
}

/// Builds the dataflow of this worker.
pub(crate) fn build(worker: &mut timely::worker::Worker, shared: &Arc<Shared>) -> Dataflow {
    let lambdas = shared.program.lambdas().len();
    let parts = WorkerParts {
        index: worker.index(),
        local: worker.index().saturating_sub(shared.placement.base()),
        lambdas,
        finished: Rc::new(RefCell::new(Vec::new())),
        epoch_cell: Rc::new(Cell::new(0u64)),
        participants: Arc::new(
            (0..lambdas)
                .map(|l| {
                    let p = shared.topology.participants(l);
                    p.into_iter().map(|x| x as u16).collect()
                })
                .collect(),
        ),
    };
    let mut inputs: Vec<InputHandle<u64, CapacityContainerBuilder<Batch>>> =
        (0..lambdas).map(|_| InputHandle::new()).collect();
    let probe: ProbeHandle<u64> = ProbeHandle::new();
    let clustered = shared.placement.processes > 1;
    worker.dataflow::<u64, _, _>(|scope| {
        let streams = ingress_streams(scope, &mut inputs, clustered);
        let acks = scope.iterative::<u32, _, _>(|inner| {
            let acks = operators(inner, shared, &parts, streams);
            inner.concatenate(acks).leave(scope)
        });
        acks.probe_with(&probe);
    });
    Dataflow {
        inputs,
        probe,
        finished: parts.finished,
    }
}
