//! The timely operator of one lambda on one worker: it feeds its shard the messages of the
//! open commit epoch, stashes later ones, snapshots each epoch once its inputs have passed it,
//! and holds back the release of responses until the committer made the epoch durable.
//!
//! ```text
//! ingress (Pipeline) ──┐                               ┌──▶ out[T] for each linked lambda T
//! link A→L (Exchange) ─┼──▶ shard L (epoch <= c: run; ─┤
//! link B→L (Exchange) ─┘     later: stash)             └──▶ ack (holds c until durable) ──▶ probe
//! ```
//!
//! Commit protocol (coordinator-free, from the timely prototype): commit epochs are a fixed
//! function of time (`c = k * interval - 1`). When none of the operator's input frontiers has
//! an epoch `<= c`, every request of those epochs that could reach it has finished, so its
//! state is exactly their committed effects: it hands them to the committer, and only once
//! they are durable moves the capability it holds on its `ack` output (off the cycle) past `c`.

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{OutputBuilder, OutputBuilderSession};
use timely::dataflow::operators::{Capability, CapabilitySet};
use timely::dataflow::{Scope, Stream};
use timely::order::Product;
use timely::progress::frontier::MutableAntichain;

use super::commit::CommitPipeline;
use super::metrics::OperatorMetrics;
use super::protocol::Msg;
use super::shard::{Cap, Effects, Env, ShardRuntime, Time, Work};
use crate::storage::{CommitBatch, CommitterId};

/// A batch of messages on one channel.
pub(crate) type Batch = Vec<Msg>;

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
pub(crate) struct Committer {
    pub id: CommitterId,
    pub idx: usize,
    pub pipeline: Arc<CommitPipeline>,
    pub sender: Option<std::sync::mpsc::Sender<(usize, CommitBatch)>>,
}

impl Committer {
    /// Takes the snapshot of commit epoch `c` and queues it; returns at once.
    fn send(&self, rt: &mut dyn ShardRuntime, c: u64) {
        let (writes, completed) = match rt.snapshot(c) {
            Ok(s) => s,
            Err(e) => super::commit::fatal(&e),
        };
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

/// What one operator needs to be built.
pub(crate) struct OperatorSpec<'s> {
    pub name: String,
    /// Requests entering at this lambda.
    pub ingress: Stream<'s, Time, Batch>,
    /// Every channel into this lambda.
    pub links_in: Vec<Stream<'s, Time, Batch>>,
    /// The lambdas this one sends to, in output port order.
    pub links_out: Vec<u16>,
    /// All lambdas of the app (to size the port table).
    pub lambdas: usize,
    pub shard: Box<dyn ShardRuntime>,
    pub env: Env,
    pub interval: u64,
    pub start_epoch: u64,
    pub committer: Committer,
}

type Active<'a> = OutputBuilderSession<'a, Time, CapacityContainerBuilder<Batch>>;

/// Routes messages to the output port of their lambda, grouped per port.
struct Router {
    port_of: Vec<Option<usize>>,
    bufs: Vec<Vec<Msg>>,
    name: String,
}

impl Router {
    fn send(&mut self, msgs: &mut Vec<Msg>, cap: &Cap<'_>, outs: &mut [Active<'_>]) {
        for m in msgs.drain(..) {
            match self.port_of.get(usize::from(m.lambda)).copied().flatten() {
                Some(p) => self.bufs[p].push(m),
                None => super::commit::fatal(&format!(
                    "operator {} sent a message to lambda {}, which the app's graph does not link it to",
                    self.name, m.lambda
                )),
            }
        }
        for (p, buf) in self.bufs.iter_mut().enumerate() {
            if buf.is_empty() {
                continue;
            }
            match cap {
                Cap::Input(ic, _) => outs[p].session(*ic).give_iterator(buf.drain(..)),
                Cap::Held(held) => outs[p].session(&held[p]).give_iterator(buf.drain(..)),
            }
        }
    }
}

/// Handles one unit of work, then everything it woke, sending outputs under the right
/// capabilities.
#[allow(clippy::too_many_arguments)]
fn run_work(
    rt: &mut dyn ShardRuntime,
    metrics: Option<&OperatorMetrics>,
    epoch_cell: &Cell<u64>,
    work: Work,
    cap: &Cap<'_>,
    epoch: u64,
    fx: &mut Effects,
    router: &mut Router,
    outs: &mut [Active<'_>],
) {
    epoch_cell.set(epoch);
    if let Some(m) = metrics {
        m.messages.fetch_add(1, Ordering::Relaxed);
    }
    rt.handle(work, cap, fx);
    router.send(&mut fx.out, cap, outs);
    while !fx.woken.is_empty() {
        for (e, caps, w) in std::mem::take(&mut fx.woken) {
            epoch_cell.set(e);
            let held = Cap::Held(&caps);
            rt.handle(w, &held, fx);
            router.send(&mut fx.out, &held, outs);
        }
    }
}

/// Messages of later epochs, with one capability per output port for each epoch.
#[derive(Default)]
struct Stash {
    epochs: BTreeMap<u64, (Vec<CapabilitySet<Time>>, Vec<Msg>)>,
    len: usize,
}

impl Stash {
    fn push(&mut self, epoch: u64, cap: &Cap<'_>, msg: Msg) {
        self.epochs
            .entry(epoch)
            .or_insert_with(|| (cap.retain(), Vec::new()))
            .1
            .push(msg);
        self.len += 1;
    }

    /// Takes the messages of epochs up to `c`, oldest epoch first.
    fn take_up_to(&mut self, c: u64) -> Vec<(u64, Vec<CapabilitySet<Time>>, Vec<Msg>)> {
        let later = self.epochs.split_off(&(c + 1));
        let now = std::mem::replace(&mut self.epochs, later);
        let out: Vec<_> = now.into_iter().map(|(e, (caps, m))| (e, caps, m)).collect();
        self.len -= out.iter().map(|(_, _, m)| m.len()).sum::<usize>();
        out
    }
}

/// An operator's output streams (one per linked lambda) and its ack stream.
pub(crate) type Outputs<'s> = (Vec<Stream<'s, Time, Batch>>, Stream<'s, Time, Vec<()>>);

/// Builds the operator of one lambda: returns its output streams (one per linked lambda, in
/// `links_out` order) and its ack stream.
pub(crate) fn build<'s>(scope: Scope<'s, Time>, spec: OperatorSpec<'s>) -> Outputs<'s> {
    let OperatorSpec {
        name,
        ingress,
        links_in,
        links_out,
        lambdas,
        mut shard,
        env,
        interval,
        start_epoch,
        committer,
    } = spec;
    let mut b = OperatorBuilder::new(name.clone(), scope);
    let mut in_ingress = b.new_input(ingress, Pipeline);
    let mut ins: Vec<_> = links_in
        .into_iter()
        .map(|s| b.new_input(s, Exchange::new(|m: &Msg| u64::from(m.worker))))
        .collect();
    let mut outs = Vec::with_capacity(links_out.len());
    let mut out_streams = Vec::with_capacity(links_out.len());
    for _ in &links_out {
        let (o, s) = b.new_output::<Batch>();
        outs.push(OutputBuilder::<Time, CapacityContainerBuilder<Batch>>::from(o));
        out_streams.push(s);
    }
    let (_ack, ack_stream) = b.new_output::<Vec<()>>();
    let ports = links_out.len();
    let mut router = Router {
        port_of: (0..lambdas)
            .map(|l| links_out.iter().position(|t| usize::from(*t) == l))
            .collect(),
        bufs: (0..ports).map(|_| Vec::new()).collect(),
        name: name.clone(),
    };
    let epoch_cell = env.epoch.clone();
    let metrics = env.metrics.clone();
    let op = env.op;
    shard.init(env);
    let address = b.operator_info().address;
    committer.pipeline.register(
        committer.idx,
        scope.worker().sync_activator_for(address.to_vec()),
    );
    b.build(move |mut caps| {
        let mut hold: Option<Capability<Time>> = caps.pop();
        caps.clear();
        let mut epochs = EpochState {
            pending: VecDeque::new(),
            closed: false,
            c: 0,
            started: false,
        };
        let mut stash = Stash::default();
        let mut fx = Effects::default();
        let mut described = false;
        move |frontiers| {
            let t0 = std::time::Instant::now();
            if !described && super::cluster::has_failed() {
                described = true;
                tracing::error!(
                    "operator {name} at commit epoch {}, stash {}: {}",
                    epochs.c,
                    stash.len,
                    shard.describe()
                );
            }
            let mut active: Vec<Active<'_>> = outs.iter_mut().map(|o| o.activate()).collect();
            if !epochs.started {
                epochs.started = true;
                epochs.c =
                    commit_epoch_of(min_outer(frontiers).unwrap_or(0).max(start_epoch), interval);
                if let Some(h) = hold.as_mut() {
                    h.downgrade(&Product::new(epochs.c, 0));
                }
            }
            let m = metrics.operators.get(op);
            let c = epochs.c;
            let mut handle_input =
                |cap: timely::dataflow::operators::InputCapability<Time>,
                 data: std::slice::IterMut<'_, Batch>| {
                    let epoch = cap
                        .stamp()
                        .elements()
                        .iter()
                        .map(|t| t.outer)
                        .min()
                        .unwrap_or(0);
                    let cap = Cap::Input(&cap, ports);
                    for batch in data {
                        for msg in batch.drain(..) {
                            if epoch > c {
                                stash.push(epoch, &cap, msg);
                            } else {
                                run_work(
                                    shard.as_mut(),
                                    m,
                                    &epoch_cell,
                                    Work::Msg(msg),
                                    &cap,
                                    epoch,
                                    &mut fx,
                                    &mut router,
                                    &mut active,
                                );
                            }
                        }
                    }
                };
            in_ingress.for_each_stamp(&mut handle_input);
            for input in ins.iter_mut() {
                input.for_each_stamp(&mut handle_input);
            }
            // Snapshot every epoch whose inputs are complete, then run what waited for it.
            while !epochs.closed && hold.is_some() && passed(frontiers, epochs.c) {
                committer.send(shard.as_mut(), epochs.c);
                epochs.pending.push_back(epochs.c);
                if frontiers.iter().all(|f| f.frontier().is_empty()) {
                    epochs.closed = true;
                    break;
                }
                epochs.c = commit_epoch_of(min_outer(frontiers).unwrap_or(epochs.c + 1), interval)
                    .max(epochs.c + interval);
                for (epoch, caps, msgs) in stash.take_up_to(epochs.c) {
                    let cap = Cap::Held(&caps);
                    for msg in msgs {
                        run_work(
                            shard.as_mut(),
                            m,
                            &epoch_cell,
                            Work::Msg(msg),
                            &cap,
                            epoch,
                            &mut fx,
                            &mut router,
                            &mut active,
                        );
                    }
                }
            }
            if let Some(m) = m {
                m.busy_us
                    .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                m.stashed.store(stash.len as u64, Ordering::Relaxed);
                m.waiting.store(shard.waiting() as u64, Ordering::Relaxed);
            }
            epochs.hold_back(&mut hold, committer.pipeline.durable(committer.idx));
        }
    });
    (out_streams, ack_stream)
}

/// Where an operator is in the commit protocol.
struct EpochState {
    /// Commit epochs snapshotted and queued, not yet durable (oldest first).
    pending: VecDeque<u64>,
    /// The inputs are done: the last epoch was snapshotted.
    closed: bool,
    /// The commit epoch being filled.
    c: u64,
    started: bool,
}

impl EpochState {
    /// Keeps the ack capability at the oldest commit epoch that is not durable yet.
    fn hold_back(&mut self, hold: &mut Option<Capability<Time>>, durable: u64) {
        while self.pending.front().is_some_and(|p| *p <= durable) {
            self.pending.pop_front();
        }
        match self.pending.front().copied() {
            Some(oldest) => {
                if let Some(h) = hold.as_mut()
                    && h.time().outer < oldest
                {
                    h.downgrade(&Product::new(oldest, 0));
                }
            }
            None if self.closed => *hold = None,
            None => {
                if let Some(h) = hold.as_mut()
                    && h.time().outer < self.c
                {
                    h.downgrade(&Product::new(self.c, 0));
                }
            }
        }
    }
}
