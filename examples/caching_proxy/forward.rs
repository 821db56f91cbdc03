//! The forwarding service: sends each request to the origin over a pooled client.
//!
//! Requests arrive here from the cache after the front door ([`crate::front`]) gave them
//! their authority and forwarding fields; this service only points them at the origin's
//! address, retries where HTTP allows it, and turns transport failures into short answers.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::Service;
use tower_cache_layer::OriginUnreachable;
use tower_cache_layer::policy::remove_hop_by_hop;

use crate::config::Origin;

mod stamped;

use self::stamped::{OpenedAt, Stamped};
use crate::front::text_response;

/// The body of the proxy's responses: the origin's streamed body, or a short error text.
pub(crate) type ProxyBody = Either<Incoming, Full<Bytes>>;

/// The origin-facing HTTP client: HTTP/1 for `http://`, HTTP/1 or HTTP/2 (ALPN) with rustls
/// and the webpki roots for `https://`; its connections record when they were opened.
type OriginClient = Client<Stamped<crate::tls::Connector>, ClientBody>;

/// The forwarding settings (`--origin-timeout`, `--origin-idle-timeout`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ForwardLimits {
    /// Bound on the wait for the origin's response headers.
    pub(crate) response_timeout: Duration,
    /// How long an unused pooled origin connection is kept.
    pub(crate) idle_timeout: Duration,
}

/// The reverse proxy: a Tower service forwarding each request to the origin.
///
/// It points the request at the origin's address (keeping the path, query and `Host` the
/// front door chose), removes hop-by-hop fields from the answer, and never fails: a
/// transport error becomes `502 Bad Gateway`, an origin that does not send headers in time
/// `504 Gateway Timeout`, a client whose request body is malformed `400 Bad Request`.
///
/// An idempotent request (RFC 9110 §9.2.2) without a body that fails on a reused pooled
/// connection before any response arrived is sent once more on a fresh connection: the
/// origin may have closed the idle connection just as the request went out.
///
/// Cloning it (tower clones a service for every request) is one reference count.
#[derive(Clone, Debug)]
pub(crate) struct Proxy {
    shared: Arc<ProxyShared>,
}

#[derive(Debug)]
struct ProxyShared {
    /// The pooled client.
    client: OriginClient,
    /// A client without a pool, for retries: its connections are always new.
    fresh: OriginClient,
    /// Where requests go (a reverse proxy), or `None` (a forward proxy: each request goes
    /// where its absolute target says).
    origin: Option<Origin>,
    /// Bound on the wait for the origin's response headers.
    timeout: Duration,
}

impl Proxy {
    /// A proxy to `origin` (or, with `None`, to each request's target) with its own
    /// connection pool.
    pub(crate) fn new(
        origin: Option<Origin>,
        limits: ForwardLimits,
        tls: crate::tls::ClientConfig,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let connector = Stamped(crate::tls::connector(http, tls));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(limits.idle_timeout)
            .build(connector.clone());
        let fresh = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Self {
            shared: Arc::new(ProxyShared {
                client,
                fresh,
                origin,
                timeout: limits.response_timeout,
            }),
        }
    }
}

impl ProxyShared {
    /// Sends the request, retrying once where HTTP allows it, and answers what the client
    /// gets: the origin's response, or the proxy's own 400, 502 or 504.
    async fn forward(&self, parts: Parts, mut body: ClientBody) -> Response<ProxyBody> {
        let body_failed = body.failure();
        // RFC 9110 §9.2.2: a request whose method is idempotent may be repeated
        // automatically; only one whose body we can send again (none) is.
        let replay = (is_idempotent(&parts.method) && body.is_end_stream()).then(|| parts.clone());
        let started = Instant::now();
        let result = self
            .send(&self.client, Request::from_parts(parts, body))
            .await;
        let result = match (result, replay) {
            (Err(Failure::Transport(err)), Some(parts)) if on_reused_connection(&err, started) => {
                tracing::debug!(error = %error_chain(&err), "reused origin connection failed; retrying once");
                self.send(&self.fresh, Request::from_parts(parts, ClientBody::empty()))
                    .await
            }
            (result, _) => result,
        };
        match result {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                // The server side picks the version spoken to our client.
                parts.version = Version::HTTP_11;
                // Of the connection's details hyper attaches, only a reason phrase is the
                // response's own; the rest would be stored with it and cloned on every hit.
                let reason = parts.extensions.remove::<hyper::ext::ReasonPhrase>();
                parts.extensions = http::Extensions::new();
                if let Some(reason) = reason {
                    parts.extensions.insert(reason);
                }
                Response::from_parts(parts, Either::Left(body))
            }
            Err(failure) if body_failed.load(Ordering::Acquire) => {
                tracing::debug!(?failure, "the client's request body was malformed");
                error_response(
                    StatusCode::BAD_REQUEST,
                    "bad request: the request body is malformed or was cut short",
                )
            }
            Err(Failure::Timeout) => unreachable(error_response(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway timeout: the origin sent no response in time",
            )),
            Err(Failure::Transport(err)) => {
                // The details (addresses, OS, DNS and TLS errors) are for the log only.
                let what = if err.is_connect() {
                    "the origin is unreachable"
                } else {
                    "the origin failed to answer"
                };
                tracing::warn!(error = %error_chain(&err), "{what}");
                unreachable(error_response(
                    StatusCode::BAD_GATEWAY,
                    &format!("bad gateway: {what}"),
                ))
            }
        }
    }

    /// One attempt through `client`, bounded by the response timeout.
    async fn send(
        &self,
        client: &OriginClient,
        request: Request<ClientBody>,
    ) -> Result<Response<Incoming>, Failure> {
        match tokio::time::timeout(self.timeout, client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(Failure::Transport(err)),
            Err(_elapsed) => Err(Failure::Timeout),
        }
    }
}

/// `parts` pointed at `origin`'s address, keeping the target's path and query (or
/// asterisk-form) and the `Host` field the front door set. Without an origin (a forward
/// proxy), the absolute target stays as it is.
fn to_origin(origin: Option<&Origin>, parts: &mut Parts) -> Result<(), http::Error> {
    // The client picks HTTP/1.1 or, over TLS with ALPN, HTTP/2 for the origin connection.
    parts.version = Version::HTTP_11;
    let Some(origin) = origin else {
        return Ok(());
    };
    // The target's own path and query, by reference: not copied, not parsed again.
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(origin.scheme.clone());
    uri.authority = Some(origin.authority.clone());
    uri.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    parts.uri = Uri::from_parts(uri)?;
    Ok(())
}

/// Why no response came from the origin.
#[derive(Debug)]
enum Failure {
    /// Connecting, sending or reading the response head failed.
    Transport(hyper_util::client::legacy::Error),
    /// No response head within `--origin-timeout`.
    Timeout,
}

/// RFC 9110 §9.2.2: the idempotent methods (the safe ones, `PUT` and `DELETE`).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether `err` happened on a pooled connection opened before this request started (a
/// connection of our own making failing is the origin's answer, not a race with its
/// keep-alive timeout).
fn on_reused_connection(err: &hyper_util::client::legacy::Error, started: Instant) -> bool {
    if err.is_connect() {
        return false;
    }
    let Some(connected) = err.connect_info() else {
        return false;
    };
    let mut extensions = http::Extensions::new();
    connected.get_extras(&mut extensions);
    extensions
        .get::<OpenedAt>()
        .is_some_and(|opened| opened.0 < started)
}

impl Service<Request<ClientBody>> for Proxy {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The legacy client is always ready; it queues on its pool.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ClientBody>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            if to_origin(shared.origin.as_ref(), &mut parts).is_err() {
                return Ok(error_response(
                    StatusCode::BAD_REQUEST,
                    "bad request: the request target cannot be forwarded",
                ));
            }
            Ok(shared.forward(parts, body).await)
        })
    }
}

/// The proxy's own answer, with a one-line text body.
fn error_response(status: StatusCode, reason: &str) -> Response<ProxyBody> {
    text_response(status, reason).map(Either::Right)
}

/// `response`, marked as made because the origin could not be reached or did not answer
/// in time: not the origin's answer, so the cache may serve a stale one instead.
fn unreachable(mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    response.extensions_mut().insert(OriginUnreachable);
    response
}

/// Every error of a chain joined with ": ", for the log.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(source) = cause {
        text.push_str(": ");
        text.push_str(&source.to_string());
        cause = source.source();
    }
    text
}

pin_project_lite::pin_project! {
    /// A client's request body on its way to the origin. It records whether reading it
    /// failed, so that a malformed body is answered 400 rather than blamed on the origin.
    #[derive(Debug)]
    pub(crate) struct ClientBody {
        #[pin]
        inner: Option<Incoming>,
        // Made when the body is forwarded (`failure`), so that hits allocate nothing here.
        failed: Option<Arc<AtomicBool>>,
    }
}

impl ClientBody {
    /// The body `inner`, watched for errors.
    pub(crate) fn new(inner: Incoming) -> Self {
        Self {
            inner: Some(inner),
            failed: None,
        }
    }

    /// An empty body (for a retried request).
    fn empty() -> Self {
        Self {
            inner: None,
            failed: None,
        }
    }

    /// Set once reading the body failed.
    fn failure(&mut self) -> Arc<AtomicBool> {
        Arc::clone(self.failed.get_or_insert_with(Arc::default))
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(None);
        };
        let frame = std::task::ready!(inner.poll_frame(cx));
        if let Some(Err(_)) = &frame {
            if let Some(failed) = this.failed {
                failed.store(true, Ordering::Release);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_origin;

    #[test]
    fn asterisk_form_reaches_the_origin_as_such() {
        let origin = parse_origin("http://127.0.0.1:8000/api").unwrap();
        let (mut parts, ()) = Request::options("http://a/").body(()).unwrap().into_parts();
        parts.uri = Uri::builder()
            .scheme("http")
            .authority("a")
            .path_and_query("*")
            .build()
            .unwrap();
        to_origin(Some(&origin), &mut parts).unwrap();
        assert_eq!(parts.uri.path(), "*");
        assert_eq!(parts.uri.authority().unwrap(), "127.0.0.1:8000");
    }
}
