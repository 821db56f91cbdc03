//! What goes forward with a request: the stored validators, a request for the rest of a
//! stored part, and collapsed forwarding.

use std::sync::Arc;

use http::header::{AUTHORIZATION, IF_RANGE, RANGE};
use http::{HeaderMap, HeaderName, Method, Request, Response};
use tokio::time::Instant;

use crate::body::ResponseBody;
use crate::flight::{FlightGuard, Join, Outcome};
use crate::key::CacheKey;
use crate::policy::CacheControl;
use crate::policy::decide;
use crate::policy::range::rest_request;
use crate::shared::Shared;
use crate::status::{Forward, Served};
use crate::store::{FillLock, Store, StoredEntry, StoredResponse};

/// What collapsed forwarding made of a request that goes forward.
// Returned by value and matched at once, as `FastLookup`.
#[allow(clippy::large_enum_variant)]
pub(super) enum Collapse<B> {
    /// The request it waited for stored a response that answers it.
    Answered(Response<ResponseBody<B>>),
    /// It goes forward itself, leading the key's flight when it holds the guard.
    Forward(Option<FlightGuard>),
}

/// Adds to `req` the validators of what is stored for it ([`decide::add_stored_validators`]):
/// the selected response's first, then the other variants'; returns the stored responses a
/// 304 may then select. Variants stored for other values of the configured `key_headers`
/// are left out: a 304 must never hand one key's response to another.
pub(super) fn add_stored_validators<ReqBody>(
    stored: Option<&StoredEntry>,
    selected: Option<&Arc<StoredResponse>>,
    key_headers: &[HeaderName],
    req: &mut Request<ReqBody>,
) -> Vec<Arc<StoredResponse>> {
    let same_key = |variant: &StoredResponse, req: &Request<ReqBody>| {
        key_headers.is_empty() || variant.vary.matches_on(key_headers, req.headers())
    };
    let mut validating = Vec::new();
    if let Some(stored) = selected {
        let outgoing = req.headers_mut();
        if decide::add_stored_validators(stored.status, &stored.headers, true, outgoing) {
            validating.push(Arc::clone(stored));
        }
    }
    for variant in stored.map(StoredEntry::variants).unwrap_or_default() {
        let is_selected = selected.is_some_and(|s| Arc::ptr_eq(s, variant));
        if is_selected || !same_key(variant, req) {
            continue;
        }
        let outgoing = req.headers_mut();
        if decide::add_stored_validators(variant.status, &variant.headers, false, outgoing) {
            validating.push(Arc::clone(variant));
        }
    }
    validating
}

/// Asks, in `req`, for the rest of the selected stored `part`; `true` when it did.
/// `client_headers` are the request's fields as the client sent them.
///
/// RFC 9111 §3.4: a stored prefix with a strong validator is completed with the rest of the
/// representation rather than fetched again whole; `If-Range` makes the origin send all of
/// it instead if it changed.
pub(super) fn ask_for_rest<ReqBody>(
    part: &StoredResponse,
    method: &Method,
    client_headers: &HeaderMap,
    req: &mut Request<ReqBody>,
) -> bool {
    match rest_request(method, client_headers, part.status, &part.headers) {
        Some((range, tag)) => {
            req.headers_mut().insert(RANGE, range);
            req.headers_mut().insert(IF_RANGE, tag);
            true
        }
        None => false,
    }
}

impl<St: Store> Shared<St> {
    /// Collapsed forwarding: one request per key goes forward, the others wait for what it
    /// stores. A request whose own directives sent it forward (`Forward::Request`) does not
    /// wait; nor do requests for keys whose responses were recently not storable. `looked`
    /// is [`Shared::writes`] for the key, read before the request's look-up.
    pub(super) async fn collapse<B>(
        &self,
        key: &CacheKey,
        method: &Method,
        req_headers: &HeaderMap,
        req_cc: &CacheControl,
        forward: Forward,
        looked: u64,
    ) -> Collapse<B> {
        let Some(timeout) = self.collapse else {
            return Collapse::Forward(None);
        };
        // Nor do requests whose own response will not be stored for others: with
        // `Authorization` (RFC 9111 §3.5: usually not shareable) or `no-store` (§5.2.1.5).
        let for_others = !req_cc.no_store() && !req_headers.contains_key(AUTHORIZATION);
        if method != Method::GET
            || forward == Forward::Request
            || !for_others
            || self.flights.is_uncacheable(key)
        {
            return Collapse::Forward(None);
        }
        // A bounded number of rounds: a follower whose leader failed may lead next.
        for _ in 0..3 {
            match self.flights.join(key) {
                Join::Lead(mut guard) => {
                    if self.lead(key, &mut guard, looked).await {
                        let answer = self
                            .collapsed(key, method, req_headers, req_cc, forward)
                            .await;
                        if let Some(answer) = answer {
                            // This process's followers find it stored too.
                            guard.release(Outcome::Stored);
                            return Collapse::Answered(answer);
                        }
                    }
                    return Collapse::Forward(Some(guard));
                }
                Join::Follow(mut follower) => {
                    let deadline = Instant::now() + timeout;
                    // Read-while-write: the leader's response as it is received, if it shares
                    // it and it answers this request as the stored one would.
                    let streaming = follower.streaming(deadline).await;
                    if let Some(answer) = streaming.and_then(|response| {
                        self.streamed(&response, method, req_headers, req_cc, forward)
                    }) {
                        return Collapse::Answered(answer);
                    }
                    let Some(outcome) = follower.wait(deadline).await else {
                        break;
                    };
                    let answer = self
                        .collapsed(key, method, req_headers, req_cc, forward)
                        .await;
                    if let Some(answer) = answer {
                        return Collapse::Answered(answer);
                    }
                    if outcome == Outcome::NotStorable {
                        break;
                    }
                }
            }
        }
        Collapse::Forward(None)
    }

    /// Leading the key's flight in this process (`guard`): across processes sharing the
    /// store, either this one goes forward holding the store's lock, or another one did and
    /// what it stored may answer (`Store::fill_lock`). Whether the key must be looked up
    /// again before going forward.
    async fn lead(&self, key: &CacheKey, guard: &mut FlightGuard, looked: u64) -> bool {
        match self.store.fill_lock(key).await {
            FillLock::Held(lock) => {
                guard.hold(lock);
                false
            }
            FillLock::Released => true,
            // Between this request's look-up and its joining, another may have led the key's
            // flight to its end: what it stored answers (a burst for a cold URL reaches the
            // origin once, however its requests interleave). Nothing can have been stored
            // unless this cache wrote to the key since (`looked`).
            FillLock::Unlocked => self.written_since(key, looked),
        }
    }

    /// The response the request it followed is receiving (`provisional`, its body growing),
    /// if it serves the request: as the stored response will, selected by `Vary` (RFC 9111
    /// §4.1) and reusable without the origin (§4.2, §5.2.1), with the client's preconditions
    /// and range evaluated on it.
    fn streamed<B>(
        &self,
        provisional: &StoredResponse,
        method: &Method,
        req_headers: &HeaderMap,
        req_cc: &CacheControl,
        forward: Forward,
    ) -> Option<Response<ResponseBody<B>>> {
        if !provisional.vary.matches(req_headers) {
            return None;
        }
        let now = self.clock.now();
        if !decide::answers_without_origin(&provisional.policy, req_cc, req_headers, now) {
            return None;
        }
        let served = Served::Collapsed(forward);
        self.answer_from_store(method, req_headers, provisional, now, served)
    }

    /// After waiting for the request it followed: the stored response, if one now serves
    /// the request.
    async fn collapsed<B>(
        &self,
        key: &CacheKey,
        method: &Method,
        req_headers: &HeaderMap,
        req_cc: &CacheControl,
        forward: Forward,
    ) -> Option<Response<ResponseBody<B>>> {
        let entry = self.lookup(key).await?;
        let now = self.clock.now();
        let served = Served::Collapsed(forward);
        self.fresh_answer(&entry, method, req_headers, req_cc, now, served)
    }
}
