//! What a store keeps: [`StoredResponse`]s, one per `Vary` variant, in a [`StoredEntry`].

use std::sync::Arc;

use http::{Extensions, HeaderMap, HeaderValue, StatusCode};

use super::StoredBody;
use crate::policy::{ResponsePolicy, VaryKey};

/// A complete response as the cache keeps it.
///
/// Hop-by-hop fields are already removed and `Date` and `Content-Length` are set. The body is
/// a [`StoredBody`]: [`Bytes`](bytes::Bytes) in memory, so serving a hit clones a reference
/// count, never the bytes; or a source a store streams from.
///
/// The cache builds these; a [`Store`](super::Store) keeps them. A store that persists entries outside the
/// process saves what the accessors return and rebuilds the response with
/// [`StoredResponse::new`] (and [`with_extensions`](Self::with_extensions), if it keeps
/// extensions at all). The type is `#[non_exhaustive]`: a later version may add metadata,
/// with a setter whose default keeps the behaviour of a response rebuilt without it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoredResponse {
    /// The response status.
    pub(crate) status: StatusCode,
    /// The stored header fields.
    pub(crate) headers: HeaderMap,
    /// The whole body.
    pub(crate) body: StoredBody,
    /// Freshness and reuse metadata computed when the response was stored.
    pub(crate) policy: ResponsePolicy,
    /// The request field values this response was selected by (RFC 9111 §4.1).
    pub(crate) vary: VaryKey,
    /// The response's extensions, put back on every answer built from it with its status.
    pub(crate) extensions: Extensions,
}

impl StoredResponse {
    /// Whether this response, newly received, leaves no other variant of its URL worth
    /// keeping, so that it may replace the URL's entry without reading it (see
    /// [`StoredEntry::with_response`] for the rule when it does not). RFC 9111 §4.1: when
    /// several stored responses match a request, "the most recent" is used. A complete
    /// response without `Vary` (and without configured key fields) matches every request, and
    /// is the most recent: no request would select another variant again. A part (`206`) may
    /// be combined with the stored one (RFC 9111 §3.4), so it is never written blind.
    pub(crate) fn replaces_every_variant(&self) -> bool {
        self.status != StatusCode::PARTIAL_CONTENT && self.vary.is_empty()
    }

    /// A stored response from its parts, without extensions.
    ///
    /// `headers` are served as they are: they should be those of a response the cache stored
    /// (read back with [`headers`](Self::headers)), with hop-by-hop fields removed and
    /// `Content-Length` matching `body`. They are copied as the cache keeps the headers it
    /// stores (the values in one buffer, tables no larger than needed), which is what
    /// [`weight`](Self::weight) counts.
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: impl Into<StoredBody>,
        policy: ResponsePolicy,
        vary: VaryKey,
    ) -> Self {
        Self {
            status,
            // As the cache keeps the headers it stores: one buffer, tables no larger than
            // needed, as `weight` counts them.
            headers: crate::policy::headers::compacted(&headers),
            body: body.into(),
            policy,
            vary,
            extensions: Extensions::new(),
        }
    }

    /// This response with `extensions`, put back on every answer built from it.
    #[must_use]
    pub fn with_extensions(mut self, extensions: Extensions) -> Self {
        self.extensions = extensions;
        self
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stored header fields.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The whole body.
    pub fn body(&self) -> &StoredBody {
        &self.body
    }

    /// Freshness and reuse metadata computed when the response was stored; see
    /// [`policy::reuse`](crate::policy::reuse()).
    pub fn policy(&self) -> &ResponsePolicy {
        &self.policy
    }

    /// The request field values this response was selected by (RFC 9111 §4.1).
    pub fn vary(&self) -> &VaryKey {
        &self.vary
    }

    /// The response's extensions, put back on every answer built from it with its status:
    /// among them hyper's `ReasonPhrase`, so that a `599 Whatever` is not served as
    /// `599 <none>`. Stores that persist entries elsewhere may drop them.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Memory the response occupies, as the allocator reserves it: the response itself, the
    /// header map's tables, every header name and value, the body when it is held in memory
    /// and the `Vary` values it was selected by.
    ///
    /// Stores that are bounded in bytes weigh entries with this (see
    /// [`MemoryStore`](super::MemoryStore)): a bound holds only if what it weighs is what it
    /// holds.
    pub fn weight(&self) -> usize {
        let body = self
            .body
            .as_bytes()
            .map_or(0, |bytes| allocation(bytes.len()) + SHARED_BYTES);
        allocation(std::mem::size_of::<Self>() + ARC_COUNTS)
            + header_map_weight(&self.headers)
            + body
            + vary_weight(&self.vary)
    }
}

/// Memory the `Vary` values a response was selected by occupy, beyond the response itself.
/// Names are weighed as if allocated: a little more for standard ones.
fn vary_weight(vary: &VaryKey) -> usize {
    let slot = std::mem::size_of::<(http::HeaderName, Option<Vec<u8>>)>();
    let values: usize = vary
        .fields()
        .map(|name| {
            let value = vary.value(name).flatten().map_or(0, <[u8]>::len);
            allocation(name.as_str().len()) + allocation(value)
        })
        .sum();
    allocation(vary.fields().len() * slot) + values
}

/// Bytes the allocator reserves for a block of `size` bytes: glibc's malloc adds an 8-byte
/// header, rounds to 16 and never gives less than 32 (jemalloc and mimalloc round in classes
/// no coarser than this for small sizes).
pub(crate) fn allocation(size: usize) -> usize {
    if size == 0 {
        return 0;
    }
    ((size + 8 + 15) & !15).max(32)
}

/// The two counts in front of what an `Arc` points to.
pub(crate) const ARC_COUNTS: usize = 16;

/// What `Bytes` allocates once a buffer is shared (its reference count and the buffer's
/// address and capacity), as a stored body is when the first hit clones it.
const SHARED_BYTES: usize = 32;

/// One slot of a `HeaderMap`'s entries: hash, links, name and value.
const HEADER_BUCKET: usize =
    std::mem::size_of::<http::HeaderName>() + std::mem::size_of::<http::HeaderValue>() + 32;

/// One value beyond a name's first (a field repeated): the value and its two links.
const HEADER_EXTRA: usize = std::mem::size_of::<http::HeaderValue>() + 32;

/// Whether `name` is one of the standard names responses commonly carry, which `http` keeps
/// without allocating. Other standard names are weighed as if they were allocated: a little
/// more, never less. (A match on the text: a scan of a list of names cost more than the rest
/// of the weighing.)
fn is_static_name(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "accept-ranges"
            | "access-control-allow-origin"
            | "age"
            | "alt-svc"
            | "cache-control"
            | "connection"
            | "content-disposition"
            | "content-encoding"
            | "content-language"
            | "content-length"
            | "content-location"
            | "content-range"
            | "content-security-policy"
            | "content-type"
            | "date"
            | "etag"
            | "expires"
            | "last-modified"
            | "link"
            | "location"
            | "pragma"
            | "referrer-policy"
            | "retry-after"
            | "server"
            | "set-cookie"
            | "strict-transport-security"
            | "vary"
            | "via"
            | "www-authenticate"
            | "x-content-type-options"
            | "x-frame-options"
            | "x-xss-protection"
    )
}

/// The header map's tables, and each name and value the map owns.
///
/// Stored maps are made by [`compacted`](crate::policy::headers::compacted), or are clones of
/// such maps with no field added: their list of fields is as long as it is (a clone's is),
/// their index table as large as their capacity says.
fn header_map_weight(headers: &HeaderMap) -> usize {
    let slots = headers.capacity();
    // The index table has a slot of 4 bytes for every 3/4 of an entry slot.
    let indices = (slots + slots / 3).next_power_of_two() * 4;
    let extra = headers.len() - headers.keys_len();
    // The values, in one buffer (see `compacted`).
    let values: usize = headers.values().map(HeaderValue::len).sum();
    let mut owned = allocation(values) + SHARED_BYTES;
    for name in headers.keys() {
        // A standard name is static; another is a buffer of its own, shared once cloned.
        if !is_static_name(name) {
            owned += allocation(name.as_str().len()) + SHARED_BYTES;
        }
    }
    allocation(headers.keys_len() * HEADER_BUCKET)
        + allocation(indices)
        + allocation(extra * HEADER_EXTRA)
        + owned
}

/// Every stored response for one primary key: one per `Vary` variant (RFC 9111 §4.1), the
/// most recent first.
///
/// Keeping the variants of a URL together means that invalidating the URL (RFC 9111 §4.4)
/// removes all of them at once.
///
/// A store that persists entries saves each of [`variants`](Self::variants) and rebuilds the
/// entry with [`StoredEntry::from_variants`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct StoredEntry {
    variants: Variants,
}

/// An entry's variants: most URLs have one, kept without a list (one allocation fewer per
/// stored response, one pointer fewer per hit).
#[derive(Clone, Debug)]
enum Variants {
    One([Arc<StoredResponse>; 1]),
    Many(Vec<Arc<StoredResponse>>),
}

impl Default for Variants {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl Variants {
    fn as_slice(&self) -> &[Arc<StoredResponse>] {
        match self {
            Self::One(one) => one,
            Self::Many(many) => many,
        }
    }
}

impl From<Vec<Arc<StoredResponse>>> for Variants {
    fn from(variants: Vec<Arc<StoredResponse>>) -> Self {
        match <[_; 1]>::try_from(variants) {
            Ok(one) => Self::One(one),
            Err(mut many) => {
                // As the weigher counts it.
                many.shrink_to_fit();
                Self::Many(many)
            }
        }
    }
}

impl StoredEntry {
    /// Most variants kept for one URL; older ones are dropped beyond it.
    pub(crate) const MAX_VARIANTS: usize = 32;

    /// An entry holding one response.
    pub fn new(response: Arc<StoredResponse>) -> Self {
        Self {
            variants: Variants::One([response]),
        }
    }

    /// An entry holding `variants`, most recent first, as [`variants`](Self::variants) returned
    /// them. Variants beyond the most the cache keeps for one URL (32) are dropped.
    pub fn from_variants(variants: impl IntoIterator<Item = Arc<StoredResponse>>) -> Self {
        let variants: Vec<_> = variants.into_iter().take(Self::MAX_VARIANTS).collect();
        Self {
            variants: variants.into(),
        }
    }

    /// The stored variants, most recent first.
    pub fn variants(&self) -> &[Arc<StoredResponse>] {
        self.variants.as_slice()
    }

    /// The most recent variant selected by the request's header fields (RFC 9111 §4.1: "the
    /// most recent one" when several match).
    pub fn select(&self, req_headers: &HeaderMap) -> Option<&Arc<StoredResponse>> {
        self.variants().iter().find(|v| v.vary.matches(req_headers))
    }

    /// This entry with `response`, newly received for a request with `req_headers`, in front:
    /// it replaces the variants that request selected, and only those.
    pub(crate) fn with_response(
        &self,
        response: Arc<StoredResponse>,
        req_headers: &HeaderMap,
    ) -> Self {
        let others = self
            .variants()
            .iter()
            .filter(|v| !v.vary.matches(req_headers));
        let mut variants = Vec::with_capacity(self.variants().len() + 1);
        variants.push(response);
        variants.extend(others.take(Self::MAX_VARIANTS - 1).cloned());
        Self {
            variants: variants.into(),
        }
    }

    /// This entry with `old` replaced by `new` (e.g. after a 304 freshened it); unchanged when
    /// `old` is no longer stored.
    pub(crate) fn with_replaced(
        &self,
        old: &Arc<StoredResponse>,
        new: Arc<StoredResponse>,
    ) -> Self {
        let variants: Vec<_> = self
            .variants()
            .iter()
            .map(|v| {
                if Arc::ptr_eq(v, old) {
                    Arc::clone(&new)
                } else {
                    Arc::clone(v)
                }
            })
            .collect();
        Self {
            variants: variants.into(),
        }
    }

    /// Sum of the variants' [`StoredResponse::weight`].
    pub fn weight(&self) -> usize {
        self.variants().iter().map(|v| v.weight()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::Bytes;
    use http::header::{ACCEPT_ENCODING, CONTENT_TYPE};
    use std::time::{Duration, SystemTime};

    #[test]
    fn static_names_are_https_standard_names() {
        use http::header::*;
        let standard = [
            ACCEPT_RANGES,
            ACCESS_CONTROL_ALLOW_ORIGIN,
            AGE,
            ALT_SVC,
            CACHE_CONTROL,
            CONNECTION,
            CONTENT_DISPOSITION,
            CONTENT_ENCODING,
            CONTENT_LANGUAGE,
            CONTENT_LENGTH,
            CONTENT_LOCATION,
            CONTENT_RANGE,
            CONTENT_SECURITY_POLICY,
            CONTENT_TYPE,
            DATE,
            ETAG,
            EXPIRES,
            LAST_MODIFIED,
            LINK,
            LOCATION,
            PRAGMA,
            REFERRER_POLICY,
            RETRY_AFTER,
            SERVER,
            SET_COOKIE,
            STRICT_TRANSPORT_SECURITY,
            VARY,
            VIA,
            WWW_AUTHENTICATE,
            X_CONTENT_TYPE_OPTIONS,
            X_FRAME_OPTIONS,
            X_XSS_PROTECTION,
        ];
        for name in &standard {
            assert!(is_static_name(name), "{name}");
        }
        assert!(!is_static_name(&http::HeaderName::from_static("x-custom")));
        assert!(!is_static_name(&ACCEPT));
    }

    fn response(body: &'static str, encoding: &str) -> StoredResponse {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        let mut request = HeaderMap::new();
        request.insert(ACCEPT_ENCODING, encoding.parse().unwrap());
        let policy = ResponsePolicy::from_parts(
            Duration::from_secs(60),
            Duration::from_secs(3),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
        )
        .with_must_revalidate(true)
        .with_stale_if_error(Some(Duration::from_secs(30)));
        StoredResponse::new(
            StatusCode::OK,
            headers,
            Bytes::from_static(body.as_bytes()),
            policy,
            VaryKey::capture(&[ACCEPT_ENCODING], &request),
        )
    }

    /// What a persisting store saves through the accessors rebuilds the same response.
    #[test]
    fn stored_response_round_trips_through_its_accessors() {
        let original = response("hello", "gzip");
        let vary = VaryKey::from_values(original.vary().fields().map(|name| {
            let value = original.vary().value(name).flatten().map(<[u8]>::to_vec);
            (name.clone(), value)
        }));
        let policy = original.policy();
        let policy = ResponsePolicy::from_parts(
            policy.freshness_lifetime(),
            policy.initial_age(),
            policy.response_time(),
        )
        .with_no_cache(policy.no_cache())
        .with_must_revalidate(policy.must_revalidate())
        .with_stale_while_revalidate(policy.stale_while_revalidate())
        .with_stale_if_error(policy.stale_if_error());
        let rebuilt = StoredResponse::new(
            original.status(),
            original.headers().clone(),
            original.body().clone(),
            policy,
            vary,
        );
        assert_eq!(rebuilt.status(), original.status());
        assert_eq!(rebuilt.headers(), original.headers());
        assert_eq!(rebuilt.body(), original.body());
        assert_eq!(rebuilt.policy(), original.policy());
        assert_eq!(rebuilt.vary(), original.vary());
        assert_eq!(rebuilt.weight(), original.weight());
    }

    #[test]
    fn with_extensions_replaces_the_extensions() {
        let mut extensions = Extensions::new();
        extensions.insert(7_u8);
        let stored = response("hello", "gzip").with_extensions(extensions);
        assert_eq!(stored.extensions().get::<u8>(), Some(&7));
        assert!(response("hello", "gzip").extensions().is_empty());
    }

    /// RFC 9111 §4.1: the rebuilt entry selects the same variant, most recent first.
    #[test]
    fn from_variants_keeps_the_order_and_the_bound() {
        let gzip = Arc::new(response("gzip", "gzip"));
        let br = Arc::new(response("br", "br"));
        let entry = StoredEntry::from_variants([Arc::clone(&gzip), Arc::clone(&br)]);
        assert!(Arc::ptr_eq(&entry.variants()[0], &gzip));
        assert!(Arc::ptr_eq(&entry.variants()[1], &br));
        let mut request = HeaderMap::new();
        request.insert(ACCEPT_ENCODING, "br".parse().unwrap());
        assert!(Arc::ptr_eq(entry.select(&request).unwrap(), &br));

        let many = StoredEntry::from_variants((0..40).map(|_| Arc::clone(&gzip)));
        assert_eq!(many.variants().len(), StoredEntry::MAX_VARIANTS);
    }
}
