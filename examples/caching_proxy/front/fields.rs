//! The fields the proxy owns on the way in (`Host`, `Via`, the forwarding fields), set as a
//! request leaves for the origin, and rewrites on the way out (`Location`,
//! `Content-Location`).

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

use super::*;

/// The request fields the origin does not see as the client sent them, because the proxy
/// sets or replaces them after the cache: `Via` and the forwarding fields. The cache is told
/// (`CacheOptions::unseen_fields`), so that a response varying on one is neither stored nor
/// selected. (`Host` is not among them: the cache key holds the authority the origin is
/// asked for, so a response varying on `Host` is only ever kept apart more finely.)
pub(crate) static UNSEEN_FIELDS: [HeaderName; 7] = [
    VIA,
    header::FORWARDED,
    X_FORWARDED_FOR,
    X_FORWARDED_HOST,
    X_FORWARDED_PROTO,
    X_FORWARDED_PORT,
    X_REAL_IP,
];

/// The client's forwarding fields, replaced by the proxy's own: the unseen fields but `Via`
/// (whose entries are kept, the proxy's added).
fn client_forwarding() -> &'static [HeaderName] {
    &UNSEEN_FIELDS[1..]
}

/// The inner service with the proxy's own fields set on every request it is given, for the
/// client connection `peer`: the service the cache forwards misses, revalidations and
/// passed-on requests to. A hit never reaches it.
#[derive(Clone, Debug)]
pub(crate) struct OriginFields<S> {
    front: Arc<FrontDoor>,
    peer: Arc<Peer>,
    inner: S,
}

impl<S> OriginFields<S> {
    /// `inner`, given the fields of `front` for requests from `peer`.
    pub(crate) fn new(front: Arc<FrontDoor>, peer: Arc<Peer>, inner: S) -> Self {
        Self { front, peer, inner }
    }
}

impl<S, B> Service<Request<B>> for OriginFields<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        self.front.set_origin_fields(&mut req, &self.peer);
        self.inner.call(req)
    }
}

impl FrontDoor {
    /// Sets what the origin receives from this proxy with a request admitted by
    /// [`FrontDoor::admit_from`] (`req`, from the client `peer`): `Host` (the origin's, or
    /// with `--preserve-host` or as a forward proxy the authority of the target), the proxy's
    /// forwarding fields in place of the client's, and its `Via` entry.
    pub(crate) fn set_origin_fields<B>(&self, req: &mut Request<B>, peer: &Peer) {
        // Every admitted target has an authority: the origin's, or the client's.
        let Some(authority) = req.uri().authority().cloned() else {
            return;
        };
        let version = req.version();
        let headers = req.headers_mut();
        let host = match &self.origin_host {
            Some(host) => host.clone(),
            None => authority_value(&authority),
        };
        headers.insert(header::HOST, host);
        self.set_forwarding_fields(headers, peer, &authority);
        self.add_via(headers, version);
    }

    /// Whether this proxy's own `Via` entry is in `headers`.
    pub(super) fn is_loop(&self, headers: &HeaderMap) -> bool {
        headers.get_all(VIA).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|text| text.contains(self.via.as_str()))
        })
    }

    /// RFC 9110 §7.6.3: "A proxy MUST send an appropriate Via header field ... in each
    /// message that it forwards", and so must a gateway in each inbound request.
    fn add_via(&self, headers: &mut HeaderMap, version: Version) {
        let entry = match version {
            Version::HTTP_10 => &self.via_values[0],
            Version::HTTP_2 => &self.via_values[2],
            _ => &self.via_values[1],
        };
        headers.append(VIA, entry.clone());
    }

    /// Replaces whatever forwarding fields the client sent with the proxy's own.
    fn set_forwarding_fields(&self, headers: &mut HeaderMap, peer: &Peer, authority: &Authority) {
        // Only a trusted proxy in front of us may say whom it forwards for.
        let previous = if peer.trusted {
            joined(headers, &X_FORWARDED_FOR)
        } else {
            None
        };
        // One pass over the names; a removal (a hash and a probe) each only when there are any.
        let theirs = client_forwarding();
        if headers.keys().any(|name| theirs.contains(name)) {
            for name in theirs {
                headers.remove(name);
            }
        }
        let forwarded_for = match previous {
            Some(previous) => HeaderValue::try_from(format!("{previous}, {}", peer.ip)).ok(),
            None => peer.forwarded_for.clone(),
        };
        if let Some(value) = forwarded_for {
            headers.insert(X_FORWARDED_FOR, value);
        }
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        let forwarded = if self.sends_client_host() {
            // The origin sees the client's host in `Host` anyway, and the key holds it.
            headers.insert(X_FORWARDED_HOST, authority_value(authority));
            peer.forwarded.as_ref().and_then(|value| {
                let value = value.to_str().ok()?;
                HeaderValue::try_from(format!("{value};host=\"{}\"", authority.as_str())).ok()
            })
        } else {
            peer.forwarded.clone()
        };
        if let Some(value) = forwarded {
            headers.insert(header::FORWARDED, value);
        }
    }

    /// Whether the origin receives the host the client addressed (forward proxy, or
    /// `--preserve-host`), which then goes in `X-Forwarded-Host` and `Forwarded` too.
    pub(super) fn sends_client_host(&self) -> bool {
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
