//! May a stored response be reused for a request? (RFC 9111 §4, §4.2.4, §5.2.1)

use super::headers::pragma_no_cache;
use super::{CacheControl, ResponsePolicy};
use http::HeaderMap;
use http::header::CACHE_CONTROL;
use std::time::SystemTime;

/// The decision for a stored response matching a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reuse {
    /// Fresh (and acceptable to the request's directives): serve it.
    Fresh,
    /// Stale, but the request's `max-stale` allows serving it (§4.2.4).
    StaleAllowed,
    /// Must not be served without validation: go to the origin.
    Revalidate,
}

/// Decides reuse. `req_headers` are read for `Cache-Control` and (without it) `Pragma: no-cache` (§5.4).
///
/// The first matching rule decides:
///
/// 1. request `no-cache` (or `Pragma: no-cache` without `Cache-Control`): [`Reuse::Revalidate`];
/// 2. stored `no-cache`: [`Reuse::Revalidate`];
/// 3. request `max-age=N` and the current age is over `N`: [`Reuse::Revalidate`];
/// 4. request `min-fresh=N` and less than `N` of freshness is left: [`Reuse::Revalidate`];
/// 5. fresh: [`Reuse::Fresh`];
/// 6. stale and `must-revalidate` (or `proxy-revalidate`, `s-maxage`): [`Reuse::Revalidate`];
/// 7. stale and a request `max-stale` that covers the staleness: [`Reuse::StaleAllowed`];
/// 8. otherwise [`Reuse::Revalidate`].
///
/// RFC 5861 `stale-while-revalidate` / `stale-if-error` are not decided here: they are in
/// [`ResponsePolicy`] for the service to apply.
pub fn reuse(stored: &ResponsePolicy, req_headers: &HeaderMap, now: SystemTime) -> Reuse {
    let cc = CacheControl::from_headers(req_headers);

    // RFC 9111 §5.2.1.4: request no-cache: "a cache MUST NOT use a stored response to satisfy
    // the request without successful validation on the origin server".
    // RFC 9111 §5.4: without Cache-Control, Pragma: no-cache has the same effect.
    let request_no_cache = cc.no_cache()
        || (cc.is_empty()
            && !req_headers.contains_key(CACHE_CONTROL)
            && pragma_no_cache(req_headers));
    if request_no_cache {
        return Reuse::Revalidate;
    }

    // RFC 9111 §5.2.2.4: a no-cache response is not reused without successful validation.
    if stored.no_cache {
        return Reuse::Revalidate;
    }

    let age = stored.age(now);

    // RFC 9111 §5.2.1.1: the client "prefers a response whose age is less than or equal to the
    // specified number of seconds".
    if cc.max_age().is_some_and(|max_age| age > max_age) {
        return Reuse::Revalidate;
    }

    // RFC 9111 §5.2.1.3: the client wants "a response whose freshness lifetime is no less than
    // its current age plus the specified time".
    if let Some(min_fresh) = cc.min_fresh() {
        if stored.freshness_lifetime < age.saturating_add(min_fresh) {
            return Reuse::Revalidate;
        }
    }

    // RFC 9111 §4.2: fresh when freshness_lifetime > current_age.
    if stored.is_fresh(now) {
        return Reuse::Fresh;
    }

    // RFC 9111 §4.2.4, §5.2.2.2 (must-revalidate), §5.2.2.8 (proxy-revalidate), §5.2.2.10
    // (s-maxage): a stale response is never served without validation.
    if stored.must_revalidate {
        return Reuse::Revalidate;
    }

    // RFC 9111 §4.2.4, §5.2.1.2: the client accepts staleness up to max-stale (any without a
    // value).
    match cc.max_stale() {
        Some(None) => Reuse::StaleAllowed,
        Some(Some(limit)) if stored.staleness(now) <= limit => Reuse::StaleAllowed,
        _ => Reuse::Revalidate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use std::time::{Duration, UNIX_EPOCH};

    const T0: u64 = 1_431_696_861;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// A stored response received at T0 with age 0 and the given lifetime.
    fn stored(lifetime: u64) -> ResponsePolicy {
        ResponsePolicy {
            freshness_lifetime: Duration::from_secs(lifetime),
            initial_age: Duration::ZERO,
            response_time: at(T0),
            no_cache: false,
            must_revalidate: false,
            stale_while_revalidate: None,
            stale_if_error: None,
        }
    }

    fn decide(p: &ResponsePolicy, req: &[(&str, &str)], elapsed: u64) -> Reuse {
        reuse(p, &headers(req), at(T0 + elapsed))
    }

    // RFC 9111 §4.2: a fresh response is served
    #[test]
    fn fresh_response_is_served() {
        assert_eq!(decide(&stored(60), &[], 0), Reuse::Fresh);
        assert_eq!(decide(&stored(60), &[], 59), Reuse::Fresh);
    }

    // RFC 9111 §4.2: a stale response is revalidated
    #[test]
    fn stale_response_is_revalidated() {
        assert_eq!(decide(&stored(60), &[], 60), Reuse::Revalidate);
        assert_eq!(decide(&stored(0), &[], 0), Reuse::Revalidate);
    }

    // RFC 9111 §4.2.3: the initial age counts toward staleness
    #[test]
    fn initial_age_counts() {
        let p = ResponsePolicy {
            initial_age: Duration::from_secs(50),
            ..stored(60)
        };
        assert_eq!(decide(&p, &[], 9), Reuse::Fresh);
        assert_eq!(decide(&p, &[], 10), Reuse::Revalidate);
    }

    // RFC 9111 §5.2.1.4: request no-cache forces validation
    #[test]
    fn request_no_cache_revalidates() {
        assert_eq!(
            decide(&stored(60), &[("cache-control", "no-cache")], 0),
            Reuse::Revalidate
        );
    }

    // RFC 9111 §5.4: Pragma: no-cache without Cache-Control acts as no-cache
    #[test]
    fn request_pragma_no_cache_revalidates() {
        assert_eq!(
            decide(&stored(60), &[("pragma", "no-cache")], 0),
            Reuse::Revalidate
        );
    }

    // RFC 9111 §5.4: Pragma is ignored when Cache-Control is present
    #[test]
    fn request_pragma_ignored_with_cache_control() {
        assert_eq!(
            decide(
                &stored(60),
                &[("pragma", "no-cache"), ("cache-control", "max-stale")],
                0
            ),
            Reuse::Fresh
        );
    }

    // RFC 9111 §5.2.2.4: a stored no-cache response is always revalidated
    #[test]
    fn stored_no_cache_revalidates() {
        let p = ResponsePolicy {
            no_cache: true,
            ..stored(60)
        };
        assert_eq!(decide(&p, &[], 0), Reuse::Revalidate);
        assert_eq!(
            decide(&p, &[("cache-control", "max-stale")], 0),
            Reuse::Revalidate
        );
    }

    // RFC 9111 §5.2.1.1: request max-age bounds the acceptable age
    #[test]
    fn request_max_age_bounds_age() {
        let req = [("cache-control", "max-age=10")];
        assert_eq!(decide(&stored(60), &req, 10), Reuse::Fresh);
        assert_eq!(decide(&stored(60), &req, 11), Reuse::Revalidate);
    }

    // RFC 9111 §5.2.1.1: max-age=0 accepts only an age of zero
    #[test]
    fn request_max_age_zero() {
        let req = [("cache-control", "max-age=0")];
        assert_eq!(decide(&stored(60), &req, 0), Reuse::Fresh);
        assert_eq!(decide(&stored(60), &req, 1), Reuse::Revalidate);
    }

    // RFC 9111 §5.2.1.3: min-fresh requires that much freshness to remain
    #[test]
    fn request_min_fresh_requires_remaining_freshness() {
        let req = [("cache-control", "min-fresh=20")];
        assert_eq!(decide(&stored(60), &req, 40), Reuse::Fresh);
        assert_eq!(decide(&stored(60), &req, 41), Reuse::Revalidate);
    }

    // RFC 9111 §5.2.1.2: bare max-stale accepts any staleness
    #[test]
    fn request_max_stale_bare_allows_stale() {
        let req = [("cache-control", "max-stale")];
        assert_eq!(decide(&stored(60), &req, 1_000_000), Reuse::StaleAllowed);
        assert_eq!(decide(&stored(60), &req, 0), Reuse::Fresh);
    }

    // RFC 9111 §5.2.1.2: max-stale=N accepts staleness up to N
    #[test]
    fn request_max_stale_value_bounds_staleness() {
        let req = [("cache-control", "max-stale=30")];
        assert_eq!(decide(&stored(60), &req, 90), Reuse::StaleAllowed);
        assert_eq!(decide(&stored(60), &req, 91), Reuse::Revalidate);
    }

    // RFC 9111 §5.2.1.2: an invalid max-stale accepts no staleness
    #[test]
    fn request_max_stale_invalid_allows_nothing() {
        let req = [("cache-control", "max-stale=soon")];
        assert_eq!(decide(&stored(60), &req, 61), Reuse::Revalidate);
    }

    // RFC 9111 §4.2.4, §5.2.2.2: must-revalidate beats max-stale
    #[test]
    fn must_revalidate_beats_max_stale() {
        let p = ResponsePolicy {
            must_revalidate: true,
            ..stored(60)
        };
        let req = [("cache-control", "max-stale")];
        assert_eq!(decide(&p, &req, 61), Reuse::Revalidate);
        assert_eq!(decide(&p, &req, 10), Reuse::Fresh);
    }

    // RFC 9111 §5.2.1.1: max-age without max-stale rejects stale responses
    #[test]
    fn request_max_age_with_max_stale() {
        let req = [("cache-control", "max-age=100, max-stale=50")];
        assert_eq!(decide(&stored(60), &req, 90), Reuse::StaleAllowed);
        assert_eq!(decide(&stored(60), &req, 101), Reuse::Revalidate);
    }

    // RFC 9111 §4.2.3: a clock that goes backwards does not make a response staler
    #[test]
    fn now_before_response_time_is_fresh() {
        assert_eq!(
            reuse(&stored(60), &HeaderMap::new(), at(T0 - 100)),
            Reuse::Fresh
        );
    }

    // Robustness: garbage request directives never panic
    #[test]
    fn garbage_request_directives() {
        let mut h = HeaderMap::new();
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"max-age=\xff, min-fresh=99999999999999999999").unwrap(),
        );
        // Invalid max-age reads as 0; a huge min-fresh cannot be met.
        assert_eq!(reuse(&stored(60), &h, at(T0)), Reuse::Revalidate);
    }
}
