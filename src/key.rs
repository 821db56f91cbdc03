//! Cache keys.

use std::fmt;
use std::sync::Arc;

use http::header::HOST;
use http::{HeaderMap, Uri};

/// The primary cache key of a request (RFC 9111 §2): the normalised effective request URI.
///
/// GET and HEAD share a key, so a HEAD request can be answered from a stored GET. The URI is
/// normalised as RFC 9110 §4.2.3 allows: scheme and host lowercased, the default port removed,
/// an empty path made `/`. Without a scheme in the request target, `http` is assumed.
///
/// Cloning a key is a reference-count increment.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct CacheKey {
    uri: Arc<str>,
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
        let mut key =
            String::with_capacity(scheme.len() + 3 + authority.len() + path_and_query.len());
        key.push_str(scheme);
        key.push_str("://");
        key.push_str(authority);
        key.make_ascii_lowercase();
        key.push_str(path_and_query);
        Self { uri: key.into() }
    }

    /// A key from its text, as [`as_str`](Self::as_str) returned it (a store that keeps keys
    /// outside the process reads them back with this).
    #[cfg(feature = "redis")]
    pub(crate) fn from_stored(text: &str) -> Self {
        Self { uri: text.into() }
    }

    /// The key as text: the normalised URI.
    pub fn as_str(&self) -> &str {
        &self.uri
    }
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
    fn query_distinguishes_keys() {
        assert_ne!(key("/a?x=1", Some("h")), key("/a?x=2", Some("h")));
    }

    #[test]
    fn no_authority_no_key() {
        assert_eq!(key("/a", None), None);
        assert_eq!(key("/a", Some("bad/host")), None);
    }
}
