//! [`OriginUnreachable`]: how an inner service tells the cache that it could not reach the
//! origin.

/// Marks a response that the inner service generated itself because the origin could not be
/// reached or did not answer (a refused or dropped connection, a timeout), rather than one
/// forwarded from the origin.
///
/// A reverse proxy whose error type is [`Infallible`](std::convert::Infallible) turns
/// transport failures into its own `502 Bad Gateway` or `504 Gateway Timeout`; inserting this
/// marker into that response's extensions lets the cache tell such a response from a `502`
/// the origin sent:
///
/// - the cache is then *disconnected* in the sense of RFC 9111 §4.2.4, and serves a stored
///   response that is stale by no more than
///   [`CacheOptions::max_stale_if_unreachable`](crate::policy::CacheOptions::max_stale_if_unreachable)
///   instead (never one with `must-revalidate`, `proxy-revalidate`, `no-cache` or
///   `s-maxage`, nor for a request with `no-cache`), with
///   `Cache-Status: …; fwd=stale; detail=origin-unreachable`;
/// - when it cannot, the marked response is passed on, never stored, and its `Cache-Status`
///   has no `fwd-status` (no response came from the next hop) but
///   `detail=origin-unreachable`.
///
/// An `Err` from the inner service is treated the same way: a stale response is served where
/// the rules above allow it, and otherwise the error is returned.
///
/// ```
/// use http::{Response, StatusCode};
/// use tower_cache_layer::OriginUnreachable;
///
/// let mut response = Response::new("bad gateway: origin unreachable");
/// *response.status_mut() = StatusCode::BAD_GATEWAY;
/// response.extensions_mut().insert(OriginUnreachable);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OriginUnreachable;
