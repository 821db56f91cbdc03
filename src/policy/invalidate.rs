//! Invalidation after unsafe requests (RFC 9111 §4.4), with the small part of RFC 3986 §5.2
//! reference resolution it needs for `Location` and `Content-Location`.

use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderMap, Method, StatusCode, Uri};

/// Is the method safe (RFC 9110 §9.2.1: GET, HEAD, OPTIONS, TRACE)?
///
/// Every other method, including unknown extension methods, is unsafe (RFC 9111 §4.4:
/// "including methods whose safety is unknown").
pub fn is_safe_method(method: &Method) -> bool {
    // RFC 9110 §9.2.1: "Of the request methods defined by this specification, the GET, HEAD,
    // OPTIONS, and TRACE methods are defined to be safe."
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The URIs whose stored responses must be invalidated after a response (RFC 9111 §4.4).
///
/// Empty unless the method is unsafe ([`is_safe_method`] is false) and the status is a
/// non-error one (2xx or 3xx). Then, in this order and without duplicates:
///
/// 1. `request_uri`, the target URI (a MUST);
/// 2. `Location`, then `Content-Location`, each resolved against `request_uri` (RFC 3986
///    §5.2: absolute URIs, `//authority/path`, `/absolute-path`, `relative/path`, `?query`,
///    with dot-segments removed; fragments dropped), and kept only when its origin — scheme,
///    host and port, default ports made explicit, compared case-insensitively — is the
///    origin of `request_uri` (RFC 9111 §4.4: a MUST NOT otherwise). Values that are absent,
///    repeated, not ASCII or not a valid URI after resolution are skipped.
///
/// `request_uri` is expected to be absolute (scheme, authority, path). When it is not, its
/// origin is unknown and only `request_uri` itself is returned.
pub fn invalidation_uris(
    method: &Method,
    status: StatusCode,
    request_uri: &Uri,
    resp_headers: &HeaderMap,
) -> Vec<Uri> {
    // RFC 9111 §4.4: "A cache MUST invalidate the target URI ... when it receives a non-error
    // status code in response to an unsafe request method (including methods whose safety is
    // unknown)." "A "non-error response" is one with a 2xx (Successful) or 3xx (Redirection)
    // status code."
    if is_safe_method(method) || !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let mut uris = vec![request_uri.clone()];
    let Some(base_origin) = origin(request_uri) else {
        return uris;
    };
    // RFC 9111 §4.4: "the URI(s) in the Location and Content-Location response header fields
    // (if present) are candidates for invalidation ... a cache MUST NOT trigger an
    // invalidation under these conditions if the origin ... of the URI to be invalidated
    // differs from that of the target URI".
    for name in [LOCATION, CONTENT_LOCATION] {
        let mut lines = resp_headers.get_all(&name).iter();
        let (Some(value), None) = (lines.next(), lines.next()) else {
            continue;
        };
        let Some(resolved) = value
            .to_str()
            .ok()
            .and_then(|reference| resolve(request_uri, reference.trim()))
        else {
            continue;
        };
        if origin(&resolved).as_ref() == Some(&base_origin) && !uris.contains(&resolved) {
            uris.push(resolved);
        }
    }
    uris
}

/// The origin of an absolute URI (RFC 9110 §4.3.1): lowercased scheme and host, and the port
/// (the scheme's default when absent; `None` for an unknown scheme without a port).
pub(super) fn origin(uri: &Uri) -> Option<(String, String, Option<u16>)> {
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri.port_u16().or(match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    });
    Some((scheme, host, port))
}

/// RFC 3986 §5.2.2: resolves `reference` against the absolute `base`.
pub(super) fn resolve(base: &Uri, reference: &str) -> Option<Uri> {
    let base_scheme = base.scheme_str()?;
    let base_authority = base.authority()?.as_str();
    // RFC 3986 §5.2.2 ignores the reference's fragment for our purpose: cache keys have none.
    let reference = reference.split('#').next().unwrap_or("");
    let (scheme, rest) = split_scheme(reference);
    let (authority, rest) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?']).unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        None => (None, rest),
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };

    let base_path = base.path();
    let (t_scheme, t_authority, t_path, t_query) = if let Some(scheme) = scheme {
        // RFC 3986 §5.2.2: R.scheme defined
        (scheme, authority?, remove_dot_segments(path), query)
    } else if let Some(authority) = authority {
        // RFC 3986 §5.2.2: R.authority defined
        (base_scheme, authority, remove_dot_segments(path), query)
    } else if path.is_empty() {
        // RFC 3986 §5.2.2: empty path keeps the base path (and query unless one is given)
        (
            base_scheme,
            base_authority,
            base_path.to_owned(),
            query.or(base.query()),
        )
    } else if path.starts_with('/') {
        (
            base_scheme,
            base_authority,
            remove_dot_segments(path),
            query,
        )
    } else {
        // RFC 3986 §5.2.3: merge with the base path, then remove dot-segments
        let merged = match base_path.rfind('/') {
            Some(slash) => format!("{}{}", &base_path[..=slash], path),
            None => format!("/{path}"),
        };
        (
            base_scheme,
            base_authority,
            remove_dot_segments(&merged),
            query,
        )
    };

    // RFC 9110 §4.2.1: an empty path in an http(s) URI is equivalent to "/".
    let t_path = if t_path.is_empty() {
        "/".to_owned()
    } else {
        t_path
    };
    let mut out = format!("{t_scheme}://{t_authority}{t_path}");
    if let Some(query) = t_query {
        out.push('?');
        out.push_str(query);
    }
    Uri::try_from(out).ok()
}

/// RFC 3986 §3.1: `scheme ":"` at the start of a reference, if present.
fn split_scheme(reference: &str) -> (Option<&str>, &str) {
    if let Some(colon) = reference.find(':') {
        let scheme = &reference[..colon];
        let mut chars = scheme.chars();
        // RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
        if chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return (Some(scheme), &reference[colon + 1..]);
        }
    }
    (None, reference)
}

/// RFC 3986 §5.2.4: removes `.` and `..` segments.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    // A path ending in "." or ".." keeps a trailing slash.
    let mut trailing_slash = false;
    for (i, segment) in segments.iter().enumerate() {
        if i == 0 && absolute {
            continue;
        }
        match *segment {
            "." => trailing_slash = i == last,
            ".." => {
                output.pop();
                trailing_slash = i == last;
            }
            other => {
                output.push(other);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    if absolute {
        out.push('/');
    }
    out.push_str(&output.join("/"));
    if trailing_slash && !out.ends_with('/') {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_util::headers;
    use http::HeaderValue;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    fn uris(method: Method, status: u16, target: &str, resp: &[(&str, &str)]) -> Vec<String> {
        invalidation_uris(
            &method,
            StatusCode::from_u16(status).unwrap(),
            &uri(target),
            &headers(resp),
        )
        .iter()
        .map(Uri::to_string)
        .collect()
    }

    fn resolved(base: &str, reference: &str) -> Option<String> {
        resolve(&uri(base), reference).map(|u| u.to_string())
    }

    // RFC 9110 §9.2.1: GET, HEAD, OPTIONS, TRACE are safe; everything else is not
    #[test]
    fn safe_methods() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(is_safe_method(&m), "{m}");
        }
        for m in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::CONNECT,
        ] {
            assert!(!is_safe_method(&m), "{m}");
        }
        assert!(!is_safe_method(&Method::from_bytes(b"PURGE").unwrap()));
    }

    // RFC 9111 §4.4: unsafe method with a non-error status invalidates the target URI
    #[test]
    fn unsafe_non_error_invalidates_target() {
        for status in [200, 201, 204, 301, 303, 399] {
            assert_eq!(
                uris(Method::POST, status, "http://a.example/x", &[]),
                ["http://a.example/x"],
                "{status}"
            );
        }
    }

    // RFC 9111 §4.4: error statuses and safe methods invalidate nothing
    #[test]
    fn error_status_or_safe_method_invalidates_nothing() {
        for status in [100, 400, 404, 500, 503] {
            assert!(uris(Method::DELETE, status, "http://a.example/x", &[]).is_empty());
        }
        assert!(uris(Method::GET, 200, "http://a.example/x", &[]).is_empty());
    }

    // RFC 9111 §4.4: Location and Content-Location of the same origin are invalidated too
    #[test]
    fn location_and_content_location_same_origin() {
        let got = uris(
            Method::POST,
            201,
            "http://a.example/items/",
            &[("location", "/items/7"), ("content-location", "7?v=1")],
        );
        assert_eq!(
            got,
            [
                "http://a.example/items/",
                "http://a.example/items/7",
                "http://a.example/items/7?v=1"
            ]
        );
    }

    // RFC 9111 §4.4: another origin (host, scheme or port) is never invalidated
    #[test]
    fn other_origin_is_not_invalidated() {
        for loc in [
            "http://b.example/x",
            "https://a.example/x",
            "http://a.example:8080/x",
            "//b.example/x",
            "mailto:x@a.example",
        ] {
            assert_eq!(
                uris(Method::PUT, 200, "http://a.example/x", &[("location", loc)]),
                ["http://a.example/x"],
                "{loc}"
            );
        }
    }

    // RFC 9110 §4.3.1: origins compare case-insensitively, default ports made explicit
    #[test]
    fn origin_comparison_normalizes() {
        let got = uris(
            Method::PUT,
            200,
            "http://a.example/x",
            &[("location", "HTTP://A.EXAMPLE:80/y")],
        );
        assert_eq!(got.len(), 2, "{got:?}");
        let got = uris(
            Method::PUT,
            200,
            "https://a.example:443/x",
            &[("location", "https://a.example/y")],
        );
        assert_eq!(got.len(), 2, "{got:?}");
    }

    // Duplicates are removed; repeated or non-ASCII fields are skipped
    #[test]
    fn duplicates_and_bad_fields_skipped() {
        assert_eq!(
            uris(
                Method::POST,
                200,
                "http://a.example/x",
                &[("location", "/x")]
            ),
            ["http://a.example/x"]
        );
        assert_eq!(
            uris(
                Method::POST,
                200,
                "http://a.example/x",
                &[("location", "/y"), ("location", "/z")]
            ),
            ["http://a.example/x"]
        );
        let mut h = HeaderMap::new();
        h.insert(LOCATION, HeaderValue::from_bytes(b"/\xff").unwrap());
        h.insert(CONTENT_LOCATION, HeaderValue::from_static("/a b"));
        let got = invalidation_uris(&Method::POST, StatusCode::OK, &uri("http://a.example/"), &h);
        assert_eq!(got, [uri("http://a.example/")]);
    }

    // A relative request URI has no origin: only the target itself
    #[test]
    fn relative_request_uri_only_target() {
        let got = invalidation_uris(
            &Method::POST,
            StatusCode::OK,
            &uri("/x"),
            &headers(&[("location", "/y")]),
        );
        assert_eq!(got, [uri("/x")]);
    }

    // RFC 3986 §5.4.1: normal examples (base http://a/b/c/d;p?q)
    #[test]
    fn resolve_rfc3986_normal_examples() {
        let base = "http://a/b/c/d;p?q";
        for (reference, expect) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("g#s", "http://a/b/c/g"),
            (";x", "http://a/b/c/;x"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
        ] {
            assert_eq!(
                resolved(base, reference).as_deref(),
                Some(expect),
                "{reference:?}"
            );
        }
    }

    // RFC 3986 §5.4.2: abnormal examples
    #[test]
    fn resolve_rfc3986_abnormal_examples() {
        let base = "http://a/b/c/d;p?q";
        for (reference, expect) in [
            ("../../../g", "http://a/g"),
            ("../../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            (".g", "http://a/b/c/.g"),
            ("g..", "http://a/b/c/g.."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("http:g", "http:g"),
        ] {
            let got = resolved(base, reference);
            if reference == "http:g" {
                // A scheme without an authority is not an http URI the cache can key on.
                assert_eq!(got, None);
            } else {
                assert_eq!(got.as_deref(), Some(expect), "{reference:?}");
            }
        }
    }

    // RFC 3986 §5.2.2: absolute references are used as they are (dot-segments removed)
    #[test]
    fn resolve_absolute_reference() {
        assert_eq!(
            resolved("http://a/b", "https://c.example/d/../e?f").as_deref(),
            Some("https://c.example/e?f")
        );
        assert_eq!(
            resolved("http://a/b", "https://c.example").as_deref(),
            Some("https://c.example/")
        );
    }
}
