//! May a stored response be reused for a request? (RFC 9111 §4, §4.2.4, §5.2.1)

use super::{CacheControl, ResponsePolicy};
use http::{HeaderMap, StatusCode};
use std::time::{Duration, SystemTime};

/// The decision for a stored response matching a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reuse {
    /// Fresh (and acceptable to the request's directives): serve it.
    Fresh,
    /// Stale, but the request's `max-stale` allows serving it (§4.2.4).
    StaleAllowed,
    /// Stale, but within the response's `stale-while-revalidate` window (RFC 5861 §3):
    /// serve it now and revalidate in the background ("the cache SHOULD attempt to
    /// revalidate it while still serving stale responses (i.e., without blocking)").
    StaleWhileRevalidate,
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
/// 8. stale by no more than the response's `stale-while-revalidate` (RFC 5861 §3), and the
///    request has no `max-age` (RFC 9111 §5.2.1.1: without `max-stale` the client "does not
///    wish to receive a stale response"; with a covering `max-stale` rule 7 applied):
///    [`Reuse::StaleWhileRevalidate`];
/// 9. otherwise [`Reuse::Revalidate`].
///
/// Rules 1 to 6 already exclude `stale-while-revalidate` for a request `no-cache` (or
/// `Pragma: no-cache`), a request `min-fresh` (a stale response never has freshness left), a
/// stored `no-cache` and a stored `must-revalidate` / `proxy-revalidate` / `s-maxage`
/// (RFC 9111 §4.2.4: a cache "MUST NOT generate a stale response if it is prohibited by an
/// explicit in-protocol directive"). A request `max-stale=N` smaller than the staleness does
/// not exclude it: `max-stale` grants staleness, it does not forbid any, and RFC 9111 §4.2.4
/// lets either the client or the origin permit stale responses.
///
/// `stale-if-error` is decided separately, once the origin has failed:
/// [`may_serve_stale_if_error`].
pub fn reuse(stored: &ResponsePolicy, req_headers: &HeaderMap, now: SystemTime) -> Reuse {
    let cc = CacheControl::from_headers(req_headers);
    reuse_with(stored, &cc, req_headers, now)
}

/// [`reuse`] with the request's `Cache-Control` already parsed: `cc` is
/// `CacheControl::from_headers(req_headers)`, parsed once per request by the caller.
pub(crate) fn reuse_with(
    stored: &ResponsePolicy,
    cc: &CacheControl,
    req_headers: &HeaderMap,
    now: SystemTime,
) -> Reuse {
    // RFC 9111 §5.2.1.4: request no-cache: "a cache MUST NOT use a stored response to satisfy
    // the request without successful validation on the origin server".
    // RFC 9111 §5.4: without Cache-Control, Pragma: no-cache has the same effect.
    if request_no_cache(cc, req_headers) {
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
    if stored.is_fresh_at_age(age) {
        return Reuse::Fresh;
    }

    // RFC 9111 §4.2.4, §5.2.2.2 (must-revalidate), §5.2.2.8 (proxy-revalidate), §5.2.2.10
    // (s-maxage): a stale response is never served without validation.
    if stored.must_revalidate {
        return Reuse::Revalidate;
    }

    // RFC 9111 §4.2.4, §5.2.1.2: the client accepts staleness up to max-stale (any without a
    // value).
    let staleness = stored.staleness_at_age(age);
    match cc.max_stale() {
        Some(None) => return Reuse::StaleAllowed,
        Some(Some(limit)) if staleness <= limit => return Reuse::StaleAllowed,
        _ => {}
    }

    // RFC 5861 §3: "caches MAY serve the response in which it appears after it becomes stale,
    // up to the indicated number of seconds". RFC 9111 §5.2.1.1: a request max-age without
    // max-stale means the client "does not wish to receive a stale response".
    if cc.max_age().is_none()
        && stored
            .stale_while_revalidate
            .is_some_and(|window| staleness <= window)
    {
        return Reuse::StaleWhileRevalidate;
    }

    Reuse::Revalidate
}

/// May a stored response be served because the origin failed? (RFC 5861 §4, RFC 9111 §4.2.4)
///
/// Call it when forwarding or revalidating failed in a way that would otherwise produce a
/// 500, 502, 503 or 504 (RFC 5861 §4's definition of an error). True when the response's
/// staleness at `now` (zero while fresh) is within the stored response's `stale-if-error`
/// window, or within the request's own `stale-if-error=N` (RFC 5861 §4: "its scope of
/// application is the request it appears in"); either grant suffices. Never when:
///
/// - the stored response has `must-revalidate`, `proxy-revalidate` or `s-maxage`
///   ([`ResponsePolicy::must_revalidate`]), or `no-cache` ([`ResponsePolicy::no_cache`]):
///   RFC 9111 §4.2.4 forbids stale responses prohibited by an explicit directive, and
///   §5.2.2.2 asks for a 504 instead;
/// - the request has `no-cache` (or `Pragma: no-cache` without `Cache-Control`): RFC 9111
///   §5.2.1.4 forbids using a stored response "without successful validation", and there
///   was none.
///
/// Request `max-age`, `min-fresh` and `max-stale` do not forbid it: RFC 5861 §4 applies
/// "regardless of other freshness information", and a client that does not want an error
/// fallback can send `stale-if-error=0` or `no-cache`.
pub fn may_serve_stale_if_error(
    stored: &ResponsePolicy,
    req_headers: &HeaderMap,
    now: SystemTime,
) -> bool {
    let cc = CacheControl::from_headers(req_headers);
    may_serve_stale_if_error_with(stored, &cc, req_headers, now)
}

/// [`may_serve_stale_if_error`] with the request's `Cache-Control` already parsed: `cc` is
/// `CacheControl::from_headers(req_headers)`.
pub(crate) fn may_serve_stale_if_error_with(
    stored: &ResponsePolicy,
    cc: &CacheControl,
    req_headers: &HeaderMap,
    now: SystemTime,
) -> bool {
    // RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.4, §5.2.2.8, §5.2.2.10
    if stored.must_revalidate || stored.no_cache {
        return false;
    }
    // RFC 9111 §5.2.1.4, §5.4
    if request_no_cache(cc, req_headers) {
        return false;
    }
    // RFC 5861 §4: "when the cached response is more stale than the indicated amount, the
    // cached response SHOULD NOT be used to satisfy the request, absent other information."
    let staleness = stored.staleness(now);
    [stored.stale_if_error, cc.stale_if_error()]
        .into_iter()
        .flatten()
        .any(|window| staleness <= window)
}

/// May a stored response be served because the origin could not be reached?
/// (RFC 9111 §4.2.4: a cache "MUST NOT generate a stale response unless it is disconnected or
/// doing so is explicitly permitted by the client or origin server".)
///
/// Call it when the inner service could not reach the origin (it returned an error, or a
/// response marked [`OriginUnreachable`](crate::OriginUnreachable)) and `stale-if-error`
/// ([`may_serve_stale_if_error`]) did not cover the stored response. True when the
/// response's staleness at `now` (zero while fresh) is at most `max_staleness`
/// ([`CacheOptions::max_stale_if_unreachable`](super::CacheOptions::max_stale_if_unreachable));
/// never when `max_staleness` is zero, and never when:
///
/// - the stored response has `must-revalidate`, `proxy-revalidate` or `s-maxage`
///   ([`ResponsePolicy::must_revalidate`]): RFC 9111 §4.2.4 ("MUST NOT generate a stale
///   response if it is prohibited by an explicit in-protocol directive"), §5.2.2.2 (a cache
///   "MUST generate a 504" when disconnected), §5.2.2.8, §5.2.2.10;
/// - the stored response has `no-cache` ([`ResponsePolicy::no_cache`]): §5.2.2.4, it "MUST
///   NOT" be used "without successful validation";
/// - the request has `no-cache` (or `Pragma: no-cache` without `Cache-Control`): §5.2.1.4.
///
/// The request's `max-age`, `min-fresh` and `max-stale` do not forbid it, as for
/// `stale-if-error`: being disconnected is the case §4.2.4 carves out.
pub fn may_serve_stale_if_unreachable(
    stored: &ResponsePolicy,
    req_headers: &HeaderMap,
    now: SystemTime,
    max_staleness: Duration,
) -> bool {
    let cc = CacheControl::from_headers(req_headers);
    may_serve_stale_if_unreachable_with(stored, &cc, req_headers, now, max_staleness)
}

/// [`may_serve_stale_if_unreachable`] with the request's `Cache-Control` already parsed: `cc`
/// is `CacheControl::from_headers(req_headers)`.
pub(crate) fn may_serve_stale_if_unreachable_with(
    stored: &ResponsePolicy,
    cc: &CacheControl,
    req_headers: &HeaderMap,
    now: SystemTime,
    max_staleness: Duration,
) -> bool {
    // RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.4, §5.2.2.8, §5.2.2.10
    if stored.must_revalidate || stored.no_cache || max_staleness.is_zero() {
        return false;
    }
    // RFC 9111 §5.2.1.4, §5.4
    if request_no_cache(cc, req_headers) {
        return false;
    }
    stored.staleness(now) <= max_staleness
}

/// Request `no-cache`, or `Pragma: no-cache` without any `Cache-Control` (RFC 9111 §5.4).
fn request_no_cache(cc: &CacheControl, req_headers: &HeaderMap) -> bool {
    cc.no_cache() || cc.pragma_no_cache_applies(req_headers)
}

/// May a stale response stand in for this status from the origin? RFC 5861 §4: for
/// `stale-if-error`, "an error is any situation that would result in a 500, 502, 503, or 504
/// HTTP response status code being returned". (Whether a stored response may then be served
/// is [`may_serve_stale_if_error`].)
pub(crate) fn is_stale_if_error_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_util::{at, headers};
    use http::HeaderValue;
    use http::header::CACHE_CONTROL;
    use std::time::Duration;

    const T0: u64 = 1_431_696_861;

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

    fn swr(lifetime: u64, window: u64) -> ResponsePolicy {
        ResponsePolicy {
            stale_while_revalidate: Some(Duration::from_secs(window)),
            ..stored(lifetime)
        }
    }

    fn sie(lifetime: u64, window: Option<u64>) -> ResponsePolicy {
        ResponsePolicy {
            stale_if_error: window.map(Duration::from_secs),
            ..stored(lifetime)
        }
    }

    fn on_error(p: &ResponsePolicy, req: &[(&str, &str)], elapsed: u64) -> bool {
        may_serve_stale_if_error(p, &headers(req), at(T0 + elapsed))
    }

    // RFC 5861 §3: stale within the stale-while-revalidate window is served, then revalidated
    #[test]
    fn stale_while_revalidate_within_window() {
        let p = swr(60, 30);
        assert_eq!(decide(&p, &[], 59), Reuse::Fresh);
        assert_eq!(decide(&p, &[], 60), Reuse::StaleWhileRevalidate);
        assert_eq!(decide(&p, &[], 90), Reuse::StaleWhileRevalidate);
        assert_eq!(decide(&p, &[], 91), Reuse::Revalidate);
    }

    // RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.4: must-revalidate / no-cache forbid stale serving
    #[test]
    fn stale_while_revalidate_not_with_must_revalidate_or_no_cache() {
        let p = ResponsePolicy {
            must_revalidate: true,
            ..swr(60, 30)
        };
        assert_eq!(decide(&p, &[], 70), Reuse::Revalidate);
        let p = ResponsePolicy {
            no_cache: true,
            ..swr(60, 30)
        };
        assert_eq!(decide(&p, &[], 70), Reuse::Revalidate);
    }

    // RFC 9111 §5.2.1.1, §5.2.1.3, §5.2.1.4: request no-cache / max-age / min-fresh forbid it
    #[test]
    fn stale_while_revalidate_not_when_request_forbids() {
        let p = swr(60, 30);
        for cc in ["no-cache", "max-age=1000", "min-fresh=1"] {
            assert_eq!(
                decide(&p, &[("cache-control", cc)], 70),
                Reuse::Revalidate,
                "{cc}"
            );
        }
        assert_eq!(decide(&p, &[("pragma", "no-cache")], 70), Reuse::Revalidate);
        // max-stale grants staleness and never takes away the origin's grant.
        assert_eq!(
            decide(&p, &[("cache-control", "max-stale=5")], 70),
            Reuse::StaleWhileRevalidate
        );
        assert_eq!(
            decide(&p, &[("cache-control", "max-stale=20")], 70),
            Reuse::StaleAllowed
        );
    }

    // RFC 5861 §4: stale-if-error of the response bounds the staleness served on error
    #[test]
    fn stale_if_error_response_window() {
        let p = sie(60, Some(100));
        assert!(on_error(&p, &[], 0));
        assert!(on_error(&p, &[], 160));
        assert!(!on_error(&p, &[], 161));
        assert!(!on_error(&sie(60, None), &[], 70));
    }

    // RFC 5861 §4: a request stale-if-error grants its own window
    #[test]
    fn stale_if_error_request_window() {
        let req = [("cache-control", "stale-if-error=50")];
        assert!(on_error(&sie(60, None), &req, 110));
        assert!(!on_error(&sie(60, None), &req, 111));
        // Either window suffices.
        assert!(on_error(&sie(60, Some(10)), &req, 100));
        assert!(on_error(
            &sie(60, Some(100)),
            &[("cache-control", "stale-if-error=0")],
            100
        ));
    }

    // RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.4: never with stored must-revalidate or no-cache
    #[test]
    fn stale_if_error_not_with_must_revalidate_or_no_cache() {
        let p = ResponsePolicy {
            must_revalidate: true,
            ..sie(60, Some(100))
        };
        assert!(!on_error(
            &p,
            &[("cache-control", "stale-if-error=100")],
            70
        ));
        let p = ResponsePolicy {
            no_cache: true,
            ..sie(60, Some(100))
        };
        assert!(!on_error(&p, &[], 70));
    }

    // RFC 9111 §5.2.1.4: request no-cache forbids serving without validation, even on error
    #[test]
    fn stale_if_error_not_with_request_no_cache() {
        let p = sie(60, Some(100));
        assert!(!on_error(
            &p,
            &[("cache-control", "no-cache, stale-if-error=100")],
            70
        ));
        assert!(!on_error(&p, &[("pragma", "no-cache")], 70));
        // max-age / min-fresh do not forbid the error fallback.
        assert!(on_error(
            &p,
            &[("cache-control", "max-age=0, min-fresh=10")],
            70
        ));
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

    fn unreachable(p: &ResponsePolicy, req: &[(&str, &str)], elapsed: u64, max: u64) -> bool {
        may_serve_stale_if_unreachable(p, &headers(req), at(T0 + elapsed), Duration::from_secs(max))
    }

    // RFC 9111 §4.2.4: a disconnected cache may serve stale, up to the configured staleness
    #[test]
    fn stale_if_unreachable_within_the_bound() {
        assert!(unreachable(&stored(60), &[], 30, 3600));
        assert!(unreachable(&stored(60), &[], 60 + 3600, 3600));
        assert!(!unreachable(&stored(60), &[], 61 + 3600, 3600));
        // Zero turns it off, even for a fresh response.
        assert!(!unreachable(&stored(60), &[], 30, 0));
        // Request max-age / max-stale do not forbid it.
        assert!(unreachable(
            &stored(60),
            &[("cache-control", "max-age=1, max-stale=1")],
            100,
            3600
        ));
    }

    // RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.4, §5.2.2.8, §5.2.2.10, §5.2.1.4: never when an
    // explicit directive forbids stale responses (the stale-close-* tests)
    #[test]
    fn stale_if_unreachable_not_when_forbidden() {
        let must = ResponsePolicy {
            must_revalidate: true,
            ..stored(2)
        };
        assert!(!unreachable(&must, &[], 3, 3600));
        let no_cache = ResponsePolicy {
            no_cache: true,
            ..stored(2)
        };
        assert!(!unreachable(&no_cache, &[], 1, 3600));
        assert!(!unreachable(
            &stored(2),
            &[("cache-control", "no-cache")],
            3,
            3600
        ));
        assert!(!unreachable(&stored(2), &[("pragma", "no-cache")], 3, 3600));
    }

    // RFC 5861 §4: 500, 502, 503 and 504 are errors; no other status is.
    #[test]
    fn stale_if_error_statuses_are_500_502_503_504() {
        for code in [500, 502, 503, 504] {
            assert!(is_stale_if_error_status(
                StatusCode::from_u16(code).unwrap()
            ));
        }
        for code in [200, 304, 404, 501, 505, 599] {
            assert!(!is_stale_if_error_status(
                StatusCode::from_u16(code).unwrap()
            ));
        }
    }
}
