//! The inner service's response to a forwarded GET or HEAD: what [`decide::after_response`]
//! makes of it, acted on; and background revalidation (RFC 5861 §3).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use super::Exchange;
use crate::OriginUnreachable;
use crate::body::ResponseBody;
use crate::flight::FlightGuard;
use crate::key::CacheKey;
use crate::policy::decide::{self, AfterResponse};
use crate::policy::headers::{compacted, decimal_value};
use crate::policy::range::{ContentRange, completing_part};
use crate::policy::revalidate::{add_validators, freshen_headers, head_freshens};
use crate::policy::{CacheControl, ResponsePolicy};
use crate::shared::Shared;
use crate::status::{Forward, Served};
use crate::store::{Store, StoredResponse};

impl<St: Store> Shared<St> {
    /// Handles the inner service's answer to a forwarded GET or HEAD: decides what it is
    /// ([`decide::after_response`]) and acts on it.
    pub(super) async fn on_response<B>(
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
        let unreachable = response.extensions().get::<OriginUnreachable>().is_some();
        let (method, completing) = (&exchange.method, exchange.completing);
        let selected = selected.as_ref();
        match decide::after_response(status, method, unreachable, completing) {
            AfterResponse::Unreachable => {
                let stale = selected.and_then(|stored| self.stale_answer(&exchange, stored, None));
                return stale.unwrap_or_else(|| self.forwarded(response, exchange, flight));
            }
            AfterResponse::CompletesPart => {
                let prefix = selected.and_then(|part| stored_prefix(part, response.headers()));
                if let Some((prefix, complete)) = prefix {
                    return self.completed(response, exchange, flight, prefix, complete);
                }
            }
            AfterResponse::Error => {
                let stale = selected.and_then(|s| self.stale_answer(&exchange, s, Some(status)));
                if let Some(answer) = stale {
                    return answer;
                }
            }
            AfterResponse::NotModified => {
                let not_modified = response.headers();
                if let Some(answer) = self.revalidated(&exchange, &validating, not_modified).await {
                    return answer;
                }
            }
            AfterResponse::Freshen | AfterResponse::PassOn => {}
        }
        // What is left of a special case that came to nothing, as any other response.
        let freshen = decide::after_full_response(status, method) == AfterResponse::Freshen;
        if let Some(stored) = selected.filter(|_| freshen) {
            self.head_update(&exchange, stored, response.headers())
                .await;
        }
        self.forwarded(response, exchange, flight)
    }

    /// The rest of a stored prefix (RFC 9111 §3.4): the client, which asked for all of it,
    /// gets a 200 made of the stored bytes (`prefix`) and the new ones, `complete` bytes in
    /// all, and the new part is stored, where it completes the stored one. (A 206 that does
    /// not complete it, which an origin honouring If-Range never sends, is passed on as it
    /// came.)
    fn completed<B>(
        self: &Arc<Self>,
        response: Response<B>,
        exchange: Exchange,
        flight: Option<FlightGuard>,
        prefix: Bytes,
        complete: u64,
    ) -> Response<ResponseBody<B>>
    where
        B: Body<Data = Bytes>,
    {
        let (mut parts, body) = self.forwarded(response, exchange, flight).into_parts();
        parts.status = StatusCode::OK;
        parts.headers.remove(CONTENT_RANGE);
        // At `http`'s size limit the body goes out chunked instead.
        let _ = parts
            .headers
            .try_insert(CONTENT_LENGTH, decimal_value(complete));
        Response::from_parts(parts, body.with_prefix(prefix))
    }

    /// A 304 to a validation of the `validating` responses: the one it selects
    /// ([`decide::selected_by_not_modified`]) is freshened, and answers the client
    /// (RFC 9111 §4.3.3, §4.3.4); `None` when it selects none.
    async fn revalidated<B>(
        &self,
        exchange: &Exchange,
        validating: &[Arc<StoredResponse>],
        not_modified: &HeaderMap,
    ) -> Option<Response<ResponseBody<B>>> {
        let client = &exchange.req_headers;
        let validated = validating.iter().map(|stored| &stored.headers);
        let index = decide::selected_by_not_modified(validated, client, not_modified)?;
        let updated = self
            .freshen(exchange, &validating[index], not_modified)
            .await;
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
            self.store_failed("cache invalidation failed", Some(&exchange.key), &error);
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
        // The update's values are slices of the 304's read buffer: copied, as for any
        // response the cache stores, so the entry neither keeps that buffer nor weighs less
        // than it holds.
        let headers = compacted(&freshen_headers(&stored.headers, update));
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
                self.store_failed("cache update failed", Some(&exchange.key), &error);
            }
        }
        updated
    }

    /// Revalidates `stored` with the client's request in a task of its own (RFC 5861 §3);
    /// at most one per key at a time.
    pub(super) fn revalidate_in_background<S, ReqBody, ResBody>(
        self: &Arc<Self>,
        inner: S,
        req: Request<ReqBody>,
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
        let revalidation = Revalidation {
            req_cc,
            key,
            stored,
            guard,
        };
        runtime.spawn(Arc::clone(self).revalidate(inner, req, revalidation));
    }

    /// The background revalidation itself: a 304 that selects the stored response freshens
    /// it (RFC 9111 §4.3.4); a full response goes through the usual capture.
    async fn revalidate<S, ReqBody, ResBody>(
        self: Arc<Self>,
        mut inner: S,
        mut req: Request<ReqBody>,
        revalidation: Revalidation,
    ) where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: Body<Data = Bytes>,
    {
        let Revalidation {
            req_cc,
            key,
            stored,
            guard,
        } = revalidation;
        let req_headers = req.headers().clone();
        add_validators(&stored.headers, req.headers_mut());
        let request_time = self.clock.now();
        let started = std::time::Instant::now();
        let Ok(response) = inner.call(req).await else {
            return;
        };
        self.metrics.origin_latency(started.elapsed());
        let exchange = Exchange {
            key,
            forward: Forward::Stale,
            method: Method::GET,
            req_headers,
            req_cc,
            request_time,
            response_time: self.clock.now(),
            completing: false,
            admitted: Ok(()),
            for_client: false,
        };
        if response.status() == StatusCode::NOT_MODIFIED {
            let (client, update) = (&exchange.req_headers, response.headers());
            let validated = std::iter::once(&stored.headers);
            if decide::selected_by_not_modified(validated, client, update).is_some() {
                self.freshen(&exchange, &stored, response.headers()).await;
            }
            return;
        }
        // Reading the body to the end stores it.
        let body = self.forwarded(response, exchange, Some(guard)).into_body();
        let mut body = std::pin::pin!(body);
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            if frame.is_err() {
                break;
            }
        }
    }
}

/// What a background revalidation carries besides the inner service and the request.
struct Revalidation {
    /// The request's `Cache-Control`, parsed once.
    req_cc: CacheControl,
    key: CacheKey,
    /// The stale response being revalidated.
    stored: Arc<StoredResponse>,
    /// The key's single flight, held until the response is stored.
    guard: FlightGuard,
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
