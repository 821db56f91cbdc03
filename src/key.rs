//! Cache keys.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

use http::header::HOST;
use http::{HeaderMap, Uri};

/// The primary cache key of a request (RFC 9111 §2): the normalised effective request URI.
///
/// GET and HEAD share a key, so a HEAD request can be answered from a stored GET. The URI is
/// normalised as RFC 9110 §4.2.3 allows: scheme and host lowercased, the default port removed,
/// an empty path made `/`. Without a scheme in the request target, `http` is assumed.
///
/// Cloning a key is a reference-count increment. A key is hashed once, when it is made: the
/// maps and the store that look it up feed their hashers that one number.
#[derive(Clone)]
#[non_exhaustive]
pub struct CacheKey {
    uri: Arc<str>,
    /// `uri` hashed with this process's random SipHash keys ([`key_hasher`]), so that a
    /// client cannot choose URLs that collide.
    hash: u64,
}

/// The hasher of key texts: random keys, drawn once per process.
fn key_hasher() -> &'static RandomState {
    static HASHER: OnceLock<RandomState> = OnceLock::new();
    HASHER.get_or_init(RandomState::new)
}

thread_local! {
    /// The text of the key being made, reused by every key made on this thread: making a key
    /// allocates only its shared text.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Hashing for maps keyed by [`CacheKey`]: the key's own hash (random per process, so
/// clients cannot aim at one bucket) is used as it is, instead of being hashed again.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeyHashing;

impl BuildHasher for KeyHashing {
    type Hasher = KeyHashHasher;

    fn build_hasher(&self) -> KeyHashHasher {
        KeyHashHasher(0)
    }
}

/// The hasher of [`KeyHashing`]: a key's hash passes through.
#[derive(Debug)]
pub(crate) struct KeyHashHasher(u64);

impl Hasher for KeyHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, hash: u64) {
        // A key writes its hash once; anything more is mixed in.
        self.0 = self.0.rotate_left(29) ^ hash;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached by `CacheKey` (it writes one `u64`); bytes go through the keyed hasher,
        // never through a hash a client could aim at.
        self.write_u64(key_hasher().hash_one(bytes));
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.uri == other.uri
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialOrd for CacheKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Keys sort by their text.
impl Ord for CacheKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.uri.cmp(&other.uri)
    }
}

impl CacheKey {
    /// The key of a request with target `uri` and header fields `headers` (for `Host`).
    ///
    /// `None` when no authority can be found (neither in the target nor in a valid `Host`).
    pub fn from_parts(uri: &Uri, headers: &HeaderMap) -> Option<Self> {
        let authority = match uri.authority() {
            Some(authority) => authority.as_str(),
            None => headers.get(HOST)?.to_str().ok()?,
        };
        if authority.is_empty() || authority.contains(['/', '?', '#', ' ', '@']) {
            return None;
        }
        let scheme = uri.scheme_str().unwrap_or("http");
        Some(Self::build(scheme, authority, uri))
    }

    /// The key of an absolute URI such as `http://example.com/index.html`.
    ///
    /// `None` when `uri` has no authority.
    pub fn from_uri(uri: &Uri) -> Option<Self> {
        let authority = uri.authority()?.as_str();
        let scheme = uri.scheme_str().unwrap_or("http");
        Some(Self::build(scheme, authority, uri))
    }

    /// The key of the absolute URI `uri` with its scheme replaced by `scheme`.
    ///
    /// `None` when `uri` has no authority.
    pub(crate) fn from_uri_with_scheme(uri: &Uri, scheme: &str) -> Option<Self> {
        let authority = uri.authority()?.as_str();
        Some(Self::build(scheme, authority, uri))
    }

    fn build(scheme: &str, authority: &str, uri: &Uri) -> Self {
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let path_and_query = if path_and_query.is_empty() {
            "/"
        } else {
            path_and_query
        };
        let default_port = if scheme.eq_ignore_ascii_case("https") {
            ":443"
        } else if scheme.eq_ignore_ascii_case("http") {
            ":80"
        } else {
            ""
        };
        let authority = match authority.strip_suffix(default_port) {
            Some(host) if !default_port.is_empty() => host,
            _ => authority,
        };
        SCRATCH.with_borrow_mut(|key| {
            key.clear();
            key.push_str(scheme);
            key.push_str("://");
            key.push_str(authority);
            key.make_ascii_lowercase();
            key.push_str(path_and_query);
            Self::from_text(key)
        })
    }

    /// The key whose text is `text`, hashed.
    fn from_text(text: &str) -> Self {
        Self {
            hash: key_hasher().hash_one(text),
            uri: text.into(),
        }
    }

    /// A key from its text, as [`as_str`](Self::as_str) returned it (a store that keeps keys
    /// outside the process reads them back with this).
    #[cfg(feature = "redis")]
    pub(crate) fn from_stored(text: &str) -> Self {
        Self::from_text(text)
    }

    /// The key as text: the normalised URI.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// The key's hash (random per process), for spreading keys over buckets.
    pub(crate) fn hash_value(&self) -> u64 {
        self.hash
    }
}

/// The key of `http://example.com{path}`, for tests.
#[cfg(test)]
pub(crate) fn example_key(path: &str) -> CacheKey {
    CacheKey::from_uri(&format!("http://example.com{path}").parse().unwrap()).unwrap()
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CacheKey").field(&&*self.uri).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn key(uri: &str, host: Option<&str>) -> Option<String> {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(HOST, HeaderValue::from_str(host).unwrap());
        }
        CacheKey::from_parts(&uri.parse().unwrap(), &headers).map(|k| k.to_string())
    }

    #[test]
    fn origin_form_uses_host() {
        assert_eq!(
            key("/a?b=1", Some("Example.COM:8080")).as_deref(),
            Some("http://example.com:8080/a?b=1")
        );
    }

    #[test]
    fn absolute_form_wins_over_host() {
        assert_eq!(
            key("https://A.example/x", Some("other")).as_deref(),
            Some("https://a.example/x")
        );
    }

    // RFC 9110 §4.2.3: default port and case are normalised; path case is not.
    #[test]
    fn default_port_and_case_are_normalised() {
        assert_eq!(
            key("http://EXAMPLE.com:80/Path", None).as_deref(),
            Some("http://example.com/Path")
        );
        assert_eq!(
            key("https://example.com:443", None).as_deref(),
            Some("https://example.com/")
        );
    }

    #[test]
    fn a_key_is_hashed_once_and_maps_use_that_hash() {
        let a = CacheKey::from_uri(&"http://Example.com/a".parse().unwrap()).unwrap();
        let same = CacheKey::from_uri(&"http://example.com:80/a".parse().unwrap()).unwrap();
        let other = CacheKey::from_uri(&"http://example.com/b".parse().unwrap()).unwrap();
        assert_eq!(a, same);
        assert_eq!(a.hash_value(), same.hash_value());
        assert_ne!(a.hash_value(), other.hash_value());
        assert_eq!(KeyHashing.hash_one(&a), a.hash_value());
        let mut map = std::collections::HashMap::with_hasher(KeyHashing);
        map.insert(a, 1);
        map.insert(other, 2);
        assert_eq!(map.get(&same), Some(&1));
    }

    #[test]
    fn query_distinguishes_keys() {
        assert_ne!(key("/a?x=1", Some("h")), key("/a?x=2", Some("h")));
    }

    #[test]
    fn no_authority_no_key() {
        assert_eq!(key("/a", None), None);
        assert_eq!(key("/a", Some("bad/host")), None);
    }
}
