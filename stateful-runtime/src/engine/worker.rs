//! One timely worker: the dataflow mirroring the app, commit epochs, and the driver loop.
//!
//! ```text
//! input[L] ─enter─▶ ┌────────────┐ out ─┐
//!                   │ operator L │      ├─concat─▶ partition(by target lambda) ─▶ feedback[L'] ─┐
//! feedback[L] ─────▶└────────────┘ ack ─┼─concat─▶ leave ─▶ probe (all committed up to ...)      │
//!   (Exchange by destination worker) ◀──────────────────────────────────────────────────────────┘
//! ```
//!
//! Commit protocol (coordinator-free, from the timely prototype): commit epochs are a fixed
//! function of time (`c = k * interval - 1`). An operator processes messages of epochs `<= c`
//! at once and stashes later ones. When none of its input frontiers has an epoch `<= c`, every
//! request of those epochs has finished everywhere (the graph is one cycle), so its state is
//! exactly the committed effects: it writes them in one batch, flushes, and only then moves
//! the capability it holds on its `ack` output (which is off the cycle) past `c`. When the probe
//! passes `c`, every operator on every worker has committed `c`, and the responses of requests
//! from epochs `<= c` are released.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::partition::Partition;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use timely::dataflow::operators::{
    Capability, CapabilitySet, Concatenate, ConnectLoop, Enter, Feedback, Leave, Probe,
};
use timely::dataflow::{InputHandle, ProbeHandle, Scope, Stream};
use timely::order::Product;
use timely::progress::frontier::MutableAntichain;

use super::commit::CommitPipeline;
use super::instance::{Cap, Effects, Env, Finished, Time, Work};
use super::runtime::{Request, Response, Shared};
use super::{Body, Call, LambdaRuntime, Msg, ReplyTo, Txn};
use crate::store::{CommitBatch, CommitterId};

type Batch = Vec<Msg>;

/// The last epoch of the commit interval that contains `epoch`.
pub(crate) fn commit_epoch_of(epoch: u64, interval: u64) -> u64 {
    let interval = interval.max(1);
    (epoch / interval) * interval + interval - 1
}

fn min_outer(frontiers: &[MutableAntichain<Time>]) -> Option<u64> {
    frontiers
        .iter()
        .flat_map(|f| f.frontier().iter().map(|t| t.outer).collect::<Vec<_>>())
        .min()
}

fn passed(frontiers: &[MutableAntichain<Time>], c: u64) -> bool {
    frontiers
        .iter()
        .all(|f| f.frontier().iter().all(|t| t.outer > c))
}

/// How an operator hands its snapshots to the committer thread.
struct Committer {
    id: CommitterId,
    idx: usize,
    pipeline: Arc<CommitPipeline>,
    sender: Option<std::sync::mpsc::Sender<(usize, CommitBatch)>>,
}

impl Committer {
    /// Takes the snapshot of commit epoch `c` and queues it; returns at once.
    fn send(&self, rt: &mut dyn LambdaRuntime, c: u64) {
        let (writes, completed) = rt.snapshot(c);
        let batch = CommitBatch {
            committer: self.id,
            epoch: c,
            writes,
            completed,
        };
        let sent = self.sender.as_ref().map(|s| s.send((self.idx, batch)));
        if !matches!(sent, Some(Ok(()))) {
            super::commit::fatal("the committer thread is gone");
        }
    }
}

type Session<'a> = timely::dataflow::operators::generic::OutputBuilderSession<
    'a,
    Time,
    CapacityContainerBuilder<Batch>,
>;

/// Handles one unit of work, then everything it woke, sending outputs under the right
/// capabilities.
#[allow(clippy::too_many_arguments)]
fn run_work(
    rt: &mut dyn LambdaRuntime,
    messages: Option<&super::runtime::OperatorMetrics>,
    epoch_cell: &Cell<u64>,
    work: Work,
    cap: &Cap<'_>,
    epoch: u64,
    fx: &mut Effects,
    out: &mut Session<'_>,
) {
    epoch_cell.set(epoch);
    if let Some(m) = messages {
        m.messages.fetch_add(1, Ordering::Relaxed);
    }
    rt.handle(work, cap, fx);
    if !fx.out.is_empty() {
        match cap {
            Cap::Input(ic) => out.session(*ic).give_iterator(fx.out.drain(..)),
            Cap::Held(hc) => out.session(*hc).give_iterator(fx.out.drain(..)),
        }
    }
    while !fx.woken.is_empty() {
        for (e, caps, w) in std::mem::take(&mut fx.woken) {
            epoch_cell.set(e);
            rt.handle(w, &Cap::Held(&caps), fx);
            if !fx.out.is_empty() {
                out.session(&caps).give_iterator(fx.out.drain(..));
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build_operator<'s>(
    scope: Scope<'s, Time>,
    name: &str,
    ingress: Stream<'s, Time, Batch>,
    feedback: Stream<'s, Time, Batch>,
    mut rt: Box<dyn LambdaRuntime>,
    env: Env,
    committer: Committer,
) -> (Stream<'s, Time, Batch>, Stream<'s, Time, Vec<()>>) {
    let mut b = OperatorBuilder::new(name.to_owned(), scope);
    let name_owned = name.to_owned();
    let mut in_ingress = b.new_input(ingress, Pipeline);
    let mut in_fb = b.new_input(feedback, Exchange::new(|m: &Msg| u64::from(m.worker)));
    let (out, out_stream) = b.new_output::<Batch>();
    let (_ack, ack_stream) = b.new_output::<Vec<()>>();
    let mut out = OutputBuilder::<Time, CapacityContainerBuilder<Batch>>::from(out);
    let interval = env.interval;
    let start_epoch = env.start_epoch;
    let epoch_cell = env.epoch.clone();
    let metrics = env.metrics.clone();
    let op = env.op;
    rt.init(env);
    let address = b.operator_info().address;
    committer.pipeline.register(
        committer.idx,
        scope.worker().sync_activator_for(address.to_vec()),
    );
    b.build(move |mut caps| {
        let ack_cap: Option<Capability<Time>> = caps.pop();
        caps.clear();
        let mut hold = ack_cap;
        // Commit epochs snapshotted and queued, not yet durable (oldest first).
        let mut pending: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
        let mut closed = false;
        let mut c = 0u64;
        let mut started = false;
        let mut stash: Vec<(u64, CapabilitySet<Time>, Msg)> = Vec::new();
        let mut fx = Effects::default();
        let mut described = false;
        move |frontiers| {
            let t0 = std::time::Instant::now();
            if !described && super::cluster::has_failed() {
                described = true;
                tracing::error!(
                    "operator {name_owned} at commit epoch {c}, stash {}: {}",
                    stash.len(),
                    rt.describe()
                );
            }
            let mut out = out.activate();
            if !started {
                started = true;
                c = commit_epoch_of(min_outer(frontiers).unwrap_or(0).max(start_epoch), interval);
                if let Some(h) = hold.as_mut() {
                    h.downgrade(&Product::new(c, 0));
                }
            }
            macro_rules! drain_input {
                ($input:expr) => {
                    $input.for_each_stamp(|cap, data| {
                        let epoch = cap
                            .stamp()
                            .elements()
                            .iter()
                            .map(|t| t.outer)
                            .min()
                            .unwrap_or(0);
                        for batch in data {
                            for msg in batch.drain(..) {
                                if epoch > c {
                                    stash.push((epoch, cap.retain_stamp(0), msg));
                                } else {
                                    run_work(
                                        rt.as_mut(),
                                        metrics.operators.get(op),
                                        &epoch_cell,
                                        Work::Msg(msg),
                                        &Cap::Input(&cap),
                                        epoch,
                                        &mut fx,
                                        &mut out,
                                    );
                                }
                            }
                        }
                    });
                };
            }
            drain_input!(in_ingress);
            drain_input!(in_fb);
            // Snapshot every epoch whose inputs are complete, then run what waited for it.
            while !closed && hold.is_some() && passed(frontiers, c) {
                committer.send(rt.as_mut(), c);
                pending.push_back(c);
                if frontiers.iter().all(|f| f.frontier().is_empty()) {
                    closed = true;
                    break;
                }
                let next = commit_epoch_of(min_outer(frontiers).unwrap_or(c + 1), interval)
                    .max(c + interval);
                c = next;
                if !stash.is_empty() {
                    let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut stash)
                        .into_iter()
                        .partition(|(e, _, _)| *e <= c);
                    stash = later;
                    for (epoch, caps, msg) in now {
                        run_work(
                            rt.as_mut(),
                            metrics.operators.get(op),
                            &epoch_cell,
                            Work::Msg(msg),
                            &Cap::Held(&caps),
                            epoch,
                            &mut fx,
                            &mut out,
                        );
                    }
                }
            }
            if let Some(m) = metrics.operators.get(op) {
                m.busy_us
                    .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                m.stashed.store(stash.len() as u64, Ordering::Relaxed);
                m.waiting.store(rt.waiting() as u64, Ordering::Relaxed);
            }
            // The hold stays at the oldest commit epoch that is not durable yet.
            let durable = committer.pipeline.durable(committer.idx);
            while pending.front().is_some_and(|p| *p <= durable) {
                pending.pop_front();
            }
            match pending.front().copied() {
                Some(oldest) => {
                    if let Some(h) = hold.as_mut()
                        && h.time().outer < oldest
                    {
                        h.downgrade(&Product::new(oldest, 0));
                    }
                }
                None if closed => hold = None,
                None => {
                    if let Some(h) = hold.as_mut()
                        && h.time().outer < c
                    {
                        h.downgrade(&Product::new(c, 0));
                    }
                }
            }
        }
    });
    (out_stream, ack_stream)
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

/// Runs one worker until shutdown.
pub(crate) fn run(worker: &mut timely::worker::Worker, shared: Arc<Shared>) {
    let index = worker.index();
    let peers = worker.peers();
    // Channels, threads, metrics and committers are per process: indexed locally.
    let local = index.saturating_sub(shared.base);
    let lambdas = shared.app.lambdas.len();
    let clustered = shared.processes > 1;
    let Some(rx) = shared.take_receiver(local) else {
        return;
    };
    shared.register_thread(local, std::thread::current());
    let finished: Rc<RefCell<Vec<Finished>>> = Rc::new(RefCell::new(Vec::new()));
    let epoch_cell = Rc::new(Cell::new(0u64));
    let mut inputs: Vec<InputHandle<u64, CapacityContainerBuilder<Batch>>> =
        (0..lambdas).map(|_| InputHandle::new()).collect();
    let probe: ProbeHandle<u64> = ProbeHandle::new();
    let interval = shared.config.commit_interval_ms.max(1);
    worker.dataflow::<u64, _, _>(|scope| {
        let streams: Vec<_> = inputs
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
            .collect();
        let acks = scope.iterative::<u32, _, _>(|inner| {
            let mut handles = Vec::with_capacity(lambdas);
            let mut fbs = Vec::with_capacity(lambdas);
            for _ in 0..lambdas {
                let (h, s) = inner.feedback::<Batch>(Product::new(0, 1));
                handles.push(h);
                fbs.push(s);
            }
            let mut outs = Vec::with_capacity(lambdas);
            let mut acks = Vec::with_capacity(lambdas);
            for ((entry, stream), fb) in shared.app.lambdas.iter().zip(streams).zip(fbs) {
                let env = Env {
                    worker: index as u32,
                    workers: peers as u32,
                    groups: shared.config.key_groups,
                    lambdas: lambdas as u16,
                    store: shared.store.clone(),
                    finished: finished.clone(),
                    epoch: epoch_cell.clone(),
                    interval,
                    start_epoch: shared.start_epoch,
                    metrics: shared.metrics.clone(),
                    op: local * lambdas + usize::from(entry.id),
                    order: shared.order.clone(),
                    traces: shared.config.record_traces,
                    processes: shared.processes as u32,
                };
                let idx = local * lambdas + usize::from(entry.id);
                let committer = Committer {
                    id: CommitterId {
                        worker: index as u32,
                        lambda: entry.id,
                    },
                    idx,
                    pipeline: shared.pipeline.clone(),
                    sender: shared.pipeline.sender(),
                };
                let (o, a) = build_operator(
                    inner,
                    entry.name,
                    stream.enter(inner),
                    fb,
                    (entry.runtime)(),
                    env,
                    committer,
                );
                outs.push(o);
                acks.push(a);
            }
            let all = inner.concatenate(outs);
            let parts = all
                .partition::<CapacityContainerBuilder<Batch>, _, _>(lambdas as u64, |m: Msg| {
                    (u64::from(m.lambda), m)
                });
            for (h, p) in handles.into_iter().zip(parts) {
                p.connect_loop(h);
            }
            inner.concatenate(acks).leave(scope)
        });
        acks.probe_with(&probe);
    });

    let mut responders: HashMap<u64, tokio::sync::oneshot::Sender<Response>> = HashMap::new();
    let mut epoch = shared.start_epoch;
    for i in inputs.iter_mut() {
        i.advance_to(epoch);
    }
    // Replay the logged requests of this worker that never completed.
    for req in shared.take_replay(local) {
        send_request(&mut inputs, req, &mut responders, index as u32, &shared);
    }
    let mut waiting: Vec<Finished> = Vec::new();
    loop {
        // Advance first, so that a request enters at an epoch no earlier than its arrival:
        // a version's commit epoch then never precedes the wall-clock time of a request it
        // contains (what `inspect --at TIME` relies on).
        let now = super::runtime::unix_ms().max(shared.start_epoch);
        if now > epoch {
            epoch = now;
            for i in inputs.iter_mut() {
                i.advance_to(epoch);
            }
        }
        let mut n = 0;
        while let Ok(req) = rx.try_recv() {
            if req.at_ms > epoch {
                epoch = req.at_ms;
                for i in inputs.iter_mut() {
                    i.advance_to(epoch);
                }
            }
            send_request(&mut inputs, req, &mut responders, index as u32, &shared);
            n += 1;
        }
        if n > 0 {
            for i in inputs.iter_mut() {
                i.flush();
            }
        }
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        worker.step_or_park(Some(Duration::from_millis(1)));
        release(&probe, &finished, &mut waiting, &mut responders, &shared);
    }
    // Clean shutdown: close the inputs and let the last epochs commit.
    drop(inputs);
    while worker.step_or_park(Some(Duration::from_millis(1))) {
        release(&probe, &finished, &mut waiting, &mut responders, &shared);
    }
    release(&probe, &finished, &mut waiting, &mut responders, &shared);
    // Requests still unanswered (none should be) get an error, never silence.
    for (_, tx) in responders.drain() {
        let _ = tx.send(Response::shutting_down());
    }
}

fn send_request(
    inputs: &mut [InputHandle<u64, CapacityContainerBuilder<Batch>>],
    req: Request,
    responders: &mut HashMap<u64, tokio::sync::oneshot::Sender<Response>>,
    worker: u32,
    shared: &Shared,
) {
    let Some(input) = inputs.get_mut(usize::from(req.lambda)) else {
        return;
    };
    if let Some(tx) = req.responder {
        responders.insert(req.seq, tx);
    }
    let groups = shared.config.key_groups;
    let owner = stateful_core::keys::worker_of(
        stateful_core::keys::key_group(&req.key, groups),
        groups,
        shared.total_workers,
    ) as u32;
    input.send(Msg {
        worker: owner,
        lambda: req.lambda,
        body: Body::Call(Call {
            txn: Txn {
                // Unique across the cluster's ingress logs; smaller is still older.
                root: req.seq * shared.processes as u64 + shared.process as u64,
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
                ingress: worker,
            },
        }),
    });
}

fn release(
    probe: &ProbeHandle<u64>,
    finished: &Rc<RefCell<Vec<Finished>>>,
    waiting: &mut Vec<Finished>,
    responders: &mut HashMap<u64, tokio::sync::oneshot::Sender<Response>>,
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
    waiting.append(&mut finished.borrow_mut());
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
        if done(waiting[i].epoch) {
            let f = waiting.swap_remove(i);
            let response = Response {
                seq: f.seq,
                result: f.result,
            };
            if let Some(k) = &f.idempotency_key {
                shared.idempotency_done(k, &response);
            }
            if let Some(tx) = responders.remove(&f.seq) {
                shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                let _ = tx.send(response);
            }
        } else {
            i += 1;
        }
    }
}
