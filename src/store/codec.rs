//! A stable, versioned binary form of a [`StoredEntry`], for stores that keep entries outside
//! the process (feature `serde`).
//!
//! The form is a 4-byte magic, a format version byte ([`FORMAT_VERSION`]) and the entry in
//! [postcard](https://docs.rs/postcard): compact, and with no field names to pay for. What a
//! store reads back that is not this form — another version, another program's bytes, a
//! truncated value — decodes as `None`, which the store reports as a miss, never an error.
//! Extensions are not kept (see [`StoredResponse::extensions`]).
//!
//! ```
//! # use std::sync::Arc;
//! # use std::time::{Duration, SystemTime};
//! # use bytes::Bytes;
//! # use http::{HeaderMap, StatusCode};
//! use tower_cache_layer::policy::{ResponsePolicy, VaryKey};
//! use tower_cache_layer::store::{StoredEntry, StoredResponse, codec};
//!
//! let policy = ResponsePolicy::from_parts(Duration::from_secs(60), Duration::ZERO, SystemTime::now());
//! let response = StoredResponse::new(
//!     StatusCode::OK,
//!     HeaderMap::new(),
//!     Bytes::from_static(b"hello"),
//!     policy,
//!     VaryKey::default(),
//! );
//! let bytes = codec::encode(&StoredEntry::new(Arc::new(response))).unwrap();
//! let entry = codec::decode(&bytes).unwrap();
//! assert_eq!(entry.variants()[0].body().as_bytes().unwrap().as_ref(), b"hello");
//! assert!(codec::decode(&bytes[..bytes.len() - 1]).is_none());
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use super::{StoreError, StoredEntry, StoredResponse};
use crate::policy::headers::{ADDED_FIELDS, within_name_limit};
use crate::policy::{ResponsePolicy, VaryKey};

/// The version of the form [`encode`] writes. [`decode`] reads this version only.
pub const FORMAT_VERSION: u8 = 1;

/// What every encoded entry starts with, before the version.
const MAGIC: &[u8; 4] = b"TCLe";

#[derive(Serialize, Deserialize)]
struct EntryV1<'a> {
    #[serde(borrow)]
    variants: Vec<ResponseV1<'a>>,
}

#[derive(Serialize, Deserialize)]
struct ResponseV1<'a> {
    status: u16,
    #[serde(borrow)]
    headers: Vec<(&'a str, &'a [u8])>,
    body: &'a [u8],
    policy: PolicyV1,
    #[serde(borrow)]
    vary: Vec<(&'a str, Option<&'a [u8]>)>,
}

#[derive(Serialize, Deserialize)]
struct PolicyV1 {
    freshness_lifetime: Duration,
    initial_age: Duration,
    response_time: SystemTime,
    no_cache: bool,
    must_revalidate: bool,
    stale_while_revalidate: Option<Duration>,
    stale_if_error: Option<Duration>,
}

/// `entry` in the stable form.
///
/// # Errors
///
/// When a body is not held in memory (a [`BodySource`](super::BodySource)'s body is kept by
/// the store that streams it, not encoded).
pub fn encode(entry: &StoredEntry) -> Result<Vec<u8>, StoreError> {
    let variants = entry
        .variants()
        .iter()
        .map(|response| encode_response(response))
        .collect::<Result<_, _>>()?;
    framed(&EntryV1 { variants }, entry.weight() + 64)
}

/// `entry` after the magic bytes and [`FORMAT_VERSION`], in a buffer of `capacity` bytes.
fn framed(entry: &EntryV1<'_>, capacity: usize) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    postcard::to_extend(entry, out).map_err(StoreError::new)
}

fn encode_response(response: &StoredResponse) -> Result<ResponseV1<'_>, StoreError> {
    let body = response
        .body()
        .as_bytes()
        .ok_or_else(|| StoreError::new("a streamed body is not encoded"))?;
    let policy = response.policy();
    Ok(ResponseV1 {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect(),
        body,
        policy: PolicyV1 {
            freshness_lifetime: policy.freshness_lifetime(),
            initial_age: policy.initial_age(),
            response_time: policy.response_time(),
            no_cache: policy.no_cache(),
            must_revalidate: policy.must_revalidate(),
            stale_while_revalidate: policy.stale_while_revalidate(),
            stale_if_error: policy.stale_if_error(),
        },
        vary: response
            .vary()
            .fields()
            .map(|name| (name.as_str(), response.vary().value(name).flatten()))
            .collect(),
    })
}

/// The entry `bytes` encode; `None` when they are not an entry of [`FORMAT_VERSION`] (another
/// version, damaged or cut short).
pub fn decode(bytes: &[u8]) -> Option<StoredEntry> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (&version, rest) = rest.split_first()?;
    if version != FORMAT_VERSION {
        return None;
    }
    let (entry, trailing): (EntryV1<'_>, _) = postcard::take_from_bytes(rest).ok()?;
    if !trailing.is_empty() {
        return None;
    }
    let variants = entry
        .variants
        .into_iter()
        .map(decode_response)
        .collect::<Option<Vec<_>>>()?;
    Some(StoredEntry::from_variants(variants))
}

fn decode_response(response: ResponseV1<'_>) -> Option<Arc<StoredResponse>> {
    let status = StatusCode::from_u16(response.status).ok()?;
    // More names than the cache stores (`MAX_NAMES`) is damage, not an entry: `None`, not a
    // panic here (`http`'s maps hold 24,576 names) or when a hit adds its fields.
    let mut headers = HeaderMap::try_with_capacity(response.headers.len()).unwrap_or_default();
    for (name, value) in response.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        headers
            .try_append(name, HeaderValue::from_bytes(value).ok()?)
            .ok()?;
    }
    if !within_name_limit(&headers) {
        return None;
    }
    headers.try_reserve(ADDED_FIELDS).ok()?;
    // `StoredResponse::new` keeps them as the cache keeps the headers it stores.
    let p = response.policy;
    let policy = ResponsePolicy::from_parts(p.freshness_lifetime, p.initial_age, p.response_time)
        .with_no_cache(p.no_cache)
        .with_must_revalidate(p.must_revalidate)
        .with_stale_while_revalidate(p.stale_while_revalidate)
        .with_stale_if_error(p.stale_if_error);
    let vary = response
        .vary
        .into_iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            Some((name, value.map(<[u8]>::to_vec)))
        })
        .collect::<Option<Vec<_>>>()?;
    let body = Bytes::copy_from_slice(response.body);
    Some(Arc::new(StoredResponse::new(
        status,
        headers,
        body,
        policy,
        VaryKey::from_values(vary),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{ACCEPT_ENCODING, CONTENT_TYPE};

    fn entry() -> StoredEntry {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.append("x-two", HeaderValue::from_static("a"));
        headers.append("x-two", HeaderValue::from_static("b"));
        let mut request = HeaderMap::new();
        request.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let policy = ResponsePolicy::from_parts(
            Duration::from_secs(60),
            Duration::from_secs(3),
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_234_567),
        )
        .with_must_revalidate(true)
        .with_stale_if_error(Some(Duration::from_secs(30)));
        let gzip = StoredResponse::new(
            StatusCode::OK,
            headers,
            Bytes::from_static(b"zipped"),
            policy,
            VaryKey::capture(
                &[ACCEPT_ENCODING, HeaderName::from_static("x-absent")],
                &request,
            ),
        );
        let plain = StoredResponse::new(
            StatusCode::NOT_FOUND,
            HeaderMap::new(),
            Bytes::new(),
            policy.with_no_cache(true),
            VaryKey::default(),
        );
        StoredEntry::from_variants([Arc::new(gzip), Arc::new(plain)])
    }

    #[test]
    fn an_entry_round_trips() {
        let original = entry();
        let decoded = decode(&encode(&original).unwrap()).unwrap();
        assert_eq!(decoded.variants().len(), 2);
        for (a, b) in original.variants().iter().zip(decoded.variants()) {
            assert_eq!(a.status(), b.status());
            assert_eq!(a.headers(), b.headers());
            assert_eq!(a.body(), b.body());
            assert_eq!(a.policy(), b.policy());
            assert_eq!(a.vary(), b.vary());
        }
    }

    #[test]
    fn another_version_or_damage_is_none() {
        let bytes = encode(&entry()).unwrap();
        let mut other_version = bytes.clone();
        other_version[4] = FORMAT_VERSION + 1;
        assert!(decode(&other_version).is_none());
        assert!(decode(&bytes[..bytes.len() / 2]).is_none());
        assert!(decode(b"").is_none());
        assert!(decode(b"TCLe").is_none());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_none());
        // Every single-byte cut decodes as none or as an entry, never panics.
        for len in 0..bytes.len() {
            let _ = decode(&bytes[..len]);
        }
    }

    /// An encoded response with `names` distinct header names.
    fn with_names(names: usize) -> Vec<u8> {
        let names: Vec<String> = (0..names).map(|n| format!("x-{n}")).collect();
        let response = ResponseV1 {
            status: 200,
            headers: names
                .iter()
                .map(|name| (name.as_str(), &b"v"[..]))
                .collect(),
            body: b"",
            policy: PolicyV1 {
                freshness_lifetime: Duration::ZERO,
                initial_age: Duration::ZERO,
                response_time: SystemTime::UNIX_EPOCH,
                no_cache: false,
                must_revalidate: false,
                stale_while_revalidate: None,
                stale_if_error: None,
            },
            vary: Vec::new(),
        };
        let entry = EntryV1 {
            variants: vec![response],
        };
        framed(&entry, 0).unwrap()
    }

    // What a store hands back may be damaged or written by anyone who can write to it: an
    // entry of more header names than the cache stores decodes as none, and one of more than
    // `http` allows never panics; one at the limit decodes whole, and a hit can add its fields.
    #[test]
    fn an_entry_of_too_many_header_names_is_none() {
        let most = crate::policy::headers::MAX_NAMES;
        let decoded = decode(&with_names(most)).unwrap();
        let mut answer = decoded.variants()[0].headers().clone();
        assert_eq!(answer.keys_len(), most);
        for name in [
            "age",
            "x-cache",
            "cache-status",
            "content-range",
            "content-length",
        ] {
            answer.insert(name, HeaderValue::from_static("1"));
        }
        assert!(decode(&with_names(most + 1)).is_none());
        assert!(decode(&with_names(24_577)).is_none());
    }

    #[test]
    fn a_streamed_body_is_not_encoded() {
        #[derive(Debug)]
        struct Nothing;
        impl super::super::BodySource for Nothing {
            fn len(&self) -> u64 {
                1
            }
            fn open(&self, _: std::ops::RangeInclusive<u64>) -> super::super::SourceBody {
                unreachable!()
            }
        }
        let response = StoredResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            super::super::StoredBody::from_source(Arc::new(Nothing)),
            ResponsePolicy::from_parts(Duration::ZERO, Duration::ZERO, SystemTime::UNIX_EPOCH),
            VaryKey::default(),
        );
        assert!(encode(&StoredEntry::new(Arc::new(response))).is_err());
    }
}
