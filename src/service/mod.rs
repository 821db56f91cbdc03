//! The [`Cache`] service: looks up what is stored, asks the policy
//! ([`policy::decide`](crate::policy::decide)) what to do, and acts on it.
//!
//! - `lookup`: the store lookup and the hit path that needs no waiting;
//! - `answer`: answers from stored responses (fresh, stale, ranges, preconditions);
//! - `forward`: what goes forward with a request (validators, collapsed forwarding);
//! - `respond`: the inner service's response to a forwarded GET or HEAD;
//! - `capture`: marking forwarded responses and teeing storable ones into the store;
//! - `unsafe_method`: unsafe methods, which invalidate.

mod answer;
mod capture;
mod forward;
mod lookup;
mod respond;
mod unsafe_method;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body::Body;
use tower_service::Service;

use self::forward::{Collapse, add_stored_validators, ask_for_rest};
use self::lookup::FastLookup;
use self::unsafe_method::unsafe_call;
use crate::BoxError;
use crate::body::ResponseBody;
use crate::future::ResponseFuture;
use crate::key::CacheKey;
use crate::metrics::RequestOutcome;
use crate::policy::CacheControl;
use crate::policy::decide::{self, Lookup, Unstored};
use crate::policy::headers::within_name_limit;
use crate::policy::invalidate::is_safe_method;
use crate::shared::Shared;
use crate::status::Forward;
use crate::store::{MemoryStore, Store, StoredEntry, StoredResponse};

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
        let shared = &self.shared;
        let cacheable = req.method() == Method::GET || req.method() == Method::HEAD;
        let (req, bypassed) = match &shared.bypass {
            Some(bypass) if cacheable => {
                let (parts, body) = req.into_parts();
                let bypassed = bypass(&parts);
                (Request::from_parts(parts, body), bypassed)
            }
            _ => (req, false),
        };

        // A GET or HEAD of more names than the cache handles goes forward as it is: a forwarded
        // request may get validators, `Range` and `If-Range` added.
        let key = if bypassed || (cacheable && !within_name_limit(req.headers())) {
            None
        } else {
            CacheKey::from_parts(req.uri(), req.headers())
        };
        let forward = match key {
            // RFC 9111 §3: this cache stores responses to GET; HEAD is answered from them.
            Some(key) if cacheable => {
                // RFC 9111 §5.2.1: the request's directives, parsed once for the request.
                let req_cc = CacheControl::from_headers(req.headers());
                // Read before the look-up: whatever is written after it counts.
                let writes = shared.writes.read(&key);
                let found = match shared.hit_now(&key, &req, &req_cc) {
                    FastLookup::Hit(response) => return ResponseFuture::ready(response),
                    FastLookup::Found(entry) => Some(entry),
                    FastLookup::Later => None,
                };
                let inner = take_ready(&mut self.inner);
                let looked = Looked { found, writes };
                let future = cached_call(Arc::clone(shared), inner, req, req_cc, key, looked);
                return ResponseFuture::cached(Box::pin(future));
            }
            // RFC 9111 §4.4: unsafe methods invalidate what is stored for their target.
            Some(key) if !is_safe_method(req.method()) => {
                let future = unsafe_call(Arc::clone(shared), take_ready(&mut self.inner), req, key);
                return ResponseFuture::cached(Box::pin(future));
            }
            Some(_) => Forward::Method,
            None if cacheable => Forward::Bypass,
            None => Forward::Method,
        };
        shared.count(match forward {
            Forward::Bypass => RequestOutcome::Bypass,
            _ => RequestOutcome::Method,
        });
        let status = Arc::clone(&shared.status);
        let counted = shared.metrics.origin_bytes();
        ResponseFuture::forward(self.inner.call(req), status, forward, counted)
    }
}

/// The inner service that was polled ready, to be called later (in a future), leaving a
/// clone in its place: only the service that was polled ready may be called (tower-service
/// docs). A request answered at once from the store does not call it, and leaves it ready.
fn take_ready<S: Clone>(inner: &mut S) -> S {
    let fresh = inner.clone();
    std::mem::replace(inner, fresh)
}

/// What [`Cache::call`] looked up before making the request's future.
struct Looked {
    /// What the store held, when it answered at once; `None` when it must wait.
    found: Option<Option<Arc<StoredEntry>>>,
    /// [`Shared::writes`] for the key, read before the look-up.
    writes: u64,
}

/// A GET or HEAD request: answer from the store, or forward (validating what is stored) and
/// capture the response.
async fn cached_call<S, St, ReqBody, ResBody>(
    shared: Arc<Shared<St>>,
    mut inner: S,
    mut req: Request<ReqBody>,
    req_cc: CacheControl,
    key: CacheKey,
    looked: Looked,
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
    let Looked { found, writes } = looked;
    let stored = match found {
        Some(entry) => entry,
        None => shared.lookup(&key).await,
    };

    // RFC 9111 §4.1: a stored response is only selected by matching `Vary` values.
    let selected = stored
        .as_ref()
        .and_then(|entry| shared.select(entry, req.headers()).cloned());
    let offer = shared.stored_answer(stored.as_deref(), selected.as_ref(), &req, &req_cc, now);
    let forward = match offer {
        FromStore::Answer(response) => return Ok(response),
        FromStore::AnswerAndRevalidate(response, candidate) => {
            shared.revalidate_in_background(inner, req, req_cc, key, candidate);
            return Ok(response);
        }
        FromStore::OnlyIfCachedMiss => {
            shared.count(RequestOutcome::Miss);
            return Ok(shared.only_if_cached_miss());
        }
        FromStore::Forward(forward) => forward,
    };

    // Admission after a number of uses, or the doorkeeper's while the store is full: only
    // keys with nothing stored are counted; one not admitted goes forward alone (no collapsed
    // forwarding) and is not stored.
    let admitted = if stored.is_none() && req.method() == Method::GET {
        shared.admit(&key)
    } else {
        Ok(())
    };
    let (forward, flight) = if admitted.is_ok() {
        match shared
            .collapse(&key, req.method(), req.headers(), &req_cc, forward, writes)
            .await
        {
            Collapse::Answered(answer) => return Ok(answer),
            Collapse::Forward(flight) => (forward, flight),
        }
    } else {
        (Forward::Miss, None)
    };

    let method = req.method().clone();
    let req_headers = req.headers().clone();
    let key_headers = &shared.key_headers;
    let validating =
        add_stored_validators(stored.as_deref(), selected.as_ref(), key_headers, &mut req);
    let completing = selected
        .as_ref()
        .is_some_and(|part| ask_for_rest(part, &method, &req_headers, &mut req));
    let request_time = shared.clock.now();
    let started = Instant::now();
    let result = inner.call(req).await;
    shared.metrics.origin_latency(started.elapsed());
    let exchange = Exchange {
        key,
        forward,
        method,
        req_headers,
        req_cc,
        request_time,
        response_time: shared.clock.now(),
        completing,
        admitted,
        for_client: true,
    };
    match result {
        Ok(response) => Ok(shared
            .on_response(response, exchange, selected, validating, flight)
            .await),
        // RFC 5861 §4, RFC 9111 §4.2.4: an origin that cannot be reached may be covered by a
        // stale response.
        Err(error) => {
            let stale = selected
                .as_ref()
                .and_then(|stored| shared.stale_answer(&exchange, stored, None));
            if stale.is_none() {
                shared.count(RequestOutcome::Miss);
            }
            stale.ok_or(error)
        }
    }
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
    /// It has `only-if-cached` and nothing usable is stored: a 504 (RFC 9111 §5.2.1.7).
    OnlyIfCachedMiss,
}

impl<B> FromStore<B> {
    /// The request goes forward for `why`, unless its directives forbid it
    /// ([`decide::forward`]).
    fn forward(req_cc: &CacheControl, why: Forward) -> Self {
        match decide::forward(req_cc, why) {
            Lookup::OnlyIfCachedMiss => FromStore::OnlyIfCachedMiss,
            _ => FromStore::Forward(why),
        }
    }
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
    /// Its key was requested often enough for the response to be stored (`min_uses`, the
    /// doorkeeper), else why not.
    admitted: Result<(), Unstored>,
    /// A client's GET or HEAD, counted as a miss when the response is passed on (not a
    /// background revalidation, nor an unsafe method, counted as it came).
    for_client: bool,
}
