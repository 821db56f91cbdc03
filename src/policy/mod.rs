//! Pure HTTP caching policy: RFC 9111 (HTTP Caching) and the parts of RFC 9110 it relies on.
//!
//! Nothing in this module performs I/O, reads a clock or touches a body: every function takes
//! the request and response metadata and an explicit `now`, and returns a decision. The
//! [`Cache`](crate::Cache) service acts on those decisions.

pub mod cache_control;
pub mod conditional;
pub mod freshness;
pub mod headers;
pub mod invalidate;
pub mod range;
pub mod reuse;
pub mod revalidate;
pub mod storable;
pub mod vary;

#[cfg(test)]
mod test_util;

use std::time::Duration;

#[doc(inline)]
pub use self::cache_control::{CacheControl, targeted_cache_control};
#[doc(inline)]
pub use self::conditional::{EntityTag, EntityTagList, Precondition, evaluate_preconditions};
#[doc(inline)]
pub use self::freshness::{Freshness, FreshnessSource, ResponsePolicy};
#[doc(inline)]
pub use self::invalidate::{invalidation_uris, is_safe_method};
#[doc(inline)]
pub use self::range::{RangeDecision, evaluate_range};
#[doc(inline)]
pub use self::reuse::{Reuse, may_serve_stale_if_error, reuse};
#[doc(inline)]
pub use self::revalidate::{add_validators, freshen_headers, head_freshens, not_modified_matches};
#[doc(inline)]
pub use self::storable::{NotStorable, fields_not_to_store, is_storable};
#[doc(inline)]
pub use self::vary::{Vary, VaryKey};

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
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            heuristic_fraction: 0.1,
            max_heuristic_lifetime: Duration::from_secs(24 * 60 * 60),
            default_ttl: None,
            store_set_cookie: false,
        }
    }
}
