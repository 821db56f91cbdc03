//! The store lookup, and the hit path that answers without waiting when the store can.

use std::sync::Arc;

use http::{Request, Response};

use crate::body::ResponseBody;
use crate::key::CacheKey;
use crate::policy::CacheControl;
use crate::shared::Shared;
use crate::status::Served;
use crate::store::{Store, StoredEntry};

/// What the fast path in [`Cache::call`](super::Cache) found.
// Returned by value and matched at once; boxing the response would allocate on the hit path.
#[allow(clippy::large_enum_variant)]
pub(super) enum FastLookup<B> {
    /// A fresh stored response answers the request.
    Hit(Response<ResponseBody<B>>),
    /// The store's answer (nothing, or an entry that does not answer this request as is).
    Found(Option<Arc<StoredEntry>>),
    /// The store cannot answer without waiting: the full path looks the key up.
    Later,
}

impl<St: Store> Shared<St> {
    /// What the store holds for `key`; nothing when the store fails (logged).
    pub(super) async fn lookup(&self, key: &CacheKey) -> Option<Arc<StoredEntry>> {
        self.get(key).await
    }

    /// The hit path: a fresh stored response for `req`, when the store answers without
    /// waiting (the in-memory store always does).
    pub(super) fn hit_now<B, ReqBody>(
        &self,
        key: &CacheKey,
        req: &Request<ReqBody>,
        req_cc: &CacheControl,
    ) -> FastLookup<B> {
        // The store's synchronous path; no future is made and dropped (`Store::get_now`).
        let entry = match self.store.get_now(key) {
            Some(Ok(Some(entry))) => entry,
            Some(Ok(None)) => return FastLookup::Found(None),
            // A store that must wait, or failed: the full path looks again (and logs).
            Some(Err(_)) | None => return FastLookup::Later,
        };
        let now = self.clock.now();
        let (method, req_headers) = (req.method(), req.headers());
        match self.fresh_answer(&entry, method, req_headers, req_cc, now, Served::Fresh) {
            Some(response) => FastLookup::Hit(response),
            None => FastLookup::Found(Some(entry)),
        }
    }
}
