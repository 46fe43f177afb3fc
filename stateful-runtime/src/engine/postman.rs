//! The postman: delivers committed messages (and due timers) as requests of their own.
//!
//! ```text
//! committer ── messages of durable epochs ──▶ queue ordered by (due, id)
//!   a message starts when it is due, its epoch is acknowledged (in a cluster: committed
//!   everywhere) and no earlier message to the same instance is in flight
//!   ──▶ Handle: a request with the message's idempotency key ──▶ its completion removes it
//! ```
//!
//! Exactly once: a delivery is idempotent (its key names the message), and the store keeps a
//! message pending until the delivery's completion is applied, so a restart re-delivers only
//! what did not commit. In order per receiving instance: one delivery to an instance at a time.

use std::collections::{BTreeMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::config::InvokeError;
use super::handle::{Handle, Response};
use crate::storage::{MessageId, MessageRecord};

/// Deliveries in flight at once.
const MAX_IN_FLIGHT: usize = 256;
/// Queue entries looked at per round (messages to busy receivers are skipped; a round ends
/// at this many so that one receiver's long queue does not make every round long).
const MAX_SCAN: usize = 4096;
/// How long a delivery the engine refused (overloaded) waits before it is tried again.
const RETRY: Duration = Duration::from_millis(20);

/// What the committer hands the postman.
pub(crate) type Mailbag = Vec<MessageRecord>;

/// What the postman has to do, for tests that wait until the mail is out.
#[derive(Debug, Default)]
pub(crate) struct MailStatus {
    /// Messages handed to the postman and not yet delivered (or given up in this run).
    pub outstanding: AtomicUsize,
    /// Of those, timers not due yet (as of the postman's last look).
    pub not_due: AtomicUsize,
    /// Wakes the postman (after the offset moved).
    pub wake: tokio::sync::Notify,
    /// Looks asked for ([`MailStatus::ask`]) and the last one the postman made.
    asked: AtomicU64,
    seen: AtomicU64,
    /// Set when the engine stops: the postman starts nothing more and leaves (what it did
    /// not deliver stays pending in the store).
    pub stop: std::sync::atomic::AtomicBool,
}

impl MailStatus {
    /// Asks the postman to look at its queue again; the number to pass to
    /// [`MailStatus::settled`].
    pub(crate) fn ask(&self) -> u64 {
        let n = self.asked.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake.notify_one();
        n
    }

    /// Whether the postman looked since look `asked`, and every message is delivered except
    /// timers not due yet.
    pub(crate) fn settled(&self, asked: u64) -> bool {
        self.seen.load(Ordering::Acquire) >= asked
            && self.outstanding.load(Ordering::Acquire) <= self.not_due.load(Ordering::Acquire)
    }
}

/// The committer's end of the channel to the postman.
pub(crate) struct Outbox {
    tx: UnboundedSender<Mailbag>,
    status: Arc<MailStatus>,
}

impl Outbox {
    /// The postman's status this outbox counts into.
    pub(crate) fn status(&self) -> Arc<MailStatus> {
        self.status.clone()
    }

    /// Hands over the messages of durable epochs.
    pub(crate) fn post(&self, bag: Mailbag) {
        self.status
            .outstanding
            .fetch_add(bag.len(), Ordering::AcqRel);
        // The postman is gone only when the engine stops: the messages stay pending in the
        // log and the store, for the next start.
        let _ = self.tx.send(bag);
    }
}

/// The channel from the committer to the postman.
pub(crate) fn channel(status: Arc<MailStatus>) -> (Outbox, UnboundedReceiver<Mailbag>) {
    let (tx, rx) = unbounded_channel();
    (Outbox { tx, status }, rx)
}

/// Starts the postman thread with the messages recovery found pending; it stops once the
/// committer is gone (the channel closes) or the engine stops.
pub(crate) fn start(
    handle: Handle,
    pending: Vec<MessageRecord>,
    rx: UnboundedReceiver<Mailbag>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("stateful-postman".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build();
            match rt {
                Ok(rt) => rt.block_on(Postman::new(handle, pending).run(rx)),
                Err(e) => tracing::error!("the postman cannot start: {e}; messages wait"),
            }
        })
}

type Receiver = (u16, Vec<u8>);
type Delivery = Pin<Box<dyn std::future::Future<Output = (MessageRecord, Outcome)> + Send>>;

/// How one delivery ended.
enum Outcome {
    /// Answered (whatever the handler returned): the message is delivered.
    Answered,
    /// Not taken now (overloaded): try again.
    Retry,
    /// The engine stops, or the message cannot be delivered by this build.
    Give(String),
}

struct Postman {
    handle: Handle,
    status: Arc<MailStatus>,
    queue: BTreeMap<(u64, MessageId), MessageRecord>,
    busy: HashSet<Receiver>,
    flight: FuturesUnordered<Delivery>,
}

impl Postman {
    fn new(handle: Handle, pending: Vec<MessageRecord>) -> Self {
        let status = handle.shared.mail.clone();
        status
            .outstanding
            .fetch_add(pending.len(), Ordering::AcqRel);
        let mut p = Postman {
            handle,
            status,
            queue: BTreeMap::new(),
            busy: HashSet::new(),
            flight: FuturesUnordered::new(),
        };
        p.add(pending);
        p
    }

    fn add(&mut self, messages: Mailbag) {
        for m in messages {
            self.queue.insert((m.due_us, m.id), m);
        }
    }

    async fn run(mut self, mut rx: UnboundedReceiver<Mailbag>) {
        let status = self.status.clone();
        loop {
            if status.stop.load(Ordering::Acquire) {
                break;
            }
            let wait = self.start_due();
            tokio::select! {
                () = status.wake.notified() => {}
                bag = rx.recv() => match bag {
                    Some(bag) => self.add(bag),
                    None => break,
                },
                Some((m, outcome)) = self.flight.next(), if !self.flight.is_empty() => {
                    if !self.finished(m, outcome) {
                        break;
                    }
                }
                () = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600))), if wait.is_some() => {}
            }
        }
    }

    /// Starts every message that may go now; how long until the next one may (`None`: only
    /// an arrival or a finished delivery can change that).
    fn start_due(&mut self) -> Option<Duration> {
        let asked = self.status.asked.load(Ordering::Acquire);
        let now = self.handle.shared.now.us();
        let acknowledged = self.handle.shared.acknowledged_epoch();
        let mut start = Vec::new();
        let mut blocked: HashSet<Receiver> = HashSet::new();
        let mut next: Option<Duration> = None;
        for (examined, (&(due, id), m)) in self.queue.iter().enumerate() {
            if self.flight.len() + start.len() >= MAX_IN_FLIGHT || examined >= MAX_SCAN {
                break;
            }
            let to = (m.lambda, m.key.clone());
            if due > now {
                next = Some(Duration::from_micros(due - now));
                break;
            }
            if self.busy.contains(&to) || blocked.contains(&to) {
                continue;
            }
            if id.epoch > acknowledged {
                // In a cluster: not yet committed on every process.
                next = Some(Duration::from_millis(1));
                blocked.insert(to);
                continue;
            }
            blocked.insert(to);
            start.push((due, id));
        }
        for k in start {
            if let Some(m) = self.queue.remove(&k) {
                self.busy.insert((m.lambda, m.key.clone()));
                self.flight.push(deliver(self.handle.clone(), m));
            }
        }
        // Timers not due yet sort after everything due (a range, not a scan of the queue).
        let first_later = (now.saturating_add(1), MessageId { epoch: 0, index: 0 });
        let not_due = self.queue.range(first_later..).count();
        self.status.not_due.store(not_due, Ordering::Release);
        self.status.seen.store(asked, Ordering::Release);
        next
    }

    /// A delivery ended; `false`: stop (the engine stops).
    fn finished(&mut self, m: MessageRecord, outcome: Outcome) -> bool {
        self.busy.remove(&(m.lambda, m.key.clone()));
        match outcome {
            Outcome::Answered => {
                self.handle
                    .metrics()
                    .messages_delivered
                    .fetch_add(1, Ordering::Relaxed);
                self.status.outstanding.fetch_sub(1, Ordering::AcqRel);
                true
            }
            Outcome::Retry => {
                let due = self.handle.shared.now.us() + RETRY.as_micros() as u64;
                self.queue.insert((due.max(m.due_us), m.id), m);
                true
            }
            Outcome::Give(why) => {
                self.status.outstanding.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(message = ?m.id, "message not delivered in this run: {why}");
                !self
                    .handle
                    .shared
                    .admission
                    .stopping
                    .load(Ordering::Acquire)
            }
        }
    }
}

fn deliver(handle: Handle, m: MessageRecord) -> Delivery {
    Box::pin(async move {
        let submitted = handle.submit_internal(
            m.lambda,
            m.key.clone(),
            m.handler,
            m.args.clone(),
            Some(m.id.idempotency_key()),
        );
        let outcome = match submitted {
            Ok(rx) => match rx.await {
                Ok(Response {
                    result: Err(crate::sdk::CallError::Stopped),
                    ..
                })
                | Err(_) => Outcome::Give("the engine stopped".into()),
                Ok(_) => Outcome::Answered,
            },
            Err(InvokeError::Overloaded(_)) => Outcome::Retry,
            Err(e) => Outcome::Give(e.to_string()),
        };
        (m, outcome)
    })
}
