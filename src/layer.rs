//! [`CacheLayer`] and its builder.

use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use std::time::Duration;

use tower_layer::Layer;

use crate::admission::{Admission, Doorkeeper};
use crate::clock::{Clock, SystemClock};
use crate::flight::{CaptureBudget, Flights};
use crate::handle::CacheHandle;
use crate::metrics::Metrics;
use crate::policy::CacheOptions;
use crate::service::Cache;
use crate::shared::{Bypass, Shared, Stats};
use crate::status::{StatusHeaders, is_sf_token};
use crate::store::{MemoryStore, Store};
use crate::tally::KeyTally;

/// Default largest storable response: 8 MiB.
const DEFAULT_MAX_ENTRY_SIZE: usize = 8 * 1024 * 1024;
/// Default identifier in `Cache-Status`.
const DEFAULT_NAME: &str = "tower-cache-layer";

/// A [`Layer`] that puts a shared HTTP cache in front of a service.
///
/// All services made by one `CacheLayer` (and its clones) share one cache, so a layer applied
/// to every route of an axum `Router` is one cache, not one per route. See the
/// [crate docs](crate) for examples.
pub struct CacheLayer<St = MemoryStore> {
    shared: Arc<Shared<St>>,
}

impl CacheLayer {
    /// A cache in memory with the default settings: 256 MiB, responses up to 8 MiB.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for a cache in memory; [`CacheLayerBuilder::store`] picks another store.
    pub fn builder() -> CacheLayerBuilder {
        CacheLayerBuilder::with_source(StoreSource::Memory {
            capacity: crate::store::DEFAULT_CAPACITY,
            make: MemoryStore::new,
        })
    }
}

impl Default for CacheLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<St: Store> CacheLayer<St> {
    /// A cache with default settings over `store`.
    pub fn with_store(store: St) -> Self {
        CacheLayerBuilder::with_source(StoreSource::Made(store)).build()
    }

    /// A handle to clear the cache, remove entries and read its counters.
    pub fn handle(&self) -> CacheHandle<St> {
        CacheHandle::new(Arc::clone(&self.shared))
    }
}

impl<St> Clone for CacheLayer<St> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<St> fmt::Debug for CacheLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("store", &std::any::type_name::<St>())
            .field("options", &self.shared.options)
            .field("max_entry_size", &self.shared.max_entry_size)
            .finish_non_exhaustive()
    }
}

impl<S, St> Layer<S> for CacheLayer<St> {
    type Service = Cache<S, St>;

    fn layer(&self, inner: S) -> Cache<S, St> {
        Cache::from_shared(inner, Arc::clone(&self.shared))
    }
}

/// Builder for [`CacheLayer`], from [`CacheLayer::builder`].
#[must_use]
pub struct CacheLayerBuilder<St = MemoryStore> {
    store: StoreSource<St>,
    options: CacheOptions,
    max_entry_size: usize,
    clock: Arc<dyn Clock>,
    name: String,
    x_cache: bool,
    targeted: Option<HeaderName>,
    collapse: Option<Duration>,
    max_capture_bytes: Option<usize>,
    min_uses: Option<(u32, Duration)>,
    doorkeeper: bool,
    key_headers: Vec<HeaderName>,
    bypass: Option<Bypass>,
}

/// The store a builder will use: made only by [`CacheLayerBuilder::build`], so that a memory
/// store replaced by [`CacheLayerBuilder::max_capacity`] or [`CacheLayerBuilder::store`] is never
/// made (a memory store makes its hash table up front: megabytes).
enum StoreSource<St> {
    /// A store given by the user.
    Made(St),
    /// A memory store of `capacity` bytes, made by `make`.
    Memory { capacity: u64, make: fn(u64) -> St },
}

impl<St> StoreSource<St> {
    fn made(self) -> St {
        match self {
            Self::Made(store) => store,
            Self::Memory { capacity, make } => make(capacity),
        }
    }
}

/// Default window of [`CacheLayerBuilder::min_uses`]: 10 minutes.
pub const DEFAULT_MIN_USES_WINDOW: Duration = Duration::from_secs(600);

/// Default wait of a collapsed request for the one it follows.
const DEFAULT_COLLAPSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound for the bytes of misses being captured: 64 MiB (at least twice the largest
/// storable response).
const DEFAULT_CAPTURE_BYTES: usize = 64 * 1024 * 1024;

impl CacheLayerBuilder {
    /// Total bytes the in-memory store may hold, headers included. Default 256 MiB.
    pub fn max_capacity(mut self, bytes: u64) -> Self {
        self.store = StoreSource::Memory {
            capacity: bytes,
            make: MemoryStore::new,
        };
        self
    }
}

impl<St: Store> CacheLayerBuilder<St> {
    fn with_source(store: StoreSource<St>) -> Self {
        Self {
            store,
            options: CacheOptions::default(),
            max_entry_size: DEFAULT_MAX_ENTRY_SIZE,
            clock: Arc::new(SystemClock),
            name: DEFAULT_NAME.to_owned(),
            x_cache: true,
            targeted: None,
            collapse: Some(DEFAULT_COLLAPSE_TIMEOUT),
            max_capture_bytes: None,
            min_uses: None,
            doorkeeper: true,
            key_headers: Vec::new(),
            bypass: None,
        }
    }

    /// Keeps responses in `store` instead.
    pub fn store<St2: Store>(self, store: St2) -> CacheLayerBuilder<St2> {
        CacheLayerBuilder {
            store: StoreSource::Made(store),
            options: self.options,
            max_entry_size: self.max_entry_size,
            clock: self.clock,
            name: self.name,
            x_cache: self.x_cache,
            targeted: self.targeted,
            collapse: self.collapse,
            max_capture_bytes: self.max_capture_bytes,
            min_uses: self.min_uses,
            doorkeeper: self.doorkeeper,
            key_headers: self.key_headers,
            bypass: self.bypass,
        }
    }

    /// Largest response body that is stored, in bytes. Default 8 MiB. Larger responses are
    /// streamed to the client uncached (`Cache-Status: ...; detail=too-large`), as are
    /// responses of more than 16,384 header field names, whatever this is.
    pub fn max_entry_size(mut self, bytes: usize) -> Self {
        self.max_entry_size = bytes;
        self
    }

    /// A heuristic freshness lifetime for responses that carry no explicit freshness
    /// (RFC 9111 §4.2.2); see [`CacheOptions::default_ttl`]. Default: none.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.options.default_ttl = Some(ttl);
        self
    }

    /// How stale a stored response may be and still be served when the origin cannot be
    /// reached: the inner service returned an error, or a response it marked
    /// [`OriginUnreachable`](crate::OriginUnreachable) (RFC 9111 §4.2.4). Never for responses
    /// with `must-revalidate`, `proxy-revalidate`, `no-cache` or `s-maxage`.
    /// `Duration::ZERO` turns it off; see [`CacheOptions::max_stale_if_unreachable`].
    /// Default one hour.
    pub fn max_stale_if_unreachable(mut self, staleness: Duration) -> Self {
        self.options.max_stale_if_unreachable = staleness;
        self
    }

    /// Replaces all policy options (including any [`default_ttl`](Self::default_ttl) and
    /// [`max_stale_if_unreachable`](Self::max_stale_if_unreachable)).
    pub fn options(mut self, options: CacheOptions) -> Self {
        self.options = options;
        self
    }

    /// The clock the cache reads; [`SystemClock`] by default.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The cache's name in `Cache-Status` (RFC 9211). Default `tower-cache-layer`.
    ///
    /// # Panics
    ///
    /// When `name` is not a structured-field token (RFC 8941 §3.3.4): a letter or `*`
    /// followed by letters, digits and `!#$%&'*+-.^_`|~:/`.
    pub fn cache_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        assert!(
            is_sf_token(&name),
            "cache name must be a structured-field token: {name:?}"
        );
        self.name = name;
        self
    }

    /// Whether responses carry `X-Cache: HIT | MISS`. Default `true`. `Cache-Status` is always
    /// sent.
    pub fn x_cache_header(mut self, enabled: bool) -> Self {
        self.x_cache = enabled;
        self
    }

    /// A targeted cache-control field (RFC 9213), such as `CDN-Cache-Control`, that this cache
    /// obeys instead of `Cache-Control` when a response carries it in a valid form. The field
    /// is passed on to the client unchanged. Default: none.
    pub fn targeted_cache_control(mut self, field: HeaderName) -> Self {
        self.targeted = Some(field);
        self
    }

    /// Collapsed forwarding: when several requests miss on one key at once, only the first
    /// goes to the inner service and the others wait, up to `timeout`, to be answered from
    /// the response it stores (`Cache-Status: …; collapsed`). A waiter whose wait ends without
    /// a usable response (not storable, an error, a different `Vary` variant, the timeout)
    /// forwards its own request. `None` turns it off. Default: on, 5 seconds.
    ///
    /// A waiter is answered as soon as the response is found storable, and streams its body
    /// as it arrives, when that body has a known length and is kept in memory
    /// (read-while-write; see the crate docs, "Concurrent requests for one key"); one that
    /// then gets no byte for `timeout` is cut.
    ///
    /// Keys whose response turned out not storable are remembered for 30 seconds, during
    /// which their requests do not wait for one another (in a fixed table of 16,384 slots,
    /// 256 KiB per layer, in pairs: a new key takes an expired mark's slot, else that of the
    /// key marked fewer times, whose requests then wait for one another again).
    pub fn collapse_requests(mut self, timeout: Option<Duration>) -> Self {
        self.collapse = timeout;
        self
    }

    /// Bound for the bytes held by all misses being captured at once. A miss that would pass
    /// it still streams to its client, uncached. Default: 64 MiB, or twice
    /// [`max_entry_size`](Self::max_entry_size) when that is more.
    pub fn max_capture_bytes(mut self, bytes: usize) -> Self {
        self.max_capture_bytes = Some(bytes);
        self
    }

    /// Admission after `uses` requests, as nginx's `proxy_cache_min_uses`: a response is
    /// stored only once its key was requested `uses` times within `window` (counted from the
    /// key's first request; [`DEFAULT_MIN_USES_WINDOW`], 10 minutes, is a good start).
    /// Default: off (`uses` of 0 or 1 is the same: every storable response is stored).
    ///
    /// Only `GET` requests for keys with nothing stored count: once stored, a URL's later variants
    /// and refreshes are stored as usual. A request not yet admitted goes forward on its own
    /// (it does not wait for, nor lead, other requests for its key) and its response is passed
    /// on unstored, marked `Cache-Status: <name>; fwd=miss; …; detail=min-uses` (`X-Cache:
    /// MISS`). Keeping one-off URLs out saves the store for the ones requested again.
    ///
    /// The counters are bounded: a fixed table of 131,072 places (2 MiB), in pairs. A key not
    /// counted yet takes an expired count's place, else that of the key counted fewer times
    /// (which only delays that key's admission), so a flood of one-off URLs does not push out
    /// the counts of URLs requested again. Uses above 65,535 count as 65,535.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use std::time::Duration;
    ///
    /// use http::{Request, Response};
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{Service, ServiceBuilder, ServiceExt};
    /// use tower_cache_layer::CacheLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_cache_layer::BoxError> {
    /// let cache = CacheLayer::builder()
    ///     .min_uses(2, Duration::from_secs(600))
    ///     .build();
    /// let origin = tower::service_fn(|_req: Request<Full<bytes::Bytes>>| async {
    ///     let response = Response::builder().header("cache-control", "max-age=60");
    ///     Ok::<_, Infallible>(response.body(Full::from("hello")).unwrap())
    /// });
    /// let mut service = ServiceBuilder::new().layer(cache).service(origin);
    /// let mut seen = Vec::new();
    /// for _ in 0..3 {
    ///     let request = Request::get("http://example.com/").body(Full::default())?;
    ///     let response = service.ready().await?.call(request).await?;
    ///     seen.push(response.headers()["x-cache"].clone());
    ///     response.into_body().collect().await?;
    /// }
    /// assert_eq!(seen, ["MISS", "MISS", "HIT"]); // stored on the second request
    /// # Ok(())
    /// # }
    /// ```
    pub fn min_uses(mut self, uses: u32, window: Duration) -> Self {
        self.min_uses = (uses > 1).then_some((uses, window));
        self
    }

    /// The doorkeeper: while the store is full ([`Store::is_full`]), a response is stored only
    /// if its key was requested before within the last 10 minutes (counted while the store is
    /// full). Default: on. Has no effect with [`min_uses`](Self::min_uses), which asks for
    /// more uses anyway, nor with a store that never says it is full (the default of
    /// [`Store::is_full`]; [`MemoryStore`] does, from 31/32 of its capacity).
    ///
    /// A full [`MemoryStore`] admits a new entry only if its key was asked for more often than
    /// the keys of the entries it would evict (moka's TinyLFU), so it turns away most keys
    /// asked for once, but only after the response was copied and inserted. The doorkeeper
    /// decides first: a flood of one-off URLs (a crawler, cache-busting query strings) into
    /// a full store costs little more than forwarding, instead of a third more, and a URL
    /// requested a second time is stored as before. A request turned away goes forward on its
    /// own (it does not wait for, nor lead, other requests for its key), and its response is
    /// passed on unstored, marked `Cache-Status: <name>; fwd=miss; …; detail=store-full`
    /// (`X-Cache: MISS`).
    ///
    /// Off, every storable response is handed to the store, which may turn it away.
    pub fn doorkeeper(mut self, on: bool) -> Self {
        self.doorkeeper = on;
        self
    }

    /// Request header fields whose values select a stored response besides the URL, such as
    /// a tenant header: each listed field is treated as if every response named it in `Vary`
    /// (RFC 9111 §4.1), in addition to the response's own `Vary`. A URL's responses for
    /// different values live under its one key, each as a variant, so a request is served
    /// only a response stored for the same values (a request without the field, only one
    /// stored for a request without it), and purging the URL removes them all. Default: none.
    ///
    /// The fields are compared as `Vary` compares them (all lines combined, whitespace
    /// normalised). A 304 from the origin only freshens a stored response of the request's
    /// own values.
    ///
    /// ```
    /// use http::HeaderName;
    /// use tower_cache_layer::CacheLayer;
    ///
    /// let cache = CacheLayer::builder()
    ///     .key_headers([HeaderName::from_static("x-tenant")])
    ///     .build();
    /// ```
    pub fn key_headers(mut self, fields: impl IntoIterator<Item = HeaderName>) -> Self {
        for field in fields {
            if !self.key_headers.contains(&field) {
                self.key_headers.push(field);
            }
        }
        self
    }

    /// A predicate over each `GET` and `HEAD` request's head: when it returns `true`, the
    /// request goes straight to the inner service, is not answered from the store and its
    /// response is not stored, and the response is marked `Cache-Status: <name>; fwd=bypass`
    /// (RFC 9211 §2.2) and `X-Cache: MISS`. Other methods are never answered from the store
    /// anyway, and unsafe ones still invalidate (RFC 9111 §4.4), so the predicate is not
    /// asked about them. Default: none.
    ///
    /// It runs on every `GET` and `HEAD` request, before the lookup: keep it cheap.
    ///
    /// ```
    /// use tower_cache_layer::CacheLayer;
    ///
    /// // Logged-in users (a session cookie) get their pages from the origin.
    /// let cache = CacheLayer::builder()
    ///     .bypass(|head: &http::request::Parts| {
    ///         head.headers
    ///             .get_all(http::header::COOKIE)
    ///             .iter()
    ///             .any(|value| value.as_bytes().windows(8).any(|w| w == b"session="))
    ///     })
    ///     .build();
    /// ```
    pub fn bypass<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&http::request::Parts) -> bool + Send + Sync + 'static,
    {
        self.bypass = Some(Arc::new(predicate));
        self
    }

    /// Builds the layer.
    ///
    /// With the `metrics` feature, the cache's metrics are registered here, with the
    /// recorder installed at this moment (see [`metrics`](crate::metrics)).
    pub fn build(self) -> CacheLayer<St> {
        CacheLayer {
            shared: Arc::new(Shared {
                store: self.store.made(),
                options: self.options,
                max_entry_size: self.max_entry_size,
                clock: self.clock,
                status: Arc::new(StatusHeaders::new(self.name, self.x_cache)),
                stats: Stats::default(),
                targeted: self.targeted,
                flights: Arc::new(Flights::default()),
                capture: Arc::new(CaptureBudget::new(self.max_capture_bytes.unwrap_or(
                    DEFAULT_CAPTURE_BYTES.max(self.max_entry_size.saturating_mul(2)),
                ))),
                collapse: self.collapse,
                admission: self
                    .min_uses
                    .map(|(uses, window)| Admission::new(uses, window)),
                doorkeeper: self.doorkeeper.then(Doorkeeper::new),
                key_headers: self.key_headers,
                bypass: self.bypass,
                metrics: Arc::new(Metrics::register()),
                writes: KeyTally::default(),
            }),
        }
    }
}

impl<St> fmt::Debug for CacheLayerBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayerBuilder")
            .field("store", &std::any::type_name::<St>())
            .field("options", &self.options)
            .field("max_entry_size", &self.max_entry_size)
            .field("name", &self.name)
            .field("x_cache", &self.x_cache)
            .field("targeted", &self.targeted)
            .field("collapse", &self.collapse)
            .field("max_capture_bytes", &self.max_capture_bytes)
            .field("min_uses", &self.min_uses)
            .field("key_headers", &self.key_headers)
            .field("bypass", &self.bypass.is_some())
            .finish_non_exhaustive()
    }
}
