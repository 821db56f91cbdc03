//! Disk failures, logged once per kind rather than once per request.

use std::collections::HashSet;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The failures seen since the disk last worked.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    seen: Mutex<HashSet<(&'static str, io::ErrorKind)>>,
    failing: AtomicBool,
    /// Every failure reported since the store was opened.
    count: AtomicU64,
}

impl Faults {
    /// Logs `error` from trying to `what`: a warning the first time this kind is seen, debug
    /// after that, until the disk works again.
    pub(crate) fn report(&self, what: &'static str, error: &io::Error) {
        self.failing.store(true, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let first = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert((what, error.kind()));
        if first {
            tracing::warn!(
                %error,
                "disk cache store cannot {what}: not kept, requests go to the origin as misses \
                 (further {:?} errors of this kind are logged at debug level)",
                error.kind()
            );
        } else {
            tracing::debug!(%error, "disk cache store cannot {what}");
        }
    }

    /// Failures reported since the store was opened.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// A write succeeded: the disk works (again).
    pub(crate) fn recovered(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            self.seen
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clear();
            tracing::info!("disk cache store writes again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_new_once_until_recovery() {
        let faults = Faults::default();
        let full = io::Error::other("full");
        faults.report("write", &full);
        faults.report("write", &full);
        assert_eq!(faults.seen.lock().unwrap().len(), 1);
        faults.report("read", &full);
        assert_eq!(faults.seen.lock().unwrap().len(), 2);
        faults.recovered();
        assert!(faults.seen.lock().unwrap().is_empty());
        assert!(!faults.failing.load(Ordering::Relaxed));
        // Every failure is counted, logged or not, and the count survives recovery.
        assert_eq!(faults.count(), 3);
    }
}
