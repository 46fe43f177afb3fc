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
//! Commit protocol (coordinator-free, from the timely prototype): the clock says which epochs
//! exist; the operator snapshots each of them in order. When none of its input frontiers has
//! an epoch `<= c`, every request of those epochs that could reach it has finished, so its
//! state is exactly their effects: it hands them to the committer, and only once they are
//! durable moves the capability it holds on its `ack` output (off the cycle) past `c` (the
//! probe behind the acks tells a cluster when an epoch is durable on every process).

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{OutputBuilder, OutputBuilderSession};
use timely::dataflow::operators::{Capability, CapabilitySet, InputCapability};
use timely::dataflow::{Scope, Stream};
use timely::order::Product;
use timely::progress::frontier::MutableAntichain;

use super::clock::EpochClock;
use super::commit::{CommitPipeline, Snapshot};
use super::metrics::{Metrics, OperatorMetrics};
use super::protocol::Msg;
use super::shard::{Cap, Effects, Env, ShardRuntime, Time, Work};

/// A batch of messages on one channel.
pub(crate) type Batch = Vec<Msg>;

fn passed(frontiers: &[MutableAntichain<Time>], c: u64) -> bool {
    frontiers
        .iter()
        .all(|f| f.frontier().iter().all(|t| t.outer > c))
}

/// How an operator hands its snapshots to the committer thread.
pub(crate) struct Committer {
    pub idx: usize,
    pub pipeline: Arc<CommitPipeline>,
    pub sender: Option<std::sync::mpsc::Sender<(usize, Snapshot)>>,
}

impl Committer {
    /// Takes the snapshot of epoch `c` and queues it (`last`: the operator's inputs are
    /// done, it sends no later epoch); returns at once.
    fn send(&self, rt: &mut dyn ShardRuntime, c: u64, last: bool) {
        let mut snapshot = match rt.snapshot(c) {
            Ok(s) => s,
            Err(e) => super::commit::fatal(&e),
        };
        snapshot.last = last;
        let sent = self.sender.as_ref().map(|s| s.send((self.idx, snapshot)));
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
    pub clock: Arc<EpochClock>,
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

/// What the operator does on each activation, with everything it keeps between them.
struct Logic {
    name: String,
    shard: Box<dyn ShardRuntime>,
    router: Router,
    stash: Stash,
    fx: Effects,
    epochs: EpochState,
    /// The capability on the ack output: held at the oldest commit epoch not yet durable.
    hold: Option<Capability<Time>>,
    committer: Committer,
    epoch_cell: Rc<Cell<u64>>,
    metrics: Arc<Metrics>,
    op: usize,
    clock: Arc<EpochClock>,
    ports: usize,
    described: bool,
}

impl Logic {
    fn op_metrics(&self) -> Option<&OperatorMetrics> {
        self.metrics.operators.get(self.op)
    }

    /// Handles one unit of work, then everything it woke, sending outputs under the right
    /// capabilities.
    fn run(&mut self, work: Work, cap: &Cap<'_>, epoch: u64, outs: &mut [Active<'_>]) {
        self.epoch_cell.set(epoch);
        if let Some(m) = self.metrics.operators.get(self.op) {
            m.messages.fetch_add(1, Ordering::Relaxed);
        }
        self.shard.handle(work, cap, &mut self.fx);
        self.router.send(&mut self.fx.out, cap, outs);
        while !self.fx.woken.is_empty() {
            for (e, caps, w) in std::mem::take(&mut self.fx.woken) {
                self.epoch_cell.set(e);
                let held = Cap::Held(&caps);
                self.shard.handle(w, &held, &mut self.fx);
                self.router.send(&mut self.fx.out, &held, outs);
            }
        }
    }

    /// Once: the first epoch, from the clock.
    fn start(&mut self) {
        if self.epochs.started {
            return;
        }
        self.epochs.started = true;
        self.epochs.c = self.clock.first_epoch();
        if let Some(h) = self.hold.as_mut() {
            h.downgrade(&Product::new(self.epochs.c, 0));
        }
    }

    /// The messages of one input container group: run now (the open commit epoch), or stash.
    fn on_input(
        &mut self,
        cap: InputCapability<Time>,
        data: std::slice::IterMut<'_, Batch>,
        outs: &mut [Active<'_>],
    ) {
        let epoch = cap
            .stamp()
            .elements()
            .iter()
            .map(|t| t.outer)
            .min()
            .unwrap_or(0);
        let cap = Cap::Input(&cap, self.ports);
        for batch in data {
            for msg in batch.drain(..) {
                if epoch > self.epochs.c {
                    self.stash.push(epoch, &cap, msg);
                } else {
                    self.run(Work::Msg(msg), &cap, epoch, outs);
                }
            }
        }
    }

    /// Snapshots every epoch whose inputs are complete, then runs what waited for it.
    fn commit_ready(&mut self, frontiers: &[MutableAntichain<Time>], outs: &mut [Active<'_>]) {
        while !self.epochs.closed && self.hold.is_some() && passed(frontiers, self.epochs.c) {
            let last = frontiers.iter().all(|f| f.frontier().is_empty());
            self.committer
                .send(self.shard.as_mut(), self.epochs.c, last);
            self.epochs.pending.push_back(self.epochs.c);
            if last {
                self.epochs.closed = true;
                break;
            }
            // The frontier passed `c` only once the clock had opened a later epoch.
            let Some(next) = self.clock.next_after(self.epochs.c) else {
                super::commit::fatal("an epoch passed before the clock closed it");
            };
            self.epochs.c = next;
            for (epoch, caps, msgs) in self.stash.take_up_to(self.epochs.c) {
                let cap = Cap::Held(&caps);
                for msg in msgs {
                    self.run(Work::Msg(msg), &cap, epoch, outs);
                }
            }
        }
    }

    /// Keeps the ack capability at the oldest epoch that is not durable yet.
    fn hold_back(&mut self) {
        let durable = self.committer.pipeline.durable();
        let e = &mut self.epochs;
        while e.pending.front().is_some_and(|p| *p <= durable) {
            e.pending.pop_front();
        }
        match e.pending.front().copied() {
            Some(oldest) => {
                if let Some(h) = self.hold.as_mut()
                    && h.time().outer < oldest
                {
                    h.downgrade(&Product::new(oldest, 0));
                }
            }
            None if e.closed => self.hold = None,
            None => {
                if let Some(h) = self.hold.as_mut()
                    && h.time().outer < e.c
                {
                    h.downgrade(&Product::new(e.c, 0));
                }
            }
        }
    }

    /// Gauges and busy time after an activation; a stall report once the cluster failed.
    fn finish(&mut self, t0: std::time::Instant) {
        if !self.described && super::cluster::has_failed() {
            self.described = true;
            tracing::error!(
                "operator {} at commit epoch {}, stash {}: {}",
                self.name,
                self.epochs.c,
                self.stash.len,
                self.shard.describe()
            );
        }
        if let Some(m) = self.op_metrics() {
            m.busy_us
                .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
            m.stashed.store(self.stash.len as u64, Ordering::Relaxed);
            m.waiting
                .store(self.shard.waiting() as u64, Ordering::Relaxed);
        }
        self.hold_back();
    }
}

/// An operator's output streams (one per linked lambda) and its ack stream.
pub(crate) type Outputs<'s> = (Vec<Stream<'s, Time, Batch>>, Stream<'s, Time, Vec<()>>);

/// Builds the operator of one lambda: returns its output streams (one per linked lambda, in
/// `links_out` order) and its ack stream.
pub(crate) fn build<'s>(scope: Scope<'s, Time>, spec: OperatorSpec<'s>) -> Outputs<'s> {
    let mut b = OperatorBuilder::new(spec.name.clone(), scope);
    let mut in_ingress = b.new_input(spec.ingress, Pipeline);
    let mut ins: Vec<_> = spec
        .links_in
        .into_iter()
        .map(|s| b.new_input(s, Exchange::new(|m: &Msg| u64::from(m.worker))))
        .collect();
    let mut outs = Vec::with_capacity(spec.links_out.len());
    let mut out_streams = Vec::with_capacity(spec.links_out.len());
    for _ in &spec.links_out {
        let (o, s) = b.new_output::<Batch>();
        outs.push(OutputBuilder::<Time, CapacityContainerBuilder<Batch>>::from(o));
        out_streams.push(s);
    }
    let (_ack, ack_stream) = b.new_output::<Vec<()>>();
    let address = b.operator_info().address;
    spec.committer.pipeline.register(
        spec.committer.idx,
        scope.worker().sync_activator_for(address.to_vec()),
    );
    let ports = spec.links_out.len();
    let router = Router {
        port_of: (0..spec.lambdas)
            .map(|l| spec.links_out.iter().position(|t| usize::from(*t) == l))
            .collect(),
        bufs: (0..ports).map(|_| Vec::new()).collect(),
        name: spec.name.clone(),
    };
    let (epoch_cell, metrics, op) = (
        spec.env.epoch.clone(),
        spec.env.metrics.clone(),
        spec.env.op,
    );
    let mut shard = spec.shard;
    shard.init(spec.env);
    b.build(move |mut caps| {
        let hold = caps.pop();
        caps.clear();
        let mut logic = Logic {
            name: spec.name,
            shard,
            router,
            stash: Stash::default(),
            fx: Effects::default(),
            epochs: EpochState {
                pending: VecDeque::new(),
                closed: false,
                c: 0,
                started: false,
            },
            hold,
            committer: spec.committer,
            epoch_cell,
            metrics,
            op,
            clock: spec.clock,
            ports,
            described: false,
        };
        move |frontiers| {
            let t0 = std::time::Instant::now();
            let mut active: Vec<Active<'_>> = outs.iter_mut().map(|o| o.activate()).collect();
            logic.start();
            in_ingress.for_each_stamp(|cap, data| logic.on_input(cap, data, &mut active));
            for input in ins.iter_mut() {
                input.for_each_stamp(|cap, data| logic.on_input(cap, data, &mut active));
            }
            logic.commit_ready(frontiers, &mut active);
            logic.finish(t0);
        }
    });
    (out_streams, ack_stream)
}
