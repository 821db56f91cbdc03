//! The server: accepts client connections within limits, answers each request through the
//! cache, logs it, and shuts down gracefully.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderName;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::{ServiceBuilder, ServiceExt};
use tower_cache_layer::policy::CacheOptions;
use tower_cache_layer::{Cache, CacheHandle, CacheLayer, ResponseBody};

use crate::admin::{CLEAR_PATH, admin};
use crate::config::Config;
use crate::forward::{ClientBody, ForwardLimits, Proxy, ProxyBody};
use crate::front::{Admission, Admitted, FrontDoor, FrontDoorConfig};
use crate::tunnel::Tunnels;
use crate::wire::Explained;

/// How long in-flight connections may take to finish after Ctrl-C or SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The cache over the proxy, as built by `ServiceBuilder::new().layer(cache).service(proxy)`.
type CachedProxy = Cache<Proxy>;

/// The body of every response the server writes: the cache's body, or an admin answer.
type ServerBody = Either<ResponseBody<ProxyBody>, Full<Bytes>>;

/// Answers one request: the front door checks it and gives it its authority, the cache
/// answers it (through the proxy on a miss), redirects to the origin are pointed back at
/// the proxy, and one line is logged.
async fn handle(
    cached: CachedProxy,
    front: Arc<FrontDoor>,
    tunnels: Arc<Tunnels>,
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
    let response = match front.admit(req, peer) {
        Err(refusal) => refusal.into_response().map(Either::Right),
        Ok(Admission::Tunnel {
            target,
            mut request,
        }) => tunnels.open(&mut request, target).await.map(Either::Right),
        Ok(Admission::Request(Admitted {
            request,
            client_authority,
        })) => {
            let mut response = match cached.oneshot(request.map(ClientBody::new)).await {
                Ok(response) => response.map(Either::Left),
                Err(never) => match never {},
            };
            front.rewrite_redirects(response.headers_mut(), &client_authority);
            response
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

/// Runs the proxy until Ctrl-C or SIGTERM, then lets in-flight connections finish for up to
/// [`SHUTDOWN_GRACE`].
///
/// Client connections are bounded: at most `--max-connections` are served at once (the next
/// one is accepted when a permit is free), each must send a complete request head within
/// `--header-read-timeout`, and a request head is at most `--max-header-bytes` long.
pub(crate) async fn serve(config: Config) -> Result<(), Box<dyn StdError>> {
    let mut options = CacheOptions::default();
    options.store_set_cookie = config.store_set_cookie;
    let mut cache = CacheLayer::builder()
        .options(options)
        .max_capacity(config.max_capacity)
        .max_entry_size(usize::try_from(config.max_entry_size).unwrap_or(usize::MAX));
    if config.origin.is_some() {
        // RFC 9213: as a CDN-like cache in front of an origin, obey `CDN-Cache-Control` over
        // `Cache-Control` when the origin sends it; browsers still see `Cache-Control`.
        cache = cache.targeted_cache_control(HeaderName::from_static("cdn-cache-control"));
    }
    if let Some(secs) = config.default_ttl {
        cache = cache.default_ttl(Duration::from_secs(secs));
    }
    let cache_layer = cache.build();
    let cache_handle = cache_layer.handle();
    let proxy = Proxy::new(
        config.origin.clone(),
        ForwardLimits {
            response_timeout: Duration::from_secs(config.origin_timeout),
            idle_timeout: Duration::from_secs(config.origin_idle_timeout),
        },
    )?;
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
    match &config.origin {
        Some(origin) => tracing::info!("listening on http://{local}, origin {origin}"),
        None => tracing::info!("listening on http://{local} as a forward proxy"),
    }

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
            .service(proxy.clone());
        let front = Arc::clone(&front);
        let tunnels = Arc::clone(&tunnels);
        // Set when the connection's first request head has been read.
        let started = Arc::new(AtomicBool::new(false));
        let service = tower::service_fn({
            let started = Arc::clone(&started);
            move |req| {
                started.store(true, Ordering::Relaxed);
                handle(
                    cached.clone(),
                    Arc::clone(&front),
                    Arc::clone(&tunnels),
                    peer,
                    req,
                )
            }
        });
        let conn = server
            .serve_connection_with_upgrades(
                TokioIo::new(Explained::new(stream)),
                TowerToHyperService::new(service),
            )
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
