//! The front door: what a client's request may say before it reaches the cache, and what
//! the answer says about the origin's address on its way back.
//!
//! Every request gets one authority, decided here, before the cache sees it: the origin's
//! (by default), or with `--preserve-host` the one the client used. That authority is what
//! the cache key holds and what the origin receives in `Host`, so no client-chosen host can
//! shape an answer that is stored for others. The forwarding fields (`Forwarded`,
//! `X-Forwarded-*`, `X-Real-IP`) are the proxy's own: whatever a client sends in them is
//! removed before the cache (whose `Vary` matching must see what the origin sees) and the
//! origin.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::Full;
use tower_cache_layer::policy::remove_hop_by_hop;

use crate::config::{IpNet, Origin};

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Host`.
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-Proto`.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Port`.
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
/// `X-Real-IP`.
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// `Via`.
const VIA: HeaderName = header::VIA;

/// The front door's configuration, shared by all connections.
#[derive(Debug)]
pub(crate) struct FrontDoor {
    /// Reverse proxy for one origin, or forward proxy for any.
    mode: Mode,
    /// `--trusted-proxy`: peers whose `X-Forwarded-For` is kept (the peer is appended).
    trusted: Vec<IpNet>,
    /// `--allow`: the clients served; empty means everyone.
    allow: Vec<IpNet>,
    /// This process's `Via` received-by and comment, e.g. `tower-cache-layer (5f3a…)`: the
    /// comment tells a request that already went through this very proxy (a loop).
    via: String,
}

/// What the proxy is in front of.
#[derive(Debug)]
enum Mode {
    /// Every request goes to `origin` (`--origin`).
    Reverse {
        origin: Origin,
        /// `--preserve-host`: send and key by the client's authority.
        preserve_host: bool,
        /// The origin's URL prefix (`http://host:port/base`, lowercased scheme and host)
        /// that [`FrontDoor::rewrite_redirects`] replaces.
        origin_prefix: String,
    },
    /// Each request goes where its absolute-form target says (no `--origin`).
    Forward {
        /// `--connect-ports`: the ports `CONNECT` may open tunnels to.
        connect_ports: Vec<u16>,
    },
}

/// How the front door is set up (see the flags of the same names).
#[derive(Debug, Default)]
pub(crate) struct FrontDoorConfig {
    /// `--origin`; `None` makes a forward proxy.
    pub(crate) origin: Option<Origin>,
    /// `--preserve-host`.
    pub(crate) preserve_host: bool,
    /// `--trusted-proxy`.
    pub(crate) trusted: Vec<IpNet>,
    /// `--allow`; `None` for the default: everyone for a reverse proxy, loopback clients
    /// for a forward proxy.
    pub(crate) allow: Option<Vec<IpNet>>,
    /// `--connect-ports`.
    pub(crate) connect_ports: Vec<u16>,
}

/// What the front door makes of a request it lets in.
#[derive(Debug)]
pub(crate) enum Admission<B> {
    /// A request for the cache (and, on a miss, the origin).
    Request(Admitted<B>),
    /// A `CONNECT` request for a tunnel to `target` (forward proxy only).
    Tunnel {
        /// Where the tunnel goes: host and port.
        target: Authority,
        /// The request, for its upgrade.
        request: Request<B>,
    },
}

/// A request the front door let in: the request to send through the cache, and the
/// authority the client addressed (for rewriting redirects on the way back).
#[derive(Debug)]
pub(crate) struct Admitted<B> {
    /// The request, with its one authority in the target URI and in `Host`.
    pub(crate) request: Request<B>,
    /// The host (and port) the client used to reach the proxy.
    pub(crate) client_authority: Authority,
}

/// A request refused by the front door: status and a one-line reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// `400 Bad Request`, or `501 Not Implemented` for `CONNECT`.
    pub(crate) status: StatusCode,
    /// What is wrong, for the client (plain text, no trailing newline).
    pub(crate) reason: &'static str,
}

impl Refusal {
    fn bad_request(reason: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason,
        }
    }

    /// The response sent to the client. The connection is closed after it: a client that
    /// sends such requests may not agree with us on where the next one starts.
    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = text_response(self.status, self.reason);
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

/// A plain-text response the proxy generates itself: one line, never stored by anyone.
pub(crate) fn text_response(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{reason}\n"))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl FrontDoor {
    /// The front door set up by `config`.
    pub(crate) fn new(config: FrontDoorConfig) -> Self {
        let (mode, default_allow) = match config.origin {
            Some(origin) => {
                let origin_prefix = format!(
                    "{}://{}{}",
                    origin.scheme,
                    origin.authority.as_str().to_ascii_lowercase(),
                    origin.base_path
                );
                let mode = Mode::Reverse {
                    origin,
                    preserve_host: config.preserve_host,
                    origin_prefix,
                };
                (mode, Vec::new())
            }
            None => {
                let mode = Mode::Forward {
                    connect_ports: config.connect_ports,
                };
                let loopback =
                    ["127.0.0.0/8", "::1"].map(|net| net.parse().expect("valid network"));
                (mode, loopback.to_vec())
            }
        };
        // Unique to this process, so that chained proxies do not take each other for a loop.
        let id = std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            std::process::id(),
        );
        Self {
            mode,
            trusted: config.trusted,
            allow: config.allow.unwrap_or(default_allow),
            via: format!("tower-cache-layer ({id:016x})"),
        }
    }

    /// Checks `req` and gives it its one authority and the proxy's forwarding fields, or
    /// finds it asks for a tunnel.
    ///
    /// # Errors
    ///
    /// A [`Refusal`]: 400 for a request HTTP forbids a server to answer (a missing (HTTP/1.1)
    /// or repeated `Host`, an invalid one, one that differs from HTTP/2's `:authority`; for a
    /// forward proxy, a target that is not an absolute http(s) URL), 403 for a client not in
    /// `--allow` or a tunnel to a port not in `--connect-ports`, 501 for `CONNECT` to a
    /// reverse proxy, 508 for a request that already went through this proxy.
    pub(crate) fn admit<B>(
        &self,
        req: Request<B>,
        peer: SocketAddr,
    ) -> Result<Admission<B>, Refusal> {
        let peer = peer.ip().to_canonical();
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(peer)) {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                reason: "forbidden: this proxy does not serve your address (see --allow)",
            });
        }
        if self.is_loop(req.headers()) {
            return Err(Refusal {
                status: StatusCode::LOOP_DETECTED,
                reason: "loop detected: this request already went through this proxy",
            });
        }
        if req.method() == Method::CONNECT {
            let target = self.tunnel(req.uri())?;
            return Ok(Admission::Tunnel {
                target,
                request: req,
            });
        }
        let client_authority = client_authority(&req)?;
        let (mut parts, body) = req.into_parts();
        let (authority, client_authority) = match &self.mode {
            Mode::Reverse {
                origin,
                preserve_host,
                ..
            } => {
                let client = client_authority.unwrap_or_else(|| origin.authority.clone());
                let authority = if *preserve_host {
                    client.clone()
                } else {
                    origin.authority.clone()
                };
                parts.uri = reverse_target(origin, &authority, parts.uri.path_and_query())
                    .map_err(|_| Refusal::bad_request("bad request: invalid request target"))?;
                (authority, client)
            }
            Mode::Forward { .. } => {
                let authority = forward_target(&parts.uri)?;
                (authority.clone(), authority)
            }
        };
        remove_hop_by_hop(&mut parts.headers);
        parts
            .headers
            .insert(header::HOST, authority_value(&authority));
        self.set_forwarding_fields(&mut parts.headers, peer, &authority);
        self.add_via(&mut parts.headers, parts.version);
        Ok(Admission::Request(Admitted {
            request: Request::from_parts(parts, body),
            client_authority,
        }))
    }

    /// The authority a `CONNECT` request may open a tunnel to.
    fn tunnel(&self, target: &Uri) -> Result<Authority, Refusal> {
        let Mode::Forward { connect_ports } = &self.mode else {
            return Err(Refusal {
                status: StatusCode::NOT_IMPLEMENTED,
                reason: "not implemented: this reverse proxy does not open CONNECT tunnels",
            });
        };
        // RFC 9110 §9.3.6: the target of CONNECT is authority-form, host and port.
        let authority = target
            .authority()
            .filter(|a| a.port_u16().is_some() && target.scheme().is_none())
            .and_then(|a| parse_authority(a.as_str().as_bytes()))
            .ok_or(Refusal::bad_request(
                "bad request: CONNECT needs a host:port target",
            ))?;
        if !authority
            .port_u16()
            .is_some_and(|port| connect_ports.contains(&port))
        {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                reason: "forbidden: CONNECT to this port is not allowed (see --connect-ports)",
            });
        }
        Ok(authority)
    }

    /// Whether this proxy's own `Via` entry is in `headers`.
    fn is_loop(&self, headers: &HeaderMap) -> bool {
        headers.get_all(VIA).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|text| text.contains(self.via.as_str()))
        })
    }

    /// RFC 9110 §7.6.3: "A proxy MUST send an appropriate Via header field ... in each
    /// message that it forwards", and so must a gateway in each inbound request.
    fn add_via(&self, headers: &mut HeaderMap, version: Version) {
        let protocol = match version {
            Version::HTTP_09 => "0.9",
            Version::HTTP_10 => "1.0",
            Version::HTTP_2 => "2",
            Version::HTTP_3 => "3",
            _ => "1.1",
        };
        if let Ok(value) = HeaderValue::try_from(format!("{protocol} {}", self.via)) {
            headers.append(VIA, value);
        }
    }

    /// Replaces whatever forwarding fields the client sent with the proxy's own.
    fn set_forwarding_fields(&self, headers: &mut HeaderMap, peer: IpAddr, authority: &Authority) {
        // Only a trusted proxy in front of us may say whom it forwards for.
        let previous = if self.trusted.iter().any(|net| net.contains(peer)) {
            joined(headers, &X_FORWARDED_FOR)
        } else {
            None
        };
        for name in [
            header::FORWARDED,
            X_FORWARDED_FOR,
            X_FORWARDED_HOST,
            X_FORWARDED_PROTO,
            X_FORWARDED_PORT,
            X_REAL_IP,
        ] {
            headers.remove(name);
        }
        let for_value = match previous {
            Some(previous) => format!("{previous}, {peer}"),
            None => peer.to_string(),
        };
        if let Ok(value) = HeaderValue::try_from(for_value) {
            headers.insert(X_FORWARDED_FOR, value);
        }
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        // RFC 7239 §4, §6: an IPv6 node is quoted and bracketed.
        let node = match peer {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("\"[{ip}]\""),
        };
        let mut forwarded = format!("for={node};proto=http");
        if self.sends_client_host() {
            // The origin sees the client's host in `Host` anyway, and the key holds it.
            headers.insert(X_FORWARDED_HOST, authority_value(authority));
            forwarded.push_str(";host=\"");
            forwarded.push_str(authority.as_str());
            forwarded.push('"');
        }
        if let Ok(value) = HeaderValue::try_from(forwarded) {
            headers.insert(header::FORWARDED, value);
        }
    }

    /// Whether the origin receives the host the client addressed (forward proxy, or
    /// `--preserve-host`), which then goes in `X-Forwarded-Host` and `Forwarded` too.
    fn sends_client_host(&self) -> bool {
        match &self.mode {
            Mode::Reverse { preserve_host, .. } => *preserve_host,
            Mode::Forward { .. } => true,
        }
    }

    /// Rewrites `Location` and `Content-Location` fields that point at the origin's own URL
    /// back to the authority the client used, as nginx's `proxy_redirect default` does, so
    /// that following a redirect does not bypass the proxy.
    pub(crate) fn rewrite_redirects(&self, headers: &mut HeaderMap, client_authority: &Authority) {
        let Mode::Reverse { origin_prefix, .. } = &self.mode else {
            return;
        };
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(value) = headers.get(&name) else {
                continue;
            };
            if let Some(rewritten) =
                rewrite_location(origin_prefix, value.as_bytes(), client_authority)
            {
                headers.insert(name, rewritten);
            }
        }
    }
}

/// `location` with the origin's URL `prefix` replaced by `http://{client_authority}`, or
/// `None` when it does not start with that prefix.
fn rewrite_location(
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
fn reverse_target(
    origin: &Origin,
    authority: &Authority,
    path_and_query: Option<&PathAndQuery>,
) -> Result<Uri, http::Error> {
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
fn forward_target(target: &Uri) -> Result<Authority, Refusal> {
    if !matches!(target.scheme_str(), Some("http" | "https")) {
        return Err(Refusal::bad_request(
            "bad request: a forward proxy needs an absolute http:// or https:// URL as the request target",
        ));
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
fn client_authority<B>(req: &Request<B>) -> Result<Option<Authority>, Refusal> {
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
        Some(value) => Some(
            parse_authority(value.as_bytes()).ok_or(Refusal::bad_request(
                "bad request: invalid Host header field",
            ))?,
        ),
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
fn parse_authority(bytes: &[u8]) -> Option<Authority> {
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
fn authority_value(authority: &Authority) -> HeaderValue {
    HeaderValue::from_str(authority.as_str()).expect("an authority is a valid header value")
}

/// Every line of the field `name` joined with ", ", when all are text.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_origin;

    fn door(origin: &str, preserve_host: bool) -> FrontDoor {
        FrontDoor::new(FrontDoorConfig {
            origin: Some(parse_origin(origin).unwrap()),
            preserve_host,
            ..FrontDoorConfig::default()
        })
    }

    fn forward_door(allow: Option<&str>) -> FrontDoor {
        FrontDoor::new(FrontDoorConfig {
            allow: allow.map(|net| vec![net.parse().unwrap()]),
            connect_ports: vec![443],
            ..FrontDoorConfig::default()
        })
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 7], 5555))
    }

    fn admit(door: &FrontDoor, req: Request<()>) -> Result<Admitted<()>, Refusal> {
        match door.admit(req, peer())? {
            Admission::Request(admitted) => Ok(admitted),
            Admission::Tunnel { target, .. } => panic!("a tunnel to {target}"),
        }
    }

    #[test]
    fn absolute_form_target_and_host_both_become_the_origin() {
        let door = door("http://127.0.0.1:8000", false);
        let req = Request::get("http://attacker.example/x?y")
            .header("host", "evil.example")
            .body(())
            .unwrap();
        let admitted = admit(&door, req).unwrap();
        assert_eq!(admitted.request.uri(), "http://127.0.0.1:8000/x?y");
        assert_eq!(admitted.request.headers()["host"], "127.0.0.1:8000");
        assert_eq!(admitted.client_authority, "attacker.example");
    }

    #[test]
    fn http2_host_differing_from_authority_is_refused() {
        let door = door("http://127.0.0.1:8000", false);
        let req = Request::get("http://127.0.0.1:3000/")
            .version(Version::HTTP_2)
            .header("host", "evil.example")
            .body(())
            .unwrap();
        assert_eq!(
            admit(&door, req).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        let req = Request::get("http://LOCALHOST:80/")
            .version(Version::HTTP_2)
            .header("host", "localhost")
            .body(())
            .unwrap();
        assert!(admit(&door, req).is_ok());
    }

    #[test]
    fn host_is_required_once_on_http11() {
        let door = door("http://127.0.0.1:8000", false);
        let missing = Request::get("/").body(()).unwrap();
        assert_eq!(
            admit(&door, missing).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        let twice = Request::get("/")
            .header("host", "a")
            .header("host", "a")
            .body(())
            .unwrap();
        assert!(
            admit(&door, twice)
                .unwrap_err()
                .reason
                .contains("more than one")
        );
        let invalid = Request::get("/").header("host", "u@h").body(()).unwrap();
        assert!(admit(&door, invalid).is_err());
        let http10 = Request::get("http://a/")
            .version(Version::HTTP_10)
            .body(())
            .unwrap();
        assert!(admit(&door, http10).is_ok());
        let http10_no_host = Request::get("/")
            .version(Version::HTTP_10)
            .body(())
            .unwrap();
        let admitted = admit(&door, http10_no_host).unwrap();
        assert_eq!(admitted.request.uri(), "http://127.0.0.1:8000/");
    }

    #[test]
    fn client_forwarding_fields_are_replaced() {
        let door = door("http://127.0.0.1:8000", false);
        let req = Request::get("/")
            .header("host", "localhost:3000")
            .header("forwarded", "for=1.2.3.4;host=evil")
            .header("x-forwarded-for", "1.2.3.4")
            .header("x-forwarded-host", "evil.example")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-port", "443")
            .header("x-real-ip", "1.2.3.4")
            .body(())
            .unwrap();
        let admitted = admit(&door, req).unwrap();
        let headers = admitted.request.headers();
        assert_eq!(headers["x-forwarded-for"], "192.0.2.7");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["forwarded"], "for=192.0.2.7;proto=http");
        for gone in ["x-forwarded-host", "x-forwarded-port", "x-real-ip"] {
            assert!(!headers.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn a_trusted_proxy_keeps_the_chain() {
        let trusted = vec!["192.0.2.0/24".parse().unwrap()];
        let door = FrontDoor::new(FrontDoorConfig {
            origin: Some(parse_origin("http://o").unwrap()),
            trusted,
            ..FrontDoorConfig::default()
        });
        let req = Request::get("/")
            .header("host", "a")
            .header("x-forwarded-for", "203.0.113.9")
            .body(())
            .unwrap();
        let admitted = admit(&door, req).unwrap();
        assert_eq!(
            admitted.request.headers()["x-forwarded-for"],
            "203.0.113.9, 192.0.2.7"
        );
    }

    #[test]
    fn preserve_host_keys_and_sends_the_client_authority() {
        let door = door("http://127.0.0.1:8000/api", true);
        let req = Request::get("/x")
            .header("host", "Shop.Example")
            .body(())
            .unwrap();
        let admitted = admit(&door, req).unwrap();
        assert_eq!(admitted.request.uri(), "http://Shop.Example/api/x");
        assert_eq!(admitted.request.headers()["host"], "Shop.Example");
        assert_eq!(
            admitted.request.headers()["x-forwarded-host"],
            "Shop.Example"
        );
    }

    #[test]
    fn options_asterisk_keeps_its_form() {
        let door = door("http://127.0.0.1:8000/api", false);
        let req = Request::options("*").header("host", "a").body(()).unwrap();
        let admitted = admit(&door, req).unwrap();
        assert_eq!(admitted.request.uri().path(), "*");
    }

    #[test]
    fn redirects_to_the_origin_point_back_at_the_proxy() {
        let door = door("http://127.0.0.1:8000/api", false);
        let client: Authority = "localhost:3000".parse().unwrap();
        let rewrite = |location: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::LOCATION, HeaderValue::from_str(location).unwrap());
            door.rewrite_redirects(&mut headers, &client);
            headers[header::LOCATION].to_str().unwrap().to_owned()
        };
        assert_eq!(
            rewrite("http://127.0.0.1:8000/api/products"),
            "http://localhost:3000/products"
        );
        assert_eq!(
            rewrite("HTTP://127.0.0.1:8000/api?q"),
            "http://localhost:3000/?q"
        );
        assert_eq!(
            rewrite("http://127.0.0.1:8000/apix"),
            "http://127.0.0.1:8000/apix"
        );
        assert_eq!(rewrite("/relative"), "/relative");
        assert_eq!(
            rewrite("http://other.example/api/x"),
            "http://other.example/api/x"
        );
    }

    #[test]
    fn a_forward_proxy_keys_by_each_target() {
        let door = forward_door(Some("192.0.2.0/24"));
        let req = Request::get("http://Shop.Example:8080/x")
            .header("host", "ignored.example")
            .body(())
            .unwrap();
        let admitted = admit(&door, req).unwrap();
        assert_eq!(admitted.request.uri(), "http://Shop.Example:8080/x");
        assert_eq!(admitted.request.headers()["host"], "Shop.Example:8080");
        let origin_form = Request::get("/x").header("host", "a").body(()).unwrap();
        assert_eq!(
            admit(&door, origin_form).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn a_forward_proxy_serves_loopback_clients_by_default() {
        let door = forward_door(None);
        let req = || {
            Request::get("http://a/")
                .header("host", "a")
                .body(())
                .unwrap()
        };
        assert_eq!(
            admit(&door, req()).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        let local = door.admit(req(), SocketAddr::from(([127, 0, 0, 1], 1)));
        assert!(matches!(local, Ok(Admission::Request(_))));
    }

    #[test]
    fn connect_opens_tunnels_only_to_allowed_ports() {
        let forward = forward_door(Some("0.0.0.0/0"));
        let connect = |target: &str| {
            let req = Request::connect(target)
                .header("host", target)
                .body(())
                .unwrap();
            forward.admit(req, peer())
        };
        assert!(
            matches!(connect("example.com:443"), Ok(Admission::Tunnel { target, .. }) if target == "example.com:443")
        );
        assert_eq!(
            connect("example.com:22").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        let reverse = door("http://o", false);
        let req = Request::connect("example.com:443").body(()).unwrap();
        assert_eq!(
            reverse.admit(req, peer()).unwrap_err().status,
            StatusCode::NOT_IMPLEMENTED
        );
    }

    #[test]
    fn a_request_that_went_through_this_proxy_is_a_loop() {
        let door = forward_door(Some("0.0.0.0/0"));
        let first = admit(
            &door,
            Request::get("http://a/")
                .header("host", "a")
                .body(())
                .unwrap(),
        )
        .unwrap();
        let via = first.request.headers()["via"].clone();
        assert!(via.to_str().unwrap().starts_with("1.1 tower-cache-layer ("));
        let again = Request::get("http://a/")
            .header("host", "a")
            .header("via", via)
            .body(())
            .unwrap();
        assert_eq!(
            admit(&door, again).unwrap_err().status,
            StatusCode::LOOP_DETECTED
        );
        // Another instance's entry is no loop.
        let other = forward_door(Some("0.0.0.0/0"));
        let chained = Request::get("http://a/")
            .header("host", "a")
            .header("via", first.request.headers()["via"].clone())
            .body(())
            .unwrap();
        assert!(admit(&other, chained).is_ok());
    }
}
