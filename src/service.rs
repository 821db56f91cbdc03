//! The [`Cache`] service.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{AGE, CACHE_CONTROL, DATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use crate::BoxError;
use crate::body::{Commit, ResponseBody, Tee};
use crate::future::ResponseFuture;
use crate::key::CacheKey;
use crate::layer::Shared;
use crate::policy::headers::remove_hop_by_hop;
use crate::policy::{CacheControl, ResponsePolicy, Reuse, Vary, VaryKey, is_storable, reuse};
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
        // Only the service that was polled ready may be called (tower-service docs).
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let shared = &self.shared;

        // RFC 9111 §3: this cache stores responses to GET; HEAD is answered from them.
        let forward = if req.method() == Method::GET || req.method() == Method::HEAD {
            match CacheKey::from_parts(req.uri(), req.headers()) {
                Some(key) => {
                    let future = cached_call(Arc::clone(shared), inner, req, key);
                    return ResponseFuture::cached(Box::pin(future));
                }
                None => Forward::Bypass,
            }
        } else {
            Forward::Method
        };
        shared.stats.misses.fetch_add(1, Ordering::Relaxed);
        ResponseFuture::forward(inner.call(req), Arc::clone(&shared.status), forward)
    }
}

/// A GET or HEAD request: answer from the store or forward and capture.
async fn cached_call<S, St, ReqBody, ResBody>(
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
    let now = shared.clock.now();
    let is_head = req.method() == Method::HEAD;
    let stored = match shared.store.get(&key).await {
        Ok(stored) => stored,
        Err(error) => {
            tracing::warn!(%key, %error, "cache lookup failed; forwarding");
            None
        }
    };

    // RFC 9111 §4.1: a stored response is only selected by matching `Vary` values.
    let selected = stored
        .as_ref()
        .and_then(|entry| entry.select(req.headers()));
    let mut forward = match (&stored, selected) {
        (Some(_), None) => Forward::VaryMiss,
        _ => Forward::UriMiss,
    };
    if let Some(entry) = selected {
        {
            match reuse(&entry.policy, req.headers(), now) {
                Reuse::Fresh | Reuse::StaleAllowed => {
                    return Ok(shared.hit(entry, now, is_head));
                }
                Reuse::Revalidate => {
                    forward = if entry.policy.is_fresh(now) {
                        Forward::Request
                    } else {
                        Forward::Stale
                    };
                }
            }
        }
    }

    // RFC 9111 §5.2.1.7: `only-if-cached` with nothing usable stored gets a 504.
    if req.headers().contains_key(CACHE_CONTROL)
        && CacheControl::from_headers(req.headers()).only_if_cached()
    {
        shared.stats.misses.fetch_add(1, Ordering::Relaxed);
        let mut response = Response::new(ResponseBody::full(Bytes::new()));
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        shared
            .status
            .generated(response.headers_mut(), "only-if-cached");
        return Ok(response);
    }

    shared.stats.misses.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let req_headers = req.headers().clone();
    let request_time = now;
    let response = inner.call(req).await?;
    let response_time = shared.clock.now();
    Ok(shared.forwarded(
        response,
        Exchange {
            key,
            forward,
            method,
            req_headers,
            request_time,
            response_time,
        },
    ))
}

/// What the service remembers of a forwarded request.
struct Exchange {
    key: CacheKey,
    forward: Forward,
    method: Method,
    req_headers: HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
}

impl<St: Store> Shared<St> {
    /// Builds the answer from a stored response: a header-map clone and a `Bytes` clone.
    fn hit<B>(
        &self,
        entry: &StoredResponse,
        now: SystemTime,
        is_head: bool,
    ) -> Response<ResponseBody<B>> {
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        // RFC 9111 §4.2.3, §5.1: every response from the cache carries its current age.
        let age = entry.policy.age(now);
        let mut headers = entry.headers.clone();
        headers.insert(AGE, HeaderValue::from(age.as_secs()));
        let ttl = i64::try_from(entry.policy.freshness_lifetime.as_secs())
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
        self.status.hit(&mut headers, ttl);
        let body = if is_head {
            Bytes::new()
        } else {
            entry.body.clone()
        };
        let mut response = Response::new(ResponseBody::full(body));
        *response.status_mut() = entry.status;
        *response.headers_mut() = headers;
        response
    }

    /// Marks a response from the inner service, and tees its body into the store when it may
    /// be stored.
    fn forwarded<B>(
        self: &Arc<Self>,
        response: Response<B>,
        exchange: Exchange,
    ) -> Response<ResponseBody<B>>
    where
        B: Body<Data = Bytes>,
    {
        let (mut parts, body) = response.into_parts();
        // RFC 9110 §6.6.1: a cache adds `Date` to a response that lacks one.
        if !parts.headers.contains_key(DATE) {
            let date = httpdate::fmt_http_date(exchange.response_time);
            if let Ok(date) = HeaderValue::try_from(date) {
                parts.headers.insert(DATE, date);
            }
        }
        let cc = CacheControl::from_headers(&parts.headers);
        let decision = is_storable(
            &exchange.method,
            &exchange.req_headers,
            parts.status,
            &parts.headers,
            &cc,
            &self.options,
            exchange.response_time,
        )
        .map_err(|reason| reason.as_str())
        .and_then(|()| {
            if body.size_hint().lower() > self.max_entry_size as u64 {
                Err("too-large")
            } else {
                Ok(())
            }
        });

        let (body, stored, detail) = match decision {
            Ok(()) => {
                let mut headers = parts.headers.clone();
                // RFC 9111 §3.1: hop-by-hop fields are not stored.
                remove_hop_by_hop(&mut headers);
                let policy = ResponsePolicy::new(
                    parts.status,
                    &headers,
                    &cc,
                    &self.options,
                    exchange.request_time,
                    exchange.response_time,
                );
                let vary = match Vary::from_headers(&headers) {
                    Vary::Fields(fields) => VaryKey::capture(&fields, &exchange.req_headers),
                    _ => VaryKey::default(),
                };
                let tee = Tee {
                    key: exchange.key,
                    status: parts.status,
                    headers,
                    policy,
                    vary,
                    req_headers: exchange.req_headers,
                    chunks: Vec::new(),
                    len: 0,
                    expected: body.size_hint().exact(),
                    limit: self.max_entry_size,
                    sink: Arc::clone(self) as Arc<dyn Commit>,
                };
                (ResponseBody::miss(body, tee), true, None)
            }
            Err(reason) => {
                tracing::trace!(key = %exchange.key, reason, "response not stored");
                (ResponseBody::pass(body), false, Some(reason))
            }
        };
        self.status.forwarded(
            &mut parts.headers,
            exchange.forward,
            parts.status,
            stored,
            detail,
        );
        Response::from_parts(parts, body)
    }
}

impl<St: Store> Commit for Shared<St> {
    fn commit(self: Arc<Self>, key: CacheKey, response: StoredResponse, req_headers: HeaderMap) {
        let shared = Arc::clone(&self);
        let mut put = Box::pin(async move {
            // Read, add the variant, write: concurrent stores of two variants of one URL may
            // keep only one of them, which costs a later miss, never a wrong answer.
            let entry = match shared.store.get(&key).await {
                Ok(Some(entry)) => entry.with_response(Arc::new(response), &req_headers),
                _ => StoredEntry::new(Arc::new(response)),
            };
            match shared.store.put(key, Arc::new(entry)).await {
                Ok(()) => {
                    shared.stats.stores.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => tracing::warn!(%error, "cache store failed"),
            }
        });
        // The in-memory store completes without waiting; trying once here makes the entry
        // visible before the client has read the last byte. Stores that must wait continue in
        // a task, without holding up the body.
        let mut cx = Context::from_waker(Waker::noop());
        if put.as_mut().poll(&mut cx).is_ready() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(put);
            }
            Err(_) => tracing::warn!("no tokio runtime to finish storing a response; dropped"),
        }
    }
}
