//! The fields the proxy owns on the way in (`Via`, the forwarding fields) and rewrites on the
//! way out (`Location`, `Content-Location`).

use super::*;

impl FrontDoor {
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
    pub(super) fn add_via(&self, headers: &mut HeaderMap, version: Version) {
        let entry = match version {
            Version::HTTP_10 => &self.via_values[0],
            Version::HTTP_2 => &self.via_values[2],
            _ => &self.via_values[1],
        };
        headers.append(VIA, entry.clone());
    }

    /// Replaces whatever forwarding fields the client sent with the proxy's own.
    pub(super) fn set_forwarding_fields(
        &self,
        headers: &mut HeaderMap,
        peer: &Peer,
        authority: &Authority,
    ) {
        // Only a trusted proxy in front of us may say whom it forwards for.
        let previous = if peer.trusted {
            joined(headers, &X_FORWARDED_FOR)
        } else {
            None
        };
        let theirs = [
            header::FORWARDED,
            X_FORWARDED_FOR,
            X_FORWARDED_HOST,
            X_FORWARDED_PROTO,
            X_FORWARDED_PORT,
            X_REAL_IP,
        ];
        // One pass over the names; a removal (a hash and a probe) each only when there are any.
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
