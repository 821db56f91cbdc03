//! Pure HTTP caching policy: RFC 9111 (HTTP Caching) and the parts of RFC 9110 it relies on.
//!
//! Nothing in this module performs I/O, reads a clock or touches a body: every function takes
//! the request and response metadata and an explicit `now`, and returns a decision. The
//! [`Cache`](crate::Cache) service acts on those decisions.
//!
//! Public here is what configuring the cache, implementing a [`Store`](crate::store::Store)
//! or inspecting a stored response needs: the [`CacheOptions`]; the per-response metadata
//! every stored response carries ([`ResponsePolicy`], [`VaryKey`]); the reuse decision made
//! on it ([`reuse()`], [`may_serve_stale_if_error`], [`may_serve_stale_if_unreachable`]); and
//! [`remove_hop_by_hop`], which a proxy in front of or behind the cache needs too. The
//! parsers and the other rules behind them (each citing its RFC section) are private, so that
//! they can change without a breaking release.

pub(crate) mod cache_control;
pub(crate) mod conditional;
pub(crate) mod decide;
pub(crate) mod freshness;
pub(crate) mod headers;
pub(crate) mod invalidate;
pub(crate) mod lifetime;
pub(crate) mod range;
pub(crate) mod reuse;
pub(crate) mod revalidate;
pub(crate) mod storable;
pub(crate) mod tags;
pub(crate) mod vary;

#[cfg(test)]
mod test_util;

use http::HeaderName;
use std::time::Duration;

pub(crate) use self::cache_control::{CacheControl, targeted_cache_control};
#[doc(inline)]
pub use self::freshness::ResponsePolicy;
#[doc(inline)]
pub use self::headers::remove_hop_by_hop;
#[doc(inline)]
pub use self::reuse::{Reuse, may_serve_stale_if_error, may_serve_stale_if_unreachable, reuse};
pub(crate) use self::vary::Vary;
#[doc(inline)]
pub use self::vary::VaryKey;

/// Default of [`CacheOptions::max_stale_if_unreachable`]: one hour.
pub const DEFAULT_MAX_STALE_IF_UNREACHABLE: Duration = Duration::from_secs(60 * 60);

/// Tunables of the caching policy.
///
/// [`Default`] is a correct shared cache as RFC 9111 describes it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CacheOptions {
    /// Fraction of the time since `Last-Modified` used as the heuristic freshness lifetime
    /// (RFC 9111 §4.2.2). Default `0.1`.
    pub heuristic_fraction: f64,
    /// Upper bound for a `Last-Modified` heuristic lifetime. Default 24 hours.
    pub max_heuristic_lifetime: Duration,
    /// A configured heuristic lifetime for responses without explicit freshness
    /// (RFC 9111 §4.2.2), like nginx's `proxy_cache_valid` or Varnish's `default_ttl`.
    /// It takes precedence over the `Last-Modified` heuristic. Default `None`.
    pub default_ttl: Option<Duration>,
    /// Store responses that carry `Set-Cookie`. Default `false`: a shared cache handing one
    /// user's cookie to another is a privacy leak, so (as Varnish and nginx do) such responses
    /// pass through uncached.
    pub store_set_cookie: bool,
    /// How stale a stored response may be and still be served when the origin cannot be
    /// reached (RFC 9111 §4.2.4 allows a disconnected cache to serve stale responses):
    /// see [`may_serve_stale_if_unreachable`] and [`OriginUnreachable`](crate::OriginUnreachable).
    /// `Duration::ZERO` turns it off. Default one hour: long enough to ride out an origin
    /// restart or a short outage, short enough that nobody is served day-old content without
    /// asking for it (Squid's `max_stale` and Traffic Server's `max_stale_age` default to a
    /// week). [`MemoryStore`](crate::store::MemoryStore) keeps responses without validators
    /// for an hour past their last usable moment, so a longer bound only extends to responses
    /// with `ETag` or `Last-Modified` there.
    pub max_stale_if_unreachable: Duration,
    /// Request header fields the inner service sets, replaces or removes on the way to the
    /// origin, so that the cache does not see them as the origin does: a reverse proxy's
    /// `X-Forwarded-For`, `Forwarded`, `Via`. A response whose `Vary` names one of them is
    /// neither stored (`Cache-Status: …; detail=vary-unseen`, and the same `reason` in the
    /// metrics) nor, when a store holds one from before, selected: RFC 9111 §4.1 selects a
    /// stored response by the values the origin saw. Default empty.
    pub unseen_fields: Vec<HeaderName>,
}

impl CacheOptions {
    /// Does any of `fields` (a `Vary`'s names) name one of [`unseen_fields`](Self::unseen_fields)?
    pub(crate) fn names_unseen<'a>(
        &self,
        fields: impl IntoIterator<Item = &'a HeaderName>,
    ) -> bool {
        let unseen = &self.unseen_fields;
        !unseen.is_empty() && fields.into_iter().any(|field| unseen.contains(field))
    }
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            heuristic_fraction: 0.1,
            max_heuristic_lifetime: Duration::from_secs(24 * 60 * 60),
            default_ttl: None,
            store_set_cookie: false,
            max_stale_if_unreachable: DEFAULT_MAX_STALE_IF_UNREACHABLE,
            unseen_fields: Vec::new(),
        }
    }
}
