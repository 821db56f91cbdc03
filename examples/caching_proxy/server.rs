//! The server: accepts client connections within limits, answers each request through the
//! cache, logs it, and shuts down gracefully.
//!
//! Connections are tracked in a [`Registry`](crate::conns::Registry): at `--max-connections`,
//! the least recently active idle keep-alive connection is closed gracefully to admit a new
//! one, and on shutdown every connection is asked to close once its responses are written.
//! The public listener serves no admin function; the admin listener is [`crate::admin`].

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderName;
use http::uri::Authority;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder};
use tower_cache_layer::policy::CacheOptions;
use tower_cache_layer::store::BoxStore;
use tower_cache_layer::{Cache, CacheLayer, ResponseBody};

use crate::admin::AdminServer;
use crate::config::Config;
use crate::conns::{InFlight, Registry, Slot, TrackedBody};
use crate::forward::{ClientBody, ForwardLimits, Proxy, ProxyBody};
use crate::front::{
    Admission, Admitted, FrontDoor, FrontDoorConfig, OriginFields, Peer, UNSEEN_FIELDS,
};
use crate::log::{LogPeer, Outcome, RequestLog};
use crate::tunnel::Tunnels;
use crate::wire::Explained;

/// How long in-flight connections may take to finish after Ctrl-C or SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The cache over the proxy, as built by `ServiceBuilder::new().layer(cache).service(proxy)`,
/// the proxy setting its own fields on what the cache forwards ([`OriginFields`]).
type CachedProxy = Cache<OriginFields<Proxy>, BoxStore>;

/// The body of every response the server writes: the cache's body, or the proxy's own
/// answer (a refusal, a tunnel's `200`).
type ServerBody = Either<ResponseBody<ProxyBody>, Full<Bytes>>;

/// What the requests of one client connection share, made once per connection.
struct Connection {
    /// Called one request at a time, under a lock held only for the call (never across an
    /// `.await`): cloning the service for each request instead would cost four reference
    /// counts each way. Uncontended: a connection's requests are handed over by its one task.
    cached: Mutex<CachedProxy>,
    front: Arc<FrontDoor>,
    tunnels: Arc<Tunnels>,
    /// The client's forwarding fields.
    client: Arc<Peer>,
    /// The client's address as the request log writes it.
    peer_text: LogPeer,
    slot: Arc<Slot>,
}

/// The answer to an admitted request, while it is under way.
enum Pending {
    /// The front door's refusal (taken when the answer is made).
    Ready(Option<Response<ServerBody>>),
    /// A `CONNECT` tunnel being opened (boxed: it is rare, and its future is large).
    Tunnel(Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>),
    /// The cache's answer, the front door, and the authority the client asked for:
    /// redirects to the origin are pointed back at it.
    Cached(CachedFuture, Arc<FrontDoor>, Authority),
}

/// The cache's response future over the proxy.
type CachedFuture = <CachedProxy as Service<Request<ClientBody>>>::Future;

/// A client connection's requests, answered as hyper asks: each call starts the answer at once
/// ([`Connection::respond`]), with neither a service clone nor a readiness check per request.
#[derive(Clone)]
struct ConnectionService(Arc<Connection>);

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<TrackedBody<ServerBody>>;
    type Error = Infallible;
    type Future = Responding;

    fn call(&self, req: Request<Incoming>) -> Responding {
        self.0.respond(req)
    }
}

/// One request's answer under way, then its log line and its in-flight mark.
struct Responding {
    pending: Pending,
    /// `None` when the log level hides request lines, and once written.
    log: Option<RequestLog>,
    /// In flight until the response body is written in full or dropped; `None` once the
    /// response is made.
    in_flight: Option<InFlight>,
    /// Not yet polled: an answer ready at the first poll (a hit, a refusal) is logged with the
    /// time the request started, one clock read less.
    first_poll: bool,
}

impl Future for Responding {
    type Output = Result<Response<TrackedBody<ServerBody>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let at_once = std::mem::replace(&mut this.first_poll, false);
        let response = match &mut this.pending {
            Pending::Ready(response) => response.take().expect("polled after completion"),
            Pending::Tunnel(tunnel) => {
                std::task::ready!(tunnel.as_mut().poll(cx)).map(Either::Right)
            }
            Pending::Cached(cached, front, client_authority) => {
                let mut response = match std::task::ready!(Pin::new(cached).poll(cx)) {
                    Ok(response) => response.map(Either::Left),
                    Err(never) => match never {},
                };
                front.rewrite_redirects(response.headers_mut(), client_authority);
                response
            }
        };
        if let Some(log) = this.log.take() {
            // What the cache's `X-Cache` says, known without looking the field up.
            let outcome = match response.body() {
                Either::Left(body) if body.is_hit() => Outcome::Hit,
                Either::Left(_) => Outcome::Miss,
                Either::Right(_) => Outcome::None,
            };
            log.finish(response.status(), outcome, at_once);
        }
        let in_flight = this.in_flight.take().expect("polled after completion");
        Poll::Ready(Ok(response.map(|body| TrackedBody::new(body, in_flight))))
    }
}

impl Connection {
    /// Answers one request: the front door checks it and gives it its authority, the cache
    /// answers it (through the proxy on a miss), redirects to the origin are pointed back at
    /// the proxy, and one line is logged. The request is admitted, and handed to the cache,
    /// before the returned future is first polled: the future holds only what the answer
    /// needs afterwards.
    fn respond(&self, req: Request<Incoming>) -> Responding {
        let in_flight = self.slot.request();
        let log = RequestLog::start(&req, &self.peer_text);
        let pending = match self.front.admit_from(req, &self.client) {
            Err(refusal) => Pending::Ready(Some(refusal.into_response().map(Either::Right))),
            Ok(Admission::Tunnel {
                target,
                mut request,
            }) => {
                let tunnels = Arc::clone(&self.tunnels);
                Pending::Tunnel(Box::pin(
                    async move { tunnels.open(&mut request, target).await },
                ))
            }
            Ok(Admission::Request(Admitted {
                request,
                client_authority,
            })) => Pending::Cached(
                self.call_cache(request),
                Arc::clone(&self.front),
                client_authority,
            ),
        };
        Responding {
            pending,
            log,
            in_flight: Some(in_flight),
            first_poll: true,
        }
    }

    /// Hands `request` to the cache. The cache is ready whenever the proxy is, and the proxy
    /// always is (its client queues on its pool), so it is called at once, without a future
    /// that would hold the service and the request until polled.
    fn call_cache(&self, request: Request<Incoming>) -> CachedFuture {
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ready = cached.poll_ready(&mut Context::from_waker(Waker::noop()));
        debug_assert!(
            matches!(ready, Poll::Ready(Ok(()))),
            "the proxy is always ready"
        );
        cached.call(request.map(ClientBody::new))
    }
}

/// Runs the proxy until Ctrl-C or SIGTERM, then lets in-flight connections finish for up to
/// [`SHUTDOWN_GRACE`].
///
/// Client connections are bounded: at most `--max-connections` are served at once (at the
/// limit, the least recently active idle keep-alive connection is closed to admit the next
/// one; while all are busy, the next one waits), each must send a complete request head within
/// `--header-read-timeout`, and a request head is at most `--max-header-bytes` long.
pub(crate) async fn serve(config: Config) -> Result<(), Box<dyn StdError>> {
    let mut options = CacheOptions::default();
    options.store_set_cookie = config.store_set_cookie;
    // Set after the cache, on what it forwards: it does not see them as the origin does.
    options.unseen_fields = UNSEEN_FIELDS.to_vec();
    let store = crate::store::open(&config).await?;
    let mut cache = CacheLayer::builder()
        .store(store)
        .options(options)
        .max_entry_size(usize::try_from(config.max_entry_size).unwrap_or(usize::MAX))
        .max_stale_if_unreachable(Duration::from_secs(config.max_stale_if_unreachable));
    if config.origin.is_some() {
        // RFC 9213: as a CDN-like cache in front of an origin, obey `CDN-Cache-Control` over
        // `Cache-Control` when the origin sends it; browsers still see `Cache-Control`.
        cache = cache.targeted_cache_control(HeaderName::from_static("cdn-cache-control"));
    }
    if let Some(secs) = config.default_ttl {
        cache = cache.default_ttl(Duration::from_secs(secs));
    }
    if config.min_uses > 1 {
        cache = cache.min_uses(config.min_uses, Duration::from_secs(config.min_uses_window));
    }
    if config.no_doorkeeper {
        cache = cache.doorkeeper(false);
    }
    // Before the layer is built: it registers its metrics with the recorder installed then.
    let metrics = crate::metrics::install();
    let cache_layer = cache.build();
    crate::metrics::spawn_hit_ratio_log(cache_layer.handle());
    let proxy = Proxy::new(
        config.origin.clone(),
        ForwardLimits {
            response_timeout: Duration::from_secs(config.origin_timeout),
            idle_timeout: Duration::from_secs(config.origin_idle_timeout),
        },
        crate::tls::client_config(&config.origin_ca)?,
    );
    let front = Arc::new(FrontDoor::new(FrontDoorConfig {
        origin: config.origin.clone(),
        preserve_host: config.preserve_host,
        trusted: config.trusted_proxy.clone(),
        allow: (!config.allow.is_empty()).then(|| config.allow.clone()),
        connect_ports: config.connect_ports.clone(),
    }));
    let tunnels = Arc::new(Tunnels::new(
        config.max_connections as usize,
        Duration::from_secs(config.origin_timeout),
    ));

    let addr = SocketAddr::new(config.bind, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    // After the public listener: a proxy that cannot bind its port must not replace the admin
    // file of the proxy that has it.
    let admin = AdminServer::start(
        cache_layer.handle(),
        metrics,
        Arc::clone(&front),
        config.admin_port,
        config.admin_file.clone(),
        local,
    )
    .await?;
    match &config.origin {
        Some(origin) => tracing::info!("listening on http://{local}, origin {origin}"),
        None => tracing::info!("listening on http://{local} as a forward proxy"),
    }
    tracing::info!(
        "admin interface on http://{}, token in {}",
        admin.addr(),
        admin.secret_path().display()
    );

    let header_timeout = Duration::from_secs(config.header_read_timeout);
    let mut server = auto::Builder::new(TokioExecutor::new());
    // HTTP/1: hyper answers a head over `max_buf_size` with 431 and closes the connection.
    // The header read timeout is not hyper's (a timer armed for every request): a connection's
    // first head is bounded by its task below, and later ones by the idle sweeper, since a
    // connection waiting for a head has no request in flight.
    server
        .http1()
        .header_read_timeout(None)
        .max_buf_size(config.max_header_bytes);
    server
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    let registry = Registry::new(config.max_connections as usize);
    crate::conns::spawn_idle_sweeper(registry.clone(), header_timeout);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        // Accept, then wait for a slot: at the limit, one accepted connection waits while an
        // idle one is closed to make room (or, if all are busy, until one is free); further
        // connections wait in the listen backlog.
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
        let admitted = tokio::select! {
            admitted = registry.admit() => match admitted {
                Some(admitted) => admitted,
                None => break,
            },
            () = &mut shutdown => break,
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "set_nodelay failed");
        }
        let client = Arc::new(front.peer(peer));
        let connection = Arc::new(Connection {
            cached: Mutex::new(ServiceBuilder::new().layer(cache_layer.clone()).service(
                OriginFields::new(Arc::clone(&front), Arc::clone(&client), proxy.clone()),
            )),
            front: Arc::clone(&front),
            tunnels: Arc::clone(&tunnels),
            client,
            peer_text: LogPeer::new(peer),
            slot: Arc::new(admitted.slot),
        });
        let slot = Arc::clone(&connection.slot);
        let mut close = admitted.close;
        let conn = server
            .serve_connection_with_upgrades(
                TokioIo::new(Explained::new(stream)),
                ConnectionService(connection),
            )
            .into_owned();
        tokio::spawn(async move {
            tokio::pin!(conn);
            // hyper's header timeout starts once the protocol is known; a client that sends
            // nothing, or only part of the HTTP/2 preface, is bounded here.
            let header_deadline = tokio::time::sleep(header_timeout);
            tokio::pin!(header_deadline);
            let (mut closing, mut timing) = (false, true);
            let result = loop {
                tokio::select! {
                    // In this order (no random pick per poll): the others are rare.
                    biased;
                    result = conn.as_mut() => break result,
                    // To make room for a new connection, or shutting down: finish the
                    // responses in flight, then close.
                    _ = &mut close, if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    () = &mut header_deadline, if timing => {
                        if !slot.has_served() {
                            tracing::debug!(%peer, "no request head within the header read timeout");
                            return;
                        }
                        timing = false;
                    }
                }
            };
            if let Err(err) = result {
                tracing::debug!(error = %err, %peer, "connection error");
            }
        });
    }

    drop(listener);
    admin.stop();
    registry.shutdown();
    tracing::info!("shutting down; waiting for in-flight requests");
    tokio::select! {
        () = registry.closed() => tracing::info!("all connections closed"),
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
