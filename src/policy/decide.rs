//! The decisions the [`Cache`](crate::Cache) service acts on, in the manner of
//! `http-cache-semantics`' `before_request` / `after_response`: what to do with a request
//! given what is stored ([`lookup`]), and with the inner service's response
//! ([`after_response`], [`keep`], [`selected_by_not_modified`]). Each is a pure function of
//! the stored metadata, the request's parsed `Cache-Control` (parsed once per request by the
//! caller) and an explicit `now`.

use std::time::{Duration, SystemTime};

use http::header::ETAG;
use http::{HeaderMap, Method, StatusCode};

use super::headers::within_name_limit;
use super::reuse::{
    Reuse, is_stale_if_error_status, may_serve_stale_if_error_with,
    may_serve_stale_if_unreachable_with, reuse_with,
};
use super::revalidate::{add_validators, not_modified_selects};
use super::storable::{NotStorable, has_unstored_fields, remove_unstored_fields};
use super::{CacheControl, ResponsePolicy};
use crate::status::{Forward, Served};

/// What the store holds for a request's key, as far as [`lookup`] needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Found<'a> {
    /// Nothing is stored for the URI.
    Nothing,
    /// Responses are stored for the URI, none for the request's `Vary` values.
    OtherVariants,
    /// The stored response the request selects: its metadata and status.
    Selected(&'a ResponsePolicy, StatusCode),
}

/// What to do with a GET or HEAD request, given what is stored for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Answer from the selected stored response; when the answer is left to the origin after
    /// all (a precondition or range the cache does not evaluate), go forward for `otherwise`.
    Fresh {
        /// Why the request goes forward when the stored response cannot answer it as asked.
        otherwise: Forward,
    },
    /// Answer with the stale stored response at once and revalidate it in the background;
    /// else go forward for `otherwise`.
    StaleWhileRevalidate {
        /// Why the request goes forward when the stored response cannot answer it as asked.
        otherwise: Forward,
    },
    /// Go forward (validating what is stored), for this reason (RFC 9211 §2.2 `fwd`).
    Forward(Forward),
    /// `only-if-cached` with nothing usable stored: a 504.
    OnlyIfCachedMiss,
}

/// Decides what a GET or HEAD request (`method`, `req_headers`, their parsed `req_cc`) does
/// with what the store `found` for it at `now`.
pub(crate) fn lookup(
    found: Found<'_>,
    method: &Method,
    req_headers: &HeaderMap,
    req_cc: &CacheControl,
    now: SystemTime,
) -> Lookup {
    // RFC 9111 §4.1: a stored response is only selected by matching `Vary` values.
    let (policy, status) = match found {
        Found::Nothing => return forward(req_cc, Forward::UriMiss),
        Found::OtherVariants => return forward(req_cc, Forward::VaryMiss),
        Found::Selected(policy, status) => (policy, status),
    };
    let stale = stale_reason(policy, now);
    // RFC 9111 §4.2, §5.2.1: fresh, or stale as the request allows.
    match reuse_with(policy, req_cc, req_headers, now) {
        Reuse::Fresh | Reuse::StaleAllowed => Lookup::Fresh {
            // RFC 9211 §2.2: `partial` when a stored part could not satisfy the request.
            otherwise: match status {
                StatusCode::PARTIAL_CONTENT => Forward::Partial,
                _ => stale,
            },
        },
        // RFC 5861 §3: serve the stale response now, revalidate once in the background.
        Reuse::StaleWhileRevalidate if method == Method::GET => {
            Lookup::StaleWhileRevalidate { otherwise: stale }
        }
        _ => forward(req_cc, stale),
    }
}

/// The request goes forward for `why`, unless it may not: RFC 9111 §5.2.1.7,
/// `only-if-cached` with nothing usable stored gets a 504.
pub(crate) fn forward(req_cc: &CacheControl, why: Forward) -> Lookup {
    if req_cc.only_if_cached() {
        Lookup::OnlyIfCachedMiss
    } else {
        Lookup::Forward(why)
    }
}

/// Why a request that found `policy` stored goes forward: RFC 9211 §2.2, `request` only when
/// the request's directives ruled out a fresh response; a response that must be validated
/// (its own `no-cache`) is as good as stale.
fn stale_reason(policy: &ResponsePolicy, now: SystemTime) -> Forward {
    if policy.is_fresh(now) && !policy.no_cache {
        Forward::Request
    } else {
        Forward::Stale
    }
}

/// May the stored response with `policy` answer the request without contacting the origin?
/// RFC 9111 §4.2, §4.2.4, §5.2.1: fresh, or stale within the request's `max-stale`.
pub(crate) fn answers_without_origin(
    policy: &ResponsePolicy,
    req_cc: &CacheControl,
    req_headers: &HeaderMap,
    now: SystemTime,
) -> bool {
    matches!(
        reuse_with(policy, req_cc, req_headers, now),
        Reuse::Fresh | Reuse::StaleAllowed
    )
}

/// The `ttl` of `Cache-Status` for a stored response of `age` (RFC 9211 §2.4): its remaining
/// freshness in seconds, negative once stale (RFC 9111 §4.2: lifetime minus current age).
pub(crate) fn signed_ttl(policy: &ResponsePolicy, age: Duration) -> i64 {
    i64::try_from(policy.freshness_lifetime.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX))
}

/// Adds to `outgoing`, a conditional request, the validators of one stored response
/// (`status`, `headers`; `selected` when the request selected it); `true` when it added
/// any, so that a 304 may select it.
///
/// RFC 9111 §4.3.1: a stored response with a validator is validated, not fetched again; the
/// entity tags of the other stored variants go along, so a 304 may select one of them, but
/// only the tag: another variant's `Last-Modified` says nothing about this one. A stored part
/// is not validated: a 304 would confirm only the part, which cannot answer a request for
/// more (RFC 9111 §3.3).
pub(crate) fn add_stored_validators(
    status: StatusCode,
    headers: &HeaderMap,
    selected: bool,
    outgoing: &mut HeaderMap,
) -> bool {
    if status == StatusCode::PARTIAL_CONTENT {
        return false;
    }
    if selected {
        return add_validators(headers, outgoing);
    }
    match headers.get(ETAG) {
        Some(etag) => add_validators(&HeaderMap::from_iter([(ETAG, etag.clone())]), outgoing),
        None => false,
    }
}

/// What the inner service's response to a forwarded GET or HEAD is, for the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterResponse {
    /// Made by the inner service because it could not reach the origin: a stale stored
    /// response may stand in, else it is passed on, never stored.
    Unreachable,
    /// The rest of the stored prefix the request asked for: completes it.
    CompletesPart,
    /// An error a stale stored response may cover.
    Error,
    /// A 304: freshens the stored response it selects, which answers the client.
    NotModified,
    /// A successful HEAD response: freshens the stored GET response it matches.
    Freshen,
    /// Any other response: stored when it may be ([`keep`]), and passed on.
    PassOn,
}

/// Decides what a response with `status` to a forwarded `method` request is. `unreachable`:
/// the inner service made it because the origin could not be reached; `completing`: the
/// request asked for the rest of a stored part.
pub(crate) fn after_response(
    status: StatusCode,
    method: &Method,
    unreachable: bool,
    completing: bool,
) -> AfterResponse {
    if unreachable {
        // RFC 9111 §4.2.4: a disconnected cache may serve stale; RFC 5861 §4.
        AfterResponse::Unreachable
    } else if completing && status == StatusCode::PARTIAL_CONTENT {
        // RFC 9111 §3.4: a stored prefix is completed with the rest of the representation.
        AfterResponse::CompletesPart
    } else if is_stale_if_error_status(status) {
        // RFC 5861 §4: 500, 502, 503 and 504 may be covered by a stale response.
        AfterResponse::Error
    } else if status == StatusCode::NOT_MODIFIED {
        // RFC 9111 §4.3.3, §4.3.4: a 304 freshens the stored response it selects.
        AfterResponse::NotModified
    } else {
        after_full_response(status, method)
    }
}

/// [`after_response`] for a response that is none of the special cases, or one whose special
/// case came to nothing (no stored response to stand in, none selected).
pub(crate) fn after_full_response(status: StatusCode, method: &Method) -> AfterResponse {
    // RFC 9111 §4.3.5: a HEAD response freshens the stored GET response it matches.
    if method == Method::HEAD && status.is_success() {
        AfterResponse::Freshen
    } else {
        AfterResponse::PassOn
    }
}

/// Which of the stored responses a conditional request `validated` a 304 (`not_modified`,
/// fields) selects: the index of the first it selects (RFC 9111 §4.3.4, with the case it
/// leaves open when only one response was validated and the client sent no validators of its
/// own: [`not_modified_selects`]). `client_headers` are the request's fields as the client
/// sent them.
pub(crate) fn selected_by_not_modified<'a>(
    validated: impl ExactSizeIterator<Item = &'a HeaderMap>,
    client_headers: &HeaderMap,
    not_modified: &HeaderMap,
) -> Option<usize> {
    let only_one = validated.len() == 1;
    let mut validated = validated;
    validated
        .position(|stored| not_modified_selects(stored, client_headers, not_modified, only_one))
}

/// Which stale response stands in for an origin that failed, and how it is reported: within
/// its `stale-if-error` window (RFC 5861 §4) with the origin's status, if it answered;
/// else, when the origin could not be reached (`origin_status` is `None`), as a disconnected
/// cache may (RFC 9111 §4.2.4, up to `max_unreachable` of staleness). `None`: the failure is
/// passed on.
pub(crate) fn stale_fallback(
    policy: &ResponsePolicy,
    req_cc: &CacheControl,
    req_headers: &HeaderMap,
    now: SystemTime,
    origin_status: Option<StatusCode>,
    max_unreachable: Duration,
) -> Option<Served> {
    if may_serve_stale_if_error_with(policy, req_cc, req_headers, now) {
        return Some(Served::StaleIfError(origin_status));
    }
    let unreachable = origin_status.is_none()
        && may_serve_stale_if_unreachable_with(policy, req_cc, req_headers, now, max_unreachable);
    unreachable.then_some(Served::StaleIfUnreachable)
}

/// Whether a forwarded response is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Stored (teed into the store as it streams).
    Store,
    /// Passed on without being stored.
    PassOn {
        /// Why, for `Cache-Status; detail=` (RFC 9211 §2.8) and the metrics.
        reason: Unstored,
        /// The reason comes from the request alone: the next request for the key may get a
        /// storable response, so it is worth waiting for (collapsed forwarding).
        worth_waiting: bool,
    },
}

/// Why a forwarded response was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unstored {
    /// RFC 9111 §3 forbids it.
    Rule(NotStorable),
    /// Its body is larger than the largest the cache stores (configuration, not RFC).
    TooLarge,
    /// Its key was not yet requested often enough (`min_uses`, configuration, not RFC).
    NotAdmitted,
    /// The store is full and its key was requested for the first time (the doorkeeper,
    /// configuration, not RFC).
    StoreFull,
}

impl Unstored {
    /// Every reason, in the order of [`index`](Self::index).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const ALL: [Unstored; 13] = [
        Unstored::Rule(NotStorable::Method),
        Unstored::Rule(NotStorable::Status),
        Unstored::Rule(NotStorable::NoStore),
        Unstored::Rule(NotStorable::Private),
        Unstored::Rule(NotStorable::Authorization),
        Unstored::Rule(NotStorable::NoFreshnessOrValidator),
        Unstored::Rule(NotStorable::VaryStar),
        Unstored::Rule(NotStorable::SetCookie),
        Unstored::Rule(NotStorable::MustUnderstand),
        Unstored::Rule(NotStorable::VaryUnseen),
        Unstored::TooLarge,
        Unstored::NotAdmitted,
        Unstored::StoreFull,
    ];

    /// The reason's token, for `Cache-Status; detail=` and the metrics' `reason` label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unstored::Rule(rule) => rule.as_str(),
            Unstored::TooLarge => "too-large",
            Unstored::NotAdmitted => "min-uses",
            Unstored::StoreFull => "store-full",
        }
    }

    /// The reason's position in [`ALL`](Self::ALL).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn index(self) -> usize {
        match self {
            Unstored::Rule(rule) => match rule {
                NotStorable::Method => 0,
                NotStorable::Status => 1,
                NotStorable::NoStore => 2,
                NotStorable::Private => 3,
                NotStorable::Authorization => 4,
                NotStorable::NoFreshnessOrValidator => 5,
                NotStorable::VaryStar => 6,
                NotStorable::SetCookie => 7,
                NotStorable::MustUnderstand => 8,
                NotStorable::VaryUnseen => 9,
            },
            Unstored::TooLarge => 10,
            Unstored::NotAdmitted => 11,
            Unstored::StoreFull => 12,
        }
    }
}

/// Decides whether a forwarded response is stored, from what [`is_storable_with`]
/// (RFC 9111 §3) said of it (`storable`), its parsed `Cache-Control` `resp_cc`, its
/// `headers` (no more names than [`MAX_NAMES`](super::headers::MAX_NAMES)), the least size of
/// its body and the largest the cache stores, and whether its key is `admitted`
/// (requested often enough, when the cache counts uses; else why not, [`Unstored::NotAdmitted`]
/// or [`Unstored::StoreFull`]; checked last, so that a response RFC 9111 forbids to store says
/// so).
///
/// [`is_storable_with`]: super::storable::is_storable_with
pub(crate) fn keep(
    storable: Result<(), NotStorable>,
    resp_cc: &CacheControl,
    headers: &HeaderMap,
    body_at_least: u64,
    max_entry_size: usize,
    admitted: Result<(), Unstored>,
) -> Keep {
    match storable {
        Err(reason) => Keep::PassOn {
            reason: Unstored::Rule(reason),
            worth_waiting: !reason.holds_for_later_requests(resp_cc),
        },
        // Configuration (not RFC): larger bodies, and header sections of more names than a
        // hit's map could take the cache's fields into, stream through uncached.
        Ok(()) if body_at_least > max_entry_size as u64 || !within_name_limit(headers) => {
            Keep::PassOn {
                reason: Unstored::TooLarge,
                worth_waiting: false,
            }
        }
        // Configuration (not RFC): a later request for the key may be admitted; such
        // requests never lead a flight, so there is nobody to wait for anyway.
        Ok(()) => match admitted {
            Err(reason) => Keep::PassOn {
                reason,
                worth_waiting: true,
            },
            Ok(()) => Keep::Store,
        },
    }
}

/// The header fields stored with a response: a copy of `headers` without the hop-by-hop
/// fields (RFC 9111 §3.1) and without those named by a qualified `no-cache` / `private`
/// (RFC 9111 §5.2.2.4, §5.2.2.7) in `resp_cc`.
///
/// The copy's values own their bytes, all in one buffer: values parsed by hyper are slices of
/// its read buffer; stored as they are, they would keep that whole buffer alive, unaccounted.
pub(crate) fn stored_fields(headers: &HeaderMap, resp_cc: &CacheControl) -> HeaderMap {
    if !has_unstored_fields(headers, resp_cc) {
        return super::headers::compacted(headers);
    }
    let mut kept = headers.clone();
    remove_unstored_fields(&mut kept, resp_cc);
    super::headers::compacted(&kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_util::{at, headers};

    fn policy(lifetime: u64) -> ResponsePolicy {
        ResponsePolicy::from_parts(Duration::from_secs(lifetime), Duration::ZERO, at(1000))
    }

    fn decide(found: Found<'_>, method: &Method, req: &HeaderMap, now: u64) -> Lookup {
        lookup(
            found,
            method,
            req,
            &CacheControl::from_headers(req),
            at(now),
        )
    }

    // RFC 9111 §4.1, RFC 9211 §2.2: nothing stored, or only other variants.
    #[test]
    fn lookup_misses_say_why() {
        let none = HeaderMap::new();
        let get = Method::GET;
        let uri_miss = Lookup::Forward(Forward::UriMiss);
        let vary_miss = Lookup::Forward(Forward::VaryMiss);
        assert_eq!(decide(Found::Nothing, &get, &none, 0), uri_miss);
        assert_eq!(decide(Found::OtherVariants, &get, &none, 0), vary_miss);
    }

    // RFC 9111 §5.2.1.7: only-if-cached with nothing usable stored.
    #[test]
    fn lookup_only_if_cached_misses() {
        let req = headers(&[("cache-control", "only-if-cached")]);
        let stale = policy(10);
        let found = Found::Selected(&stale, StatusCode::OK);
        let miss = Lookup::OnlyIfCachedMiss;
        assert_eq!(decide(Found::Nothing, &Method::GET, &req, 0), miss);
        assert_eq!(decide(found, &Method::GET, &req, 2000), miss);
        let cc = CacheControl::from_headers(&req);
        assert_eq!(forward(&cc, Forward::Partial), miss);
    }

    // RFC 9111 §4.2: fresh answers; stale goes forward as `stale`; a request that rules out
    // a fresh response goes forward as `request` (RFC 9211 §2.2).
    #[test]
    fn lookup_fresh_and_stale() {
        let none = HeaderMap::new();
        let fresh = policy(60);
        let ok = Found::Selected(&fresh, StatusCode::OK);
        let stale = Forward::Stale;
        // A fresh response left to the origin (a precondition, a range) goes as `request`.
        assert_eq!(
            decide(ok, &Method::GET, &none, 1010),
            Lookup::Fresh {
                otherwise: Forward::Request
            }
        );
        let part = Found::Selected(&fresh, StatusCode::PARTIAL_CONTENT);
        let partial = Forward::Partial;
        assert_eq!(
            decide(part, &Method::GET, &none, 1010),
            Lookup::Fresh { otherwise: partial }
        );
        assert_eq!(
            decide(ok, &Method::GET, &none, 1100),
            Lookup::Forward(stale)
        );
        let no_cache = headers(&[("cache-control", "no-cache")]);
        let request = Lookup::Forward(Forward::Request);
        assert_eq!(decide(ok, &Method::GET, &no_cache, 1010), request);
    }

    // RFC 5861 §3: stale within stale-while-revalidate answers a GET, not a HEAD.
    #[test]
    fn lookup_stale_while_revalidate_only_for_get() {
        let none = HeaderMap::new();
        let swr = policy(60).with_stale_while_revalidate(Some(Duration::from_secs(60)));
        let found = Found::Selected(&swr, StatusCode::OK);
        let stale = Forward::Stale;
        assert_eq!(
            decide(found, &Method::GET, &none, 1090),
            Lookup::StaleWhileRevalidate { otherwise: stale }
        );
        assert_eq!(
            decide(found, &Method::HEAD, &none, 1090),
            Lookup::Forward(stale)
        );
    }

    // RFC 9211 §2.4: the ttl goes negative once stale.
    #[test]
    fn signed_ttl_is_negative_when_stale() {
        let p = policy(60);
        assert_eq!(signed_ttl(&p, Duration::from_secs(20)), 40);
        assert_eq!(signed_ttl(&p, Duration::from_secs(90)), -30);
    }

    // RFC 9111 §4.3.1, §3.3: the selected response's validators, other variants' tags only,
    // no part's.
    #[test]
    fn stored_validators_go_along() {
        let stored = headers(&[
            ("etag", "\"a\""),
            ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ]);
        let mut out = HeaderMap::new();
        assert!(add_stored_validators(
            StatusCode::OK,
            &stored,
            true,
            &mut out
        ));
        assert!(out.contains_key("if-modified-since"));
        let mut out = HeaderMap::new();
        assert!(add_stored_validators(
            StatusCode::OK,
            &stored,
            false,
            &mut out
        ));
        assert_eq!(out["if-none-match"], "\"a\"");
        assert!(!out.contains_key("if-modified-since"));
        let mut out = HeaderMap::new();
        let partial = StatusCode::PARTIAL_CONTENT;
        assert!(!add_stored_validators(partial, &stored, true, &mut out));
        assert!(out.is_empty());
    }

    // RFC 5861 §4, RFC 9111 §3.4, §4.3.4, §4.3.5: which response is which.
    #[test]
    fn after_response_cases() {
        let (get, head) = (Method::GET, Method::HEAD);
        let status = |code: u16| StatusCode::from_u16(code).unwrap();
        assert_eq!(
            after_response(status(200), &get, true, false),
            AfterResponse::Unreachable
        );
        assert_eq!(
            after_response(status(206), &get, false, true),
            AfterResponse::CompletesPart
        );
        for code in [500, 502, 503, 504] {
            assert_eq!(
                after_response(status(code), &get, false, false),
                AfterResponse::Error
            );
        }
        assert_eq!(
            after_response(status(501), &get, false, false),
            AfterResponse::PassOn
        );
        assert_eq!(
            after_response(status(304), &get, false, false),
            AfterResponse::NotModified
        );
        assert_eq!(
            after_response(status(200), &head, false, false),
            AfterResponse::Freshen
        );
        assert_eq!(
            after_response(status(206), &get, false, false),
            AfterResponse::PassOn
        );
    }

    // RFC 9111 §4.3.4: the 304 selects the response whose tag it carries.
    #[test]
    fn not_modified_selects_by_tag() {
        let a = headers(&[("etag", "\"a\"")]);
        let b = headers(&[("etag", "\"b\"")]);
        let none = HeaderMap::new();
        let for_b = headers(&[("etag", "\"b\"")]);
        let both = [&a, &b];
        assert_eq!(
            selected_by_not_modified(both.into_iter(), &none, &for_b),
            Some(1)
        );
        // One validated response and a 304 without validators: it answers for that one.
        assert_eq!(
            selected_by_not_modified([&a].into_iter(), &none, &none),
            Some(0)
        );
        assert_eq!(
            selected_by_not_modified(both.into_iter(), &none, &none),
            None
        );
    }

    // RFC 5861 §4, RFC 9111 §4.2.4: stale-if-error first, then a disconnected cache's bound.
    #[test]
    fn stale_fallbacks() {
        let none = HeaderMap::new();
        let cc = CacheControl::default();
        let hour = Duration::from_secs(3600);
        let sie = policy(60).with_stale_if_error(Some(Duration::from_secs(60)));
        let error = Some(StatusCode::BAD_GATEWAY);
        let fallback = stale_fallback(&sie, &cc, &none, at(1100), error, hour);
        assert_eq!(fallback, Some(Served::StaleIfError(error)));
        let plain = policy(60);
        assert_eq!(
            stale_fallback(&plain, &cc, &none, at(1100), error, hour),
            None
        );
        assert_eq!(
            stale_fallback(&plain, &cc, &none, at(1100), None, hour),
            Some(Served::StaleIfUnreachable)
        );
        let zero = Duration::ZERO;
        assert_eq!(
            stale_fallback(&plain, &cc, &none, at(1100), None, zero),
            None
        );
    }

    // RFC 9111 §3: reasons from the request alone are worth waiting for.
    #[test]
    fn keep_decides_storing() {
        let cc = CacheControl::default();
        let few = HeaderMap::new();
        assert_eq!(keep(Ok(()), &cc, &few, 10, 100, Ok(())), Keep::Store);
        let too_large = Keep::PassOn {
            reason: Unstored::TooLarge,
            worth_waiting: false,
        };
        assert_eq!(keep(Ok(()), &cc, &few, 101, 100, Ok(())), too_large);
        let not_admitted = keep(Ok(()), &cc, &few, 10, 100, Err(Unstored::NotAdmitted));
        assert_eq!(
            not_admitted,
            Keep::PassOn {
                reason: Unstored::NotAdmitted,
                worth_waiting: true
            }
        );
        let store_full = keep(Ok(()), &cc, &few, 10, 100, Err(Unstored::StoreFull));
        assert!(
            matches!(store_full, Keep::PassOn { reason, .. } if reason.as_str() == "store-full")
        );
        // RFC 9111 §3 says it first.
        let no_store = keep(
            Err(NotStorable::NoStore),
            &cc,
            &few,
            0,
            100,
            Err(Unstored::NotAdmitted),
        );
        assert!(matches!(no_store, Keep::PassOn { reason, .. } if reason.as_str() == "no-store"));
        let auth = keep(Err(NotStorable::Authorization), &cc, &few, 0, 100, Ok(()));
        assert!(matches!(
            auth,
            Keep::PassOn {
                worth_waiting: true,
                ..
            }
        ));
        let private = keep(Err(NotStorable::Private), &cc, &few, 0, 100, Ok(()));
        assert!(matches!(
            private,
            Keep::PassOn {
                worth_waiting: false,
                ..
            }
        ));
    }

    // Names a hit's copy could not take the cache's fields into: forwarded, not stored.
    #[test]
    fn keep_passes_on_too_many_names() {
        let cc = CacheControl::default();
        let mut many = HeaderMap::new();
        for n in 0..=crate::policy::headers::MAX_NAMES {
            let name = http::HeaderName::try_from(format!("x-{n}")).unwrap();
            many.insert(name, http::HeaderValue::from_static("1"));
        }
        let kept = keep(Ok(()), &cc, &many, 10, 100, Ok(()));
        assert!(matches!(
            kept,
            Keep::PassOn {
                reason: Unstored::TooLarge,
                ..
            }
        ));
        many.remove("x-0");
        assert_eq!(keep(Ok(()), &cc, &many, 10, 100, Ok(())), Keep::Store);
    }

    #[test]
    fn unstored_reasons_are_indexed_in_order() {
        for (i, reason) in Unstored::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
        let mut names: Vec<_> = Unstored::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Unstored::ALL.len());
    }

    // RFC 9111 §3.1, §5.2.2.7: hop-by-hop fields and those named by `private` are not stored.
    #[test]
    fn stored_fields_strip_what_is_not_stored() {
        let resp = headers(&[
            ("connection", "close"),
            ("x-user", "me"),
            ("cache-control", "private=\"x-user\""),
            ("content-type", "text/plain"),
        ]);
        let stored = stored_fields(&resp, &CacheControl::from_headers(&resp));
        assert!(!stored.contains_key("connection"));
        assert!(!stored.contains_key("x-user"));
        assert_eq!(stored["content-type"], "text/plain");
    }
}
