//! Where responses are kept: the [`Store`] trait and its implementations.
//!
//! The [`Cache`](crate::Cache) service only talks to a store through [`Store`], so that the
//! in-memory [`MemoryStore`] (the default) can be swapped for another backend without touching
//! the service. A store persists entries; it never decides whether an entry may be served —
//! that is [`policy`](crate::policy)'s job, done on every read.

mod memory;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Extensions, HeaderMap, StatusCode};

use crate::BoxError;
use crate::key::CacheKey;
use crate::policy::{ResponsePolicy, VaryKey};

#[doc(inline)]
pub use self::memory::MemoryStore;

/// A complete response as the cache keeps it.
///
/// Hop-by-hop fields are already removed and `Date` and `Content-Length` are set. The body is a
/// [`Bytes`], so serving a hit clones a reference count, never the bytes.
#[derive(Clone, Debug)]
pub struct StoredResponse {
    /// The response status.
    pub status: StatusCode,
    /// The stored header fields.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Freshness and reuse metadata computed when the response was stored.
    pub policy: ResponsePolicy,
    /// The request field values this response was selected by (RFC 9111 §4.1).
    pub vary: VaryKey,
    /// The response's extensions, put back on every answer built from it with its status:
    /// among them hyper's `ReasonPhrase`, so that a `599 Whatever` is not served as
    /// `599 <none>`. Stores that persist entries elsewhere may drop them.
    pub extensions: Extensions,
}

impl StoredResponse {
    /// Approximate memory the entry occupies: body plus header names and values.
    ///
    /// Stores that are bounded in bytes weigh entries with this.
    pub fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum();
        self.body.len() + headers + std::mem::size_of::<Self>()
    }
}

/// Every stored response for one primary key: one per `Vary` variant (RFC 9111 §4.1), the
/// most recent first.
///
/// Keeping the variants of a URL together means that invalidating the URL (RFC 9111 §4.4)
/// removes all of them at once.
#[derive(Clone, Debug, Default)]
pub struct StoredEntry {
    variants: Vec<Arc<StoredResponse>>,
}

impl StoredEntry {
    /// Most variants kept for one URL; older ones are dropped beyond it.
    pub const MAX_VARIANTS: usize = 32;

    /// An entry holding one response.
    pub fn new(response: Arc<StoredResponse>) -> Self {
        Self {
            variants: vec![response],
        }
    }

    /// The stored variants, most recent first.
    pub fn variants(&self) -> &[Arc<StoredResponse>] {
        &self.variants
    }

    /// The most recent variant selected by the request's header fields (RFC 9111 §4.1: "the
    /// most recent one" when several match).
    pub fn select(&self, req_headers: &HeaderMap) -> Option<&Arc<StoredResponse>> {
        self.variants.iter().find(|v| v.vary.matches(req_headers))
    }

    /// This entry with `response`, newly received for a request with `req_headers`, in front:
    /// it replaces the variants that request selected, and only those.
    pub fn with_response(&self, response: Arc<StoredResponse>, req_headers: &HeaderMap) -> Self {
        let mut variants = Vec::with_capacity(self.variants.len() + 1);
        variants.push(response);
        variants.extend(
            self.variants
                .iter()
                .filter(|v| !v.vary.matches(req_headers))
                .take(Self::MAX_VARIANTS - 1)
                .cloned(),
        );
        Self { variants }
    }

    /// This entry with `old` replaced by `new` (e.g. after a 304 freshened it); unchanged when
    /// `old` is no longer stored.
    pub fn with_replaced(&self, old: &Arc<StoredResponse>, new: Arc<StoredResponse>) -> Self {
        let variants = self
            .variants
            .iter()
            .map(|v| {
                if Arc::ptr_eq(v, old) {
                    Arc::clone(&new)
                } else {
                    Arc::clone(v)
                }
            })
            .collect();
        Self { variants }
    }

    /// Sum of the variants' [`StoredResponse::weight`].
    pub fn weight(&self) -> usize {
        self.variants.iter().map(|v| v.weight()).sum()
    }
}

/// A backend that keeps [`StoredEntry`]s under [`CacheKey`]s.
///
/// Futures returned by a store must be `Send`. Errors are reported as [`StoreError`]; the
/// service logs them and carries on as if the entry were absent, so a failing store degrades
/// to a pass-through proxy, never to failed requests.
pub trait Store: Send + Sync + 'static {
    /// Looks an entry up.
    fn get(
        &self,
        key: &CacheKey,
    ) -> impl Future<Output = Result<Option<Arc<StoredEntry>>, StoreError>> + Send;

    /// Inserts or replaces an entry.
    fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes an entry; returns whether one was there.
    fn remove(&self, key: &CacheKey) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes every entry; returns how many were removed.
    fn clear(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// An error from a [`Store`] backend.
pub struct StoreError {
    inner: BoxError,
}

impl StoreError {
    /// Wraps a backend error.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self {
            inner: error.into(),
        }
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreError").field(&self.inner).finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache store error: {}", self.inner)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.inner)
    }
}
