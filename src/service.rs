//! The [`Cache`] service.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{
    AGE, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, DATE, ETAG, IF_RANGE, RANGE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use tower_service::Service;

use crate::BoxError;
use crate::OriginUnreachable;
use crate::body::{ResponseBody, Tee};
use crate::flight::{FlightGuard, Join, Outcome, Reservation};
use crate::future::ResponseFuture;
use crate::key::CacheKey;
use crate::policy::conditional::{
    Precondition, evaluate_preconditions, has_preconditions, not_modified_headers,
};
use crate::policy::invalidate::{invalidation_uris, is_safe_method};
use crate::policy::range::{
    ContentRange, RangeDecision, completing_part, content_range, evaluate_range,
    evaluate_range_in_part, rest_request, unsatisfied_range,
};
use crate::policy::reuse::{
    is_stale_if_error_status, may_serve_stale_if_error_with, may_serve_stale_if_unreachable_with,
    reuse_with,
};
use crate::policy::revalidate::{
    add_validators, freshen_headers, head_freshens, not_modified_selects,
};
use crate::policy::storable::{
    is_storable_with, post_response_answers_get, remove_unstored_fields,
};
use crate::policy::{CacheControl, ResponsePolicy, Reuse, Vary, VaryKey, targeted_cache_control};
use crate::shared::{Commit, Shared};
use crate::status::{Forward, Served};
use crate::store::{MemoryStore, Store, StoredBody, StoredEntry, StoredResponse};

/// Middleware that answers requests from a shared HTTP cache (RFC 9111) and stores cacheable
/// responses of the inner service.
///
/// Created by [`CacheLayer`](crate::CacheLayer); clones share one cache. See the
/// [crate docs](crate) for examples and the rules it follows.
pub struct Cache<S, St = MemoryStore> {
    inner: S,
    shared: Arc<Shared<St>>,
}

impl<S, St> Cache<S, St> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<St>>) -> Self {
        Self { inner, shared }
    }

    /// Gets a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, St> Clone for Cache<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for Cache<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for Cache<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: Store,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Only the service that was polled ready may be called (tower-service docs).
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let shared = &self.shared;
        let method = req.method();

        let forward = match CacheKey::from_parts(req.uri(), req.headers()) {
            // RFC 9111 §3: this cache stores responses to GET; HEAD is answered from them.
            Some(key) if method == Method::GET || method == Method::HEAD => {
                // RFC 9111 §5.2.1: the request's directives, parsed once for the request.
                let req_cc = CacheControl::from_headers(req.headers());
                let found = match shared.hit_now(&key, &req, &req_cc) {
                    FastLookup::Hit(response) => return ResponseFuture::ready(response),
                    FastLookup::Found(entry) => Some(entry),
                    FastLookup::Later => None,
                };
                let future = cached_call(Arc::clone(shared), inner, req, req_cc, key, found);
                return ResponseFuture::cached(Box::pin(future));
            }
            // RFC 9111 §4.4: unsafe methods invalidate what is stored for their target.
            Some(key) if !is_safe_method(method) => {
                let future = unsafe_call(Arc::clone(shared), inner, req, key);
                return ResponseFuture::cached(Box::pin(future));
            }
            Some(_) => Forward::Method,
            None if method == Method::GET || method == Method::HEAD => Forward::Bypass,
            None => Forward::Method,
        };
        shared.stats.misses.fetch_add(1, Ordering::Relaxed);
        ResponseFuture::forward(inner.call(req), Arc::clone(&shared.status), forward)
    }
}

/// A GET or HEAD request: answer from the store, or forward (validating what is stored) and
/// capture the response.
async fn cached_call<S, St, ReqBody, ResBody>(
    shared: Arc<Shared<St>>,
    mut inner: S,
    mut req: Request<ReqBody>,
    req_cc: CacheControl,
    key: CacheKey,
    found: Option<Option<Arc<StoredEntry>>>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: Store,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    let now = shared.clock.now();
    // What the fast path in `call` already looked up, if the store answered it at once.
    let stored = match found {
        Some(entry) => entry,
        None => shared.lookup(&key).await,
    };

    // RFC 9111 §4.1: a stored response is only selected by matching `Vary` values.
    let selected = stored
        .as_ref()
        .and_then(|entry| entry.select(req.headers()).cloned());
    let offer = shared.stored_answer(stored.as_deref(), selected.as_ref(), &req, &req_cc, now);
    let forward = match offer {
        FromStore::Answer(response) => return Ok(response),
        FromStore::AnswerAndRevalidate(response, candidate) => {
            shared.revalidate_in_background(inner, req, req_cc, key, candidate);
            return Ok(response);
        }
        FromStore::Forward(forward) => forward,
    };

    // RFC 9111 §5.2.1.7: `only-if-cached` with nothing usable stored gets a 504.
    if req_cc.only_if_cached() {
        shared.stats.misses.fetch_add(1, Ordering::Relaxed);
        return Ok(shared.only_if_cached_miss());
    }

    let flight = match shared
        .collapse(&key, req.method(), req.headers(), &req_cc, forward)
        .await
    {
        Collapse::Answered(answer) => return Ok(answer),
        Collapse::Forward(flight) => flight,
    };

    shared.stats.misses.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let req_headers = req.headers().clone();
    let validating = add_stored_validators(stored.as_deref(), selected.as_ref(), &mut req);
    let completing = selected
        .as_ref()
        .is_some_and(|part| ask_for_rest(part, &method, &req_headers, &mut req));
    let request_time = shared.clock.now();
    let result = inner.call(req).await;
    let exchange = Exchange {
        key,
        forward,
        method,
        req_headers,
        req_cc,
        request_time,
        response_time: shared.clock.now(),
        completing,
    };
    match result {
        Ok(response) => Ok(shared
            .on_response(response, exchange, selected, validating, flight)
            .await),
        Err(error) => {
            // RFC 5861 §4, RFC 9111 §4.2.4: an origin that cannot be reached may be covered by
            // a stale response.
            if let Some(answer) = selected
                .as_ref()
                .and_then(|stored| shared.stale_if_unreachable(&exchange, stored))
            {
                return Ok(answer);
            }
            Err(error)
        }
    }
}

/// A request with an unsafe method: forwarded, then what is stored for its target (and for
/// `Location` / `Content-Location` on the same origin) is invalidated (RFC 9111 §4.4). A
/// response to `POST` that names its own target in `Content-Location` and has explicit
/// freshness is then stored for later `GET`s (RFC 9110 §9.3.3).
async fn unsafe_call<S, St, ReqBody, ResBody>(
    shared: Arc<Shared<St>>,
    mut inner: S,
    req: Request<ReqBody>,
    key: CacheKey,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: Store,
    ResBody: Body<Data = Bytes>,
{
    shared.stats.misses.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let req_headers = (method == Method::POST).then(|| req.headers().clone());
    let request_time = shared.clock.now();
    let response = inner.call(req).await?;
    let response_time = shared.clock.now();
    if let Ok(target) = key.as_str().parse::<Uri>() {
        for uri in invalidation_uris(&method, response.status(), &target, response.headers()) {
            if let Some(key) = CacheKey::from_uri(&uri) {
                if let Err(error) = shared.store.remove(&key).await {
                    tracing::warn!(%key, %error, "cache invalidation failed");
                }
            }
        }
        if let Some(req_headers) = req_headers {
            let cc = shared.cache_control(response.headers());
            let reusable = post_response_answers_get(
                &method,
                &target,
                response.status(),
                response.headers(),
                &cc,
                &shared.options,
                response_time,
            );
            if reusable {
                // Stored as the response to a GET of the target, under every other rule.
                let req_cc = CacheControl::from_headers(&req_headers);
                let exchange = Exchange {
                    key,
                    forward: Forward::Method,
                    method: Method::GET,
                    req_headers,
                    req_cc,
                    request_time,
                    response_time,
                    completing: false,
                };
                return Ok(shared.forwarded(response, exchange, None));
            }
        }
    }
    let (mut parts, body) = response.into_parts();
    shared
        .status
        .forwarded_parts(&mut parts, Forward::Method, None);
    Ok(Response::from_parts(parts, ResponseBody::pass(body)))
}

/// What the store offers a GET or HEAD request, before it goes forward.
// Returned by value and matched at once, as `FastLookup`.
#[allow(clippy::large_enum_variant)]
enum FromStore<B> {
    /// A stored response answers it.
    Answer(Response<ResponseBody<B>>),
    /// A stale stored response answers it, and is revalidated in the background
    /// (RFC 5861 §3).
    AnswerAndRevalidate(Response<ResponseBody<B>>, Arc<StoredResponse>),
    /// It goes forward, for this reason (RFC 9211 §2.2 `fwd`).
    Forward(Forward),
}

/// What collapsed forwarding made of a request that goes forward.
// Returned by value and matched at once, as `FastLookup`.
#[allow(clippy::large_enum_variant)]
enum Collapse<B> {
    /// The request it waited for stored a response that answers it.
    Answered(Response<ResponseBody<B>>),
    /// It goes forward itself, leading the key's flight when it holds the guard.
    Forward(Option<FlightGuard>),
}

/// Adds to `req` the validators of what is stored for it; returns the stored responses a 304
/// may then select.
///
/// RFC 9111 §4.3.1: a stored response with a validator is validated, not fetched again; the
/// entity tags of the other stored variants go along, so a 304 may select one of them. A
/// stored part is not validated: a 304 would confirm only the part, which cannot answer a
/// request for more (RFC 9111 §3.3).
fn add_stored_validators<ReqBody>(
    stored: Option<&StoredEntry>,
    selected: Option<&Arc<StoredResponse>>,
    req: &mut Request<ReqBody>,
) -> Vec<Arc<StoredResponse>> {
    let mut validating = Vec::new();
    if let Some(stored) = selected.filter(|s| s.status != StatusCode::PARTIAL_CONTENT) {
        if add_validators(&stored.headers, req.headers_mut()) {
            validating.push(Arc::clone(stored));
        }
    }
    if let Some(entry) = stored {
        for variant in entry.variants() {
            let is_selected = selected.is_some_and(|s| Arc::ptr_eq(s, variant));
            let is_part = variant.status == StatusCode::PARTIAL_CONTENT;
            let Some(etag) = variant
                .headers
                .get(ETAG)
                .filter(|_| !is_selected && !is_part)
            else {
                continue;
            };
            // Only the tag: another variant's `Last-Modified` says nothing about this one.
            let tag_only = HeaderMap::from_iter([(ETAG, etag.clone())]);
            if add_validators(&tag_only, req.headers_mut()) {
                validating.push(Arc::clone(variant));
            }
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
fn ask_for_rest<ReqBody>(
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

/// What the fast path in [`Cache::call`] found.
// Returned by value and matched at once; boxing the response would allocate on the hit path.
#[allow(clippy::large_enum_variant)]
enum FastLookup<B> {
    /// A fresh stored response answers the request.
    Hit(Response<ResponseBody<B>>),
    /// The store's answer (nothing, or an entry that does not answer this request as is).
    Found(Option<Arc<StoredEntry>>),
    /// The store cannot answer without waiting: the full path looks the key up.
    Later,
}

/// What the service remembers of a forwarded request.
struct Exchange {
    key: CacheKey,
    forward: Forward,
    method: Method,
    req_headers: HeaderMap,
    /// The request's `Cache-Control`, parsed once (from `req_headers`).
    req_cc: CacheControl,
    request_time: SystemTime,
    response_time: SystemTime,
    /// The request asked for the rest of the selected stored part (RFC 9111 §3.4).
    completing: bool,
}

impl<St: Store> Shared<St> {
    async fn lookup(&self, key: &CacheKey) -> Option<Arc<StoredEntry>> {
        self.get(key).await
    }

    /// The `Cache-Control` this cache obeys: the targeted field when configured, present and
    /// valid (RFC 9213 §2.1), else `Cache-Control`.
    fn cache_control(&self, headers: &HeaderMap) -> CacheControl {
        self.targeted
            .as_ref()
            .and_then(|field| targeted_cache_control(headers, field))
            .unwrap_or_else(|| CacheControl::from_headers(headers))
    }

    /// The hit path: a fresh stored response for `req`, when the store answers without
    /// waiting (the in-memory store always does).
    fn hit_now<B, ReqBody>(
        &self,
        key: &CacheKey,
        req: &Request<ReqBody>,
        req_cc: &CacheControl,
    ) -> FastLookup<B> {
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

    /// Answers a request from the store when what it selected (`selected`, from `stored`)
    /// may be reused (RFC 9111 §4.2, §5.2.1; RFC 5861 §3); else says why it goes forward.
    fn stored_answer<B, ReqBody>(
        &self,
        stored: Option<&StoredEntry>,
        selected: Option<&Arc<StoredResponse>>,
        req: &Request<ReqBody>,
        req_cc: &CacheControl,
        now: SystemTime,
    ) -> FromStore<B> {
        let Some(candidate) = selected else {
            return FromStore::Forward(match stored {
                Some(_) => Forward::VaryMiss,
                None => Forward::UriMiss,
            });
        };
        let (method, req_headers) = (req.method(), req.headers());
        // RFC 9211 §2.2: `request` only when the request's directives ruled out a fresh
        // response; a response that must be validated (its own `no-cache`) is as good as stale.
        let stale = if candidate.policy.is_fresh(now) && !candidate.policy.no_cache {
            Forward::Request
        } else {
            Forward::Stale
        };
        match reuse_with(&candidate.policy, req_cc, req_headers, now) {
            Reuse::Fresh | Reuse::StaleAllowed => {
                let served = Served::Fresh;
                match self.answer_from_store(method, req_headers, candidate, now, served) {
                    Some(response) => FromStore::Answer(response),
                    // A precondition or range the cache leaves to the origin; RFC 9211 §2.2:
                    // `partial` when a stored part could not satisfy the request.
                    None if candidate.status == StatusCode::PARTIAL_CONTENT => {
                        FromStore::Forward(Forward::Partial)
                    }
                    None => FromStore::Forward(stale),
                }
            }
            // RFC 5861 §3: serve the stale response now, revalidate once in the background.
            Reuse::StaleWhileRevalidate if method == Method::GET => {
                let served = Served::StaleWhileRevalidate;
                match self.answer_from_store(method, req_headers, candidate, now, served) {
                    Some(response) => {
                        FromStore::AnswerAndRevalidate(response, Arc::clone(candidate))
                    }
                    None => FromStore::Forward(stale),
                }
            }
            _ => FromStore::Forward(stale),
        }
    }

    /// The 504 for an `only-if-cached` request with nothing usable stored (RFC 9111
    /// §5.2.1.7).
    fn only_if_cached_miss<B>(&self) -> Response<ResponseBody<B>> {
        let mut response = Response::new(ResponseBody::full(Bytes::new()));
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        self.status
            .generated(response.headers_mut(), "only-if-cached");
        response
    }

    /// Collapsed forwarding: one request per key goes forward, the others wait for what it
    /// stores. A request whose own directives sent it forward (`Forward::Request`) does not
    /// wait; nor do requests for keys whose responses were recently not storable.
    async fn collapse<B>(
        &self,
        key: &CacheKey,
        method: &Method,
        req_headers: &HeaderMap,
        req_cc: &CacheControl,
        forward: Forward,
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
                Join::Lead(guard) => return Collapse::Forward(Some(guard)),
                Join::Follow(follower) => {
                    let Some(outcome) = follower.wait(timeout).await else {
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

    /// Answers from `entry` when it holds a response the request selects (RFC 9111 §4.1) and
    /// may take without contacting the origin (§4.2, §5.2.1); `None` otherwise.
    fn fresh_answer<B>(
        &self,
        entry: &StoredEntry,
        method: &Method,
        req_headers: &HeaderMap,
        req_cc: &CacheControl,
        now: SystemTime,
        served: Served,
    ) -> Option<Response<ResponseBody<B>>> {
        let stored = entry.select(req_headers)?;
        match reuse_with(&stored.policy, req_cc, req_headers, now) {
            Reuse::Fresh | Reuse::StaleAllowed => {
                self.answer_from_store(method, req_headers, stored, now, served)
            }
            _ => None,
        }
    }

    /// Answers a request from a stored response: a header-map clone and a `Bytes` clone (a
    /// slice of it for a range). `None` when the request needs the origin after all: a
    /// precondition or a range the cache does not evaluate itself.
    fn answer_from_store<B>(
        &self,
        method: &Method,
        req_headers: &HeaderMap,
        stored: &StoredResponse,
        now: SystemTime,
        served: Served,
    ) -> Option<Response<ResponseBody<B>>> {
        let is_head = method == Method::HEAD;
        // RFC 9111 §4.2.3, §5.1: every response from the cache carries its current age.
        let age = stored.policy.age(now);
        let ttl = i64::try_from(stored.policy.freshness_lifetime.as_secs())
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));

        // A stored partial response (RFC 9111 §3.3): where its bytes sit in the representation.
        let part = match stored.status {
            StatusCode::PARTIAL_CONTENT => Some(ContentRange::from_headers(&stored.headers)?),
            _ => None,
        };
        // RFC 9111 §4.3.2, RFC 9110 §13.2.2: the cache evaluates the client's preconditions
        // against the stored response (a complete one: a part goes to the origin).
        let precondition = match part {
            Some(_) if has_preconditions(req_headers) => return None,
            Some(_) => Precondition::None,
            None => evaluate_preconditions(method, req_headers, stored.status, &stored.headers),
        };
        let (status, mut headers, body) = match precondition {
            Precondition::NotModified => (
                StatusCode::NOT_MODIFIED,
                not_modified_headers(&stored.headers),
                StoredBody::default(),
            ),
            Precondition::Failed => (
                StatusCode::PRECONDITION_FAILED,
                HeaderMap::new(),
                StoredBody::default(),
            ),
            Precondition::Forward => return None,
            Precondition::None => ranged_answer(method, req_headers, stored, part)?,
        };
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        headers.insert(AGE, HeaderValue::from(age.as_secs()));
        self.status.served(&mut headers, served, ttl);
        let body = if is_head {
            ResponseBody::full(Bytes::new())
        } else {
            ResponseBody::stored(&body)
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        // The stored status with its extensions (hyper's `ReasonPhrase` among them); a status
        // the cache made up (304, 206, 412, 416) has its standard reason phrase.
        if status == stored.status && part.is_none() && !stored.extensions.is_empty() {
            *response.extensions_mut() = stored.extensions.clone();
        }
        Some(response)
    }

    /// Serves `stored` in place of a failed origin answer, where RFC 5861 §4 allows it.
    fn stale_if_error<B>(
        &self,
        exchange: &Exchange,
        stored: &StoredResponse,
        origin_status: Option<StatusCode>,
    ) -> Option<Response<ResponseBody<B>>> {
        let now = exchange.response_time;
        let (req_cc, req_headers) = (&exchange.req_cc, &exchange.req_headers);
        if !may_serve_stale_if_error_with(&stored.policy, req_cc, req_headers, now) {
            return None;
        }
        self.answer_from_store(
            &exchange.method,
            &exchange.req_headers,
            stored,
            now,
            Served::StaleIfError(origin_status),
        )
    }

    /// Serves `stored` in place of an origin that could not be reached: within its
    /// `stale-if-error` window (RFC 5861 §4), else as a disconnected cache may (RFC 9111
    /// §4.2.4, bounded by [`CacheOptions::max_stale_if_unreachable`](crate::policy::CacheOptions)).
    fn stale_if_unreachable<B>(
        &self,
        exchange: &Exchange,
        stored: &StoredResponse,
    ) -> Option<Response<ResponseBody<B>>> {
        if let Some(answer) = self.stale_if_error(exchange, stored, None) {
            return Some(answer);
        }
        let now = exchange.response_time;
        let max = self.options.max_stale_if_unreachable;
        let (req_cc, req_headers) = (&exchange.req_cc, &exchange.req_headers);
        if !may_serve_stale_if_unreachable_with(&stored.policy, req_cc, req_headers, now, max) {
            return None;
        }
        self.answer_from_store(
            &exchange.method,
            &exchange.req_headers,
            stored,
            now,
            Served::StaleIfUnreachable,
        )
    }

    /// Handles the inner service's answer to a forwarded GET or HEAD.
    async fn on_response<B>(
        self: &Arc<Self>,
        response: Response<B>,
        exchange: Exchange,
        selected: Option<Arc<StoredResponse>>,
        validating: Vec<Arc<StoredResponse>>,
        flight: Option<FlightGuard>,
    ) -> Response<ResponseBody<B>>
    where
        B: Body<Data = Bytes>,
    {
        let status = response.status();
        // The inner service could not reach the origin and answered itself.
        if response.extensions().get::<OriginUnreachable>().is_some() {
            if let Some(answer) = selected
                .as_ref()
                .and_then(|stored| self.stale_if_unreachable(&exchange, stored))
            {
                return answer;
            }
            return self.forwarded(response, exchange, flight);
        }
        // RFC 9111 §3.4: the rest of a stored prefix: the client, which asked for all of it,
        // gets a 200 made of the stored bytes and the new ones, and the new part is stored,
        // where it completes the stored one. (A 206 that does not complete it, which an origin
        // honouring If-Range never sends, is passed on as it came.)
        if exchange.completing && status == StatusCode::PARTIAL_CONTENT {
            let part = selected
                .as_ref()
                .and_then(|part| stored_prefix(part, response.headers()));
            if let Some((prefix, complete)) = part {
                let (mut parts, body) = self.forwarded(response, exchange, flight).into_parts();
                parts.status = StatusCode::OK;
                parts.headers.remove(CONTENT_RANGE);
                parts
                    .headers
                    .insert(CONTENT_LENGTH, HeaderValue::from(complete));
                return Response::from_parts(parts, body.with_prefix(prefix));
            }
        }
        // RFC 5861 §4: these errors may be covered by a stale response.
        if is_stale_if_error_status(status) {
            if let Some(answer) = selected
                .as_ref()
                .and_then(|stored| self.stale_if_error(&exchange, stored, Some(status)))
            {
                return answer;
            }
        }
        // RFC 9111 §4.3.3, §4.3.4: a 304 that selects the stored response freshens it, and the
        // client gets the stored response (or its own 304).
        if status == StatusCode::NOT_MODIFIED {
            let answer = self
                .revalidated(&exchange, &validating, response.headers())
                .await;
            if let Some(answer) = answer {
                return answer;
            }
        }
        // RFC 9111 §4.3.5: a HEAD response freshens the stored GET it matches.
        if exchange.method == Method::HEAD && status.is_success() {
            if let Some(stored) = selected.as_ref() {
                self.head_update(&exchange, stored, response.headers())
                    .await;
            }
        }
        self.forwarded(response, exchange, flight)
    }

    /// A 304 to a validation of the `validating` responses: the one it selects is freshened,
    /// and answers the client (RFC 9111 §4.3.3, §4.3.4); `None` when it selects none.
    async fn revalidated<B>(
        &self,
        exchange: &Exchange,
        validating: &[Arc<StoredResponse>],
        not_modified: &HeaderMap,
    ) -> Option<Response<ResponseBody<B>>> {
        let only_one = validating.len() == 1;
        let client = &exchange.req_headers;
        let stored = validating
            .iter()
            .find(|stored| not_modified_selects(&stored.headers, client, not_modified, only_one))?;
        let updated = self.freshen(exchange, stored, not_modified).await;
        let now = exchange.response_time;
        self.answer_from_store(&exchange.method, client, &updated, now, Served::Revalidated)
            .or_else(|| {
                // The client's own range or precondition went to the origin with ours; serve the
                // whole stored response.
                let served = Served::Revalidated;
                self.answer_from_store(&Method::GET, &HeaderMap::new(), &updated, now, served)
            })
    }

    /// A successful HEAD response for the `stored` GET response: it freshens it when it
    /// matches; one that does not match shows the stored response is outdated, which is
    /// removed (RFC 9111 §4.3.5).
    async fn head_update(
        &self,
        exchange: &Exchange,
        stored: &Arc<StoredResponse>,
        head: &HeaderMap,
    ) {
        if head_freshens(&stored.headers, head) {
            self.freshen(exchange, stored, head).await;
        } else if let Err(error) = self.store.remove(&exchange.key).await {
            tracing::warn!(key = %exchange.key, %error, "cache invalidation failed");
        }
    }

    /// Updates a stored response with the header fields of a 304 or HEAD response
    /// (RFC 9111 §3.2, §4.3.4) and writes it back.
    async fn freshen(
        &self,
        exchange: &Exchange,
        stored: &Arc<StoredResponse>,
        update: &HeaderMap,
    ) -> Arc<StoredResponse> {
        let headers = freshen_headers(&stored.headers, update);
        let cc = self.cache_control(&headers);
        let policy = ResponsePolicy::new(
            stored.status,
            &headers,
            &cc,
            &self.options,
            exchange.request_time,
            exchange.response_time,
        );
        let updated = Arc::new(StoredResponse {
            status: stored.status,
            headers,
            body: stored.body.clone(),
            policy,
            vary: stored.vary.clone(),
            extensions: stored.extensions.clone(),
        });
        if let Some(entry) = self.lookup(&exchange.key).await {
            let entry = entry.with_replaced(stored, Arc::clone(&updated));
            if let Err(error) = self.put(exchange.key.clone(), Arc::new(entry)).await {
                tracing::warn!(key = %exchange.key, %error, "cache update failed");
            }
        }
        updated
    }

    /// Revalidates `stored` with the client's request in a task of its own (RFC 5861 §3);
    /// at most one per key at a time.
    fn revalidate_in_background<S, ReqBody, ResBody>(
        self: &Arc<Self>,
        mut inner: S,
        mut req: Request<ReqBody>,
        req_cc: CacheControl,
        key: CacheKey,
        stored: Arc<StoredResponse>,
    ) where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqBody: Send + 'static,
        ResBody: Body<Data = Bytes> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // The same single flight as misses: one revalidation per key at a time.
        let Some(guard) = self.flights.try_lead(&key) else {
            return;
        };
        let shared = Arc::clone(self);
        runtime.spawn(async move {
            let req_headers = req.headers().clone();
            add_validators(&stored.headers, req.headers_mut());
            let request_time = shared.clock.now();
            let Ok(response) = inner.call(req).await else {
                return;
            };
            let exchange = Exchange {
                key,
                forward: Forward::Stale,
                method: Method::GET,
                req_headers,
                req_cc,
                request_time,
                response_time: shared.clock.now(),
                completing: false,
            };
            if response.status() == StatusCode::NOT_MODIFIED {
                let (client, update) = (&exchange.req_headers, response.headers());
                if not_modified_selects(&stored.headers, client, update, true) {
                    shared.freshen(&exchange, &stored, response.headers()).await;
                }
                return;
            }
            // A full response goes through the usual capture; reading it to the end stores it.
            let body = shared
                .forwarded(response, exchange, Some(guard))
                .into_body();
            let mut body = std::pin::pin!(body);
            while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
                if frame.is_err() {
                    break;
                }
            }
        });
    }

    /// Marks a response from the inner service, and tees its body into the store when it may
    /// be stored.
    fn forwarded<B>(
        self: &Arc<Self>,
        response: Response<B>,
        exchange: Exchange,
        flight: Option<FlightGuard>,
    ) -> Response<ResponseBody<B>>
    where
        B: Body<Data = Bytes>,
    {
        let (mut parts, body) = response.into_parts();
        // Made by the inner service, not the origin: never stored. `flight` is dropped, so
        // the requests waiting for it go forward themselves.
        if parts.extensions.get::<OriginUnreachable>().is_some() {
            self.status
                .forwarded_parts(&mut parts, exchange.forward, None);
            return Response::from_parts(parts, ResponseBody::pass(body));
        }
        // RFC 9110 §6.6.1: a cache adds `Date` to a response that lacks one.
        if !parts.headers.contains_key(DATE) {
            let date = httpdate::fmt_http_date(exchange.response_time);
            if let Ok(date) = HeaderValue::try_from(date) {
                parts.headers.insert(DATE, date);
            }
        }
        let cc = self.cache_control(&parts.headers);
        let forward = exchange.forward;
        let (body, detail) = match self.storable(&exchange, &parts, &cc, &body) {
            Ok(()) => (self.capture(&parts, &cc, body, exchange, flight), None),
            Err((reason, from_response)) => {
                tracing::trace!(key = %exchange.key, reason, "response not stored");
                if from_response {
                    self.flights.not_storable(&exchange.key, flight);
                }
                // Otherwise `flight` is dropped here (`Outcome::Failed`): the requests waiting
                // for it go forward themselves.
                (ResponseBody::pass(body), Some(reason))
            }
        };
        self.status.forwarded_parts(&mut parts, forward, detail);
        Response::from_parts(parts, body)
    }

    /// May the response (`parts`, its `Cache-Control` `cc`, `body`) to a forwarded request be
    /// stored? Else the reason (for `Cache-Status; detail=`), and whether it holds for later
    /// requests too, so that the key is not worth waiting on.
    fn storable<B: Body>(
        &self,
        exchange: &Exchange,
        parts: &http::response::Parts,
        cc: &CacheControl,
        body: &B,
    ) -> Result<(), (&'static str, bool)> {
        is_storable_with(
            &exchange.method,
            &exchange.req_headers,
            &exchange.req_cc,
            parts.status,
            &parts.headers,
            cc,
            &self.options,
            exchange.response_time,
        )
        .map_err(|reason| (reason.as_str(), reason.holds_for_later_requests(cc)))
        .and_then(|()| {
            if body.size_hint().lower() > self.max_entry_size as u64 {
                Err(("too-large", true))
            } else {
                Ok(())
            }
        })
    }

    /// The body of a storable response, teed into the store as it streams (committed at
    /// once when it is already complete).
    fn capture<B>(
        self: &Arc<Self>,
        parts: &http::response::Parts,
        cc: &CacheControl,
        body: B,
        exchange: Exchange,
        flight: Option<FlightGuard>,
    ) -> ResponseBody<B>
    where
        B: Body<Data = Bytes>,
    {
        let mut headers = owned_headers(&parts.headers);
        // RFC 9111 §3.1: hop-by-hop fields are not stored; RFC 9111 §5.2.2.4, §5.2.2.7:
        // neither are the fields named by qualified no-cache / private.
        remove_unstored_fields(&mut headers, cc);
        let policy = ResponsePolicy::new(
            parts.status,
            &headers,
            cc,
            &self.options,
            exchange.request_time,
            exchange.response_time,
        );
        let vary = match Vary::from_headers(&headers) {
            Vary::Fields(fields) => VaryKey::capture(&fields, &exchange.req_headers),
            _ => VaryKey::default(),
        };
        let expected = body.size_hint().exact();
        // A store that keeps bodies outside memory takes this one in as it streams.
        let spool = match expected {
            Some(len) if len > self.max_entry_size as u64 => None,
            _ => self.store.body_sink(&exchange.key, expected),
        };
        let tee = Tee {
            key: exchange.key,
            status: parts.status,
            headers,
            policy,
            vary,
            extensions: parts.extensions.clone(),
            req_headers: exchange.req_headers,
            chunks: Vec::new(),
            spool,
            len: 0,
            expected,
            limit: self.max_entry_size,
            sink: Arc::clone(self) as Arc<dyn Commit>,
            reservation: Reservation::new(Arc::clone(&self.capture)),
            flights: Arc::clone(&self.flights),
            flight,
        };
        // A body that is already complete (a 204, an empty 200) may never be polled: hyper
        // does not read a body it must not or need not send.
        if body.is_end_stream() || body.size_hint().exact() == Some(0) {
            tee.commit();
            ResponseBody::pass(body)
        } else {
            ResponseBody::miss(body, tee)
        }
    }
}

/// The stored bytes before the part `rest` (a 206 for the rest of the stored `part`), and the
/// complete length: what makes the client's 200 together with `rest` (RFC 9111 §3.4). `None`
/// when `rest` does not complete `part`.
fn stored_prefix(part: &StoredResponse, rest: &HeaderMap) -> Option<(Bytes, u64)> {
    let first = completing_part(&part.headers, rest)?;
    let complete = ContentRange::from_headers(rest)?.complete;
    // A part streamed from the store's own medium is not completed from it.
    let body = part.body.as_bytes()?;
    let prefix = body.get(..usize::try_from(first).ok()?)?;
    Some((body.slice_ref(prefix), complete))
}

/// The stored response, or the byte range of it the request asks for: status, header fields
/// and body. `part` is where a stored partial response sits in the representation. `None`
/// when the range is left to the origin.
fn ranged_answer(
    method: &Method,
    req_headers: &HeaderMap,
    stored: &StoredResponse,
    part: Option<ContentRange>,
) -> Option<(StatusCode, HeaderMap, StoredBody)> {
    // The complete length, and the offset of the stored bytes in it.
    let (len, offset) = match part {
        Some(part) => (part.complete, part.first),
        None => (stored.body.len(), 0),
    };
    // RFC 9110 §14.2: a single byte range of a stored 200 is served from it, and
    // (RFC 9111 §3.3) from a stored 206 that holds it.
    let decision = match part {
        Some(_) => evaluate_range_in_part(method, req_headers, &stored.headers),
        None => evaluate_range(method, req_headers, stored.status, &stored.headers, len),
    };
    Some(match decision {
        RangeDecision::Full => (
            stored.status,
            response_headers(&stored.headers),
            stored.body.clone(),
        ),
        RangeDecision::Partial { start, end } => {
            let mut headers = stored.headers.clone();
            let range = content_range(start, end, len);
            headers.insert(CONTENT_RANGE, header_value(range)?);
            headers.insert(CONTENT_LENGTH, HeaderValue::from(end - start + 1));
            let (from, to) = (start.checked_sub(offset)?, end.checked_sub(offset)?);
            (
                StatusCode::PARTIAL_CONTENT,
                headers,
                stored.body.slice(from..=to)?,
            )
        }
        RangeDecision::Unsatisfiable => {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_RANGE, header_value(unsatisfied_range(len))?);
            (
                StatusCode::RANGE_NOT_SATISFIABLE,
                headers,
                StoredBody::default(),
            )
        }
        RangeDecision::Forward => return None,
    })
}

/// A copy of `headers` whose values own their bytes. Values parsed by hyper are slices of its
/// read buffer; stored as they are, they would keep that whole buffer alive, unaccounted.
fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len() + 3);
    for (name, value) in headers {
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        owned.append(name.clone(), copy);
    }
    owned
}

/// A copy of stored header fields with room for the three the cache adds (`Age`, `X-Cache`,
/// `Cache-Status`), so that adding them does not grow the map again.
fn response_headers(stored: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(stored.len() + 3);
    headers.extend(
        stored
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    headers
}

fn header_value(value: String) -> Option<HeaderValue> {
    HeaderValue::try_from(value).ok()
}
