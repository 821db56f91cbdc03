//! Freshness lifetime and age (RFC 9111 §4.2).
//!
//! All computations saturate: no input (dates in the far past or future, huge `Age` values,
//! odd [`CacheOptions`]) can overflow or panic.

use super::headers::{list_members, parse_delta_seconds, parse_http_date};
use super::{CacheControl, CacheOptions};
use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};
use std::time::{Duration, SystemTime};

/// Where a freshness lifetime came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreshnessSource {
    /// `s-maxage` (RFC 9111 §5.2.2.10), the first choice of a shared cache.
    SMaxAge,
    /// `max-age` (RFC 9111 §5.2.2.1).
    MaxAge,
    /// `Expires` minus `Date` (RFC 9111 §5.3); an invalid `Expires` gives a zero lifetime.
    Expires,
    /// A fraction ([`CacheOptions::heuristic_fraction`], 10% by default) of the time since
    /// `Last-Modified` (RFC 9111 §4.2.2).
    Heuristic,
    /// [`CacheOptions::default_ttl`], a configured heuristic (RFC 9111 §4.2.2).
    DefaultTtl,
}

/// A freshness lifetime and its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// The freshness lifetime; may be zero (an explicit lifetime of zero is still explicit).
    pub lifetime: Duration,
    /// Where it came from.
    pub source: FreshnessSource,
}

/// Status codes that are heuristically cacheable by default (RFC 9110 §15.1).
pub(crate) fn is_heuristically_cacheable(status: StatusCode) -> bool {
    // RFC 9110 §15.1: 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The response's `Date` (first field line), if valid.
fn date_value(headers: &HeaderMap) -> Option<SystemTime> {
    headers.get(DATE).and_then(parse_http_date)
}

/// RFC 9111 §4.2.1 / §4.2.2. `None` when the response has neither explicit freshness nor a
/// usable heuristic. `response_time` stands in for a missing or invalid `Date`.
///
/// For a shared cache the first of these applies:
///
/// 1. `s-maxage` ([`FreshnessSource::SMaxAge`]);
/// 2. `max-age` ([`FreshnessSource::MaxAge`]);
/// 3. `Expires` minus `Date` ([`FreshnessSource::Expires`]), zero when `Expires` is not after
///    `Date`. An `Expires` that does not parse (such as `0`) means "already expired": zero.
///    Several `Expires` field lines count as invalid (zero) unless they are all identical;
/// 4. only without any explicit freshness, and only for a heuristically cacheable status
///    (RFC 9110 §15.1) or a `public` response: [`CacheOptions::default_ttl`]
///    ([`FreshnessSource::DefaultTtl`]) if set, otherwise
///    [`CacheOptions::heuristic_fraction`] of `Date - Last-Modified`, capped at
///    [`CacheOptions::max_heuristic_lifetime`] ([`FreshnessSource::Heuristic`]), when
///    `Last-Modified` is valid and strictly before `Date`.
///
/// Explicit lifetimes are returned even when zero. Invalid `max-age` / `s-maxage` values are
/// already zero in [`CacheControl`].
///
/// `cc` is the parsed `Cache-Control` of `headers`, or the directives of a targeted field
/// ([`targeted_cache_control`](super::targeted_cache_control)). Only `Date`, `Expires` and
/// `Last-Modified` are read from `headers`; with a targeted `cc`, `Expires` is ignored
/// (RFC 9213 §2.2).
pub fn freshness_lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    cc: &CacheControl,
    options: &CacheOptions,
    response_time: SystemTime,
) -> Option<Freshness> {
    // RFC 9111 §4.2.1: "If the cache is shared and the s-maxage response directive is present,
    // use its value"
    if let Some(lifetime) = cc.s_maxage() {
        return Some(Freshness {
            lifetime,
            source: FreshnessSource::SMaxAge,
        });
    }
    // RFC 9111 §4.2.1: "If the max-age response directive is present, use its value"
    // (RFC 9111 §5.3: with max-age or s-maxage, Expires is ignored.)
    if let Some(lifetime) = cc.max_age() {
        return Some(Freshness {
            lifetime,
            source: FreshnessSource::MaxAge,
        });
    }
    // RFC 9111 §4.2.1: "If the Expires response header field is present, use its value minus
    // the value of the Date response header field (using the time the message was received if
    // it is not present)"
    // RFC 9213 §2.2: a cache using a targeted field "MUST ignore the Cache-Control and
    // Expires header fields in that response".
    let date = date_value(headers).unwrap_or(response_time);
    let mut expires_lines = headers.get_all(EXPIRES).iter();
    let expires = if cc.is_targeted() {
        None
    } else {
        expires_lines.next()
    };
    if let Some(first) = expires {
        // RFC 9111 §4.2.1: with more than one value "either the first occurrence should be used
        // or the response should be considered stale": we consider it stale, unless the lines
        // are exact duplicates of each other.
        let ambiguous = expires_lines.any(|other| other != first);
        // RFC 9111 §5.3: "A cache recipient MUST interpret invalid date formats, especially the
        // value "0", as representing a time in the past (i.e., "already expired")."
        let lifetime = match parse_http_date(first) {
            Some(expires) if !ambiguous => expires.duration_since(date).unwrap_or(Duration::ZERO),
            _ => Duration::ZERO,
        };
        return Some(Freshness {
            lifetime,
            source: FreshnessSource::Expires,
        });
    }
    // RFC 9111 §4.2.2: heuristics only without explicit expiration, and only for a status
    // "defined as heuristically cacheable" (RFC 9110 §15.1) or a response "marked as
    // explicitly cacheable (e.g., with a public response directive)" (RFC 9111 §3).
    if !(is_heuristically_cacheable(status) || cc.public()) {
        return None;
    }
    if let Some(lifetime) = options.default_ttl {
        return Some(Freshness {
            lifetime,
            source: FreshnessSource::DefaultTtl,
        });
    }
    // RFC 9111 §4.2.2: "If the response has a Last-Modified header field, caches are encouraged
    // to use a heuristic expiration value that is no more than some fraction of the interval
    // since that time. A typical setting of this fraction might be 10%."
    let last_modified = headers.get(LAST_MODIFIED).and_then(parse_http_date)?;
    let since = date
        .duration_since(last_modified)
        .ok()
        .filter(|d| !d.is_zero())?;
    Some(Freshness {
        lifetime: heuristic_lifetime(since, options),
        source: FreshnessSource::Heuristic,
    })
}

/// `fraction * since`, capped; never panics on odd fractions (negative, NaN, infinite).
fn heuristic_lifetime(since: Duration, options: &CacheOptions) -> Duration {
    let secs = since.as_secs_f64() * options.heuristic_fraction;
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs)
        .unwrap_or(Duration::MAX)
        .min(options.max_heuristic_lifetime)
}

/// `age_value` (RFC 9111 §4.2.3): the first valid delta-seconds of the `Age` field, or zero.
fn age_value(headers: &HeaderMap) -> Duration {
    // RFC 9111 §5.1: Age = delta-seconds; invalid members are ignored. A list (several lines,
    // or a comma-joined line) is read member by member and the first valid one used.
    headers
        .get_all(AGE)
        .iter()
        .flat_map(|value| list_members(value.as_bytes()))
        .find_map(parse_delta_seconds)
        .unwrap_or(Duration::ZERO)
}

/// `corrected_initial_age` of RFC 9111 §4.2.3.
///
/// ```text
/// apparent_age          = max(0, response_time - date_value)
/// response_delay        = response_time - request_time
/// corrected_age_value   = age_value + response_delay
/// corrected_initial_age = max(apparent_age, corrected_age_value)
/// ```
///
/// `age_value` is the first valid delta-seconds of `Age` (zero when absent or invalid);
/// `date_value` is `Date`, or `response_time` when `Date` is absent or invalid. Differences
/// that would be negative count as zero; sums saturate.
pub fn initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    // RFC 9111 §4.2.3: age_value, "or 0, if not available"
    let age_value = age_value(headers);
    // RFC 9111 §4.2.3: date_value; RFC 9110 §6.6.1: a recipient with no (valid) Date uses the
    // time the message was received.
    let date_value = date_value(headers).unwrap_or(response_time);
    // RFC 9111 §4.2.3: apparent_age = max(0, response_time - date_value)
    let apparent_age = response_time
        .duration_since(date_value)
        .unwrap_or(Duration::ZERO);
    // RFC 9111 §4.2.3: response_delay = response_time - request_time
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    // RFC 9111 §4.2.3: corrected_age_value = age_value + response_delay
    let corrected_age_value = age_value.saturating_add(response_delay);
    // RFC 9111 §4.2.3: corrected_initial_age = max(apparent_age, corrected_age_value)
    apparent_age.max(corrected_age_value)
}

/// Everything the cache needs to decide on reuse of a stored response, computed once at store
/// time and kept with it ([`StoredResponse::policy`](crate::store::StoredResponse::policy)).
///
/// See [`reuse`](super::reuse()) for the decision that uses it.
///
/// # Persisting
///
/// A [`Store`](crate::store::Store) that keeps entries outside the process saves the values
/// of the accessors and rebuilds the policy with [`ResponsePolicy::from_parts`] and the
/// `with_*` setters. The type is `#[non_exhaustive]`: a later version may add metadata, with a
/// setter whose default keeps the behaviour of a policy rebuilt without it.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_cache_layer::policy::ResponsePolicy;
///
/// let received = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let policy = ResponsePolicy::from_parts(Duration::from_secs(60), Duration::ZERO, received)
///     .with_stale_while_revalidate(Some(Duration::from_secs(30)));
/// assert!(policy.is_fresh(received + Duration::from_secs(59)));
/// assert_eq!(policy.ttl(received + Duration::from_secs(20)), Duration::from_secs(40));
///
/// // What a store saves, and how it restores it.
/// let restored = ResponsePolicy::from_parts(
///     policy.freshness_lifetime(),
///     policy.initial_age(),
///     policy.response_time(),
/// )
/// .with_no_cache(policy.no_cache())
/// .with_must_revalidate(policy.must_revalidate())
/// .with_stale_while_revalidate(policy.stale_while_revalidate())
/// .with_stale_if_error(policy.stale_if_error());
/// assert_eq!(restored, policy);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponsePolicy {
    /// Freshness lifetime (RFC 9111 §4.2.1, §4.2.2); zero when the response has none.
    pub(crate) freshness_lifetime: Duration,
    /// `corrected_initial_age` (RFC 9111 §4.2.3).
    pub(crate) initial_age: Duration,
    /// When the response was received.
    pub(crate) response_time: SystemTime,
    /// `no-cache` (any form, RFC 9111 §5.2.2.4), or `Pragma: no-cache` without any
    /// `Cache-Control` (RFC 9111 §5.4): revalidate before every reuse.
    pub(crate) no_cache: bool,
    /// Never serve stale: `must-revalidate` (§5.2.2.2), `proxy-revalidate` (§5.2.2.8) or
    /// `s-maxage` (§5.2.2.10).
    pub(crate) must_revalidate: bool,
    /// RFC 5861 `stale-while-revalidate`.
    pub(crate) stale_while_revalidate: Option<Duration>,
    /// RFC 5861 `stale-if-error`.
    pub(crate) stale_if_error: Option<Duration>,
}

impl ResponsePolicy {
    /// Computes the policy of a response received at `response_time` for a request sent at
    /// `request_time`.
    ///
    /// `cc` is the parsed `Cache-Control` of `headers`, or the directives of a targeted field
    /// ([`targeted_cache_control`](super::targeted_cache_control)), which replace
    /// `Cache-Control` and `Expires` (RFC 9213 §2.2). `Pragma: no-cache` counts only when
    /// `cc` is empty and `headers` has no `Cache-Control` line (RFC 9111 §5.4).
    pub(crate) fn new(
        status: StatusCode,
        headers: &HeaderMap,
        cc: &CacheControl,
        options: &CacheOptions,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Self {
        let freshness_lifetime = freshness_lifetime(status, headers, cc, options, response_time)
            .map_or(Duration::ZERO, |f| f.lifetime);
        // RFC 9111 §5.2.2.4 (no-cache, any form); RFC 9111 §5.4 (Pragma: no-cache, only when
        // there is no Cache-Control field at all, and never beside a targeted field).
        // RFC 9111 §5.2.2.4: qualified `no-cache="field"` only restricts the named fields,
        // which the cache does not store; the rest may be reused without validation.
        let no_cache = (cc.no_cache() && cc.no_cache_fields().is_none())
            || cc.pragma_no_cache_applies(headers);
        // RFC 9111 §5.2.2.2, §5.2.2.8; §5.2.2.10: s-maxage "also implies the semantics of the
        // proxy-revalidate response directive".
        let must_revalidate =
            cc.must_revalidate() || cc.proxy_revalidate() || cc.s_maxage().is_some();
        Self {
            freshness_lifetime,
            initial_age: initial_age(headers, request_time, response_time),
            response_time,
            no_cache,
            must_revalidate,
            // RFC 5861 §3
            stale_while_revalidate: cc.stale_while_revalidate(),
            // RFC 5861 §4
            stale_if_error: cc.stale_if_error(),
        }
    }

    /// A policy with the given freshness lifetime, `corrected_initial_age` and receipt time,
    /// without `no-cache`, `must-revalidate`, `stale-while-revalidate` or `stale-if-error`
    /// (add them with the `with_*` setters).
    ///
    /// For stores that rebuild a persisted policy; see [Persisting](Self#persisting).
    pub fn from_parts(
        freshness_lifetime: Duration,
        initial_age: Duration,
        response_time: SystemTime,
    ) -> Self {
        Self {
            freshness_lifetime,
            initial_age,
            response_time,
            no_cache: false,
            must_revalidate: false,
            stale_while_revalidate: None,
            stale_if_error: None,
        }
    }

    /// This policy with [`no_cache`](Self::no_cache) set to `no_cache`.
    #[must_use]
    pub fn with_no_cache(mut self, no_cache: bool) -> Self {
        self.no_cache = no_cache;
        self
    }

    /// This policy with [`must_revalidate`](Self::must_revalidate) set to `must_revalidate`.
    #[must_use]
    pub fn with_must_revalidate(mut self, must_revalidate: bool) -> Self {
        self.must_revalidate = must_revalidate;
        self
    }

    /// This policy with the `stale-while-revalidate` window `window` (RFC 5861 §3).
    #[must_use]
    pub fn with_stale_while_revalidate(mut self, window: Option<Duration>) -> Self {
        self.stale_while_revalidate = window;
        self
    }

    /// This policy with the `stale-if-error` window `window` (RFC 5861 §4).
    #[must_use]
    pub fn with_stale_if_error(mut self, window: Option<Duration>) -> Self {
        self.stale_if_error = window;
        self
    }

    /// Freshness lifetime (RFC 9111 §4.2.1, §4.2.2); zero when the response has none.
    pub fn freshness_lifetime(&self) -> Duration {
        self.freshness_lifetime
    }

    /// `corrected_initial_age` (RFC 9111 §4.2.3): the response's age when it was received.
    pub fn initial_age(&self) -> Duration {
        self.initial_age
    }

    /// When the response was received.
    pub fn response_time(&self) -> SystemTime {
        self.response_time
    }

    /// `no-cache` (any unqualified form, RFC 9111 §5.2.2.4), or `Pragma: no-cache` without any
    /// `Cache-Control` (RFC 9111 §5.4): the response is validated before every reuse.
    pub fn no_cache(&self) -> bool {
        self.no_cache
    }

    /// Never served stale: `must-revalidate` (RFC 9111 §5.2.2.2), `proxy-revalidate`
    /// (§5.2.2.8) or `s-maxage` (§5.2.2.10).
    pub fn must_revalidate(&self) -> bool {
        self.must_revalidate
    }

    /// The `stale-while-revalidate` window (RFC 5861 §3), if any.
    pub fn stale_while_revalidate(&self) -> Option<Duration> {
        self.stale_while_revalidate
    }

    /// The `stale-if-error` window (RFC 5861 §4), if any.
    pub fn stale_if_error(&self) -> Option<Duration> {
        self.stale_if_error
    }

    /// `current_age` at `now` (§4.2.3): `initial_age + (now - response_time)`.
    ///
    /// A `now` before `response_time` counts as zero resident time; the sum saturates.
    pub fn age(&self, now: SystemTime) -> Duration {
        // RFC 9111 §4.2.3: resident_time = now - response_time;
        // current_age = corrected_initial_age + resident_time
        let resident_time = now
            .duration_since(self.response_time)
            .unwrap_or(Duration::ZERO);
        self.initial_age.saturating_add(resident_time)
    }

    /// `freshness_lifetime > current_age` (§4.2).
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.is_fresh_at_age(self.age(now))
    }

    /// [`is_fresh`](Self::is_fresh) for a current `age` already read.
    pub(crate) fn is_fresh_at_age(&self, age: Duration) -> bool {
        age < self.freshness_lifetime
    }

    /// Remaining freshness at `now` (zero when stale).
    pub fn ttl(&self, now: SystemTime) -> Duration {
        self.freshness_lifetime.saturating_sub(self.age(now))
    }

    /// How long past its freshness lifetime the response is at `now` (zero while fresh).
    pub fn staleness(&self, now: SystemTime) -> Duration {
        self.staleness_at_age(self.age(now))
    }

    /// [`staleness`](Self::staleness) for a current `age` already read.
    pub(crate) fn staleness_at_age(&self, age: Duration) -> Duration {
        age.saturating_sub(self.freshness_lifetime)
    }

    /// This policy, soft-purged at `now`: stale from `now` on, so that the next request
    /// revalidates it (RFC 9111 §4.3) instead of being served from the store.
    ///
    /// The freshness lifetime is cut to the response's age at `now` (`freshness_lifetime >
    /// current_age` no longer holds, RFC 9111 §4.2), never lengthened: a response already
    /// stale keeps its staleness. Staleness therefore counts from the purge, so that
    /// `stale-if-error` (RFC 5861 §4) and a disconnected cache's allowance (RFC 9111 §4.2.4)
    /// still cover an origin failure right after it. `stale-while-revalidate` (RFC 5861 §3)
    /// is dropped: the purge asks for the origin's answer, not for one more stale answer
    /// while it comes. `no-cache` and `must-revalidate` are kept as they are, so a response
    /// that may never be served stale still is not.
    #[must_use]
    pub(crate) fn marked_stale(mut self, now: SystemTime) -> Self {
        self.freshness_lifetime = self.freshness_lifetime.min(self.age(now));
        self.stale_while_revalidate = None;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_util::at;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    /// 2015-05-15T15:34:21Z
    const T0: u64 = 1_431_696_861;

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn lifetime(status: u16, pairs: &[(&str, &str)]) -> Option<Freshness> {
        lifetime_with(status, pairs, &CacheOptions::default())
    }

    fn lifetime_with(
        status: u16,
        pairs: &[(&str, &str)],
        options: &CacheOptions,
    ) -> Option<Freshness> {
        let h = headers(pairs);
        let cc = CacheControl::from_headers(&h);
        freshness_lifetime(
            StatusCode::from_u16(status).unwrap(),
            &h,
            &cc,
            options,
            at(T0),
        )
    }

    fn fresh(secs: u64, source: FreshnessSource) -> Option<Freshness> {
        Some(Freshness {
            lifetime: Duration::from_secs(secs),
            source,
        })
    }

    fn policy(pairs: &[(&str, &str)]) -> ResponsePolicy {
        let h = headers(pairs);
        let cc = CacheControl::from_headers(&h);
        ResponsePolicy::new(
            StatusCode::OK,
            &h,
            &cc,
            &CacheOptions::default(),
            at(T0),
            at(T0),
        )
    }

    // RFC 9111 §4.2.1: a shared cache uses s-maxage first
    #[test]
    fn s_maxage_wins_over_max_age_and_expires() {
        let expires = date(T0 + 1000);
        assert_eq!(
            lifetime(
                200,
                &[
                    ("cache-control", "max-age=60, s-maxage=30"),
                    ("expires", &expires)
                ]
            ),
            fresh(30, FreshnessSource::SMaxAge)
        );
    }

    // RFC 9111 §4.2.1, §5.3: max-age wins over Expires
    #[test]
    fn max_age_wins_over_expires() {
        let expires = date(T0 + 1000);
        assert_eq!(
            lifetime(
                200,
                &[("cache-control", "max-age=60"), ("expires", &expires)]
            ),
            fresh(60, FreshnessSource::MaxAge)
        );
    }

    // RFC 9111 §4.2.1: explicit lifetimes are reported even when zero
    #[test]
    fn max_age_zero_is_explicit_zero() {
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=0")]),
            fresh(0, FreshnessSource::MaxAge)
        );
    }

    // RFC 9111 §4.2.1: invalid max-age is stale (zero), and blocks heuristics
    #[test]
    fn invalid_max_age_is_zero_lifetime() {
        let lm = date(T0 - 100_000);
        assert_eq!(
            lifetime(
                200,
                &[("cache-control", "max-age=abc"), ("last-modified", &lm)]
            ),
            fresh(0, FreshnessSource::MaxAge)
        );
    }

    // RFC 9111 §4.2.1: Expires minus Date
    #[test]
    fn expires_minus_date() {
        let (d, e) = (date(T0 - 10), date(T0 + 90));
        assert_eq!(
            lifetime(200, &[("date", &d), ("expires", &e)]),
            fresh(100, FreshnessSource::Expires)
        );
    }

    // RFC 9111 §4.2.1: without a (valid) Date, the response time stands in
    #[test]
    fn expires_without_date_uses_response_time() {
        let e = date(T0 + 90);
        assert_eq!(
            lifetime(200, &[("expires", &e)]),
            fresh(90, FreshnessSource::Expires)
        );
        assert_eq!(
            lifetime(200, &[("date", "yesterday"), ("expires", &e)]),
            fresh(90, FreshnessSource::Expires)
        );
    }

    // RFC 9111 §4.2.1: Expires at or before Date gives a zero lifetime
    #[test]
    fn expires_in_the_past_is_zero() {
        let (d, e) = (date(T0), date(T0 - 3600));
        assert_eq!(
            lifetime(200, &[("date", &d), ("expires", &e)]),
            fresh(0, FreshnessSource::Expires)
        );
    }

    // RFC 9111 §5.3: an invalid Expires (e.g. "0") means already expired
    #[test]
    fn invalid_expires_is_already_expired() {
        for e in ["0", "-1", "never", ""] {
            assert_eq!(
                lifetime(500, &[("expires", e)]),
                fresh(0, FreshnessSource::Expires),
                "{e:?}"
            );
        }
    }

    // RFC 9111 §4.2.1: several different Expires lines are treated as stale
    #[test]
    fn multiple_different_expires_are_stale() {
        let (e1, e2) = (date(T0 + 60), date(T0 + 120));
        assert_eq!(
            lifetime(200, &[("expires", &e1), ("expires", &e2)]),
            fresh(0, FreshnessSource::Expires)
        );
    }

    // RFC 9111 §4.2.1: exact duplicate Expires lines are used
    #[test]
    fn identical_duplicate_expires_are_used() {
        let e = date(T0 + 60);
        assert_eq!(
            lifetime(200, &[("expires", &e), ("expires", &e)]),
            fresh(60, FreshnessSource::Expires)
        );
    }

    // RFC 9111 §4.2.2: 10% of Date - Last-Modified
    #[test]
    fn heuristic_is_fraction_of_last_modified_age() {
        let (d, lm) = (date(T0), date(T0 - 10_000));
        assert_eq!(
            lifetime(200, &[("date", &d), ("last-modified", &lm)]),
            fresh(1_000, FreshnessSource::Heuristic)
        );
    }

    // RFC 9111 §4.2.2: the heuristic is capped by max_heuristic_lifetime
    #[test]
    fn heuristic_is_capped() {
        let lm = date(T0 - 100 * 24 * 3600);
        assert_eq!(
            lifetime(200, &[("last-modified", &lm)]),
            fresh(24 * 3600, FreshnessSource::Heuristic)
        );
    }

    // RFC 9111 §4.2.2: Last-Modified not before Date gives no heuristic
    #[test]
    fn heuristic_needs_last_modified_before_date() {
        let (d, same, later) = (date(T0), date(T0), date(T0 + 10));
        assert_eq!(
            lifetime(200, &[("date", &d), ("last-modified", &same)]),
            None
        );
        assert_eq!(
            lifetime(200, &[("date", &d), ("last-modified", &later)]),
            None
        );
        assert_eq!(lifetime(200, &[("last-modified", "garbage")]), None);
        assert_eq!(lifetime(200, &[]), None);
    }

    // RFC 9111 §4.2.2: odd heuristic fractions never panic
    #[test]
    fn heuristic_fraction_edge_values() {
        let lm = date(T0 - 10_000);
        let h = [("last-modified", lm.as_str())];
        let mut o = CacheOptions::default();
        for (fraction, expect) in [
            (f64::NAN, 0),
            (-1.0, 0),
            (0.0, 0),
            (f64::INFINITY, 24 * 3600),
            (f64::MAX, 24 * 3600),
            (1.0, 10_000),
        ] {
            o.heuristic_fraction = fraction;
            assert_eq!(
                lifetime_with(200, &h, &o),
                fresh(expect, FreshnessSource::Heuristic),
                "{fraction}"
            );
        }
    }

    // RFC 9111 §4.2.2: a configured default TTL takes precedence over Last-Modified
    #[test]
    fn default_ttl_is_used_without_explicit_freshness() {
        let lm = date(T0 - 10_000);
        let o = CacheOptions {
            default_ttl: Some(Duration::from_secs(5)),
            ..CacheOptions::default()
        };
        assert_eq!(
            lifetime_with(200, &[("last-modified", &lm)], &o),
            fresh(5, FreshnessSource::DefaultTtl)
        );
        assert_eq!(
            lifetime_with(404, &[], &o),
            fresh(5, FreshnessSource::DefaultTtl)
        );
    }

    // RFC 9111 §4.2.2: no heuristics when explicit freshness is present
    #[test]
    fn default_ttl_ignored_with_explicit_freshness() {
        let o = CacheOptions {
            default_ttl: Some(Duration::from_secs(5)),
            ..CacheOptions::default()
        };
        assert_eq!(
            lifetime_with(200, &[("cache-control", "max-age=0")], &o),
            fresh(0, FreshnessSource::MaxAge)
        );
        assert_eq!(
            lifetime_with(200, &[("expires", "0")], &o),
            fresh(0, FreshnessSource::Expires)
        );
    }

    // RFC 9110 §15.1, RFC 9111 §4.2.2: heuristics only for heuristically cacheable statuses
    #[test]
    fn heuristic_only_for_heuristically_cacheable_status() {
        let lm = date(T0 - 10_000);
        let o = CacheOptions {
            default_ttl: Some(Duration::from_secs(5)),
            ..CacheOptions::default()
        };
        for status in [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501] {
            assert_eq!(
                lifetime(status, &[("last-modified", &lm)]),
                fresh(1_000, FreshnessSource::Heuristic),
                "{status}"
            );
        }
        for status in [302, 307, 400, 403, 500, 502, 503] {
            assert_eq!(
                lifetime(status, &[("last-modified", &lm)]),
                None,
                "{status}"
            );
            assert_eq!(lifetime_with(status, &[], &o), None, "{status}");
        }
    }

    // RFC 9111 §4.2.2, §3: public makes any status eligible for heuristics
    #[test]
    fn heuristic_allowed_for_public_response() {
        let lm = date(T0 - 10_000);
        assert_eq!(
            lifetime(302, &[("cache-control", "public"), ("last-modified", &lm)]),
            fresh(1_000, FreshnessSource::Heuristic)
        );
    }

    // RFC 9111 §4.2.3: no Age, no Date, no delay: zero
    #[test]
    fn initial_age_zero_without_information() {
        assert_eq!(
            initial_age(&HeaderMap::new(), at(T0), at(T0)),
            Duration::ZERO
        );
    }

    // RFC 9111 §4.2.3: apparent_age = response_time - date_value
    #[test]
    fn initial_age_apparent_age_from_date() {
        let d = date(T0 - 30);
        assert_eq!(
            initial_age(&headers(&[("date", &d)]), at(T0), at(T0)),
            Duration::from_secs(30)
        );
    }

    // RFC 9111 §4.2.3: a Date in the future gives apparent_age 0
    #[test]
    fn initial_age_future_date_is_zero() {
        let d = date(T0 + 300);
        assert_eq!(
            initial_age(&headers(&[("date", &d)]), at(T0), at(T0)),
            Duration::ZERO
        );
    }

    // RFC 9111 §4.2.3: corrected_age_value = age_value + response_delay
    #[test]
    fn initial_age_corrected_age_value() {
        let d = date(T0);
        let h = headers(&[("date", &d), ("age", "100")]);
        assert_eq!(
            initial_age(&h, at(T0 - 5), at(T0)),
            Duration::from_secs(105)
        );
    }

    // RFC 9111 §4.2.3: corrected_initial_age = max(apparent_age, corrected_age_value)
    #[test]
    fn initial_age_takes_the_larger_estimate() {
        let d = date(T0 - 200);
        let h = headers(&[("date", &d), ("age", "10")]);
        assert_eq!(
            initial_age(&h, at(T0 - 5), at(T0)),
            Duration::from_secs(200)
        );
    }

    // RFC 9111 §4.2.3: a request_time after response_time gives no delay
    #[test]
    fn initial_age_clock_skew_saturates() {
        let h = headers(&[("age", "7")]);
        assert_eq!(initial_age(&h, at(T0 + 50), at(T0)), Duration::from_secs(7));
    }

    // RFC 9111 §5.1, §4.2.3: invalid Age values are ignored (0); the first valid one is used
    #[test]
    fn initial_age_invalid_age_ignored() {
        for v in ["-1", "abc", "", "1.5"] {
            assert_eq!(
                initial_age(&headers(&[("age", v)]), at(T0), at(T0)),
                Duration::ZERO,
                "{v:?}"
            );
        }
        let h = headers(&[("age", "x"), ("age", "20, 30")]);
        assert_eq!(initial_age(&h, at(T0), at(T0)), Duration::from_secs(20));
        let mut h = HeaderMap::new();
        h.insert(AGE, HeaderValue::from_bytes(b"\xff9").unwrap());
        assert_eq!(initial_age(&h, at(T0), at(T0)), Duration::ZERO);
    }

    // RFC 9111 §1.2.2: a huge Age saturates at 2^31 and sums do not overflow
    #[test]
    fn initial_age_huge_age_saturates() {
        let h = headers(&[("age", "99999999999999999999999")]);
        let age = initial_age(&h, UNIX_EPOCH, at(T0));
        assert_eq!(age, Duration::from_secs((1 << 31) + T0));
    }

    // RFC 9111 §4.2.3: current_age = corrected_initial_age + resident_time
    #[test]
    fn age_adds_resident_time() {
        let p = policy(&[("age", "10")]);
        assert_eq!(p.age(at(T0)), Duration::from_secs(10));
        assert_eq!(p.age(at(T0 + 5)), Duration::from_secs(15));
        // A clock going backwards counts as zero resident time.
        assert_eq!(p.age(at(T0 - 5)), Duration::from_secs(10));
    }

    // RFC 9111 §4.2: fresh while freshness_lifetime > current_age
    #[test]
    fn fresh_until_lifetime_reached() {
        let p = policy(&[("cache-control", "max-age=60"), ("age", "10")]);
        assert_eq!(p.freshness_lifetime, Duration::from_secs(60));
        assert!(p.is_fresh(at(T0 + 49)));
        assert_eq!(p.ttl(at(T0 + 49)), Duration::from_secs(1));
        assert!(!p.is_fresh(at(T0 + 50)));
        assert_eq!(p.ttl(at(T0 + 50)), Duration::ZERO);
        assert_eq!(p.staleness(at(T0 + 80)), Duration::from_secs(30));
    }

    // RFC 9111 §4.2: a response without freshness has lifetime zero and is stale
    #[test]
    fn policy_without_freshness_is_stale() {
        let p = policy(&[("etag", "\"x\"")]);
        assert_eq!(p.freshness_lifetime, Duration::ZERO);
        assert!(!p.is_fresh(at(T0)));
    }

    // RFC 9111 §5.2.2.4: no-cache in any form
    #[test]
    fn policy_no_cache_any_form() {
        assert!(policy(&[("cache-control", "no-cache")]).no_cache);
        // Qualified: only the named fields are restricted, and they are not stored.
        assert!(!policy(&[("cache-control", "no-cache=\"set-cookie\"")]).no_cache);
        assert!(!policy(&[("cache-control", "max-age=5")]).no_cache);
    }

    // RFC 9111 §5.4: Pragma: no-cache only counts without Cache-Control
    #[test]
    fn policy_pragma_no_cache_only_without_cache_control() {
        assert!(policy(&[("pragma", "no-cache")]).no_cache);
        assert!(!policy(&[("pragma", "no-cache"), ("cache-control", "max-age=5")]).no_cache);
        // An empty Cache-Control line is still a Cache-Control field.
        assert!(!policy(&[("pragma", "no-cache"), ("cache-control", "")]).no_cache);
    }

    // RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10: must_revalidate sources
    #[test]
    fn policy_must_revalidate_sources() {
        assert!(policy(&[("cache-control", "must-revalidate")]).must_revalidate);
        assert!(policy(&[("cache-control", "proxy-revalidate")]).must_revalidate);
        assert!(policy(&[("cache-control", "s-maxage=5")]).must_revalidate);
        assert!(!policy(&[("cache-control", "max-age=5, public")]).must_revalidate);
    }

    // RFC 5861 §3, §4: stale extensions are carried over
    #[test]
    fn policy_stale_extensions() {
        let p = policy(&[(
            "cache-control",
            "max-age=1, stale-while-revalidate=30, stale-if-error=600",
        )]);
        assert_eq!(p.stale_while_revalidate, Some(Duration::from_secs(30)));
        assert_eq!(p.stale_if_error, Some(Duration::from_secs(600)));
    }

    // RFC 9111 §4.2.3: the policy's initial age uses request and response times
    #[test]
    fn policy_initial_age_uses_request_time() {
        let h = headers(&[("age", "3")]);
        let cc = CacheControl::from_headers(&h);
        let p = ResponsePolicy::new(
            StatusCode::OK,
            &h,
            &cc,
            &CacheOptions::default(),
            at(T0 - 2),
            at(T0),
        );
        assert_eq!(p.initial_age, Duration::from_secs(5));
        assert_eq!(p.response_time, at(T0));
    }

    // RFC 9213 §2.2: a targeted field replaces Cache-Control and Expires
    #[test]
    fn targeted_field_replaces_cache_control_and_expires() {
        let e = date(T0 + 1000);
        let h = headers(&[
            ("cache-control", "max-age=60"),
            ("expires", &e),
            ("pragma", "no-cache"),
            ("cdn-cache-control", "public"),
            ("last-modified", &date(T0 - 10_000)),
        ]);
        let name = http::HeaderName::from_static("cdn-cache-control");
        let cc = crate::policy::targeted_cache_control(&h, &name).unwrap();
        assert_eq!(
            freshness_lifetime(StatusCode::OK, &h, &cc, &CacheOptions::default(), at(T0)),
            fresh(1_000, FreshnessSource::Heuristic)
        );
        let p = ResponsePolicy::new(
            StatusCode::OK,
            &h,
            &cc,
            &CacheOptions::default(),
            at(T0),
            at(T0),
        );
        assert!(
            !p.no_cache,
            "Pragma does not apply next to a targeted field"
        );
    }

    // Robustness: far-future and far-past times do not panic
    #[test]
    fn extreme_times_do_not_panic() {
        let h = headers(&[
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("expires", "Fri, 31 Dec 9999 23:59:59 GMT"),
            ("age", "2147483648"),
        ]);
        let cc = CacheControl::from_headers(&h);
        let p = ResponsePolicy::new(
            StatusCode::OK,
            &h,
            &cc,
            &CacheOptions::default(),
            UNIX_EPOCH,
            at(T0),
        );
        let _ = p.is_fresh(at(u64::from(u32::MAX) * 100));
        let _ = p.age(UNIX_EPOCH);
        let _ = p.ttl(at(T0));
    }

    /// A soft purge: stale from the purge on (staleness counted from it), never made fresher,
    /// without `stale-while-revalidate`, with `no-cache`, `must-revalidate` and
    /// `stale-if-error` kept.
    #[test]
    fn marked_stale_is_stale_from_the_purge_on() {
        use crate::policy::reuse::{Reuse, may_serve_stale_if_error, reuse};
        let policy =
            ResponsePolicy::from_parts(Duration::from_secs(60), Duration::from_secs(5), at(T0))
                .with_stale_while_revalidate(Some(Duration::from_secs(30)))
                .with_stale_if_error(Some(Duration::from_secs(100)));
        let purged = policy.marked_stale(at(T0 + 10));
        assert!(policy.is_fresh(at(T0 + 10)));
        assert!(!purged.is_fresh(at(T0 + 10)));
        assert_eq!(purged.freshness_lifetime(), Duration::from_secs(15));
        assert_eq!(purged.staleness(at(T0 + 10)), Duration::ZERO);
        assert_eq!(purged.staleness(at(T0 + 50)), Duration::from_secs(40));
        assert_eq!(purged.stale_while_revalidate(), None);
        assert_eq!(purged.stale_if_error(), Some(Duration::from_secs(100)));
        assert_eq!(purged.age(at(T0 + 50)), policy.age(at(T0 + 50)));
        let none = HeaderMap::new();
        // Within the old stale-while-revalidate window, yet revalidated at once.
        assert_eq!(reuse(&purged, &none, at(T0 + 11)), Reuse::Revalidate);
        assert!(may_serve_stale_if_error(&purged, &none, at(T0 + 110)));
        assert!(!may_serve_stale_if_error(&purged, &none, at(T0 + 111)));

        // Already stale: unchanged staleness.
        let stale = policy.marked_stale(at(T0 + 200));
        assert_eq!(stale.freshness_lifetime(), Duration::from_secs(60));
        assert_eq!(
            stale.staleness(at(T0 + 200)),
            policy.staleness(at(T0 + 200))
        );

        // RFC 9111 §5.2.2.2, §5.2.2.4: never served stale, before or after the purge.
        let strict = policy
            .with_must_revalidate(true)
            .with_no_cache(true)
            .marked_stale(at(T0 + 10));
        assert!(strict.must_revalidate() && strict.no_cache());
        assert!(!may_serve_stale_if_error(&strict, &none, at(T0 + 11)));
    }
}
