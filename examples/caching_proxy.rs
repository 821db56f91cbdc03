//! A standalone caching reverse proxy: every request goes to one origin server, and
//! cacheable answers are kept in a shared RFC 9111 cache ([`CacheLayer`]).
//!
//! ```text
//! cargo run --release --example caching_proxy -- --port 3000 --origin http://127.0.0.1:8000
//! curl -i localhost:3000/index.html     # x-cache: MISS
//! curl -i localhost:3000/index.html     # x-cache: HIT
//! cargo run --release --example caching_proxy -- --clear-cache --port 3000
//! ```
//!
//! The service stack, per connection, is
//!
//! ```text
//! admin endpoint + request log  ->  CacheLayer  ->  Proxy (hyper-util Client)  ->  origin
//! ```
//!
//! built as `ServiceBuilder::new().layer(cache_layer).service(proxy)` and served with
//! hyper-util's [`TowerToHyperService`] and [`auto::Builder`] (HTTP/1 and HTTP/2).
//!
//! # Admin endpoint
//!
//! `POST /.well-known/tower-cache-layer/clear` empties the cache and answers `200 OK` with the
//! number of removed entries as a plain-text body. It is answered by the proxy itself, before
//! the cache, and only for clients connecting from a loopback address; anyone else gets
//! `403 Forbidden`. `caching_proxy --clear-cache` sends this request.
//!
//! # Client limits
//!
//! - `--max-header-bytes` (64 KiB): a longer request head gets `431 Request Header Fields Too
//!   Large` (HTTP/1) and the connection is closed.
//! - `--header-read-timeout` (10 s): a connection that has not sent a complete request head
//!   this long after connecting or after its previous response is closed (slowloris).
//! - `--max-connections` (1024): further connections wait in the listen backlog.
//! - Ctrl-C or SIGTERM: the listener closes at once (new connections are refused) and
//!   responses in flight are finished, for up to 10 s; then the process exits with code 0.
//!
//! # Not supported
//!
//! Protocol upgrades (WebSocket, `CONNECT`): `Upgrade` is a hop-by-hop header and is removed.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Either, Empty, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_cache_layer::policy::CacheOptions;
use tower_cache_layer::policy::headers::remove_hop_by_hop;
use tower_cache_layer::{Cache, CacheHandle, CacheLayer, OriginUnreachable, ResponseBody};
use tracing_subscriber::EnvFilter;

/// Path of the admin endpoint that empties the cache (method `POST`, loopback clients only).
const CLEAR_PATH: &str = "/.well-known/tower-cache-layer/clear";

/// How long in-flight connections may take to finish after Ctrl-C or SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long `--clear-cache` waits for the running proxy to answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A caching reverse proxy: forwards every request to one origin server and serves cacheable
/// responses (RFC 9111, shared cache) from memory.
///
/// Responses carry `X-Cache: HIT|MISS`, `Cache-Status` (RFC 9211) and, on hits, `Age`.
/// Log verbosity follows RUST_LOG (default `info`).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Config {
    /// Port to listen on; with --clear-cache, the port of the running proxy.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,

    /// IP address to listen on; with --clear-cache, the address of the running proxy.
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,

    /// Origin server to forward to: an absolute http:// or https:// URL, optionally with a base
    /// path that is prepended to every request path (e.g. https://example.com/api).
    #[arg(
        long,
        value_name = "URL",
        value_parser = parse_origin,
        required_unless_present = "clear_cache"
    )]
    origin: Option<Origin>,

    /// Total size of the cache in bytes; accepts suffixes K, M, G (powers of 1024), e.g. 256M.
    #[arg(long, value_name = "BYTES", default_value = "256M", value_parser = parse_size)]
    max_capacity: u64,

    /// Largest response body the cache stores, in bytes (suffixes K, M, G); larger ones are
    /// streamed through uncached.
    #[arg(long, value_name = "BYTES", default_value = "8M", value_parser = parse_size)]
    max_entry_size: u64,

    /// Cache responses that have no explicit freshness (no max-age, s-maxage or Expires) for
    /// this many seconds. no-store, private and explicit freshness still take precedence.
    /// Off by default.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    default_ttl: Option<u64>,

    /// Store responses that carry Set-Cookie, as RFC 9111 allows. Off by default: a shared
    /// cache would hand one user's cookie to the next, so such responses pass through
    /// uncached unless the origin names the cookie in `private="set-cookie"`.
    #[arg(long)]
    store_set_cookie: bool,

    /// Answer 504 Gateway Timeout when the origin has not sent response headers within this
    /// many seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    origin_timeout: u64,

    /// When the origin cannot be reached (or sends no response headers in time), serve a
    /// stored response that is stale by at most this many seconds instead of 502/504 (RFC 9111
    /// §4.2.4), unless it has must-revalidate, proxy-revalidate, no-cache or s-maxage. 0 turns
    /// it off.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    max_stale_if_unreachable: u64,

    /// Largest request head (request line and header fields) a client may send, in bytes
    /// (suffixes K, M, G; at least 8K). A larger one is answered 431 Request Header Fields Too
    /// Large and its connection closed.
    #[arg(long, value_name = "BYTES", default_value = "64K", value_parser = parse_header_limit)]
    max_header_bytes: usize,

    /// Close a client connection that has not sent a complete request head within this many
    /// seconds of connecting, or of its previous response (against slowloris clients; idle
    /// keep-alive connections are closed after this time too).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    header_read_timeout: u64,

    /// Serve at most this many client connections at once; further connections wait in the
    /// listen backlog until one closes.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_connections: u32,

    /// Do not start a proxy: ask the proxy running at --bind/--port to empty its cache, print
    /// how many entries it removed and exit.
    #[arg(long, conflicts_with_all = [
        "origin",
        "max_capacity",
        "max_entry_size",
        "default_ttl",
        "origin_timeout",
        "max_stale_if_unreachable",
        "store_set_cookie",
        "max_header_bytes",
        "header_read_timeout",
        "max_connections",
    ])]
    clear_cache: bool,
}

/// A validated origin: scheme, authority and a base path without a trailing slash.
#[derive(Clone, Debug)]
struct Origin {
    /// `http` or `https`.
    scheme: Scheme,
    /// Host and optional port; also the `Host` header sent to the origin.
    authority: Authority,
    /// Base path prepended to every request path; empty or starting with `/`, never ending in `/`.
    base_path: String,
}

impl Origin {
    /// The origin URI for a request's path and query: the base path joined with the request path.
    fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        let tail = path_and_query.map_or("/", PathAndQuery::as_str);
        let tail = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            // `OPTIONS *` and other non-origin-form targets: keep them under the base path.
            format!("/{tail}")
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{tail}", self.base_path))
            .build()
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

/// Clap value parser for `--origin`: an absolute http/https URL with a host, no user info,
/// query or fragment.
fn parse_origin(s: &str) -> Result<Origin, String> {
    if s.contains('#') {
        return Err("the origin must not have a fragment".into());
    }
    let uri: Uri = s
        .parse()
        .map_err(|e| format!("not a URL ({e}); expected e.g. http://127.0.0.1:8000"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        Some(other) => return Err(format!("unsupported scheme `{other}`; use http or https")),
        None => return Err("not an absolute URL; expected e.g. http://127.0.0.1:8000".into()),
    };
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .cloned()
        .ok_or("the origin URL has no host")?;
    if authority.as_str().contains('@') {
        return Err("the origin URL must not contain user info".into());
    }
    if uri.query().is_some() {
        return Err("the origin URL must not have a query".into());
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok(Origin {
        scheme,
        authority,
        base_path,
    })
}

/// Clap value parser for byte sizes: a plain integer or one with a K, M, G or T suffix
/// (powers of 1024; `KiB`, `MB` and the like are accepted too).
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size in bytes (e.g. 1048576, 512K, 256M, 1G)"))?;
    let shift = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("unknown size suffix in `{s}`; use K, M, G or T")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// The smallest `--max-header-bytes`: hyper's minimum read buffer (8 KiB).
const MIN_HEADER_BYTES: u64 = 8 * 1024;

/// Clap value parser for `--max-header-bytes`: a size (see [`parse_size`]) of at least
/// [`MIN_HEADER_BYTES`].
fn parse_header_limit(s: &str) -> Result<usize, String> {
    let bytes = parse_size(s)?;
    if bytes < MIN_HEADER_BYTES {
        return Err(format!("`{s}` is too small; the minimum is 8K"));
    }
    usize::try_from(bytes).map_err(|_| format!("`{s}` is too large"))
}

/// The body of the proxy's responses: the origin's streamed body, or a short error text.
type ProxyBody = Either<Incoming, Full<Bytes>>;

/// The origin-facing HTTP client: pooled, HTTP/1 for `http://`, HTTP/1 or HTTP/2 (ALPN) with
/// rustls and the webpki roots for `https://`.
type OriginClient = Client<HttpsConnector<HttpConnector>, Incoming>;

/// The reverse proxy: a Tower service forwarding each request to the origin.
///
/// It rewrites the URI to the origin (keeping path and query), sets `Host` to the origin's
/// authority, removes hop-by-hop headers both ways, adds `X-Forwarded-For`,
/// `X-Forwarded-Host` and `X-Forwarded-Proto`, and never fails: a transport error becomes
/// `502 Bad Gateway`, an origin that does not send headers in time `504 Gateway Timeout`.
///
/// Cloning it (tower clones a service for every request) is one reference count.
#[derive(Clone, Debug)]
struct Proxy {
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
    fn new(origin: Origin, timeout: Duration) -> Result<Self, rustls::Error> {
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
    fn for_peer(&self, peer: SocketAddr) -> Self {
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
                    let mut response = text_response(
                        StatusCode::BAD_GATEWAY,
                        format!("bad gateway: {what} ({})", root_cause(&err)),
                    );
                    // Not the origin's answer: the cache may serve stale instead.
                    response.extensions_mut().insert(OriginUnreachable);
                    Ok(response)
                }
                Err(_elapsed) => {
                    let mut response = text_response(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!(
                            "gateway timeout: the origin sent no response within {}s",
                            timeout.as_secs()
                        ),
                    );
                    response.extensions_mut().insert(OriginUnreachable);
                    Ok(response)
                }
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

/// The cache over the proxy, as built by `ServiceBuilder::new().layer(cache).service(proxy)`.
type CachedProxy = Cache<Proxy>;

/// The body of every response the server writes: the cache's body, or an admin answer.
type ServerBody = Either<ResponseBody<ProxyBody>, Full<Bytes>>;

/// Answers one request: the admin endpoint itself, everything else through the cache, and
/// logs one line per request.
async fn handle(
    cached: CachedProxy,
    cache: CacheHandle,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<ServerBody>, Infallible> {
    let started = Instant::now();
    // The log line's fields are only gathered when it will be written.
    let logged = tracing::enabled!(tracing::Level::INFO).then(|| {
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
        (req.method().clone(), path)
    });
    let response = if req.uri().path() == CLEAR_PATH {
        admin(&cache, peer, req.method()).await.map(Either::Right)
    } else {
        match cached.oneshot(req).await {
            Ok(response) => response.map(Either::Left),
            Err(never) => match never {},
        }
    };
    if let Some((method, path)) = logged {
        let x_cache = response
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info!(
            %method,
            path = %path,
            status = response.status().as_u16(),
            cache = %x_cache,
            elapsed_ms = started.elapsed().as_millis() as u64,
            %peer,
        );
    }
    Ok(response)
}

/// The admin endpoint: `POST` from a loopback peer empties the cache and answers the number
/// of removed entries.
async fn admin(cache: &CacheHandle, peer: SocketAddr, method: &Method) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: String| {
        let mut response = Response::new(Full::new(Bytes::from(text)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    };
    if !peer.ip().to_canonical().is_loopback() {
        return plain(
            StatusCode::FORBIDDEN,
            "forbidden: the cache can only be cleared from the proxy's own host\n".into(),
        );
    }
    if method != Method::POST {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use POST\n".into(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    match cache.clear().await {
        Ok(removed) => {
            tracing::info!(removed, "cache cleared");
            plain(StatusCode::OK, removed.to_string())
        }
        Err(err) => {
            tracing::error!(error = %err, "clearing the cache failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: cannot clear the cache ({err})\n"),
            )
        }
    }
}

/// Runs the proxy until Ctrl-C or SIGTERM, then lets in-flight connections finish for up to
/// [`SHUTDOWN_GRACE`].
///
/// Client connections are bounded: at most `--max-connections` are served at once (the next
/// one is accepted when a permit is free), each must send a complete request head within
/// `--header-read-timeout`, and a request head is at most `--max-header-bytes` long.
async fn serve(config: Config, origin: Origin) -> Result<(), Box<dyn StdError>> {
    let mut options = CacheOptions::default();
    options.store_set_cookie = config.store_set_cookie;
    let mut cache = CacheLayer::builder()
        .options(options)
        .max_capacity(config.max_capacity)
        .max_entry_size(usize::try_from(config.max_entry_size).unwrap_or(usize::MAX))
        .max_stale_if_unreachable(Duration::from_secs(config.max_stale_if_unreachable))
        // RFC 9213: as a CDN-like cache in front of an origin, obey `CDN-Cache-Control` over
        // `Cache-Control` when the origin sends it; browsers still see `Cache-Control`.
        .targeted_cache_control(HeaderName::from_static("cdn-cache-control"));
    if let Some(secs) = config.default_ttl {
        cache = cache.default_ttl(Duration::from_secs(secs));
    }
    let cache_layer = cache.build();
    let cache_handle = cache_layer.handle();
    let proxy = Proxy::new(origin.clone(), Duration::from_secs(config.origin_timeout))?;

    let addr = SocketAddr::new(config.bind, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!("listening on http://{local}, origin {origin}");

    let header_timeout = Duration::from_secs(config.header_read_timeout);
    let mut server = auto::Builder::new(TokioExecutor::new());
    // HTTP/1: hyper answers a head over `max_buf_size` with 431 and closes the connection,
    // and closes one whose head does not arrive within the timeout (also when idle).
    server
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(config.max_header_bytes);
    server
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    let slots = Arc::new(Semaphore::new(config.max_connections as usize));
    let graceful = GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        // A permit first, then `accept`: beyond the limit, connections wait in the backlog.
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                tracing::warn!(
                    max_connections = config.max_connections,
                    "connection limit reached; new connections wait"
                );
                tokio::select! {
                    permit = Arc::clone(&slots).acquire_owned() => {
                        permit.expect("the connection semaphore is never closed")
                    }
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "set_nodelay failed");
        }
        let cached = ServiceBuilder::new()
            .layer(cache_layer.clone())
            .service(proxy.for_peer(peer));
        let cache_handle = cache_handle.clone();
        // Set when the connection's first request head has been read.
        let started = Arc::new(AtomicBool::new(false));
        let service = tower::service_fn({
            let started = Arc::clone(&started);
            move |req| {
                started.store(true, Ordering::Relaxed);
                handle(cached.clone(), cache_handle.clone(), peer, req)
            }
        });
        let conn = server
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            // hyper's header timeout starts once the protocol is known; a client that sends
            // nothing, or only part of the HTTP/2 preface, is bounded here.
            let result = match tokio::time::timeout(header_timeout, &mut conn).await {
                Ok(result) => result,
                Err(_elapsed) if started.load(Ordering::Relaxed) => conn.await,
                Err(_elapsed) => {
                    tracing::debug!(%peer, "no request head within the header read timeout");
                    return;
                }
            };
            if let Err(err) = result {
                tracing::debug!(error = %err, %peer, "connection error");
            }
        });
    }

    drop(listener);
    tracing::info!("shutting down; waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("connections still open after {}s; exiting", SHUTDOWN_GRACE.as_secs());
        }
    }
    Ok(())
}

/// Completes on Ctrl-C, or on SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// `--clear-cache`: asks the proxy at `addr` to empty its cache; returns the removed count.
async fn clear_remote(addr: SocketAddr) -> Result<u64, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("no caching proxy is listening on {addr} ({e})"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("cannot talk HTTP to {addr} ({e})"))?;
    tokio::spawn(conn);
    let request = Request::post(CLEAR_PATH)
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no answer from {addr} ({e})"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("cannot read the answer from {addr} ({e})"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    if status != StatusCode::OK {
        return Err(format!(
            "the server at {addr} refused to clear the cache: {status} {}",
            text.trim()
        ));
    }
    text.trim().parse().map_err(|_| {
        format!("the server at {addr} is not a caching_proxy (unexpected answer to {CLEAR_PATH})")
    })
}

/// Parses the command line; on an error prints one line to stderr and exits with code 2
/// (`--help` and `--version` print as usual).
fn parse_config() -> Config {
    Config::try_parse().unwrap_or_else(|err| {
        if !err.use_stderr() {
            err.exit();
        }
        // Clap's message is "error: …" with details, a usage block and a hint, separated by
        // blank lines: keep the first paragraph, on one line.
        let rendered = err.render().to_string();
        let line = rendered
            .lines()
            .take_while(|line| !line.trim().is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        eprintln!("{line}");
        std::process::exit(2);
    })
}

/// Entry point: `--clear-cache` talks to a running proxy, otherwise runs one.
fn main() -> ExitCode {
    let config = parse_config();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };

    if config.clear_cache {
        // A proxy listening on a wildcard address is reached over loopback.
        let ip = match config.bind {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let addr = SocketAddr::new(ip, config.port);
        let result = runtime.block_on(async {
            tokio::time::timeout(ADMIN_TIMEOUT, clear_remote(addr))
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "no answer from {addr} within {}s",
                        ADMIN_TIMEOUT.as_secs()
                    ))
                })
        });
        return match result {
            Ok(removed) => {
                let noun = if removed == 1 { "entry" } else { "entries" };
                println!("cleared {removed} {noun} from the cache at {addr}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        };
    }

    let Some(origin) = config.origin.clone() else {
        // Clap enforces `required_unless_present = "clear_cache"`.
        eprintln!("error: --origin is required");
        return ExitCode::from(2);
    };
    match runtime.block_on(serve(config, origin)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
