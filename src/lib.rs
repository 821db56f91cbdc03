//! A shared HTTP cache (RFC 9111) for any [Tower](https://docs.rs/tower) service.
//!
//! [`CacheLayer`] wraps a `Service<http::Request<B>>` (an axum `Router`, a hyper `service_fn`,
//! a reverse-proxy client) and answers repeated requests from a cache, following HTTP caching
//! as RFC 9111 defines it for a shared cache. Every response carries `X-Cache: HIT` or
//! `X-Cache: MISS`, a standard `Cache-Status` field (RFC 9211), and hits carry `Age`.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_cache_layer::CacheLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counter = Arc::clone(&calls);
//! let origin = tower::service_fn(move |_req: Request<Full<bytes::Bytes>>| {
//!     counter.fetch_add(1, Ordering::SeqCst);
//!     async {
//!         Ok::<_, Infallible>(
//!             Response::builder()
//!                 .header("cache-control", "max-age=60")
//!                 .body(Full::from("hello"))
//!                 .unwrap(),
//!         )
//!     }
//! });
//! let mut service = ServiceBuilder::new().layer(CacheLayer::new()).service(origin);
//!
//! for expected in ["MISS", "HIT"] {
//!     let request = Request::get("http://example.com/greeting").body(Full::default())?;
//!     let response = service.ready().await?.call(request).await?;
//!     assert_eq!(response.headers()["x-cache"], expected);
//!     assert_eq!(response.into_body().collect().await?.to_bytes(), "hello");
//! }
//! assert_eq!(calls.load(Ordering::SeqCst), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # With axum
//!
//! One layer is one cache, shared by every route it wraps:
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_cache_layer::CacheLayer;
//!
//! let cache = CacheLayer::builder().max_capacity(64 * 1024 * 1024).build();
//! let handle = cache.handle(); // clear(), purge(), purge_tagged(), soft_purge(), stats()
//! let app: Router = Router::new()
//!     .route("/", get(|| async { ([("cache-control", "max-age=30")], "home") }))
//!     .layer(cache);
//! ```
//!
//! # With hyper
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use hyper::body::Incoming;
//! use hyper_util::rt::{TokioExecutor, TokioIo};
//! use hyper_util::server::conn::auto;
//! use hyper_util::service::TowerToHyperService;
//! use tower::ServiceBuilder;
//! use tower_cache_layer::CacheLayer;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let service = ServiceBuilder::new()
//!     .layer(CacheLayer::new())
//!     .service_fn(|_req: Request<Incoming>| async {
//!         Ok::<_, Infallible>(Response::new(Full::<bytes::Bytes>::from("hi")))
//!     });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let service = TowerToHyperService::new(service.clone());
//!     tokio::spawn(async move {
//!         let _ = auto::Builder::new(TokioExecutor::new())
//!             .serve_connection(TokioIo::new(stream), service)
//!             .await;
//!     });
//! }
//! # }
//! ```
//!
//! # Configuration
//!
//! [`CacheLayer::builder`] sets the store's size, the largest stored body, the policy's
//! [`CacheOptions`](policy::CacheOptions), the clock and the status headers; every setting
//! has a correct default for a shared cache. With a [`ManualClock`](clock::ManualClock),
//! tests move time themselves:
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::{Duration, SystemTime};
//!
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_cache_layer::CacheLayer;
//! use tower_cache_layer::clock::ManualClock;
//! use tower_cache_layer::policy::CacheOptions;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let mut options = CacheOptions::default();
//! options.store_set_cookie = true; // the origin's cookies are not per user
//!
//! let clock = ManualClock::new(SystemTime::now());
//! let cache = CacheLayer::builder()
//!     .max_capacity(64 * 1024 * 1024) // bytes, headers included
//!     .max_entry_size(1024 * 1024) // larger bodies stream through uncached
//!     .options(options)
//!     .default_ttl(Duration::from_secs(60)) // for responses without explicit freshness
//!     .clock(clock.clone())
//!     .cache_name("edge") // `Cache-Status: edge; …`
//!     .build();
//!
//! // No `Cache-Control` or `Expires`: fresh for the default TTL.
//! let origin = tower::service_fn(|_req: Request<Full<bytes::Bytes>>| async {
//!     Ok::<_, Infallible>(Response::new(Full::<bytes::Bytes>::from("hello")))
//! });
//! let mut service = ServiceBuilder::new().layer(cache).service(origin);
//!
//! let mut x_cache = Vec::new();
//! for advance in [0, 59, 2] {
//!     clock.advance(Duration::from_secs(advance));
//!     let request = Request::get("http://example.com/").body(Full::default())?;
//!     let response = service.ready().await?.call(request).await?;
//!     assert!(response.headers()["cache-status"].to_str()?.starts_with("edge;"));
//!     x_cache.push(response.headers()["x-cache"].clone());
//!     response.into_body().collect().await?;
//! }
//! assert_eq!(x_cache, ["MISS", "HIT", "MISS"]); // stale after 61 s
//! # Ok(())
//! # }
//! ```
//!
//! # Managing a running cache
//!
//! [`CacheLayer::handle`] returns a [`CacheHandle`] on the same cache as the layer and every
//! service it made: it reads the counters, removes one URL or clears everything (an admin
//! endpoint or a deploy hook, for example).
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response, Uri};
//! use http_body_util::{BodyExt, Full};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_cache_layer::CacheLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let cache = CacheLayer::new();
//! let handle = cache.handle();
//! let origin = tower::service_fn(|_req: Request<Full<bytes::Bytes>>| async {
//!     Ok::<_, Infallible>(
//!         Response::builder()
//!             .header("cache-control", "max-age=600")
//!             .body(Full::<bytes::Bytes>::from("page"))
//!             .unwrap(),
//!     )
//! });
//! let mut service = ServiceBuilder::new().layer(cache).service(origin);
//! let mut get = async |uri: &str| -> Result<String, tower_cache_layer::BoxError> {
//!     let request = Request::get(uri).body(Full::default())?;
//!     let response = service.ready().await?.call(request).await?;
//!     let x_cache = response.headers()["x-cache"].to_str()?.to_owned();
//!     response.into_body().collect().await?;
//!     Ok(x_cache)
//! };
//!
//! assert_eq!(get("http://example.com/a").await?, "MISS");
//! assert_eq!(get("http://example.com/b").await?, "MISS");
//! assert_eq!(get("http://example.com/a").await?, "HIT");
//! let stats = handle.stats();
//! assert_eq!((stats.hits(), stats.misses(), stats.stores()), (1, 2, 2));
//!
//! // Remove one URL: its next request goes to the origin again.
//! assert!(handle.remove(&Uri::from_static("http://example.com/a")).await?);
//! assert_eq!(get("http://example.com/a").await?, "MISS");
//!
//! // Remove everything.
//! handle.clear().await?;
//! handle.store().run_pending_tasks().await;
//! assert_eq!(handle.store().entry_count(), 0);
//! assert_eq!(get("http://example.com/b").await?, "MISS");
//! # Ok(())
//! # }
//! ```
//!
//! # Custom stores
//!
//! Responses are kept in a [`MemoryStore`](store::MemoryStore) unless
//! [`CacheLayerBuilder::store`] picks another implementation of [`Store`](store::Store); its
//! documentation has a complete one.
//!
//! # What is cached
//!
//! A shared cache as RFC 9111 defines it. Each rule is a pure function in the crate's
//! policy module, citing its section; [`policy`] makes public what a user needs: the options,
//! the metadata kept with every stored response and the reuse decision made on it.
//!
//! | Rule | RFC |
//! |---|---|
//! | Only responses to `GET` are stored; `HEAD` is answered from a stored `GET` and freshens it; a `POST` response with explicit freshness and its own target in `Content-Location` answers later `GET`s | 9111 §3, §4.3.5; 9110 §9.3.3 |
//! | `no-store` (request or response) and unqualified `private` responses are not stored; qualified `private="f"` / `no-cache="f"` store the rest without the named fields | 9111 §3, §5.2 |
//! | With `Authorization`, only `public`, `s-maxage` or `must-revalidate` responses are stored | 9111 §3.5 |
//! | Freshness: `s-maxage`, then `max-age`, then `Expires` − `Date`; an invalid `Expires` is already expired | 9111 §4.2.1, §5.3 |
//! | Heuristic freshness (10% of the age of `Last-Modified`, or a configured default) | 9111 §4.2.2 |
//! | `Age` is computed and sent on every answer from the cache | 9111 §4.2.3 |
//! | Stale responses are validated (`If-None-Match` with every stored tag, `If-Modified-Since`); a `304` freshens them | 9111 §4.3 |
//! | The client's `If-None-Match` / `If-Modified-Since` are answered `304` from a fresh stored response | 9111 §4.3.2, 9110 §13 |
//! | `no-cache`, `must-revalidate`, `proxy-revalidate`, `must-understand`, `public` | 9111 §5.2.2 |
//! | Request `no-cache`, `no-store`, `max-age`, `min-fresh`, `max-stale`, `only-if-cached` | 9111 §5.2.1 |
//! | `stale-while-revalidate` (one background revalidation per key) and `stale-if-error` | 5861 |
//! | Stale responses served when the origin cannot be reached ([`OriginUnreachable`], an `Err`), up to [`CacheLayerBuilder::max_stale_if_unreachable`], never with `must-revalidate`, `proxy-revalidate`, `no-cache` or `s-maxage` | 9111 §4.2.4 |
//! | A targeted field such as `CDN-Cache-Control` takes precedence ([`CacheLayerBuilder::targeted_cache_control`]) | 9213 |
//! | Several `Vary` variants per URL; `Vary: *` is not stored, nor a `Vary` on a field the inner service sets on the way to the origin ([`policy::CacheOptions::unseen_fields`]) | 9111 §4.1 |
//! | Unsafe methods invalidate the target URI and same-origin `Location` / `Content-Location` | 9111 §4.4 |
//! | A single byte range of a stored `200` is served `206` / `416` from the cache, with `If-Range` | 9110 §14 |
//! | `206` responses are stored and answer the ranges they hold; parts with the same strong `ETag` are combined, and a stored prefix is completed with a request for the rest | 9111 §3.3, §3.4 |
//! | Hop-by-hop fields are not stored | 9111 §3.1 |
//! | Responses with `Set-Cookie` are not stored (configurable with [`policy::CacheOptions`]) | — |
//!
//! Bodies stream: a miss reaches the client frame by frame while a copy is kept, and is stored
//! only once complete and within [`CacheLayerBuilder::max_entry_size`]. A failing or
//! truncated body is never stored.
//!
//! # Concurrent requests for one key
//!
//! When many requests miss on the same key at once, only the first goes to the inner service;
//! the others wait for it and are answered from the response it stores, with
//! `Cache-Status: …; collapsed` (collapsed forwarding, as in Varnish or Traffic Server). If
//! that response cannot be stored (`no-store`, `private`, too large, an error, another `Vary`
//! variant), or the first request is cancelled before it shares its response (below), the
//! waiters go forward themselves; a key
//! whose response was not storable is remembered for 30 seconds so that its requests do not
//! wait on one another. Waiting is bounded ([`CacheLayerBuilder::collapse_requests`]), and
//! background revalidations (`stale-while-revalidate`) are single-flight per key too.
//!
//! The waiters do not wait for the whole body (read-while-write, as Varnish does): once the
//! first request's response is found storable, they are answered from it at once, exactly as
//! from the stored response (`Vary`, freshness, preconditions, ranges, `Age`), and stream its
//! body as it arrives from the origin. This holds for a body of known length
//! (`Content-Length`) kept in memory; its bytes are reserved in the capture budget
//! ([`CacheLayerBuilder::max_capture_bytes`]) until the last reader is done. Other bodies
//! (chunked, or taken in by a store that keeps bodies outside memory) are waited for until
//! stored, as above. If the origin's body fails, or the first request's client goes away
//! (the capture stops with it), the waiters' bodies are cut: their `Content-Length` tells
//! their clients they are incomplete. The first request's connection paces the capture, so
//! the waiters get the bytes as fast as its client takes them; a waiter that gets no byte
//! for the collapse timeout is cut too, never left waiting.
//!
//! # Operating it
//!
//! - [`CacheLayerBuilder::key_headers`]: request fields (a tenant header) that select a stored
//!   response besides the URL, as an implicit `Vary`.
//! - [`CacheLayerBuilder::bypass`]: a predicate that sends chosen requests past the cache
//!   (`Cache-Status: …; fwd=bypass`).
//! - [`CacheLayerBuilder::min_uses`]: store a response only once its key was requested a
//!   number of times within a window (nginx's `proxy_cache_min_uses`).
//! - [`CacheLayerBuilder::doorkeeper`]: on by default; while the store is full, a response is
//!   stored only from its key's second request (what a full moka store would turn away is
//!   not copied and inserted first).
//! - [`CacheHandle::stats`]: hits, misses, passes (requests the cache does not handle) and
//!   stores; with the `metrics` feature, counters, gauges and a histogram through the
//!   `metrics` facade, listed in [`metrics`].
//!
//! # Memory
//!
//! The store is bounded in bytes ([`CacheLayerBuilder::max_capacity`]), headers included;
//! bytes held by misses being captured are bounded as well
//! ([`CacheLayerBuilder::max_capture_bytes`]). A response that is not stored streams through
//! with nothing retained beyond the frame in flight.
//!
//! # Runtime
//!
//! The service runs on Tokio: storing and background revalidation spawn tasks, and waiting
//! for a collapsed request uses Tokio's timer, so the runtime needs its time driver (as
//! `#[tokio::main]` and `#[tokio::test]` set up).

#![deny(missing_docs, unreachable_pub, unsafe_code)]
#![warn(
    missing_debug_implementations,
    rust_2018_idioms,
    clippy::await_holding_lock,
    clippy::todo,
    clippy::too_many_lines
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admission;
mod body;
mod budget;
pub mod clock;
mod flight;
mod future;
mod growing;
mod handle;
mod key;
mod layer;
pub mod metrics;
pub mod policy;
mod recent;
mod service;
mod shared;
mod status;
pub mod store;
mod tally;
mod unreachable;

#[doc(inline)]
pub use self::body::ResponseBody;
#[doc(inline)]
pub use self::future::ResponseFuture;
#[doc(inline)]
pub use self::handle::{CacheHandle, CacheStats};
#[doc(inline)]
pub use self::key::CacheKey;
#[doc(inline)]
pub use self::layer::{CacheLayer, CacheLayerBuilder, DEFAULT_MIN_USES_WINDOW};
#[doc(inline)]
pub use self::service::Cache;
#[doc(inline)]
pub use self::unreachable::OriginUnreachable;

/// Alias for a type-erased error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Not public API: the policy's parsers and rules, for the crate's property tests
/// (`tests/parsers.rs`) and its fuzz target (`fuzz/`).
///
/// Nothing here follows semantic versioning; it changes whenever the policy does.
#[doc(hidden)]
pub mod __private {
    use std::time::SystemTime;

    use http::{HeaderMap, StatusCode};

    use crate::policy::{CacheOptions, ResponsePolicy};

    pub use crate::policy::cache_control::{CacheControl, targeted_cache_control};
    pub use crate::policy::conditional::{
        EntityTag, EntityTagList, Precondition, evaluate_preconditions, not_modified_headers,
        parse_etag_list, strong_match, weak_match,
    };
    pub use crate::policy::freshness::{
        Freshness, FreshnessSource, freshness_lifetime, initial_age,
    };
    pub use crate::policy::headers::{MAX_DELTA_SECONDS, parse_delta_seconds, parse_http_date};
    pub use crate::policy::invalidate::{invalidation_uris, is_safe_method};
    pub use crate::policy::range::{
        ContentRange, RangeDecision, combine_parts, content_range, evaluate_range,
        evaluate_range_in_part,
    };
    pub use crate::policy::revalidate::{
        add_validators, freshen_headers, head_freshens, not_modified_matches,
    };
    pub use crate::policy::storable::{NotStorable, is_storable};
    pub use crate::policy::vary::Vary;

    /// The [`ResponsePolicy`] the cache computes for a response it stores.
    pub fn response_policy(
        status: StatusCode,
        headers: &HeaderMap,
        cc: &CacheControl,
        options: &CacheOptions,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> ResponsePolicy {
        ResponsePolicy::new(status, headers, cc, options, request_time, response_time)
    }
}
