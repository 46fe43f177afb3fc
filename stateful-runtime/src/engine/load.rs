//! Bulk loads: [`Handle::load`] sets the state of many instances of one lambda, thousands per
//! request and per commit, without running a handler for each.
//!
//! ```text
//! (key, state)* ─encode─▶ one bucket per owner worker ─ full (CHUNK) ─▶ a request
//!   Call{handler: LOAD, args: LoadChunk} ─▶ the owner's shard puts each free key (shard::load)
//!   answer (once its epoch is durable): the busy keys ─▶ sent again, a little later
//! ```
//!
//! A load keeps the store close behind (it waits while more than `MAX_STORE_LAG` of its
//! writes are not in the store yet), and ends once the store holds all of it with one empty
//! request: its epoch lets every shard evict what the load put in its cache beyond budget.
//!
//! A load is not one transaction: each instance is set atomically, between the requests that
//! use it, and the load returns once every instance is durable. An instance a running request
//! holds is set after that request ends. Loading the same instances again sets them again.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::config::InvokeError;
use super::handle::{Handle, Response};
use crate::sdk::{CallError, Lambda, wire};

/// The handler index of a bulk load's request (no lambda has that many handlers).
pub(crate) const LOAD_HANDLER: u16 = u16::MAX;

/// Instances per request.
const CHUNK: usize = 2048;
/// Requests of one load in flight at once, per worker.
const IN_FLIGHT_PER_WORKER: usize = 4;
/// How often an instance held by running requests is tried again before the load fails.
const MAX_BUSY_TRIES: u32 = 1000;
/// The pause before busy instances are tried again.
const BUSY_PAUSE: Duration = Duration::from_millis(2);
/// Instance writes the store may lag behind the log before a load waits for it: a shard can
/// only evict what the store holds, so this bounds how far a load overfills the caches.
const MAX_STORE_LAG: usize = 4 * CHUNK * 8;
/// The longest a load waits for the store (beyond it, it goes on: the wait only bounds how
/// far a load overfills the caches; a stopped or cut-off store must not hang it).
const MAX_STORE_WAIT: Duration = Duration::from_secs(10);

/// A bulk load's request: encoded keys and encoded states, all owned by one worker.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct LoadChunk {
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// [`LoadChunk`] as it is sent (the same encoding, borrowed).
#[derive(Serialize)]
struct LoadChunkRef<'a> {
    entries: &'a [(Vec<u8>, Vec<u8>)],
}

/// A shard's answer to a [`LoadChunk`]: the entries it could not set yet (held by a request).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct LoadAnswer {
    pub busy: Vec<u32>,
}

/// What a finished [`Handle::load`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Instances set.
    pub instances: u64,
    /// Requests it took (each one commit's share of the load).
    pub requests: u64,
    /// Instances sent again because a running request held them.
    pub busy_retries: u64,
}

/// Why a bulk load stopped. Instances of requests answered before it stopped are set (and
/// durable); the rest may or may not be: loading them again is safe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The lambda is not part of this engine's app.
    #[error("{0} is not a lambda of this app")]
    UnknownLambda(String),
    /// A key or a state does not encode.
    #[error("a {what} of {lambda} does not encode: {message}")]
    Encode {
        /// The lambda loaded.
        lambda: &'static str,
        /// `key` or `state`.
        what: &'static str,
        /// The encoder's message.
        message: String,
    },
    /// The engine refused a request of the load (shutting down, a failed cluster).
    #[error("the engine refused the load: {0}")]
    Refused(#[from] InvokeError),
    /// The engine failed a request of the load.
    #[error("the engine failed the load: {0}")]
    Failed(CallError),
    /// Some instances stayed held by running requests through every try; the load stopped
    /// there (what was not answered yet may be missing: run it again).
    #[error("{0} instances stayed held by running requests; the load stopped: run it again")]
    Busy(usize),
    /// [`Handle::load_blocking`] was called inside an async context, where it would block
    /// the executor.
    #[error("load_blocking was called inside an async context: `.await` Handle::load there")]
    InAsyncContext,
    /// [`Handle::load_blocking`] could not start the runtime it waits on.
    #[error("cannot start a runtime to wait for the load on: {0}")]
    NoRuntime(std::io::Error),
}

/// A request of the load on its way.
struct InFlight {
    rx: oneshot::Receiver<Response>,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    tries: u32,
}

/// The state of one load: buckets filling, requests in flight, what it did.
struct Loader<'h> {
    handle: &'h Handle,
    lambda: u16,
    buckets: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
    in_flight: VecDeque<InFlight>,
    max_in_flight: usize,
    done: Loaded,
}

impl Handle {
    /// Sets the state of many instances of `L` (creating or replacing each), thousands per
    /// request and per commit; returns once every instance is durable. Not one transaction:
    /// each instance is set atomically, and one a running request holds is set after it.
    ///
    /// ```no_run
    /// # use stateful_runtime::prelude::*;
    /// # #[stateful_runtime::app] mod bank {
    /// #     use stateful_runtime::prelude::*;
    /// #     #[lambda(key = String, state = i64)]
    /// #     impl Account { async fn get(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> { Ok(*ctx.state()) } }
    /// # }
    /// # async fn run(handle: stateful_runtime::Handle) -> Result<(), Box<dyn std::error::Error>> {
    /// let accounts = (0..1_000_000).map(|i| (format!("acct-{i}"), 100i64));
    /// let done = handle.load::<bank::Account, _>(accounts).await?;
    /// assert_eq!(done.instances, 1_000_000);
    /// # Ok(()) }
    /// ```
    pub async fn load<L, I>(&self, instances: I) -> Result<Loaded, LoadError>
    where
        L: Lambda,
        I: IntoIterator<Item = (L::Key, L::State)>,
    {
        let known = self
            .program()
            .lambda(L::ID)
            .is_some_and(|l| l.name == L::NAME);
        if !known {
            return Err(LoadError::UnknownLambda(L::NAME.to_owned()));
        }
        let placement = self.shared.placement;
        let mut loader = Loader {
            handle: self,
            lambda: L::ID,
            buckets: vec![Vec::new(); placement.total_workers()],
            in_flight: VecDeque::new(),
            max_in_flight: IN_FLIGHT_PER_WORKER * placement.workers.max(1),
            done: Loaded::default(),
        };
        for (key, state) in instances {
            let encode = |what, message: String| LoadError::Encode {
                lambda: L::NAME,
                what,
                message,
            };
            let key = wire::encode("the key", &key).map_err(|e| encode("key", e.to_string()))?;
            let state = crate::sdk::schema::encode::<L>(&state)
                .map_err(|e| encode("state", e.to_string()))?;
            let owner = placement.owner(&key);
            loader.buckets[owner].push((key, state));
            if loader.buckets[owner].len() >= CHUNK {
                let entries = std::mem::take(&mut loader.buckets[owner]);
                loader.send(entries, 0).await?;
            }
        }
        loader.finish().await
    }

    /// [`Handle::load`] for code outside an async context (a `main`, a plain `#[test]`):
    /// waits for it on this thread. Inside an async context it refuses
    /// ([`LoadError::InAsyncContext`]): `.await` [`Handle::load`] there.
    pub fn load_blocking<L, I>(&self, instances: I) -> Result<Loaded, LoadError>
    where
        L: Lambda,
        I: IntoIterator<Item = (L::Key, L::State)>,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(LoadError::InAsyncContext);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(LoadError::NoRuntime)?;
        runtime.block_on(self.load::<L, I>(instances))
    }
}

/// The part of a logged load request that it set (its answer names the busy entries, which
/// later requests set): what a replay must load to reproduce it.
pub(crate) fn entries_set(args: &[u8], response: &[u8]) -> Result<Vec<u8>, String> {
    let mut chunk: LoadChunk = postcard::from_bytes(args).map_err(|e| e.to_string())?;
    let answer: Result<super::super::sdk::Outcome, CallError> =
        postcard::from_bytes(response).map_err(|e| e.to_string())?;
    let answer = match answer {
        Ok(outcome) => {
            postcard::from_bytes::<LoadAnswer>(&outcome.bytes).map_err(|e| e.to_string())?
        }
        // A failed load set nothing.
        Err(_) => LoadAnswer {
            busy: (0..chunk.entries.len() as u32).collect(),
        },
    };
    let busy: std::collections::HashSet<u32> = answer.busy.into_iter().collect();
    let mut i = 0;
    chunk.entries.retain(|_| {
        i += 1;
        !busy.contains(&(i - 1))
    });
    postcard::to_stdvec(&chunk).map_err(|e| e.to_string())
}

/// How many instances a load's request carries (`None`: not a load's arguments).
pub(crate) fn chunk_len(args: &[u8]) -> Option<usize> {
    postcard::from_bytes::<LoadChunk>(args)
        .ok()
        .map(|c| c.entries.len())
}

/// How many entries a load's answer names as busy.
pub(crate) fn busy_entries(answer: &[u8]) -> Result<usize, String> {
    postcard::from_bytes::<LoadAnswer>(answer)
        .map(|a| a.busy.len())
        .map_err(|e| e.to_string())
}

impl Loader<'_> {
    /// Sends one request (waiting for the oldest first when enough are in flight).
    async fn send(
        &mut self,
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        tries: u32,
    ) -> Result<(), LoadError> {
        while self.in_flight.len() >= self.max_in_flight {
            self.receive_oldest().await?;
        }
        let Some(key) = entries.first().map(|(k, _)| k.clone()) else {
            return Ok(());
        };
        let args = postcard::to_stdvec(&LoadChunkRef { entries: &entries })
            .map_err(|e| LoadError::Failed(CallError::Codec(e.to_string())))?;
        let rx = self.submit(key, args).await?;
        self.in_flight.push_back(InFlight { rx, entries, tries });
        self.done.requests += 1;
        Ok(())
    }

    /// Submits one request of the load; while the engine is overloaded (its in-flight bound is
    /// shared with every other client), waits for room: for an answer of the load's own when
    /// it has requests in flight, else a moment.
    async fn submit(
        &mut self,
        key: Vec<u8>,
        args: Vec<u8>,
    ) -> Result<oneshot::Receiver<Response>, LoadError> {
        loop {
            match self
                .handle
                .submit_load(self.lambda, key.clone(), args.clone(), None)
            {
                Ok(rx) => return Ok(rx),
                Err(InvokeError::Overloaded(_)) if self.in_flight.is_empty() => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(InvokeError::Overloaded(_)) => self.receive_oldest().await?,
                Err(e) => return Err(LoadError::Refused(e)),
            }
        }
    }

    /// Waits for the oldest request in flight; sends its busy entries again.
    async fn receive_oldest(&mut self) -> Result<(), LoadError> {
        let Some(f) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let resp = f.rx.await.map_err(|_| InvokeError::ShuttingDown)?;
        let store = &self.handle.shared.materializer;
        self.wait_for_store(|| store.queued_writes() <= MAX_STORE_LAG)
            .await;
        let outcome = resp.result.map_err(LoadError::Failed)?;
        let answer: LoadAnswer = postcard::from_bytes(&outcome.bytes)
            .map_err(|e| LoadError::Failed(CallError::Codec(e.to_string())))?;
        self.done.instances += (f.entries.len() - answer.busy.len()) as u64;
        if answer.busy.is_empty() {
            return Ok(());
        }
        if f.tries + 1 >= MAX_BUSY_TRIES {
            return Err(LoadError::Busy(answer.busy.len()));
        }
        let mut entries = f.entries;
        let busy: Vec<_> = answer
            .busy
            .iter()
            .filter_map(|&i| entries.get_mut(i as usize).map(std::mem::take))
            .collect();
        self.done.busy_retries += busy.len() as u64;
        tokio::time::sleep(BUSY_PAUSE).await;
        Box::pin(self.send(busy, f.tries + 1)).await
    }

    /// Sends what the buckets hold and waits for every answer.
    async fn finish(mut self) -> Result<Loaded, LoadError> {
        for i in 0..self.buckets.len() {
            let entries = std::mem::take(&mut self.buckets[i]);
            if !entries.is_empty() {
                self.send(entries, 0).await?;
            }
        }
        while !self.in_flight.is_empty() {
            self.receive_oldest().await?;
        }
        if self.done.requests > 0 {
            self.settle().await?;
        }
        Ok(self.done)
    }

    /// Waits until the store holds everything answered, then sends one empty request: the
    /// shards evict after its epoch, and what the load cached beyond budget can go now.
    async fn settle(&mut self) -> Result<(), LoadError> {
        let shared = &self.handle.shared;
        let acknowledged = shared.acknowledged_epoch();
        let caught_up = self
            .wait_for_store(|| shared.materializer.applied() >= acknowledged)
            .await;
        if !caught_up {
            tracing::warn!(
                "a bulk load finished while the store was more than {} s behind; the caches shrink at the next request",
                MAX_STORE_WAIT.as_secs()
            );
            return Ok(());
        }
        let args = postcard::to_stdvec(&LoadChunkRef { entries: &[] })
            .map_err(|e| LoadError::Failed(CallError::Codec(e.to_string())))?;
        let rx = self.submit(Vec::new(), args).await?;
        let resp = rx.await.map_err(|_| InvokeError::ShuttingDown)?;
        resp.result.map(|_| ()).map_err(LoadError::Failed)
    }

    /// Waits until `ready` (checked every millisecond), at most [`MAX_STORE_WAIT`], and not
    /// once the engine stops or its cluster failed; whether it became ready.
    async fn wait_for_store(&self, ready: impl Fn() -> bool) -> bool {
        let shared = &self.handle.shared;
        let deadline = std::time::Instant::now() + MAX_STORE_WAIT;
        while !ready() {
            let stopping = shared
                .admission
                .stopping
                .load(std::sync::atomic::Ordering::Acquire);
            let failed = shared.placement.processes > 1 && super::cluster::has_failed();
            if stopping || failed || std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::Outcome;

    fn chunk(n: u8) -> Vec<u8> {
        let entries = (0..n).map(|i| (vec![i], vec![i, i])).collect();
        postcard::to_stdvec(&LoadChunk { entries }).expect("encodes")
    }

    fn answered(busy: Vec<u32>) -> Vec<u8> {
        let bytes = postcard::to_stdvec(&LoadAnswer { busy }).expect("encodes");
        crate::engine::protocol::response_bytes(&Ok(Outcome { ok: true, bytes }))
    }

    fn keys(args: &[u8]) -> Vec<u8> {
        let c: LoadChunk = postcard::from_bytes(args).expect("decodes");
        c.entries.into_iter().map(|(k, _)| k[0]).collect()
    }

    #[test]
    fn a_replayed_load_sets_what_the_original_set_and_not_its_busy_entries() {
        let set = entries_set(&chunk(5), &answered(vec![1, 3])).expect("filters");
        assert_eq!(keys(&set), vec![0, 2, 4]);
        assert_eq!(
            keys(&entries_set(&chunk(3), &answered(vec![])).expect("all")),
            vec![0, 1, 2]
        );
        let failed = crate::engine::protocol::response_bytes(&Err(CallError::Stopped));
        assert!(keys(&entries_set(&chunk(3), &failed).expect("none")).is_empty());
        assert!(entries_set(&[9, 9], &answered(vec![])).is_err(), "bad args");
    }
}
