//! May a response be stored? (RFC 9111 §3)

use super::freshness::freshness_lifetime;
use super::{CacheControl, CacheOptions, Vary};
use http::header::{AUTHORIZATION, ETAG, EXPIRES, LAST_MODIFIED, SET_COOKIE};
use http::{HeaderMap, Method, StatusCode};
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
    /// `no-store` on the request or the response (RFC 9111 §5.2.1.5, §5.2.2.5).
    NoStore,
    /// `private`, in any form (RFC 9111 §5.2.2.7).
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
        }
    }
}

impl fmt::Display for NotStorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Final statuses this cache understands and may store without explicit freshness: the
/// heuristically cacheable ones of RFC 9110 §15.1, minus 206 (partial content is not stored).
fn is_understood_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// RFC 9111 §3 for a shared cache.
///
/// Checks, in this order, and returns the first failure:
///
/// 1. the method is GET ([`NotStorable::Method`]);
/// 2. the status is final, not 206 or 304, and either understood (200, 203, 204, 300, 301,
///    308, 404, 405, 410, 414, 501) or, for any other final status, the response has
///    explicit freshness (`max-age`, `s-maxage`, `Expires`) or `public`; with
///    `must-understand` only understood statuses pass ([`NotStorable::Status`]);
/// 3. no `no-store` on the request or the response ([`NotStorable::NoStore`]);
/// 4. no `private`, in any form ([`NotStorable::Private`]);
/// 5. no `Authorization` on the request unless the response has `public`, `s-maxage` or
///    `must-revalidate` ([`NotStorable::Authorization`]);
/// 6. no `Vary: *` ([`NotStorable::VaryStar`]);
/// 7. no `Set-Cookie` unless [`CacheOptions::store_set_cookie`] ([`NotStorable::SetCookie`]);
/// 8. freshness information ([`freshness_lifetime`] is `Some`, including
///    [`CacheOptions::default_ttl`] and the `Last-Modified` heuristic) or a validator (`ETag`
///    or `Last-Modified`) ([`NotStorable::NoFreshnessOrValidator`]).
///
/// `resp_cc` is the parsed `Cache-Control` of `resp_headers`; `response_time` stands in for a
/// missing `Date`.
pub fn is_storable(
    method: &Method,
    req_headers: &HeaderMap,
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
    // must-understand, "the cache understands the response status code". 206 is not
    // combined (§3.3) and 304 only updates (§4.3.4), so neither is stored as such.
    let explicit_freshness = resp_cc.max_age().is_some()
        || resp_cc.s_maxage().is_some()
        || resp_headers.contains_key(EXPIRES);
    let status_ok = match status.as_u16() {
        100..=199 | 206 | 304 => false,
        _ if is_understood_status(status) => true,
        // RFC 9111 §5.2.2.3: must-understand limits caching to understood statuses.
        _ if resp_cc.must_understand() => false,
        // RFC 9111 §3: any other final status needs explicit freshness or `public`.
        _ => explicit_freshness || resp_cc.public(),
    };
    if !status_ok {
        return Err(NotStorable::Status);
    }

    // RFC 9111 §3: "the no-store cache directive is not present in the response";
    // RFC 9111 §5.2.1.5: a request no-store forbids storing "any response to it".
    // (RFC 9111 §5.2.2.3 lets a cache that understands the status ignore no-store when
    // must-understand is present; that is a SHOULD, and this cache does not.)
    if resp_cc.no_store() || CacheControl::from_headers(req_headers).no_store() {
        return Err(NotStorable::NoStore);
    }

    // RFC 9111 §3, §5.2.2.7: a shared cache does not store `private` responses. The qualified
    // form (`private="field"`) is treated like the unqualified one for now.
    if resp_cc.private() {
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
    if Vary::from_headers(resp_headers) == Vary::Star {
        return Err(NotStorable::VaryStar);
    }

    // Policy (not RFC): one user's cookie must not reach another through a shared cache.
    if resp_headers.contains_key(SET_COOKIE) && !options.store_set_cookie {
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use std::time::{Duration, UNIX_EPOCH};

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_431_696_861)
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
        assert_eq!(check(&[], 500, &[cc]), Err(NotStorable::Status));
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

    // RFC 9111 §3, §5.2.2.7: a shared cache does not store private responses, in any form
    #[test]
    fn private_is_not_storable() {
        for cc in ["private, max-age=60", "private=\"set-cookie\", max-age=60"] {
            assert_eq!(
                check(&[], 200, &[("cache-control", cc)]),
                Err(NotStorable::Private),
                "{cc}"
            );
        }
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
}
