//! Failure injection for tests (`testing::TestApp::fail_next`): the next invocations
//! of a handler fail as if it had rejected (a runtime failure its callers see as an error) or
//! panicked, without running. Checked by the executor when it starts an invocation; one relaxed
//! load when nothing is injected.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// How an injected invocation fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// It fails with `CallError::Injected` (its caller's `?`
    /// turns that into the caller's error type, as for any failed call).
    Reject(String),
    /// It panics with this message (the whole request fails).
    Panic(String),
}

/// Faults waiting for their invocation, per `(lambda, handler)`.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    any: AtomicBool,
    queued: Mutex<HashMap<(u16, u16), VecDeque<Fault>>>,
}

impl Faults {
    /// The next invocation of `handler` of `lambda` fails with `fault`.
    pub(crate) fn inject(&self, lambda: u16, handler: u16, fault: Fault) {
        if let Ok(mut q) = self.queued.lock() {
            q.entry((lambda, handler)).or_default().push_back(fault);
            self.any.store(true, Ordering::Release);
        }
    }

    /// The fault for an invocation starting now, if one is queued.
    pub(crate) fn take(&self, lambda: u16, handler: u16) -> Option<Fault> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut q = self.queued.lock().ok()?;
        let fault = q.get_mut(&(lambda, handler))?.pop_front();
        q.retain(|_, v| !v.is_empty());
        if q.is_empty() {
            self.any.store(false, Ordering::Release);
        }
        fault
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_taken_once_in_order() {
        let f = Faults::default();
        assert_eq!(f.take(0, 0), None);
        f.inject(1, 2, Fault::Reject("a".into()));
        f.inject(1, 2, Fault::Panic("b".into()));
        assert_eq!(f.take(1, 1), None);
        assert_eq!(f.take(1, 2), Some(Fault::Reject("a".into())));
        assert_eq!(f.take(1, 2), Some(Fault::Panic("b".into())));
        assert_eq!(f.take(1, 2), None);
    }
}
