//! What a purge names: a path or URL resolved to the key the public listener gives requests.

use super::*;

impl FrontDoor {
    /// The absolute URI the cache keys `target` by, as [`admit_from`](Self::admit_from) would
    /// key a request for it: for the admin interface's purge, where `target` is a path
    /// (`/x?y`) or an absolute `http://` or `https://` URL.
    ///
    /// A reverse proxy keys by its origin's scheme and authority and prepends the base path,
    /// whatever authority the client named, so a path is enough and an absolute URL counts
    /// for its path and query only; with `--preserve-host` the key holds the client's
    /// authority, so the URL must be absolute. A forward proxy keys by the URL itself.
    ///
    /// # Errors
    ///
    /// A one-line reason, for a `400`.
    pub(crate) fn purge_target(&self, target: &str) -> Result<Uri, &'static str> {
        let uri: Uri = target
            .parse()
            .map_err(|_| "bad request: `url` is neither a path nor an absolute URL")?;
        let absolute = match uri.scheme_str() {
            Some("http" | "https") => {
                let authority = uri
                    .authority()
                    .and_then(|a| parse_authority(a.as_str().as_bytes()))
                    .ok_or("bad request: `url` has no valid host")?;
                Some(authority)
            }
            Some(_) => return Err("bad request: `url` must be an http:// or https:// URL"),
            None if target.starts_with('/') => None,
            None => {
                return Err("bad request: `url` must be a path (/x) or an absolute URL");
            }
        };
        match &self.mode {
            Mode::Reverse {
                origin,
                preserve_host,
                ..
            } => {
                let authority = match (absolute, *preserve_host) {
                    (_, false) => origin.authority.clone(),
                    (Some(authority), true) => authority,
                    (None, true) => {
                        return Err("bad request: with --preserve-host the cache keys by the \
                                    client's host: give an absolute URL");
                    }
                };
                reverse_target(origin, &authority, uri.path_and_query())
                    .map_err(|_| "bad request: `url` is not a valid request target")
            }
            Mode::Forward { .. } => match absolute {
                Some(_) => Ok(uri),
                None => Err("bad request: a forward proxy keys by absolute URLs: give one"),
            },
        }
    }
}
