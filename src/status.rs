//! The `X-Cache` and `Cache-Status` (RFC 9211) response fields.

use std::cell::RefCell;

use bytes::BytesMut;

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::OriginUnreachable;
use crate::policy::headers::decimal_digits;

/// `X-Cache: HIT | MISS`.
pub(crate) const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
/// `Cache-Status` (RFC 9211).
pub(crate) const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// `detail` of a response made because the origin could not be reached.
pub(crate) const ORIGIN_UNREACHABLE: &str = "origin-unreachable";

const HIT: HeaderValue = HeaderValue::from_static("HIT");
const MISS: HeaderValue = HeaderValue::from_static("MISS");

/// Why a request went forward to the inner service (RFC 9211 §2.2 `fwd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Forward {
    /// The cache could not key the request (no authority), or the configured bypass
    /// predicate sent it past the cache.
    Bypass,
    /// The method is not cacheable.
    Method,
    /// The cache did not look for a stored response to use (its key is not yet admitted,
    /// see `CacheLayerBuilder::min_uses`).
    Miss,
    /// Nothing was stored for the URI.
    UriMiss,
    /// Something was stored, but for other `Vary` values.
    VaryMiss,
    /// The request's directives ruled out a stored fresh response.
    Request,
    /// The stored response was stale.
    Stale,
    /// A stored partial response could not satisfy the request (RFC 9111 §3.3).
    Partial,
}

impl Forward {
    /// Every reason, each at the index of its discriminant.
    const ALL: [Forward; 8] = [
        Forward::Bypass,
        Forward::Method,
        Forward::Miss,
        Forward::UriMiss,
        Forward::VaryMiss,
        Forward::Request,
        Forward::Stale,
        Forward::Partial,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Forward::Bypass => "bypass",
            Forward::Method => "method",
            Forward::Miss => "miss",
            Forward::UriMiss => "uri-miss",
            Forward::VaryMiss => "vary-miss",
            Forward::Request => "request",
            Forward::Stale => "stale",
            Forward::Partial => "partial",
        }
    }
}

/// How a response built from a stored one came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Served {
    /// Fresh (or stale within the request's `max-stale`): no contact with the origin.
    Fresh,
    /// The origin confirmed the stored response with a 304 (RFC 9111 §4.3.4).
    Revalidated,
    /// Stale, served at once while it is revalidated in the background (RFC 5861 §3).
    StaleWhileRevalidate,
    /// Stale, served because the origin failed, with its status if it answered (RFC 5861 §4).
    StaleIfError(Option<StatusCode>),
    /// Stale, served because the origin could not be reached (RFC 9111 §4.2.4).
    StaleIfUnreachable,
    /// Stored by the request this one waited for (collapsed forwarding), or being received by
    /// it (read-while-write).
    Collapsed(Forward),
}

/// Renders the status fields; built once per layer.
#[derive(Clone, Debug)]
pub(crate) struct StatusHeaders {
    name: String,
    x_cache: bool,
    /// `<name>; fwd=<reason>; fwd-status=200` for every [`Forward`] reason (by its index): the
    /// `Cache-Status` of most forwarded responses, made once.
    forwarded_ok: [Option<HeaderValue>; Forward::ALL.len()],
}

impl StatusHeaders {
    pub(crate) fn new(name: String, x_cache: bool) -> Self {
        let forwarded_ok = Forward::ALL.map(|forward| {
            joined(&[
                name.as_bytes(),
                b"; fwd=",
                forward.as_str().as_bytes(),
                b"; fwd-status=200",
            ])
        });
        Self {
            name,
            x_cache,
            forwarded_ok,
        }
    }

    /// Marks a response built from a stored one; `ttl` is its remaining freshness in seconds
    /// (negative when stale).
    pub(crate) fn served(&self, headers: &mut HeaderMap, served: Served, ttl: i64) {
        if self.x_cache {
            let _ = headers.try_insert(X_CACHE, HIT);
        }
        let name = self.name.as_bytes();
        let mut buf = [0; 20];
        let digits = decimal_digits(ttl.unsigned_abs(), &mut buf);
        let sign: &[u8] = if ttl < 0 { b"-" } else { b"" };
        let value = match served {
            Served::Fresh => joined(&[name, b"; hit; ttl=", sign, digits]),
            Served::Revalidated => {
                joined(&[name, b"; fwd=stale; fwd-status=304; ttl=", sign, digits])
            }
            // Answered from the store without waiting for the origin: a hit (RFC 9211 §2.1);
            // the revalidation happens apart from this response.
            Served::StaleWhileRevalidate => joined(&[
                name,
                b"; hit; ttl=",
                sign,
                digits,
                b"; detail=stale-while-revalidate",
            ]),
            Served::StaleIfError(Some(status)) => joined(&[
                name,
                b"; fwd=stale; fwd-status=",
                status.as_str().as_bytes(),
                b"; ttl=",
                sign,
                digits,
                b"; detail=stale-if-error",
            ]),
            Served::StaleIfError(None) => joined(&[
                name,
                b"; fwd=stale; ttl=",
                sign,
                digits,
                b"; detail=stale-if-error",
            ]),
            Served::StaleIfUnreachable => joined(&[
                name,
                b"; fwd=stale; ttl=",
                sign,
                digits,
                b"; detail=origin-unreachable",
            ]),
            Served::Collapsed(forward) => joined(&[
                name,
                b"; fwd=",
                forward.as_str().as_bytes(),
                b"; collapsed; ttl=",
                sign,
                digits,
            ]),
        };
        append(headers, value);
    }

    /// Marks a response the cache generated itself, without a stored one and without
    /// forwarding the request (e.g. `only-if-cached`): no `fwd`, as nothing went forward.
    pub(crate) fn generated(&self, headers: &mut HeaderMap, detail: &str) {
        if self.x_cache {
            let _ = headers.try_insert(X_CACHE, MISS);
        }
        let value = joined(&[self.name.as_bytes(), b"; detail=", detail.as_bytes()]);
        append(headers, value);
    }

    /// Marks a response of the inner service by its parts: its status is the `fwd-status`,
    /// unless it is marked [`OriginUnreachable`], which makes the detail `origin-unreachable`.
    pub(crate) fn forwarded_parts(
        &self,
        parts: &mut http::response::Parts,
        forward: Forward,
        detail: Option<&str>,
    ) {
        if parts.extensions.get::<OriginUnreachable>().is_some() {
            self.forwarded(&mut parts.headers, forward, None, Some(ORIGIN_UNREACHABLE));
        } else {
            self.forwarded(&mut parts.headers, forward, Some(parts.status), detail);
        }
    }

    /// Marks a response that came from the inner service. `fwd_status` is the status the
    /// next hop answered with; `None` when the inner service could not reach it and made the
    /// response itself ([`crate::OriginUnreachable`]).
    ///
    /// `stored` (RFC 9211 §2.6) is never claimed: this field goes out before the body has
    /// arrived, and a body cut short, a store error or the memory store's admission policy
    /// (moka's TinyLFU may reject a new entry when the cache is full, after the insert
    /// returned) can each still keep the response out of the cache.
    pub(crate) fn forwarded(
        &self,
        headers: &mut HeaderMap,
        forward: Forward,
        fwd_status: Option<StatusCode>,
        detail: Option<&str>,
    ) {
        if self.x_cache {
            let _ = headers.try_insert(X_CACHE, MISS);
        }
        if let (Some(StatusCode::OK), None, Some(value)) =
            (fwd_status, detail, &self.forwarded_ok[forward as usize])
        {
            let _ = headers.try_append(CACHE_STATUS, value.clone());
            return;
        }
        let (status_key, status): (&[u8], &[u8]) = match &fwd_status {
            Some(status) => (b"; fwd-status=", status.as_str().as_bytes()),
            None => (b"", b""),
        };
        let (detail_key, detail): (&[u8], &[u8]) = match detail {
            Some(detail) => (b"; detail=", detail.as_bytes()),
            None => (b"", b""),
        };
        let value = joined(&[
            self.name.as_bytes(),
            b"; fwd=",
            forward.as_str().as_bytes(),
            status_key,
            status,
            detail_key,
            detail,
        ]);
        append(headers, value);
    }
}

/// The room a thread's status values are written in at a time ([`joined`]).
const VALUES_CHUNK: usize = 4096;

thread_local! {
    /// Where this thread writes the status values it makes ([`joined`]): each value is a
    /// slice of it, and the buffer is used again once the responses that hold its values
    /// have gone out, as hyper does with its read buffer.
    static VALUES: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// A field value made of `parts`, without formatting machinery and, mostly, without an
/// allocation: every hit and every forwarded response gets one. It is written in this
/// thread's buffer ([`VALUES`]), allocated once per [`VALUES_CHUNK`] of values, and taken as a
/// slice of it (a reference count). `None` if a part holds a byte a field value may not (the
/// parts are the cache's name, checked when it is configured, and fixed texts).
fn joined(parts: &[&[u8]]) -> Option<HeaderValue> {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    let value = VALUES.with_borrow_mut(|buffer| {
        if buffer.capacity() < len {
            // The whole buffer is taken back when no value still holds a part of it; else
            // a new one is allocated.
            buffer.reserve(len.max(VALUES_CHUNK));
        }
        for part in parts {
            buffer.extend_from_slice(part);
        }
        buffer.split_to(len).freeze()
    });
    HeaderValue::from_maybe_shared(value).ok()
}

/// RFC 9211 §2: a cache adds its member at the end, after those of caches nearer the origin.
///
/// The status fields are added with `try_`: a response of the inner service at `http`'s size
/// limit (24,576 names) goes out without them rather than panicking.
fn append(headers: &mut HeaderMap, value: Option<HeaderValue>) {
    if let Some(value) = value {
        let _ = headers.try_append(CACHE_STATUS, value);
    }
}

/// Is `name` usable as the cache's identifier in `Cache-Status` (an sf-token, RFC 8941 §3.3.4)?
pub(crate) fn is_sf_token(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == b'*')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(headers: &HeaderMap) -> Vec<&str> {
        headers
            .get_all(CACHE_STATUS)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn hit_renders_ttl() {
        let mut headers = HeaderMap::new();
        StatusHeaders::new("c".into(), true).served(&mut headers, Served::Fresh, 42);
        assert_eq!(headers[X_CACHE], "HIT");
        assert_eq!(statuses(&headers), ["c; hit; ttl=42"]);
    }

    // RFC 9211 §2: members of upstream caches are kept, ours comes last.
    #[test]
    fn forwarded_appends_after_upstream_members() {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_STATUS, HeaderValue::from_static("upstream; hit"));
        StatusHeaders::new("c".into(), false).forwarded(
            &mut headers,
            Forward::UriMiss,
            Some(StatusCode::OK),
            None,
        );
        assert!(headers.get(X_CACHE).is_none());
        assert_eq!(
            statuses(&headers),
            ["upstream; hit", "c; fwd=uri-miss; fwd-status=200"]
        );
    }

    #[test]
    fn every_reason_forwarded_with_200_has_its_made_value() {
        let status = StatusHeaders::new("c".into(), false);
        for (index, forward) in Forward::ALL.into_iter().enumerate() {
            assert_eq!(forward as usize, index);
            let mut headers = HeaderMap::new();
            status.forwarded(&mut headers, forward, Some(StatusCode::OK), None);
            let expected = format!("c; fwd={}; fwd-status=200", forward.as_str());
            assert_eq!(statuses(&headers), [expected.as_str()]);
        }
    }

    // RFC 9211 §2.3: fwd-status only for a response the next hop sent
    #[test]
    fn unreachable_origin_has_no_fwd_status() {
        let mut headers = HeaderMap::new();
        StatusHeaders::new("c".into(), true).forwarded(
            &mut headers,
            Forward::UriMiss,
            None,
            Some("origin-unreachable"),
        );
        assert_eq!(
            statuses(&headers),
            ["c; fwd=uri-miss; detail=origin-unreachable"]
        );
        let mut headers = HeaderMap::new();
        StatusHeaders::new("c".into(), true).forwarded(
            &mut headers,
            Forward::Partial,
            Some(StatusCode::PARTIAL_CONTENT),
            None,
        );
        assert_eq!(statuses(&headers), ["c; fwd=partial; fwd-status=206"]);
    }

    // RFC 9211 §2.1, §2.2: a stale-while-revalidate answer is a hit; a generated 504 was
    // not forwarded
    #[test]
    fn stale_while_revalidate_is_a_hit_and_generated_has_no_fwd() {
        let status = StatusHeaders::new("c".into(), true);
        let mut headers = HeaderMap::new();
        status.served(&mut headers, Served::StaleWhileRevalidate, -3);
        assert_eq!(
            statuses(&headers),
            ["c; hit; ttl=-3; detail=stale-while-revalidate"]
        );
        let mut headers = HeaderMap::new();
        status.generated(&mut headers, "only-if-cached");
        assert_eq!(statuses(&headers), ["c; detail=only-if-cached"]);
        let mut headers = HeaderMap::new();
        status.served(&mut headers, Served::StaleIfUnreachable, -5);
        assert_eq!(
            statuses(&headers),
            ["c; fwd=stale; ttl=-5; detail=origin-unreachable"]
        );
    }

    #[test]
    fn hit_ttl_renders_any_i64() {
        for (ttl, text) in [
            (0, "0"),
            (7, "7"),
            (-42, "-42"),
            (i64::MIN, "-9223372036854775808"),
        ] {
            let mut headers = HeaderMap::new();
            StatusHeaders::new("c".into(), false).served(&mut headers, Served::Fresh, ttl);
            assert_eq!(statuses(&headers), [format!("c; hit; ttl={text}")]);
        }
    }

    #[test]
    fn every_served_kind_and_forwarded_detail_render_in_full() {
        let status = StatusHeaders::new("c".into(), false);
        let served = [
            (Served::Revalidated, "c; fwd=stale; fwd-status=304; ttl=-3"),
            (
                Served::StaleIfError(Some(StatusCode::BAD_GATEWAY)),
                "c; fwd=stale; fwd-status=502; ttl=-3; detail=stale-if-error",
            ),
            (
                Served::StaleIfError(None),
                "c; fwd=stale; ttl=-3; detail=stale-if-error",
            ),
            (
                Served::StaleIfUnreachable,
                "c; fwd=stale; ttl=-3; detail=origin-unreachable",
            ),
            (
                Served::Collapsed(Forward::VaryMiss),
                "c; fwd=vary-miss; collapsed; ttl=-3",
            ),
        ];
        for (kind, expected) in served {
            let mut headers = HeaderMap::new();
            status.served(&mut headers, kind, -3);
            assert_eq!(statuses(&headers), [expected]);
        }
        let mut headers = HeaderMap::new();
        status.forwarded(
            &mut headers,
            Forward::UriMiss,
            Some(StatusCode::OK),
            Some("no-store"),
        );
        assert_eq!(
            statuses(&headers),
            ["c; fwd=uri-miss; fwd-status=200; detail=no-store"]
        );
    }

    #[test]
    fn sf_token_names() {
        assert!(is_sf_token("tower-cache-layer"));
        assert!(is_sf_token("edge:1/a"));
        assert!(!is_sf_token("1cache"));
        assert!(!is_sf_token("has space"));
        assert!(!is_sf_token(""));
    }
}
