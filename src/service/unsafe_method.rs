//! Requests with unsafe methods: forwarded, then what they change is invalidated.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use http_body::Body;
use tower_service::Service;

use super::Exchange;
use crate::body::ResponseBody;
use crate::key::CacheKey;
use crate::metrics::RequestOutcome;
use crate::policy::CacheControl;
use crate::policy::invalidate::invalidation_uris;
use crate::policy::storable::post_response_answers_get;
use crate::shared::Shared;
use crate::status::Forward;
use crate::store::Store;

/// A request with an unsafe method: forwarded, then what is stored for its target (and for
/// `Location` / `Content-Location` on the same origin) is invalidated (RFC 9111 §4.4). A
/// response to `POST` that names its own target in `Content-Location` and has explicit
/// freshness is then stored for later `GET`s (RFC 9110 §9.3.3).
pub(super) async fn unsafe_call<S, St, ReqBody, ResBody>(
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
    shared.count(RequestOutcome::Method);
    let method = req.method().clone();
    let req_headers = (method == Method::POST).then(|| req.headers().clone());
    let request_time = shared.clock.now();
    let started = Instant::now();
    let response = inner.call(req).await?;
    shared.metrics.origin_latency(started.elapsed());
    let response_time = shared.clock.now();
    if let Ok(target) = key.as_str().parse::<Uri>() {
        let uris = invalidation_uris(&method, response.status(), &target, response.headers());
        shared.invalidate(uris).await;
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
                    admitted: Ok(()),
                    for_client: false,
                };
                return Ok(shared.forwarded(response, exchange, None));
            }
        }
    }
    let (mut parts, body) = response.into_parts();
    shared
        .status
        .forwarded_parts(&mut parts, Forward::Method, None);
    let body = ResponseBody::pass(body).counted(shared.metrics.origin_bytes());
    Ok(Response::from_parts(parts, body))
}

impl<St: Store> Shared<St> {
    /// Removes what is stored for each of `uris` (RFC 9111 §4.4); failures are logged.
    async fn invalidate(&self, uris: impl IntoIterator<Item = Uri>) {
        for key in uris.into_iter().filter_map(|uri| CacheKey::from_uri(&uri)) {
            if let Err(error) = self.store.remove(&key).await {
                self.store_failed("cache invalidation failed", Some(&key), &error);
            }
        }
    }
}
