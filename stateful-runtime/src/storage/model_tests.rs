//! Both stores against a `BTreeMap` model: random commits from several committers, crashes
//! (drop + reopen + recover) and partially written epochs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;

use super::error::{OpenError, ReadError, WriteError};
use super::{
    CommitBatch, CommitterId, Completion, Horizon, MemoryStore, Recovered, SledStore, StateStore,
    StateWrite,
};

const COMMITTERS: [CommitterId; 3] = [
    CommitterId {
        worker: 0,
        lambda: 0,
    },
    CommitterId {
        worker: 1,
        lambda: 0,
    },
    CommitterId {
        worker: 0,
        lambda: 1,
    },
];
const LAMBDAS: u16 = 2;
const GROUPS: u16 = 2;
const KEYS: u8 = 3;
const IDEMPOTENCY_KEYS: u8 = 3;

type Write = (u16, u16, u8, Option<Vec<u8>>);
/// `(idempotency key index, ok)`.
type Done = (Option<u8>, bool);

#[derive(Debug, Clone)]
enum Op {
    /// One committer commits `marker + delta`.
    Commit {
        who: usize,
        delta: u64,
        writes: Vec<Write>,
        completed: Vec<Done>,
    },
    /// Drop the store, reopen, recover with the same committers.
    Crash,
    /// Epoch `max marker + delta` is written by the committers flagged `Some`, then a crash.
    PartialEpoch {
        delta: u64,
        commits: Vec<Option<(Vec<Write>, Vec<Done>)>>,
    },
    /// Compact history up to `max marker - back`.
    Compact { back: u64 },
    /// Drop, reopen and recover no further than `committed - back` (a cluster's ceiling).
    CrashTo { back: u64 },
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
    let writes = || proptest::collection::vec(write(), 0..4);
    let dones = || proptest::collection::vec(done(), 0..3);
    prop_oneof![
        6 => (0..COMMITTERS.len(), 1..3u64, writes(), dones()).prop_map(
            |(who, delta, writes, completed)| Op::Commit { who, delta, writes, completed }
        ),
        1 => Just(Op::Crash),
        1 => (
            1..3u64,
            proptest::collection::vec(proptest::option::of((writes(), dones())), COMMITTERS.len()),
        )
            .prop_map(|(delta, commits)| Op::PartialEpoch { delta, commits }),
        1 => (0..4u64).prop_map(|back| Op::Compact { back }),
        1 => (0..3u64).prop_map(|back| Op::CrashTo { back }),
    ]
}

type Instance = (u16, u16, Vec<u8>);

#[derive(Debug, Default)]
struct Model {
    versions: BTreeMap<Instance, BTreeMap<u64, Option<Vec<u8>>>>,
    /// seq -> (epoch, completion).
    completions: BTreeMap<u64, (u64, Completion)>,
    /// First committed completion per idempotency key, forgotten when rolled back.
    idempotency: BTreeMap<String, u64>,
    markers: BTreeMap<CommitterId, u64>,
    next_seq: u64,
    /// Writers of each version still recorded.
    writers: BTreeMap<(Instance, u64), Vec<u64>>,
    horizon: Horizon,
}

impl Model {
    fn batch(
        &mut self,
        committer: CommitterId,
        epoch: u64,
        writes: &[Write],
        done: &[Done],
    ) -> CommitBatch {
        let writes = writes
            .iter()
            .map(|(lambda, group, key, value)| StateWrite {
                lambda: *lambda,
                group: *group,
                key: vec![b'k'; usize::from(*key)],
                value: value.clone(),
                writers: vec![u64::from(*key)],
            })
            .collect();
        let completed = done
            .iter()
            .map(|(idem, ok)| {
                self.next_seq += 1;
                Completion {
                    seq: self.next_seq,
                    idempotency_key: idem.map(|i| format!("idem-{i}")),
                    ok: *ok,
                    response: self.next_seq.to_le_bytes().to_vec(),
                    order: self.next_seq,
                    epoch,
                    trace: vec![b't'; (self.next_seq % 3) as usize],
                }
            })
            .collect();
        CommitBatch {
            committer,
            epoch,
            writes,
            completed,
        }
    }

    fn commit(&mut self, batch: &CommitBatch) {
        for w in &batch.writes {
            let instance = (w.lambda, w.group, w.key.clone());
            self.writers
                .insert((instance.clone(), batch.epoch), w.writers.clone());
            self.versions
                .entry(instance)
                .or_default()
                .insert(batch.epoch, w.value.clone());
        }
        for c in &batch.completed {
            if let Some(idem) = &c.idempotency_key {
                self.idempotency.entry(idem.clone()).or_insert(c.seq);
            }
            self.completions.insert(c.seq, (batch.epoch, c.clone()));
        }
        self.markers.insert(batch.committer, batch.epoch);
    }

    fn recover(&mut self) -> Recovered {
        self.recover_to(None)
    }

    fn recover_to(&mut self, ceiling: Option<u64>) -> Recovered {
        let committed = self.markers.values().copied().min().unwrap_or(0);
        let committed = ceiling.map_or(committed, |c| committed.min(c));
        let mut discarded_versions = 0;
        for versions in self.versions.values_mut() {
            let later = versions.split_off(&(committed + 1));
            discarded_versions += later.len() as u64;
        }
        self.versions.retain(|_, v| !v.is_empty());
        self.writers.retain(|(_, e), _| *e <= committed);
        self.completions.retain(|_, (epoch, _)| *epoch <= committed);
        let completions = &self.completions;
        self.idempotency
            .retain(|_, seq| completions.contains_key(seq));
        self.markers = COMMITTERS.iter().map(|c| (*c, committed)).collect();
        Recovered {
            committed_epoch: committed,
            discarded_versions,
        }
    }

    fn compact(&mut self, up_to: u64) -> Horizon {
        let Some(committed) = self.markers.values().copied().min() else {
            return self.horizon;
        };
        let h = up_to.min(committed);
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
        for (epoch, c) in self.completions.values_mut() {
            if *epoch < h {
                c.trace.clear();
            }
        }
        let mut below = self.horizon.complete_below_seq;
        while let Some((epoch, c)) = self.completions.get(&below) {
            if *epoch >= h {
                break;
            }
            if c.idempotency_key.is_none() {
                self.completions.remove(&below);
            }
            below += 1;
        }
        self.horizon = Horizon {
            epoch: h,
            complete_below_seq: below,
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
    fn crash(&mut self) -> Result<(), OpenError>;
}

struct Memory(MemoryStore);

impl Harness for Memory {
    fn store(&self) -> &dyn StateStore {
        &self.0
    }
    fn crash(&mut self) -> Result<(), OpenError> {
        Ok(())
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
    fn crash(&mut self) -> Result<(), OpenError> {
        self.store = None;
        self.store = Some(reopen(&self.path)?);
        Ok(())
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
    let max_epoch = model.markers.values().copied().max().unwrap_or(0);
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
        prop_assert_eq!(
            store.completion(seq)?,
            model.completions.get(&seq).map(|(_, c)| c.clone())
        );
    }
    for i in 0..IDEMPOTENCY_KEYS {
        let idem = format!("idem-{i}");
        let expected = model
            .idempotency
            .get(&idem)
            .and_then(|seq| model.completions.get(seq))
            .map(|(_, c)| c.clone());
        prop_assert_eq!(store.completion_by_idempotency_key(&idem)?, expected);
    }
    for from in [0, model.next_seq / 2] {
        let seqs: Vec<u64> = model.completions.range(from..).map(|(s, _)| *s).collect();
        prop_assert_eq!(store.completed_seqs_from(from)?, seqs);
    }
    prop_assert_eq!(store.horizon()?, model.horizon);
    Ok(())
}

fn run(harness: &mut dyn Harness, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    prop_assert_eq!(harness.store().recover(&COMMITTERS)?, model.recover());
    for op in ops {
        match op {
            Op::Commit {
                who,
                delta,
                writes,
                completed,
            } => {
                let committer = COMMITTERS[*who];
                let epoch = model.markers[&committer] + delta;
                let batch = model.batch(committer, epoch, writes, completed);
                harness.store().commit(batch.clone())?;
                model.commit(&batch);
            }
            Op::Compact { back } => {
                let max = model.markers.values().copied().max().unwrap_or(0);
                let up_to = max.saturating_sub(*back);
                let done = harness.store().compact(up_to)?;
                prop_assert_eq!(done.horizon, model.compact(up_to));
            }
            Op::CrashTo { back } => {
                harness.crash()?;
                prop_assert_eq!(
                    harness.store().committed_epoch()?,
                    model.markers.values().copied().min()
                );
                let committed = model.markers.values().copied().min().unwrap_or(0);
                // Never below the horizon: a cluster's ceiling is an epoch every process
                // committed, and compaction only ever reaches committed epochs.
                let ceiling = committed.saturating_sub(*back).max(model.horizon.epoch);
                prop_assert_eq!(
                    harness.store().recover_to(&COMMITTERS, Some(ceiling))?,
                    model.recover_to(Some(ceiling))
                );
            }
            Op::Crash => {
                harness.crash()?;
                prop_assert_eq!(harness.store().recover(&COMMITTERS)?, model.recover());
            }
            Op::PartialEpoch { delta, commits } => {
                let epoch = model.markers.values().copied().max().unwrap_or(0) + delta;
                for (committer, commit) in COMMITTERS.iter().zip(commits) {
                    if let Some((writes, completed)) = commit {
                        let batch = model.batch(*committer, epoch, writes, completed);
                        harness.store().commit(batch.clone())?;
                        model.commit(&batch);
                    }
                }
                check(harness.store(), &model)?;
                harness.crash()?;
                let recovered = harness.store().recover(&COMMITTERS)?;
                let expected = model.recover();
                prop_assert_eq!(&recovered, &expected);
                if commits.iter().any(Option::is_none) {
                    prop_assert!(recovered.committed_epoch < epoch);
                }
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
    let [a, b, _] = COMMITTERS;
    store.recover(&[a]).expect("recovers");
    let empty = |committer, epoch| CommitBatch {
        committer,
        epoch,
        writes: vec![],
        completed: vec![],
    };
    assert!(matches!(store.commit(empty(b, 1)), Err(WriteError::UnknownCommitter(c)) if c == b));
    store.commit(empty(a, 5)).expect("commits");
    assert!(matches!(
        store.commit(empty(a, 5)),
        Err(WriteError::StaleEpoch {
            epoch: 5,
            committed: 5,
            ..
        })
    ));
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
fn memory_store_rejects_unknown_committers_stale_epochs_and_other_apps() {
    contract_errors(&MemoryStore::new());
}

#[test]
fn sled_store_rejects_unknown_committers_stale_epochs_and_other_apps() {
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
