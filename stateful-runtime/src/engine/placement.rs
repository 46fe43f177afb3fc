//! Where things run: key → key group → global worker, and this process's workers among all.
//!
//! ```text
//! process p of N, W workers each: global workers p*W .. p*W+W-1
//! key ─▶ key group g ─▶ owner = worker_of(g, groups, N*W)
//! a request for a key of another process enters at a local worker and is routed there
//! ```

use stateful_core::keys::{key_group, worker_of};

use super::protocol::RootId;

/// The shape of the deployment, as this process sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Key groups of the data dir.
    pub groups: u16,
    /// Processes of the cluster (1 alone).
    pub processes: usize,
    /// This process's index.
    pub process: usize,
    /// Workers per process.
    pub workers: usize,
}

impl Placement {
    /// Workers of all processes.
    pub fn total_workers(&self) -> usize {
        self.processes * self.workers
    }

    /// Global index of this process's first worker.
    pub fn base(&self) -> usize {
        self.process * self.workers
    }

    /// The global worker that owns `key`.
    pub fn owner(&self, key: &[u8]) -> usize {
        worker_of(
            key_group(key, self.groups),
            self.groups,
            self.total_workers(),
        )
    }

    /// The local worker that takes a request for `key`: its owner when the owner is local,
    /// otherwise one that forwards it through the dataflow.
    pub fn local_worker(&self, key: &[u8]) -> usize {
        let owner = self.owner(key);
        if (self.base()..self.base() + self.workers).contains(&owner) {
            owner - self.base()
        } else {
            owner % self.workers.max(1)
        }
    }

    /// The root id of request `seq` of this process's log.
    pub fn root(&self, seq: u64) -> RootId {
        RootId::new(seq, self.process, self.processes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_goes_to_its_owner_or_to_a_local_forwarder() {
        let alone = Placement {
            groups: 256,
            processes: 1,
            process: 0,
            workers: 2,
        };
        let p1 = Placement {
            process: 1,
            processes: 2,
            ..alone
        };
        for k in 0..200u32 {
            let key = k.to_be_bytes();
            assert_eq!(alone.local_worker(&key), alone.owner(&key));
            assert!(p1.local_worker(&key) < 2);
            let owner = p1.owner(&key);
            if (2..4).contains(&owner) {
                assert_eq!(p1.local_worker(&key), owner - 2, "local owner");
            }
        }
        assert_eq!(p1.root(7), RootId(15));
    }
}
