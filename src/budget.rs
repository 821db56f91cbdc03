//! A budget for the bytes held by misses being captured for the store, all keys together.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bounds the bytes held by misses being captured for the store, all keys together.
#[derive(Debug)]
pub(crate) struct CaptureBudget {
    used: AtomicUsize,
    limit: usize,
}

impl CaptureBudget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Reserves `bytes` more; `false` (and nothing reserved) when that would pass the limit.
    pub(crate) fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    pub(crate) fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes reserved in a [`CaptureBudget`], given back on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<CaptureBudget>,
    bytes: usize,
}

impl Reservation {
    pub(crate) fn new(budget: Arc<CaptureBudget>) -> Self {
        Self { budget, bytes: 0 }
    }

    /// A new, empty reservation in the same budget.
    pub(crate) fn twin(&self) -> Self {
        Self::new(Arc::clone(&self.budget))
    }

    /// Gives back every byte reserved so far.
    pub(crate) fn clear(&mut self) {
        self.budget.release(std::mem::take(&mut self.bytes));
    }

    /// Reserves `bytes` more; `false` when the budget is exhausted.
    pub(crate) fn grow(&mut self, bytes: usize) -> bool {
        if self.budget.try_reserve(bytes) {
            self.bytes += bytes;
            true
        } else {
            false
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_bounds_reservations_and_releases_on_drop() {
        let budget = Arc::new(CaptureBudget::new(100));
        let mut a = Reservation::new(Arc::clone(&budget));
        let mut b = Reservation::new(Arc::clone(&budget));
        assert!(a.grow(60));
        assert!(!b.grow(41));
        assert!(b.grow(40));
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
    }
}
