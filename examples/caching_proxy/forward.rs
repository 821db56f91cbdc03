//! The forwarding service: sends each request to the origin over a pooled client.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::Service;
use tower_cache_layer::policy::headers::remove_hop_by_hop;

use crate::config::Origin;

/// The body of the proxy's responses: the origin's streamed body, or a short error text.
pub(crate) type ProxyBody = Either<Incoming, Full<Bytes>>;

/// The origin-facing HTTP client: pooled, HTTP/1 for `http://`, HTTP/1 or HTTP/2 (ALPN) with
/// rustls and the webpki roots for `https://`.
pub(crate) type OriginClient = Client<HttpsConnector<HttpConnector>, Incoming>;

/// The reverse proxy: a Tower service forwarding each request to the origin.
///
/// It rewrites the URI to the origin (keeping path and query), sets `Host` to the origin's
/// authority, removes hop-by-hop headers both ways, adds `X-Forwarded-For`,
/// `X-Forwarded-Host` and `X-Forwarded-Proto`, and never fails: a transport error becomes
/// `502 Bad Gateway`, an origin that does not send headers in time `504 Gateway Timeout`.
///
/// Cloning it (tower clones a service for every request) is one reference count.
#[derive(Clone, Debug)]
pub(crate) struct Proxy {
    /// What every connection shares.
    shared: Arc<ProxyShared>,
    /// The connected client, for `X-Forwarded-For`.
    peer: SocketAddr,
}

/// The parts of [`Proxy`] shared by all connections.
#[derive(Debug)]
struct ProxyShared {
    /// The pooled client.
    client: OriginClient,
    /// Where requests go.
    origin: Origin,
    /// Bound on the wait for the origin's response headers.
    timeout: Duration,
}

impl Proxy {
    /// A proxy to `origin` with its own connection pool; `peer` is a placeholder until
    /// [`Proxy::for_peer`] sets the real client address.
    pub(crate) fn new(origin: Origin, timeout: Duration) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(Self {
            shared: Arc::new(ProxyShared {
                client,
                origin,
                timeout,
            }),
            peer: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        })
    }

    /// This proxy (sharing the connection pool) for requests from `peer`.
    pub(crate) fn for_peer(&self, peer: SocketAddr) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            peer,
        }
    }

    /// Turns a client request into the request sent to the origin.
    fn origin_request(&self, req: Request<Incoming>) -> Result<Request<Incoming>, http::Error> {
        let (mut parts, body) = req.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        let client_host = parts.headers.remove(header::HOST).or_else(|| {
            let authority = parts.uri.authority()?;
            HeaderValue::from_str(authority.as_str()).ok()
        });
        if let Some(host) = client_host {
            parts.headers.insert("x-forwarded-host", host);
        }
        let client_ip = self.peer.ip().to_string();
        let forwarded_for = match parts.headers.get("x-forwarded-for").map(|v| v.to_str()) {
            Some(Ok(previous)) => format!("{previous}, {client_ip}"),
            _ => client_ip,
        };
        parts
            .headers
            .insert("x-forwarded-for", HeaderValue::try_from(forwarded_for)?);
        parts
            .headers
            .insert("x-forwarded-proto", HeaderValue::from_static("http"));
        parts.headers.insert(
            header::HOST,
            HeaderValue::from_str(self.shared.origin.authority.as_str())?,
        );
        parts.uri = self.shared.origin.uri_for(parts.uri.path_and_query())?;
        // The client picks HTTP/1.1 or, over TLS with ALPN, HTTP/2 for the origin connection.
        parts.version = Version::HTTP_11;
        Ok(Request::from_parts(parts, body))
    }
}

impl Service<Request<Incoming>> for Proxy {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The legacy client is always ready; it queues on its pool.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let request = self.origin_request(req);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let (client, timeout) = (&shared.client, shared.timeout);
            let request = match request {
                Ok(request) => request,
                Err(err) => {
                    return Ok(text_response(
                        StatusCode::BAD_REQUEST,
                        format!("bad request: cannot forward this request ({err})"),
                    ));
                }
            };
            match tokio::time::timeout(timeout, client.request(request)).await {
                Ok(Ok(response)) => {
                    let (mut parts, body) = response.into_parts();
                    remove_hop_by_hop(&mut parts.headers);
                    // The server side picks the version spoken to our client.
                    parts.version = Version::HTTP_11;
                    Ok(Response::from_parts(parts, Either::Left(body)))
                }
                Ok(Err(err)) => {
                    let what = if err.is_connect() {
                        "origin unreachable"
                    } else {
                        "origin request failed"
                    };
                    tracing::warn!(error = %error_chain(&err), "{what}");
                    Ok(text_response(
                        StatusCode::BAD_GATEWAY,
                        format!("bad gateway: {what} ({})", root_cause(&err)),
                    ))
                }
                Err(_elapsed) => Ok(text_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "gateway timeout: the origin sent no response within {}s",
                        timeout.as_secs()
                    ),
                )),
            }
        })
    }
}

/// A plain-text response; `Cache-Control: no-store` keeps it out of every cache.
fn text_response(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(text + "\n"))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The innermost error of a chain, e.g. "Connection refused (os error 111)".
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
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
