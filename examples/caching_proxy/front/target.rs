//! The request target and `Host` rules (RFC 9112 §3.2, RFC 9113 §8.3.1) and the rewriting
//! of redirects to the origin.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Uri};
use http::{Request, StatusCode, Version, header};

use super::Refusal;
use crate::config::Origin;

/// `location` with the origin's URL `prefix` replaced by `http://{client_authority}`, or
/// `None` when it does not start with that prefix.
pub(super) fn rewrite_location(
    prefix: &str,
    location: &[u8],
    client_authority: &Authority,
) -> Option<HeaderValue> {
    let prefix = prefix.as_bytes();
    let head = location.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = &location[prefix.len()..];
    // The prefix must end at a path boundary: `http://o/api` covers `/api/x`, not `/apix`.
    if !matches!(rest.first(), None | Some(b'/' | b'?' | b'#')) {
        return None;
    }
    let mut rewritten = format!("http://{client_authority}").into_bytes();
    if !rest.starts_with(b"/") {
        rewritten.push(b'/');
    }
    rewritten.extend_from_slice(rest);
    HeaderValue::from_bytes(&rewritten).ok()
}

/// The absolute target the cache keys by, for a reverse proxy: the origin's scheme,
/// `authority`, the base path and the request's path and query. `OPTIONS *` keeps its
/// asterisk-form (RFC 9112 §3.2.4): it addresses the server, not a path under the base.
pub(super) fn reverse_target(
    origin: &Origin,
    authority: &Authority,
    path_and_query: Option<&PathAndQuery>,
) -> Result<Uri, http::Error> {
    // The common case, no base path and an origin-form target: reuse the target's bytes.
    if let Some(pq) =
        path_and_query.filter(|pq| origin.base_path.is_empty() && pq.as_str().starts_with('/'))
    {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(origin.scheme.clone());
        parts.authority = Some(authority.clone());
        parts.path_and_query = Some(pq.clone());
        return Ok(Uri::from_parts(parts)?);
    }
    let tail = path_and_query.map_or("/", PathAndQuery::as_str);
    let path = if tail == "*" {
        "*".to_owned()
    } else if tail.starts_with('/') {
        format!("{}{tail}", origin.base_path)
    } else {
        format!("{}/{tail}", origin.base_path)
    };
    Uri::builder()
        .scheme(origin.scheme.clone())
        .authority(authority.clone())
        .path_and_query(path)
        .build()
}

/// The authority of a forward proxy's request target, which must be an absolute http or
/// https URL (RFC 9112 §3.2.2: a client sends absolute-form to a proxy).
pub(super) fn forward_target(target: &Uri) -> Result<Authority, Refusal> {
    if !matches!(target.scheme_str(), Some("http" | "https")) {
        return Err(Refusal::bad_request(
            "bad request: a forward proxy needs an absolute http:// or https:// URL as the request target",
        ));
    }
    if !crate::tls::HAS_TLS && target.scheme_str() == Some("https") {
        return Err(Refusal {
            status: StatusCode::BAD_GATEWAY,
            reason: crate::tls::NO_TLS,
        });
    }
    target
        .authority()
        .and_then(|a| parse_authority(a.as_str().as_bytes()))
        .ok_or(Refusal::bad_request("bad request: invalid request target"))
}

/// The authority the client addressed, checked as RFC 9112 §3.2 and RFC 9113 §8.3.1 say.
///
/// `None` when the request names no host at all (HTTP/1.0 without `Host`): it is for the
/// origin, then.
pub(super) fn client_authority<B>(
    req: &Request<B>,
    parse_host: impl FnOnce(&HeaderValue) -> Option<Authority>,
) -> Result<Option<Authority>, Refusal> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
    // HTTP/1.1 request message that lacks a Host header field and to any request message
    // that contains more than one Host header field line or a Host header field with an
    // invalid field value."
    if hosts.next().is_some() {
        return Err(Refusal::bad_request(
            "bad request: more than one Host header field",
        ));
    }
    let host = match host {
        Some(value) => Some(parse_host(value).ok_or(Refusal::bad_request(
            "bad request: invalid Host header field",
        ))?),
        None => None,
    };
    let target = match req.uri().authority() {
        Some(authority) => Some(
            parse_authority(authority.as_str().as_bytes())
                .ok_or(Refusal::bad_request("bad request: invalid request target"))?,
        ),
        None => None,
    };
    match (req.version(), target, host) {
        // RFC 9113 §8.3.1: a Host that identifies another entity than `:authority` makes
        // the request malformed.
        (Version::HTTP_2 | Version::HTTP_3, Some(target), Some(host)) => {
            if same_authority(&target, &host) {
                Ok(Some(target))
            } else {
                Err(Refusal::bad_request(
                    "bad request: the Host header field differs from :authority",
                ))
            }
        }
        (Version::HTTP_11, _, None) => Err(Refusal::bad_request(
            "bad request: missing Host header field",
        )),
        // RFC 9112 §3.2.2: with an absolute-form target, the target's authority replaces
        // `Host`.
        (_, Some(target), _) => Ok(Some(target)),
        (_, None, host) => Ok(host),
    }
}

/// An authority that may name a host to us: a host and an optional port, no user info,
/// nothing empty.
pub(super) fn parse_authority(bytes: &[u8]) -> Option<Authority> {
    let authority = Authority::try_from(bytes).ok()?;
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return None;
    }
    Some(authority)
}

/// Whether two authorities name the same host and port (hosts compare case-insensitively;
/// a missing port and `:80` are the same for `http`).
fn same_authority(a: &Authority, b: &Authority) -> bool {
    a.host().eq_ignore_ascii_case(b.host())
        && a.port_u16().unwrap_or(80) == b.port_u16().unwrap_or(80)
}

/// `authority` as a header value (an `Authority` is always a valid one).
pub(super) fn authority_value(authority: &Authority) -> HeaderValue {
    HeaderValue::from_str(authority.as_str()).expect("an authority is a valid header value")
}

/// Every line of the field `name` joined with ", ", when all are text.
pub(super) fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for value in headers.get_all(name) {
        let value = value.to_str().ok()?.trim();
        match &mut out {
            Some(out) => {
                out.push_str(", ");
                out.push_str(value);
            }
            None => out = Some(value.to_owned()),
        }
    }
    out
}
