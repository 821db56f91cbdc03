//! The front door: what a client's request may say before it reaches the cache, and what
//! the answer says about the origin's address on its way back.
//!
//! Every request gets one authority, decided here, before the cache sees it: the origin's
//! (by default), or with `--preserve-host` the one the client used. That authority is what
//! the cache key holds and what the origin receives in `Host`, so no client-chosen host can
//! shape an answer that is stored for others. The forwarding fields (`Forwarded`,
//! `X-Forwarded-*`, `X-Real-IP`) and `Via` are the proxy's own: whatever a client sends in
//! them is replaced when the request leaves for the origin ([`OriginFields`]), after the
//! cache, which a hit then spares the work. The cache is told that it does not see them as
//! the origin does ([`UNSEEN_FIELDS`]): a response that varies on one is neither stored nor
//! selected, so no client can pick the variant the origin made for another.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::Full;
use tower_cache_layer::policy::remove_hop_by_hop;

use crate::config::{IpNet, Origin};

mod fields;
mod purge;
mod target;

pub(crate) use self::fields::{OriginFields, UNSEEN_FIELDS};

use self::target::{
    authority_value, client_authority, forward_target, joined, parse_authority, reverse_target,
    rewrite_location,
};

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
    /// The `Via` entries this proxy adds, for HTTP/1.0, HTTP/1.1 and HTTP/2 requests.
    via_values: [HeaderValue; 3],
    /// The origin's authority as a `Host` value (a reverse proxy without `--preserve-host`).
    origin_host: Option<HeaderValue>,
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

/// A client connection's address and the forwarding fields that name it, made once per
/// connection ([`FrontDoor::peer`]).
#[derive(Debug)]
pub(crate) struct Peer {
    /// The client's address (IPv4-mapped addresses as IPv4).
    ip: IpAddr,
    /// Whether `ip` is in `--trusted-proxy`.
    trusted: bool,
    /// `X-Forwarded-For` naming only this peer.
    forwarded_for: Option<HeaderValue>,
    /// `Forwarded: for=<ip>;proto=http`.
    forwarded: Option<HeaderValue>,
    /// The last `Host` value on this connection and what it parsed to: a keep-alive client
    /// sends the same one with every request.
    last_host: std::sync::Mutex<Option<(HeaderValue, Authority)>>,
}

impl Peer {
    /// `host` parsed as an authority ([`target::parse_authority`]), from the last request's
    /// when it is the same value.
    fn host_authority(&self, host: &HeaderValue) -> Option<Authority> {
        let mut last = self
            .last_host
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((value, authority)) = &*last {
            if value == host {
                return Some(authority.clone());
            }
        }
        let authority = target::parse_authority(host.as_bytes())?;
        // A copy: the request's value is a slice of its connection's read buffer.
        if let Ok(value) = HeaderValue::from_bytes(host.as_bytes()) {
            *last = Some((value, authority.clone()));
        }
        Some(authority)
    }
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
        let via = format!("tower-cache-layer ({id:016x})");
        let via_values = ["1.0", "1.1", "2"].map(|protocol| {
            HeaderValue::try_from(format!("{protocol} {via}")).expect("a valid Via value")
        });
        let origin_host = match &mode {
            Mode::Reverse {
                origin,
                preserve_host: false,
                ..
            } => Some(authority_value(&origin.authority)),
            _ => None,
        };
        Self {
            mode,
            trusted: config.trusted,
            allow: config.allow.unwrap_or(default_allow),
            via,
            via_values,
            origin_host,
        }
    }

    /// [`FrontDoor::admit_from`] for a client at `peer`, with the fields the proxy then sets
    /// for the origin ([`FrontDoor::set_origin_fields`]): what the origin receives (tests).
    #[cfg(test)]
    pub(crate) fn admit<B>(
        &self,
        req: Request<B>,
        peer: SocketAddr,
    ) -> Result<Admission<B>, Refusal> {
        let peer = self.peer(peer);
        let mut admission = self.admit_from(req, &peer)?;
        if let Admission::Request(admitted) = &mut admission {
            self.set_origin_fields(&mut admitted.request, &peer);
        }
        Ok(admission)
    }

    /// The forwarding fields of a client connection from `addr`.
    pub(crate) fn peer(&self, addr: SocketAddr) -> Peer {
        let ip = addr.ip().to_canonical();
        // RFC 7239 §4, §6: an IPv6 node is quoted and bracketed.
        let node = match ip {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("\"[{ip}]\""),
        };
        Peer {
            ip,
            trusted: self.trusted.iter().any(|net| net.contains(ip)),
            forwarded_for: HeaderValue::try_from(ip.to_string()).ok(),
            forwarded: HeaderValue::try_from(format!("for={node};proto=http")).ok(),
            last_host: std::sync::Mutex::new(None),
        }
    }

    /// Checks `req`, from the client connection `peer`, and gives it its one authority, or
    /// finds it asks for a tunnel. `Host`, `Via` and the forwarding fields are set later, when
    /// the request leaves for the origin ([`FrontDoor::set_origin_fields`]).
    ///
    /// # Errors
    ///
    /// A [`Refusal`]: 400 for a request HTTP forbids a server to answer (a missing (HTTP/1.1)
    /// or repeated `Host`, an invalid one, one that differs from HTTP/2's `:authority`; for a
    /// forward proxy, a target that is not an absolute http(s) URL), 403 for a client not in
    /// `--allow` or a tunnel to a port not in `--connect-ports`, 501 for `CONNECT` to a
    /// reverse proxy, 508 for a request that already went through this proxy.
    pub(crate) fn admit_from<B>(
        &self,
        req: Request<B>,
        peer: &Peer,
    ) -> Result<Admission<B>, Refusal> {
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(peer.ip)) {
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
        let client_authority = client_authority(&req, |host| peer.host_authority(host))?;
        let (mut parts, body) = req.into_parts();
        let client_authority = match &self.mode {
            Mode::Reverse {
                origin,
                preserve_host,
                ..
            } => {
                let client = client_authority.unwrap_or_else(|| origin.authority.clone());
                // The authority the key holds and the origin is asked for (`Host`).
                let authority = if *preserve_host {
                    &client
                } else {
                    &origin.authority
                };
                parts.uri = reverse_target(origin, authority, parts.uri.path_and_query())
                    .map_err(|_| Refusal::bad_request("bad request: invalid request target"))?;
                client
            }
            Mode::Forward { .. } => forward_target(&parts.uri)?,
        };
        remove_hop_by_hop(&mut parts.headers);
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
}

#[cfg(test)]
mod tests;
