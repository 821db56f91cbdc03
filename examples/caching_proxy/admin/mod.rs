//! The admin interface: a separate HTTP listener on loopback, its secret file, and the
//! `--clear-cache` and `--purge` client.
//!
//! The public listener serves no admin function at all. The admin listener binds
//! `127.0.0.1:--admin-port` (default 0: a port the OS picks) and answers:
//!
//! | route | needs the token | answer |
//! |---|---|---|
//! | `POST /clear` | yes | `200`, the number of removed entries |
//! | `POST /purge?url=<path or URL>` | yes | `200`, the number of removed entries |
//! | `POST /purge?tag=<tag>` | yes | `200`, the number of removed entries |
//! | `GET /metrics` | yes | `200`, the cache's metrics in the Prometheus text format |
//!
//! `/purge` takes `&soft=1` to mark the entries stale instead of removing them (the next
//! request revalidates). A path (`/x?y`) is resolved to the key the public listener gives a
//! request for it ([`FrontDoor::purge_target`]); an absolute URL's scheme does not matter
//! (both `http` and `https` keys are purged). A tag is matched against the `Surrogate-Key`
//! and `Cache-Tag` response fields. A missing or bad parameter is a `400` with the reason.
//!
//! Every answer but `/metrics` is one line of plain text, and every one has
//! `Cache-Control: no-store`. Every route needs `Authorization: Bearer <token>` (compared in constant time); without it, or
//! with another token: `401` and `WWW-Authenticate: Bearer`. Unknown paths get `404`, other
//! methods `405` with `Allow`. The listener serves at most [`MAX_CONNECTIONS`] connections at
//! once (more wait in the backlog), each must send its request head within
//! [`HEADER_READ_TIMEOUT`] and lives at most [`CONNECTION_LIFETIME`].
//!
//! At startup the proxy generates a random 32-byte token and writes the admin address and the
//! token to a secret file, in the model of varnishadm's `-S` secret file:
//!
//! ```text
//! admin=127.0.0.1:41023
//! token=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! proxy=127.0.0.1:3000
//! ```
//!
//! (`proxy=` is the public listener, for messages only.)
//!
//! The file is mode 0600, in a directory created with mode 0700, written to a temporary file in
//! the same directory and renamed into place, at a path derived from the *public* port (see
//! [`default_secret_path`]) or at `--admin-file`, and removed on graceful shutdown. Whoever
//! can read it can clear the cache: the file system's permissions are the access control, so
//! `--clear-cache` refuses a file that is readable by group or others or owned by another user.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_cache_layer::CacheHandle;
use tower_cache_layer::store::BoxStore;

use crate::front::FrontDoor;

mod client;
mod query;
mod routes;
mod secret;

pub(crate) use self::client::{clear_remote, purge_remote};
use self::query::parse_purge_query;
pub(crate) use self::query::{PurgeQuery, PurgeTarget};
use self::secret::{Secret, default_secret_path, new_token, read_secret, write_secret};

/// How long `--clear-cache` and `--purge` wait for the running proxy to answer.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Admin connections served at once; more wait in the listen backlog.
pub(crate) const MAX_CONNECTIONS: usize = 8;

/// An admin connection must send a complete request head this soon after connecting or after
/// its previous response.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// An admin connection is closed this long after it was accepted, whatever it is doing.
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// The longest admin request head, in bytes (hyper's minimum buffer size).
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// The routes of the admin listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// `POST /clear`: empties the cache.
    Clear,
    /// `POST /purge?url=…` or `?tag=…`, optionally `&soft=1`: purges entries.
    Purge,
    /// `GET /metrics`: the metrics, in the Prometheus text format.
    Metrics,
}

impl Route {
    /// The route for a request path, if any.
    fn for_path(path: &str) -> Option<Self> {
        match path {
            "/clear" => Some(Self::Clear),
            "/purge" => Some(Self::Purge),
            "/metrics" => Some(Self::Metrics),
            _ => None,
        }
    }

    /// The one method the route answers, as `Allow` lists it.
    fn method(self) -> Method {
        match self {
            Self::Clear | Self::Purge => Method::POST,
            Self::Metrics => Method::GET,
        }
    }

    /// Whether the route needs the token: those that change anything, and the metrics (which
    /// tell how the cache is used).
    fn needs_token(self) -> bool {
        match self {
            Self::Clear | Self::Purge | Self::Metrics => true,
        }
    }
}

/// What the admin listener's handler needs.
struct State {
    cache: CacheHandle<BoxStore>,
    /// Renders the metrics; `None` when the recorder could not be installed.
    metrics: Option<crate::metrics::Prometheus>,
    /// Resolves a purge's path to the key the public listener gives it.
    front: Arc<FrontDoor>,
    /// The token as hex text, as clients send it.
    token: String,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token: debug output ends up in logs.
        f.debug_struct("State")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// A one-line plain-text answer.
fn plain(status: StatusCode, line: impl Into<String>) -> Response<Full<Bytes>> {
    let mut text = line.into();
    text.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Why a request is not authorized, or `None` when it carries the right bearer token.
fn unauthorized(req: &Request<Incoming>, token: &str) -> Option<&'static str> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Some("unauthorized: no bearer token (send Authorization: Bearer <token>)");
    };
    let value = value.as_bytes();
    // RFC 9110 §11.1: the scheme is case-insensitive; RFC 6750 §2.1: `Bearer <token>`.
    let presented = match value.split_at_checked(7) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
        _ => return Some("unauthorized: not a bearer token"),
    };
    if constant_time_eq(presented, token.as_bytes()) {
        None
    } else {
        Some("unauthorized: wrong token")
    }
}

/// The running admin listener; [`stop`](Self::stop) it on graceful shutdown.
pub(crate) struct AdminServer {
    addr: SocketAddr,
    secret_path: PathBuf,
    token: String,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("addr", &self.addr)
            .field("secret_path", &self.secret_path)
            .finish_non_exhaustive()
    }
}

impl AdminServer {
    /// Binds `127.0.0.1:port`, writes the secret file (`secret_path`, or the default path for
    /// the port of the `public` listener) and serves admin requests in a task.
    pub(crate) async fn start(
        cache: CacheHandle<BoxStore>,
        metrics: Option<crate::metrics::Prometheus>,
        front: Arc<FrontDoor>,
        port: u16,
        secret_path: Option<PathBuf>,
        public: SocketAddr,
    ) -> Result<Self, String> {
        let secret_path = match secret_path {
            Some(path) => path,
            None => default_secret_path(public.port()),
        };
        let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|e| format!("cannot listen for the admin interface on {bind}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the admin listener's address: {e}"))?;
        let token = new_token()?;
        let secret = Secret {
            admin: addr,
            token: token.clone(),
            proxy: Some(public),
        };
        write_secret(&secret_path, &secret).map_err(|e| {
            format!(
                "cannot write the admin secret file {}: {e} (choose another with --admin-file)",
                secret_path.display()
            )
        })?;
        let (stop, stopped) = watch::channel(false);
        let state = Arc::new(State {
            cache,
            metrics,
            front,
            token: token.clone(),
        });
        tokio::spawn(accept_loop(listener, state, stopped));
        Ok(Self {
            addr,
            secret_path,
            token,
            stop,
        })
    }

    /// The admin listener's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the secret file was written.
    pub(crate) fn secret_path(&self) -> &Path {
        &self.secret_path
    }

    /// Closes the admin listener and removes the secret file (unless another proxy has
    /// replaced it meanwhile).
    pub(crate) fn stop(self) {
        let _ = self.stop.send(true);
        let ours = read_secret(&self.secret_path)
            .is_ok_and(|secret| constant_time_eq(secret.token.as_bytes(), self.token.as_bytes()));
        if ours {
            if let Err(err) = std::fs::remove_file(&self.secret_path) {
                tracing::warn!(
                    error = %err,
                    path = %self.secret_path.display(),
                    "cannot remove the admin secret file"
                );
            }
        }
    }
}

/// Serves admin connections until `stopped` turns true.
async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => {
                permit.expect("the admin connection semaphore is never closed")
            }
            _ = stopped.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let state = Arc::clone(&state);
        let service = hyper::service::service_fn(move |req| {
            let state = Arc::clone(&state);
            async move { Ok::<_, std::convert::Infallible>(routes::respond(&state, req).await) }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                served = tokio::time::timeout(CONNECTION_LIFETIME, conn) => match served {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => tracing::debug!(error = %err, %peer, "admin connection error"),
                    Err(_elapsed) => tracing::debug!(%peer, "admin connection closed after its lifetime"),
                },
                _ = stopped.changed() => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn routes() {
        assert_eq!(Route::for_path("/clear"), Some(Route::Clear));
        assert_eq!(Route::for_path("/clear/"), None);
        assert_eq!(Route::Clear.method(), Method::POST);
        assert!(Route::Clear.needs_token());
        assert_eq!(Route::for_path("/purge"), Some(Route::Purge));
        assert_eq!(Route::Purge.method(), Method::POST);
        assert!(Route::Purge.needs_token());
    }
}
