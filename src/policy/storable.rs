//! May a response be stored? (RFC 9111 §3)

use super::freshness::{FreshnessSource, freshness_lifetime};
use super::headers::remove_hop_by_hop;
use super::invalidate::{origin, resolve};
use super::range::ContentRange;
use super::{CacheControl, CacheOptions, Vary};
use http::header::{AUTHORIZATION, CONTENT_LOCATION, ETAG, EXPIRES, LAST_MODIFIED, SET_COOKIE};
use http::{HeaderMap, HeaderName, Method, StatusCode, Uri};
use std::fmt;
use std::time::SystemTime;

/// Why a response is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotStorable {
    /// The request method is not GET (RFC 9111 §3: the method must be understood; HEAD
    /// responses are not stored because they cannot answer a GET).
    Method,
    /// Not a storable final status: 1xx, 206, 304, or a status outside the heuristically
    /// cacheable set without explicit freshness or `public` (RFC 9111 §3).
    Status,
    /// `no-store` on the request or the response (RFC 9111 §5.2.1.5, §5.2.2.5). A response
    /// `no-store` is ignored when the response also has `must-understand` and its status is
    /// understood (RFC 9111 §5.2.2.3); a request `no-store` always applies.
    NoStore,
    /// The unqualified `private` (RFC 9111 §5.2.2.7). The qualified form
    /// (`private="field, …"`) does not prevent storing: see `fields_not_to_store`.
    Private,
    /// The request had `Authorization` and the response did not allow sharing with `public`,
    /// `s-maxage` or `must-revalidate` (RFC 9111 §3.5).
    Authorization,
    /// Neither freshness information (explicit or heuristic) nor a validator (`ETag`,
    /// `Last-Modified`).
    NoFreshnessOrValidator,
    /// `Vary: *` (RFC 9111 §4.1: it always fails to match).
    VaryStar,
    /// `Set-Cookie` while [`CacheOptions::store_set_cookie`] is off.
    SetCookie,
    /// `must-understand` on a response whose status this cache does not understand
    /// (RFC 9111 §5.2.2.3): only 200, 203, 204, 300, 301, 308, 404, 405, 410, 414 and 501 are.
    MustUnderstand,
    /// `Vary` names a field the inner service sets on the way to the origin
    /// ([`CacheOptions::unseen_fields`]): the cache does not see the value the origin saw, so
    /// it could not select the response for a later request (RFC 9111 §4.1).
    VaryUnseen,
}

impl NotStorable {
    /// Short token for logs and `Cache-Status; detail=`.
    ///
    /// Each variant has its own token, made of lowercase letters and `-` only.
    pub fn as_str(&self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::NoFreshnessOrValidator => "no-freshness",
            NotStorable::VaryStar => "vary-star",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::MustUnderstand => "must-understand",
            NotStorable::VaryUnseen => "vary-unseen",
        }
    }
}

impl fmt::Display for NotStorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Final statuses this cache understands and may store without explicit freshness: the
/// heuristically cacheable ones of RFC 9110 §15.1 (a 206 only with a usable `Content-Range`).
fn is_understood_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// May a response to `POST` be stored to answer later `GET` and `HEAD` requests for its
/// target? (RFC 9110 §9.3.3: "Responses to POST requests are only cacheable when they include
/// explicit freshness information ... and a Content-Location header field that has the same
/// value as the POST's target URI".)
///
/// True when `method` is POST, the response has explicit freshness (`s-maxage`, `max-age` or
/// `Expires`, per [`freshness_lifetime`]; never a heuristic) and exactly one
/// `Content-Location` that, resolved against `request_uri` (absolute), is the same URI (same
/// origin, path and query). The caller then applies [`is_storable`] as for a `GET`, for every
/// other rule.
pub(crate) fn post_response_answers_get(
    method: &Method,
    request_uri: &Uri,
    status: StatusCode,
    resp_headers: &HeaderMap,
    resp_cc: &CacheControl,
    options: &CacheOptions,
    response_time: SystemTime,
) -> bool {
    if method != Method::POST {
        return false;
    }
    // RFC 9110 §9.3.3: "explicit freshness information (see Section 4.2.1 of [CACHING])".
    let explicit = freshness_lifetime(status, resp_headers, resp_cc, options, response_time)
        .is_some_and(|f| {
            matches!(
                f.source,
                FreshnessSource::SMaxAge | FreshnessSource::MaxAge | FreshnessSource::Expires
            )
        });
    if !explicit {
        return false;
    }
    let mut lines = resp_headers.get_all(CONTENT_LOCATION).iter();
    let (Some(value), None) = (lines.next(), lines.next()) else {
        return false;
    };
    let Some(resolved) = value
        .to_str()
        .ok()
        .and_then(|reference| resolve(request_uri, reference.trim()))
    else {
        return false;
    };
    let path_and_query = |uri: &Uri| {
        uri.path_and_query()
            .map_or("/", |pq| {
                if pq.as_str().is_empty() {
                    "/"
                } else {
                    pq.as_str()
                }
            })
            .to_owned()
    };
    origin(&resolved).is_some()
        && origin(&resolved) == origin(request_uri)
        && path_and_query(&resolved) == path_and_query(request_uri)
}

/// RFC 9111 §3 for a shared cache.
///
/// Checks, in this order, and returns the first failure:
///
/// 1. the method is GET ([`NotStorable::Method`]);
/// 2. the status is final, not 304, not a 206 without one `Content-Range: bytes a-b/len`
///    ([`ContentRange`]), and either understood (200, 203, 204,
///    206, 300, 301, 308, 404, 405, 410, 414, 501) or, for any other final status, the response has
///    explicit freshness (`max-age`, `s-maxage`, `Expires`) or `public`
///    ([`NotStorable::Status`]); with `must-understand` only understood statuses pass
///    ([`NotStorable::MustUnderstand`]);
/// 3. no `no-store` on the request, and none on the response unless it has
///    `must-understand` (its status is understood by step 2, so RFC 9111 §5.2.2.3 lets this
///    cache ignore `no-store`) ([`NotStorable::NoStore`]);
/// 4. no unqualified `private` ([`NotStorable::Private`]); a qualified `private="…"` is
///    storable once the fields it names are removed (`fields_not_to_store`);
/// 5. no `Authorization` on the request unless the response has `public`, `s-maxage` or
///    `must-revalidate` ([`NotStorable::Authorization`]);
/// 6. no `Vary: *` ([`NotStorable::VaryStar`]), and no `Vary` naming one of
///    [`CacheOptions::unseen_fields`] ([`NotStorable::VaryUnseen`]);
/// 7. no `Set-Cookie` unless [`CacheOptions::store_set_cookie`] or a qualified `private` /
///    `no-cache` names it, so that it is stripped ([`NotStorable::SetCookie`]);
/// 8. freshness information ([`freshness_lifetime`] is `Some`, including
///    [`CacheOptions::default_ttl`] and the `Last-Modified` heuristic) or a validator (`ETag`
///    or `Last-Modified`) ([`NotStorable::NoFreshnessOrValidator`]).
///
/// `resp_cc` is the parsed `Cache-Control` of `resp_headers`, or the directives of a targeted
/// field ([`targeted_cache_control`](super::targeted_cache_control)); with a targeted `resp_cc`
/// `Expires` is ignored too (RFC 9213 §2.2). `response_time` stands in for a missing `Date`.
pub fn is_storable(
    method: &Method,
    req_headers: &HeaderMap,
    status: StatusCode,
    resp_headers: &HeaderMap,
    resp_cc: &CacheControl,
    options: &CacheOptions,
    response_time: SystemTime,
) -> Result<(), NotStorable> {
    let req_cc = CacheControl::from_headers(req_headers);
    is_storable_with(
        method,
        req_headers,
        &req_cc,
        status,
        resp_headers,
        resp_cc,
        options,
        response_time,
    )
}

/// [`is_storable`] with the request's `Cache-Control` already parsed: `req_cc` is
/// `CacheControl::from_headers(req_headers)`, parsed once per request by the caller.
// One argument more than `is_storable`: the parsed request directives.
#[allow(clippy::too_many_arguments)]
pub(crate) fn is_storable_with(
    method: &Method,
    req_headers: &HeaderMap,
    req_cc: &CacheControl,
    status: StatusCode,
    resp_headers: &HeaderMap,
    resp_cc: &CacheControl,
    options: &CacheOptions,
    response_time: SystemTime,
) -> Result<(), NotStorable> {
    // RFC 9111 §3: "the request method is understood by the cache". Only GET: a stored HEAD
    // response cannot answer a GET (RFC 9110 §9.3.2).
    if method != Method::GET {
        return Err(NotStorable::Method);
    }

    // RFC 9111 §3: "the response status code is final" and, for 206 / 304 or with
    // must-understand, "the cache understands the response status code". 304 only updates
    // (§4.3.4), so it is not stored as such.
    // RFC 9213 §2.2: a cache using a targeted field ignores Expires.
    let explicit_freshness = resp_cc.max_age().is_some()
        || resp_cc.s_maxage().is_some()
        || (!resp_cc.is_targeted() && resp_headers.contains_key(EXPIRES));
    match status.as_u16() {
        // RFC 9111 §3.3: a partial response may be stored when the cache can tell which part
        // of which representation it holds: one byte range of a known complete length.
        206 if ContentRange::from_headers(resp_headers).is_some() => {}
        100..=199 | 206 | 304 => return Err(NotStorable::Status),
        _ if is_understood_status(status) => {}
        // RFC 9111 §5.2.2.3: "The must-understand response directive limits caching of the
        // response to a cache that understands and conforms to the requirements for that
        // response's status code."
        _ if resp_cc.must_understand() => return Err(NotStorable::MustUnderstand),
        // RFC 9111 §3: any other final status needs explicit freshness or `public`.
        _ if explicit_freshness || resp_cc.public() => {}
        _ => return Err(NotStorable::Status),
    }

    // RFC 9111 §3: "the no-store cache directive is not present in the response";
    // RFC 9111 §5.2.2.3: "When a cache that implements the must-understand directive receives
    // a response that includes it, the cache SHOULD ignore the no-store directive if it
    // understands and implements the status code's caching requirements" (checked above).
    // RFC 9111 §5.2.1.5: a request no-store forbids storing "any response to it", always.
    if (resp_cc.no_store() && !resp_cc.must_understand()) || req_cc.no_store() {
        return Err(NotStorable::NoStore);
    }

    // RFC 9111 §3, §5.2.2.7: a shared cache does not store a response with the unqualified
    // `private`. The qualified form only forbids storing the named fields: "a shared cache
    // MUST NOT store the specified field names(s), whereas it MAY store the remainder of the
    // response message" (see `fields_not_to_store`).
    if resp_cc.private() && resp_cc.private_fields().is_none() {
        return Err(NotStorable::Private);
    }

    // RFC 9111 §3.5: with Authorization, a shared cache stores only if the response has
    // must-revalidate, public or s-maxage.
    if req_headers.contains_key(AUTHORIZATION)
        && !(resp_cc.public() || resp_cc.s_maxage().is_some() || resp_cc.must_revalidate())
    {
        return Err(NotStorable::Authorization);
    }

    // RFC 9111 §4.1: "A stored response with a Vary header field value containing a member
    // "*" always fails to match."
    match Vary::from_headers(resp_headers) {
        Vary::Star => return Err(NotStorable::VaryStar),
        // RFC 9111 §4.1: a stored response is selected by the values the origin saw; for a
        // field the inner service sets on the way there, the cache never sees them.
        Vary::Fields(fields) if options.names_unseen(&fields) => {
            return Err(NotStorable::VaryUnseen);
        }
        Vary::Fields(_) | Vary::None => {}
    }

    // Policy (not RFC): one user's cookie must not reach another through a shared cache.
    // A `Set-Cookie` named by qualified `private` / `no-cache` is stripped before storing
    // (RFC 9111 §5.2.2.7, §5.2.2.4), so it no longer stands in the way.
    if resp_headers.contains_key(SET_COOKIE)
        && !options.store_set_cookie
        && !fields_not_to_store(resp_cc).contains(&SET_COOKIE)
    {
        return Err(NotStorable::SetCookie);
    }

    // RFC 9111 §4.2 / §4.3: without freshness information or a validator, a stored response
    // could never be reused.
    let has_validator = resp_headers.contains_key(ETAG) || resp_headers.contains_key(LAST_MODIFIED);
    if !has_validator
        && freshness_lifetime(status, resp_headers, resp_cc, options, response_time).is_none()
    {
        return Err(NotStorable::NoFreshnessOrValidator);
    }

    Ok(())
}

/// The header fields a shared cache strips from the copy it stores (RFC 9111 §3.1).
///
/// The union, without duplicates and in order of appearance, of the field names of a
/// qualified `private="…"` (§5.2.2.7: a shared cache "MUST NOT store the specified field
/// names(s)") and of a qualified `no-cache="…"` (§5.2.2.4: the listed fields are not reused
/// without revalidation; stripping them is the simplest way to honour that). Empty when
/// neither is qualified. The unqualified forms name no field: unqualified `private` makes the
/// response non-storable ([`NotStorable::Private`]) and unqualified `no-cache` revalidates
/// the whole response ([`ResponsePolicy::no_cache`](super::ResponsePolicy::no_cache)).
pub(crate) fn fields_not_to_store(resp_cc: &CacheControl) -> Vec<HeaderName> {
    let mut fields: Vec<HeaderName> = Vec::new();
    // RFC 9111 §3.1: "The no-cache (Section 5.2.2.4) and private (Section 5.2.2.7) cache
    // directives can have arguments that prevent storage of header fields by all caches and
    // shared caches, respectively."
    let private = resp_cc.private_fields().unwrap_or_default();
    let no_cache = resp_cc.no_cache_fields().unwrap_or_default();
    for name in private.iter().chain(no_cache) {
        if !fields.contains(name) {
            fields.push(name.clone());
        }
    }
    fields
}

impl NotStorable {
    /// Will the next request for the same target meet this reason too? True for reasons that
    /// come from the response (`resp_cc` is its parsed `Cache-Control`); false for those that
    /// come from the request alone: its method, its `Authorization` (RFC 9111 §3.5), its own
    /// `no-store` (§5.2.1.5).
    pub(crate) fn holds_for_later_requests(self, resp_cc: &CacheControl) -> bool {
        match self {
            NotStorable::Method | NotStorable::Authorization => false,
            NotStorable::NoStore => resp_cc.no_store(),
            _ => true,
        }
    }
}

/// Strips from `headers`, a copy of a response's fields to be stored, what a shared cache
/// does not store: hop-by-hop fields (RFC 9111 §3.1) and the fields named by a qualified
/// `no-cache` / `private` (RFC 9111 §5.2.2.4, §5.2.2.7; [`fields_not_to_store`]).
/// `resp_cc` is the response's parsed (possibly targeted) `Cache-Control`.
pub(crate) fn remove_unstored_fields(headers: &mut HeaderMap, resp_cc: &CacheControl) {
    remove_hop_by_hop(headers);
    for field in fields_not_to_store(resp_cc) {
        headers.remove(field);
    }
}

/// Would [`remove_unstored_fields`] remove anything from `headers`?
pub(crate) fn has_unstored_fields(headers: &HeaderMap, resp_cc: &CacheControl) -> bool {
    crate::policy::headers::has_hop_by_hop(headers) || !fields_not_to_store(resp_cc).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_util::headers;

    use std::time::{Duration, UNIX_EPOCH};

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_431_696_861)
    }

    fn check_with(
        method: Method,
        req: &[(&str, &str)],
        status: u16,
        resp: &[(&str, &str)],
        options: &CacheOptions,
    ) -> Result<(), NotStorable> {
        let (req, resp) = (headers(req), headers(resp));
        let cc = CacheControl::from_headers(&resp);
        is_storable(
            &method,
            &req,
            StatusCode::from_u16(status).unwrap(),
            &resp,
            &cc,
            options,
            now(),
        )
    }

    fn check(req: &[(&str, &str)], status: u16, resp: &[(&str, &str)]) -> Result<(), NotStorable> {
        check_with(Method::GET, req, status, resp, &CacheOptions::default())
    }

    const MAX_AGE: (&str, &str) = ("cache-control", "max-age=60");

    // RFC 9111 §3: a plain cacheable GET 200
    #[test]
    fn get_200_with_max_age_is_storable() {
        assert_eq!(check(&[], 200, &[MAX_AGE]), Ok(()));
    }

    // RFC 9111 §3: only understood methods (GET) are stored
    #[test]
    fn non_get_method_is_not_storable() {
        for m in [
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert_eq!(
                check_with(m.clone(), &[], 200, &[MAX_AGE], &CacheOptions::default()),
                Err(NotStorable::Method),
                "{m}"
            );
        }
    }

    // RFC 9111 §3: the status must be final
    #[test]
    fn informational_status_is_not_storable() {
        for s in [100, 101, 103] {
            assert_eq!(check(&[], s, &[MAX_AGE]), Err(NotStorable::Status), "{s}");
        }
    }

    // RFC 9111 §3, §3.3, §4.3.4: 206 and 304 are never stored here
    #[test]
    fn partial_and_not_modified_are_not_storable() {
        for s in [206, 304] {
            assert_eq!(
                check(&[], s, &[("cache-control", "public, max-age=60")]),
                Err(NotStorable::Status),
                "{s}"
            );
        }
    }

    // RFC 9110 §15.1: heuristically cacheable statuses are storable with a validator alone
    #[test]
    fn heuristically_cacheable_statuses_are_storable() {
        for s in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
            assert_eq!(check(&[], s, &[("etag", "\"v1\"")]), Ok(()), "{s}");
        }
    }

    // RFC 9111 §3: other final statuses need explicit freshness or public
    #[test]
    fn other_status_needs_explicit_freshness_or_public() {
        for s in [302, 307, 400, 403, 500, 503] {
            assert_eq!(
                check(&[], s, &[("etag", "\"v1\"")]),
                Err(NotStorable::Status),
                "{s}"
            );
            assert_eq!(check(&[], s, &[MAX_AGE]), Ok(()), "{s}");
            assert_eq!(
                check(&[], s, &[("cache-control", "s-maxage=5")]),
                Ok(()),
                "{s}"
            );
            assert_eq!(check(&[], s, &[("expires", "0")]), Ok(()), "{s}");
            assert_eq!(
                check(&[], s, &[("cache-control", "public"), ("etag", "\"v\"")]),
                Ok(()),
                "{s}"
            );
        }
    }

    // RFC 9111 §5.2.2.3: must-understand restricts storing to understood statuses
    #[test]
    fn must_understand_requires_understood_status() {
        let cc = ("cache-control", "must-understand, max-age=60");
        assert_eq!(check(&[], 200, &[cc]), Ok(()));
        for s in [302, 307, 400, 500, 503] {
            assert_eq!(
                check(&[], s, &[cc]),
                Err(NotStorable::MustUnderstand),
                "{s}"
            );
        }
        // 206 / 304 stay a status problem.
        assert_eq!(check(&[], 206, &[cc]), Err(NotStorable::Status));
    }

    // RFC 9111 §5.2.2.3: with must-understand and an understood status, no-store is ignored
    #[test]
    fn must_understand_ignores_no_store_for_understood_status() {
        let cc = ("cache-control", "must-understand, no-store, max-age=60");
        for s in [200, 404, 301] {
            assert_eq!(check(&[], s, &[cc]), Ok(()), "{s}");
        }
        assert_eq!(check(&[], 500, &[cc]), Err(NotStorable::MustUnderstand));
    }

    // RFC 9111 §5.2.1.5: a request no-store wins even over must-understand
    #[test]
    fn must_understand_does_not_override_request_no_store() {
        let cc = ("cache-control", "must-understand, no-store, max-age=60");
        assert_eq!(
            check(&[("cache-control", "no-store")], 200, &[cc]),
            Err(NotStorable::NoStore)
        );
    }

    // RFC 9111 §3, §5.2.2.5: response no-store
    #[test]
    fn response_no_store_is_not_storable() {
        assert_eq!(
            check(&[], 200, &[("cache-control", "max-age=60, no-store")]),
            Err(NotStorable::NoStore)
        );
    }

    // RFC 9111 §5.2.1.5: request no-store
    #[test]
    fn request_no_store_is_not_storable() {
        assert_eq!(
            check(&[("cache-control", "No-Store")], 200, &[MAX_AGE]),
            Err(NotStorable::NoStore)
        );
    }

    // RFC 9111 §3, §5.2.2.7: a shared cache does not store unqualified private responses
    #[test]
    fn private_is_not_storable() {
        for cc in [
            "private, max-age=60",
            "private=\"\", max-age=60",
            "private=\"x-a\", private, max-age=60",
        ] {
            assert_eq!(
                check(&[], 200, &[("cache-control", cc)]),
                Err(NotStorable::Private),
                "{cc}"
            );
        }
    }

    // RFC 9111 §5.2.2.7: qualified private only forbids storing the named fields
    #[test]
    fn qualified_private_is_storable() {
        assert_eq!(
            check(
                &[],
                200,
                &[("cache-control", "private=\"x-user\", max-age=60")]
            ),
            Ok(())
        );
    }

    // RFC 9111 §3.1, §5.2.2.4, §5.2.2.7: qualified field names are stripped, unqualified none
    #[test]
    fn fields_not_to_store_unites_private_and_no_cache() {
        let parse = |v: &str| CacheControl::from_headers(&headers(&[("cache-control", v)]));
        let names = |v: &str| -> Vec<String> {
            fields_not_to_store(&parse(v))
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect()
        };
        assert_eq!(
            names("private=\"X-User, x-b\", no-cache=\"x-b, set-cookie\""),
            ["x-user", "x-b", "set-cookie"]
        );
        assert_eq!(names("no-cache=\"x-token\""), ["x-token"]);
        assert!(names("private, no-cache, max-age=5").is_empty());
        assert!(names("max-age=5").is_empty());
    }

    // RFC 9213 §2.2: with a targeted field, Expires does not count as explicit freshness
    #[test]
    fn targeted_cache_control_ignores_expires() {
        let resp = headers(&[
            ("expires", "0"),
            ("cdn-cache-control", "public"),
            ("etag", "\"a\""),
        ]);
        let name = HeaderName::from_static("cdn-cache-control");
        let cc = crate::policy::targeted_cache_control(&resp, &name).unwrap();
        let result = is_storable(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::INTERNAL_SERVER_ERROR,
            &resp,
            &cc,
            &CacheOptions::default(),
            now(),
        );
        // `public` alone makes a 500 storable; Expires would have too, but is ignored.
        assert_eq!(result, Ok(()));
        let plain = headers(&[
            ("expires", "0"),
            ("cdn-cache-control", "none"),
            ("etag", "\"a\""),
        ]);
        let cc = crate::policy::targeted_cache_control(&plain, &name).unwrap();
        let result = is_storable(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::INTERNAL_SERVER_ERROR,
            &plain,
            &cc,
            &CacheOptions::default(),
            now(),
        );
        assert_eq!(result, Err(NotStorable::Status));
    }

    // RFC 9111 §3.5: Authorization without public / s-maxage / must-revalidate
    #[test]
    fn authorization_requires_explicit_permission() {
        let auth = [("authorization", "Bearer x")];
        assert_eq!(
            check(&auth, 200, &[MAX_AGE]),
            Err(NotStorable::Authorization)
        );
        for cc in [
            "public, max-age=60",
            "s-maxage=60",
            "must-revalidate, max-age=60",
        ] {
            assert_eq!(check(&auth, 200, &[("cache-control", cc)]), Ok(()), "{cc}");
        }
        // proxy-revalidate alone is not one of the three (RFC 9111 §3.5).
        assert_eq!(
            check(
                &auth,
                200,
                &[("cache-control", "proxy-revalidate, max-age=60")]
            ),
            Err(NotStorable::Authorization)
        );
    }

    // RFC 9111 §4.1: Vary: * never matches, so it is not stored
    #[test]
    fn vary_star_is_not_storable() {
        assert_eq!(
            check(&[], 200, &[MAX_AGE, ("vary", "accept-encoding, *")]),
            Err(NotStorable::VaryStar)
        );
        assert_eq!(
            check(&[], 200, &[MAX_AGE, ("vary", "accept-encoding")]),
            Ok(())
        );
    }

    // Policy: Set-Cookie is not stored unless enabled
    #[test]
    fn set_cookie_is_not_storable_by_default() {
        let resp = [MAX_AGE, ("set-cookie", "id=1")];
        assert_eq!(check(&[], 200, &resp), Err(NotStorable::SetCookie));
        let o = CacheOptions {
            store_set_cookie: true,
            ..CacheOptions::default()
        };
        assert_eq!(check_with(Method::GET, &[], 200, &resp, &o), Ok(()));
    }

    // RFC 9111 §4.2, §4.3: neither freshness nor validator
    #[test]
    fn no_freshness_or_validator_is_not_storable() {
        assert_eq!(
            check(&[], 200, &[]),
            Err(NotStorable::NoFreshnessOrValidator)
        );
        assert_eq!(
            check(&[], 200, &[("cache-control", "must-revalidate")]),
            Err(NotStorable::NoFreshnessOrValidator)
        );
    }

    // RFC 9111 §4.3: a validator alone is enough
    #[test]
    fn validator_alone_is_storable() {
        assert_eq!(check(&[], 200, &[("etag", "\"a\"")]), Ok(()));
        assert_eq!(
            check(
                &[],
                200,
                &[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]
            ),
            Ok(())
        );
    }

    // RFC 9111 §4.2.2: a configured default TTL is freshness information
    #[test]
    fn default_ttl_makes_storable() {
        let o = CacheOptions {
            default_ttl: Some(Duration::from_secs(10)),
            ..CacheOptions::default()
        };
        assert_eq!(check_with(Method::GET, &[], 200, &[], &o), Ok(()));
    }

    // RFC 9111 §5.2.2.4: no-cache responses may be stored (they are revalidated on reuse)
    #[test]
    fn no_cache_response_is_storable() {
        assert_eq!(
            check(
                &[],
                200,
                &[("cache-control", "no-cache"), ("etag", "\"a\"")]
            ),
            Ok(())
        );
    }

    // Checks run in the documented order
    #[test]
    fn first_failure_is_reported() {
        assert_eq!(
            check_with(
                Method::POST,
                &[],
                100,
                &[("cache-control", "no-store")],
                &CacheOptions::default()
            ),
            Err(NotStorable::Method)
        );
        assert_eq!(
            check(&[], 200, &[("cache-control", "no-store, private")]),
            Err(NotStorable::NoStore)
        );
    }

    #[test]
    fn as_str_tokens_are_distinct() {
        let all = [
            NotStorable::Method,
            NotStorable::Status,
            NotStorable::NoStore,
            NotStorable::Private,
            NotStorable::Authorization,
            NotStorable::NoFreshnessOrValidator,
            NotStorable::VaryStar,
            NotStorable::SetCookie,
            NotStorable::MustUnderstand,
            NotStorable::VaryUnseen,
        ];
        let mut tokens: Vec<&str> = all.iter().map(NotStorable::as_str).collect();
        assert!(
            tokens
                .iter()
                .all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        );
        tokens.sort_unstable();
        tokens.dedup();
        assert_eq!(tokens.len(), all.len());
        assert_eq!(NotStorable::VaryStar.to_string(), "vary-star");
    }

    // RFC 9111 §5.2.2.7: `private="set-cookie"` lets the rest be shared without the cookie.
    #[test]
    fn set_cookie_named_by_qualified_private_is_storable() {
        let mut resp = HeaderMap::new();
        resp.insert(
            http::header::CACHE_CONTROL,
            "private=\"set-cookie\", max-age=60".parse().unwrap(),
        );
        resp.insert(SET_COOKIE, "session=alice".parse().unwrap());
        let cc = CacheControl::from_headers(&resp);
        let result = is_storable(
            &Method::GET,
            &HeaderMap::new(),
            StatusCode::OK,
            &resp,
            &cc,
            &CacheOptions::default(),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(result, Ok(()));
        assert!(fields_not_to_store(&cc).contains(&SET_COOKIE));
    }

    fn post(resp: &[(&str, &str)]) -> bool {
        let resp = headers(resp);
        let cc = CacheControl::from_headers(&resp);
        post_response_answers_get(
            &Method::POST,
            &"http://a.example/p?q=1".parse().unwrap(),
            StatusCode::OK,
            &resp,
            &cc,
            &CacheOptions::default(),
            now(),
        )
    }

    // RFC 9110 §9.3.3: explicit freshness and a Content-Location equal to the target URI
    // (method-POST)
    #[test]
    fn post_with_freshness_and_own_content_location() {
        assert!(post(&[
            ("cache-control", "max-age=3600"),
            ("content-location", "/p?q=1")
        ]));
        assert!(post(&[
            ("cache-control", "s-maxage=5"),
            ("content-location", "HTTP://A.example:80/p?q=1")
        ]));
        assert!(post(&[
            ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
            ("content-location", "p?q=1")
        ]));
        // No explicit freshness: heuristics do not count.
        assert!(!post(&[
            ("last-modified", "Thu, 01 Jan 2015 00:00:00 GMT"),
            ("content-location", "/p?q=1")
        ]));
        // Another URI, none, or two.
        assert!(!post(&[
            ("cache-control", "max-age=3600"),
            ("content-location", "/p")
        ]));
        assert!(!post(&[
            ("cache-control", "max-age=3600"),
            ("content-location", "http://b.example/p?q=1")
        ]));
        assert!(!post(&[("cache-control", "max-age=3600")]));
        assert!(!post(&[
            ("cache-control", "max-age=3600"),
            ("content-location", "/p?q=1"),
            ("content-location", "/p?q=1")
        ]));
        // Only POST.
        let resp = headers(&[("cache-control", "max-age=1"), ("content-location", "/p")]);
        assert!(!post_response_answers_get(
            &Method::PUT,
            &"http://a.example/p".parse().unwrap(),
            StatusCode::OK,
            &resp,
            &CacheControl::from_headers(&resp),
            &CacheOptions::default(),
            now(),
        ));
    }

    // RFC 9111 §3.5, §5.2.1.5: reasons from the request alone do not hold for the next one.
    #[test]
    fn reasons_from_the_request_do_not_hold_for_later_requests() {
        let none = CacheControl::default();
        let no_store = CacheControl::from_headers(&headers(&[("cache-control", "no-store")]));
        assert!(!NotStorable::Method.holds_for_later_requests(&none));
        assert!(!NotStorable::Authorization.holds_for_later_requests(&no_store));
        // `no-store` on the request only, or on the response.
        assert!(!NotStorable::NoStore.holds_for_later_requests(&none));
        assert!(NotStorable::NoStore.holds_for_later_requests(&no_store));
        for reason in [
            NotStorable::Status,
            NotStorable::Private,
            NotStorable::NoFreshnessOrValidator,
            NotStorable::VaryStar,
            NotStorable::SetCookie,
            NotStorable::MustUnderstand,
            NotStorable::VaryUnseen,
        ] {
            assert!(reason.holds_for_later_requests(&none), "{reason:?}");
        }
    }

    // RFC 9111 §3.1, §5.2.2.4, §5.2.2.7: hop-by-hop fields and the fields named by qualified
    // no-cache / private are not stored; the rest is.
    #[test]
    fn hop_by_hop_and_named_fields_are_not_stored() {
        let mut stored = headers(&[
            (
                "cache-control",
                "max-age=60, private=\"x-user\", no-cache=\"x-token\"",
            ),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("x-user", "alice"),
            ("x-token", "t"),
            ("content-type", "text/plain"),
        ]);
        let cc = CacheControl::from_headers(&stored);
        remove_unstored_fields(&mut stored, &cc);
        let mut names: Vec<_> = stored.keys().map(|name| name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["cache-control", "content-type"]);
    }
}
