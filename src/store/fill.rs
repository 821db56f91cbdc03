//! [`FillLock`]: collapsed forwarding across processes that share one store.

use std::fmt;

/// What [`Store::fill_lock`](super::Store::fill_lock) found for a key that this process is
/// about to fetch from the origin (it leads the key's collapsed forwarding here).
///
/// Several processes sharing one store (Redis) each collapse their own requests for a key
/// into one; a lock in the store lets one of them go to the origin while the others wait for
/// what it stores.
#[derive(Debug)]
#[non_exhaustive]
pub enum FillLock {
    /// No lock across processes (the default, or the store could not take one): this process
    /// goes forward (after looking the key up again if it wrote to it since the request's
    /// look-up).
    Unlocked,
    /// This process holds the lock: it goes forward, and the lock is released when the guard
    /// is dropped, once the response is stored (or given up).
    Held(FillGuard),
    /// Another process held the lock and released it (or it expired): what it stored may now
    /// answer the request; the cache looks the key up again before going forward.
    Released,
}

/// A lock across processes on filling one key, released when dropped.
pub struct FillGuard {
    _release: Box<dyn Send + Sync>,
}

impl FillGuard {
    /// A guard that holds `release` until it is dropped: `release`'s own `Drop` releases the
    /// lock.
    pub fn new(release: impl Send + Sync + 'static) -> Self {
        Self {
            _release: Box::new(release),
        }
    }
}

impl fmt::Debug for FillGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FillGuard").finish_non_exhaustive()
    }
}
