//! Both stores against a `BTreeMap` model: random epochs applied (writes and completions),
//! flushes, crashes (drop + reopen: the store is back at some checkpoint between the last
//! flush and the last apply, with exactly the state of that epoch) and compaction.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use stateful_core::records::ingress::IngressRecord;

use super::error::{OpenError, ReadError, WriteError};
use super::{
    Checkpoint, CommitRecord, Completion, CompletionEntry, Horizon, MemoryStore, MessageId,
    MessageRecord, SledStore, StateStore, WriteRecord,
};

const LAMBDAS: u16 = 2;
const GROUPS: u16 = 2;
const KEYS: u8 = 3;
const IDEMPOTENCY_KEYS: u8 = 3;

type Write = (u16, u16, u8, Option<Vec<u8>>);
/// `(idempotency key index, ok)`.
type Done = (Option<u8>, bool);

#[derive(Debug, Clone)]
enum Op {
    /// Epochs `last + delta`, one per entry, each with its writes and completions.
    Apply {
        delta: u64,
        epochs: Vec<(Vec<Write>, Vec<Done>)>,
    },
    /// Make everything applied durable.
    Flush,
    /// Drop the store and reopen it.
    Crash,
    /// Compact history up to `last epoch - back`.
    Compact { back: u64 },
}

fn write() -> impl Strategy<Value = Write> {
    (
        0..LAMBDAS,
        0..GROUPS,
        0..KEYS,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..3)),
    )
}

fn done() -> impl Strategy<Value = Done> {
    (proptest::option::of(0..IDEMPOTENCY_KEYS), any::<bool>())
}

fn op() -> impl Strategy<Value = Op> {
    let epoch = || {
        (
            proptest::collection::vec(write(), 0..4),
            proptest::collection::vec(done(), 0..3),
        )
    };
    prop_oneof![
        6 => (1..3u64, proptest::collection::vec(epoch(), 1..4))
            .prop_map(|(delta, epochs)| Op::Apply { delta, epochs }),
        2 => Just(Op::Flush),
        1 => Just(Op::Crash),
        1 => (0..4u64).prop_map(|back| Op::Compact { back }),
    ]
}

type Instance = (u16, u16, Vec<u8>);

/// What the store should hold, epoch by epoch.
#[derive(Debug, Default, Clone)]
struct Model {
    versions: BTreeMap<Instance, BTreeMap<u64, Option<Vec<u8>>>>,
    completions: BTreeMap<u64, Completion>,
    /// First completion per idempotency key.
    idempotency: BTreeMap<String, u64>,
    next_seq: u64,
    /// Writers of each version still recorded.
    writers: BTreeMap<(Instance, u64), Vec<u64>>,
    horizon: Horizon,
    checkpoint: Checkpoint,
}

impl Model {
    fn record(&mut self, epoch: u64, writes: &[Write], done: &[Done]) -> CommitRecord {
        let writes = writes
            .iter()
            .map(|(lambda, group, key, value)| WriteRecord {
                lambda: *lambda,
                group: *group,
                key: vec![b'k'; usize::from(*key)],
                value: value.clone(),
                writers: vec![u64::from(*key)],
            })
            .collect();
        let completions = done
            .iter()
            .map(|(idem, ok)| {
                self.next_seq += 1;
                CompletionEntry {
                    request: IngressRecord {
                        seq: self.next_seq,
                        timestamp_ms: self.next_seq,
                        lambda: 0,
                        key: vec![1],
                        handler: 0,
                        args: vec![],
                        idempotency_key: idem.map(|i| format!("idem-{i}")),
                    },
                    ok: *ok,
                    response: self.next_seq.to_le_bytes().to_vec(),
                    order: self.next_seq,
                    trace: vec![b't'; (self.next_seq % 3) as usize],
                }
            })
            .collect();
        CommitRecord {
            epoch,
            prev_epoch: 0,
            writes,
            completions,
            messages: vec![],
            next_seq: self.next_seq + 1,
            next_order: self.next_seq + 1,
        }
    }

    fn apply(&mut self, r: &CommitRecord) {
        // Within an epoch a key is written once; the store keeps the last write.
        for w in &r.writes {
            let instance = (w.lambda, w.group, w.key.clone());
            self.writers
                .insert((instance.clone(), r.epoch), w.writers.clone());
            self.versions
                .entry(instance)
                .or_default()
                .insert(r.epoch, w.value.clone());
        }
        for c in &r.completions {
            let req = &c.request;
            if let Some(idem) = &req.idempotency_key {
                self.idempotency.entry(idem.clone()).or_insert(req.seq);
            }
            self.completions.insert(
                req.seq,
                Completion {
                    request: req.clone(),
                    ok: c.ok,
                    response: c.response.clone(),
                    order: c.order,
                    epoch: r.epoch,
                    trace: c.trace.clone(),
                },
            );
        }
        self.checkpoint = Checkpoint {
            epoch: r.epoch,
            next_seq: self.checkpoint.next_seq.max(r.next_seq),
            next_order: self.checkpoint.next_order.max(r.next_order),
        };
    }

    fn compact(&mut self, up_to: u64) -> Horizon {
        if self.checkpoint.epoch == 0 {
            return self.horizon;
        }
        let h = up_to.min(self.checkpoint.epoch);
        if h <= self.horizon.epoch {
            return self.horizon;
        }
        for versions in self.versions.values_mut() {
            // Keep the latest version at or before h and everything after it.
            if let Some((&keep, _)) = versions.range(..=h).next_back() {
                versions.retain(|e, _| *e >= keep);
            }
        }
        self.writers.retain(|(_, e), _| *e >= h);
        let mut below = self.horizon.forgotten_below_seq;
        self.completions.retain(|seq, c| {
            let forget = c.epoch < h && c.request.idempotency_key.is_none();
            if forget {
                below = below.max(seq + 1);
            }
            !forget
        });
        for c in self.completions.values_mut() {
            if c.epoch < h {
                c.trace.clear();
            }
        }
        self.horizon = Horizon {
            epoch: h,
            forgotten_below_seq: below,
        };
        self.horizon
    }

    fn get_at(&self, instance: &Instance, epoch: u64) -> Option<Vec<u8>> {
        self.versions
            .get(instance)
            .and_then(|v| v.range(..=epoch).next_back())
            .and_then(|(_, v)| v.clone())
    }
}

/// A store that can be crashed and reopened.
trait Harness {
    fn store(&self) -> &dyn StateStore;
    /// Drops and reopens the store; `true` when what was not flushed may be lost.
    fn crash(&mut self) -> Result<bool, OpenError>;
}

struct Memory(MemoryStore);

impl Harness for Memory {
    fn store(&self) -> &dyn StateStore {
        &self.0
    }
    fn crash(&mut self) -> Result<bool, OpenError> {
        Ok(false)
    }
}

struct Sled {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: Option<SledStore>,
}

impl Harness for Sled {
    fn store(&self) -> &dyn StateStore {
        self.store.as_ref().expect("open between crashes")
    }
    fn crash(&mut self) -> Result<bool, OpenError> {
        self.store = None;
        self.store = Some(reopen(&self.path)?);
        Ok(true)
    }
}

/// Reopens a dir this process just closed. sled 0.34 background threads can keep the
/// lock file open for a moment after the `Db` is dropped, so `Locked` is retried briefly.
pub(super) fn reopen(path: &std::path::Path) -> Result<SledStore, OpenError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match SledStore::open(path) {
            Err(OpenError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn check(store: &dyn StateStore, model: &Model) -> Result<(), TestCaseError> {
    let max_epoch = model.checkpoint.epoch;
    for lambda in 0..LAMBDAS {
        for group in 0..GROUPS {
            for key in 0..KEYS {
                let instance = (lambda, group, vec![b'k'; usize::from(key)]);
                let history: Vec<_> = model
                    .versions
                    .get(&instance)
                    .map(|v| v.iter().map(|(e, v)| (*e, v.clone())).collect())
                    .unwrap_or_default();
                let k = &instance.2;
                prop_assert_eq!(
                    &store.history(lambda, group, k)?,
                    &history,
                    "history {:?}",
                    instance
                );
                prop_assert_eq!(
                    store.get(lambda, group, k)?,
                    model.get_at(&instance, u64::MAX)
                );
                let mut epochs = vec![0, max_epoch + 1, u64::MAX];
                for (e, _) in &history {
                    epochs.extend([e - 1, *e, e + 1]);
                }
                for e in epochs {
                    if e < model.horizon.epoch {
                        prop_assert!(
                            matches!(
                                store.get_at(lambda, group, k, e),
                                Err(ReadError::Compacted { asked, horizon })
                                    if asked == e && horizon == model.horizon.epoch
                            ),
                            "get_at {:?} {} before the horizon",
                            instance,
                            e
                        );
                        continue;
                    }
                    prop_assert_eq!(
                        store.get_at(lambda, group, k, e)?,
                        model.get_at(&instance, e),
                        "get_at {:?} {}",
                        instance,
                        e
                    );
                }
                for (e, _) in &history {
                    prop_assert_eq!(
                        store.writers(lambda, group, k, *e)?,
                        model
                            .writers
                            .get(&(instance.clone(), *e))
                            .cloned()
                            .unwrap_or_default(),
                        "writers {:?} {}",
                        instance,
                        e
                    );
                }
            }
        }
        let keys: Vec<_> = model
            .versions
            .iter()
            .filter(|((l, ..), v)| {
                *l == lambda && v.values().next_back().is_some_and(Option::is_some)
            })
            .map(|((_, g, k), _)| (*g, k.clone()))
            .collect();
        prop_assert_eq!(store.keys(lambda)?, keys);
    }
    for seq in 0..=model.next_seq + 1 {
        prop_assert_eq!(store.completion(seq)?, model.completions.get(&seq).cloned());
    }
    for i in 0..IDEMPOTENCY_KEYS {
        let idem = format!("idem-{i}");
        let expected = model
            .idempotency
            .get(&idem)
            .and_then(|seq| model.completions.get(seq))
            .cloned();
        prop_assert_eq!(store.completion_by_idempotency_key(&idem)?, expected);
    }
    for (from, limit) in [(0, usize::MAX), (model.next_seq / 2, 2)] {
        let page: Vec<Completion> = model
            .completions
            .range(from..)
            .take(limit)
            .map(|(_, c)| c.clone())
            .collect();
        prop_assert_eq!(store.completions_from(from, limit)?, page);
    }
    prop_assert_eq!(store.horizon()?, model.horizon);
    prop_assert_eq!(store.checkpoint()?, model.checkpoint);
    Ok(())
}

fn run(harness: &mut dyn Harness, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    // The model after each applied epoch, back to the last flush: a crash may land on any.
    let mut since_flush: Vec<Model> = vec![model.clone()];
    let mut last_epoch = 0;
    for op in ops {
        match op {
            Op::Apply { delta, epochs } => {
                let mut records = Vec::new();
                for (writes, done) in epochs {
                    last_epoch += delta;
                    let r = model.record(last_epoch, writes, done);
                    model.apply(&r);
                    since_flush.push(model.clone());
                    records.push(Arc::new(r));
                }
                harness.store().apply(&records)?;
            }
            Op::Flush => {
                harness.store().flush()?;
                since_flush = vec![model.clone()];
            }
            Op::Crash => {
                let may_lose = harness.crash()?;
                let at = harness.store().checkpoint()?;
                let back = since_flush
                    .iter()
                    .rposition(|m| m.checkpoint == at)
                    .ok_or_else(|| {
                        TestCaseError::fail(format!(
                            "after a crash the store is at {at:?}, not at an epoch applied since the last flush"
                        ))
                    })?;
                prop_assert!(
                    may_lose || back + 1 == since_flush.len(),
                    "nothing may be lost"
                );
                model = since_flush[back].clone();
                since_flush.truncate(back + 1);
            }
            Op::Compact { back } => {
                let up_to = last_epoch.saturating_sub(*back);
                let done = harness.store().compact(up_to)?;
                prop_assert_eq!(done.horizon, model.compact(up_to));
                // Compaction ends with a flush: everything before it is durable too.
                since_flush = vec![model.clone()];
            }
        }
        check(harness.store(), &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn memory_store_matches_model(ops in proptest::collection::vec(op(), 0..40)) {
        run(&mut Memory(MemoryStore::new()), &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn sled_store_matches_model(ops in proptest::collection::vec(op(), 0..40)) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = dir.path().join("db");
        let store = Some(SledStore::open(&path)?);
        run(&mut Sled { _dir: dir, path, store }, &ops)?;
    }
}

fn contract_errors(store: &dyn StateStore) {
    let epoch = |e: u64| {
        Arc::new(CommitRecord {
            epoch: e,
            prev_epoch: 0,
            writes: vec![],
            completions: vec![],
            messages: vec![],
            next_seq: 1,
            next_order: 0,
        })
    };
    store.apply(&[epoch(5)]).expect("applies");
    assert!(
        matches!(store.apply(&[epoch(5)]), Err(WriteError::Corrupt(_))),
        "an epoch is applied once"
    );
    assert!(
        store.apply(&[epoch(3)]).is_err(),
        "epochs only move forward"
    );
    assert_eq!(store.checkpoint().expect("reads").epoch, 5);
    store.check_app("shop").expect("records the app");
    store.check_app("shop").expect("same app");
    match store.check_app("other") {
        Err(OpenError::WrongApp { found, expected }) => {
            assert_eq!((found.as_str(), expected.as_str()), ("shop", "other"));
        }
        other => panic!("expected WrongApp, got {other:?}"),
    }
}

#[test]
fn memory_store_rejects_replayed_epochs_and_other_apps() {
    contract_errors(&MemoryStore::new());
}

#[test]
fn sled_store_rejects_replayed_epochs_and_other_apps() {
    let dir = tempfile::tempdir().expect("tempdir");
    contract_errors(&SledStore::open(dir.path()).expect("opens"));
    // The app name survives a reopen.
    let store = reopen(dir.path()).expect("reopens");
    assert!(matches!(
        store.check_app("other"),
        Err(OpenError::WrongApp { .. })
    ));
    store.check_app("shop").expect("same app after reopen");
}

/// Messages are pending from their epoch until a completion with their delivery key, also
/// when both are applied in one call.
fn messages_pending_until_delivered(store: &dyn StateStore) {
    let msg = |epoch: u64, index: u32| MessageRecord {
        id: MessageId { epoch, index },
        sender: 1,
        from_lambda: 0,
        from_key: vec![1],
        lambda: 1,
        key: vec![2],
        handler: 0,
        args: vec![],
        due_us: 0,
    };
    let delivery = |seq: u64, id: MessageId| CompletionEntry {
        request: IngressRecord {
            seq,
            timestamp_ms: 0,
            lambda: 1,
            key: vec![2],
            handler: 0,
            args: vec![],
            idempotency_key: Some(id.idempotency_key()),
        },
        ok: true,
        response: vec![],
        order: seq,
        trace: vec![],
    };
    let record = |epoch: u64, messages: Vec<MessageRecord>, completions: Vec<CompletionEntry>| {
        Arc::new(CommitRecord {
            epoch,
            prev_epoch: 0,
            writes: vec![],
            completions,
            messages,
            next_seq: 10,
            next_order: 10,
        })
    };
    store
        .apply(&[record(5, vec![msg(5, 0), msg(5, 1)], vec![])])
        .expect("applies");
    let ids = |s: &dyn StateStore| -> Vec<MessageId> {
        s.pending_messages()
            .expect("reads")
            .iter()
            .map(|m| m.id)
            .collect()
    };
    assert_eq!(ids(store), vec![msg(5, 0).id, msg(5, 1).id]);
    store
        .apply(&[
            record(6, vec![msg(6, 0)], vec![delivery(1, msg(5, 1).id)]),
            record(7, vec![], vec![delivery(2, msg(6, 0).id)]),
        ])
        .expect("applies");
    assert_eq!(ids(store), vec![msg(5, 0).id], "delivered ones are gone");
}

#[test]
fn memory_store_keeps_messages_pending_until_delivered() {
    messages_pending_until_delivered(&MemoryStore::new());
}

#[test]
fn sled_store_keeps_messages_pending_until_delivered_across_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    messages_pending_until_delivered(&SledStore::open(dir.path()).expect("opens"));
    let store = reopen(dir.path()).expect("reopens");
    let pending = store.pending_messages().expect("reads");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, MessageId { epoch: 5, index: 0 });
}

/// `expire` deletes every version of the instances last written before the cutoff, and only
/// those.
fn expire_deletes_instances_written_before_the_cutoff(store: &dyn StateStore) {
    let write = |key: u8| WriteRecord {
        lambda: 3,
        group: 0,
        key: vec![key],
        value: Some(vec![key]),
        writers: vec![],
    };
    let record = |epoch: u64, writes: Vec<WriteRecord>| {
        Arc::new(CommitRecord {
            epoch,
            prev_epoch: 0,
            writes,
            completions: vec![],
            messages: vec![],
            next_seq: 1,
            next_order: 0,
        })
    };
    store
        .apply(&[
            record(10, vec![write(1), write(2)]),
            record(20, vec![write(2)]),
        ])
        .expect("applies");
    assert_eq!(store.expire(3, 15).expect("expires"), 1, "only key 1");
    assert_eq!(store.history(3, 0, &[1]).expect("reads"), vec![]);
    assert_eq!(store.history(3, 0, &[2]).expect("reads").len(), 2);
    assert_eq!(
        store.expire(4, u64::MAX).expect("expires"),
        0,
        "another lambda"
    );
    assert_eq!(store.expire(3, 21).expect("expires"), 1);
    assert!(store.get(3, 0, &[2]).expect("reads").is_none());
}

#[test]
fn memory_store_expires_instances() {
    expire_deletes_instances_written_before_the_cutoff(&MemoryStore::new());
}

#[test]
fn sled_store_expires_instances() {
    let dir = tempfile::tempdir().expect("tempdir");
    expire_deletes_instances_written_before_the_cutoff(
        &SledStore::open(dir.path()).expect("opens"),
    );
}
