//! The admin interface: a separate HTTP listener on loopback, its secret file, and the
//! `--clear-cache` client.
//!
//! The public listener serves no admin function at all. The admin listener binds
//! `127.0.0.1:--admin-port` (default 0: a port the OS picks) and answers:
//!
//! | route | needs the token | answer |
//! |---|---|---|
//! | `POST /clear` | yes | `200`, the number of removed entries |
//!
//! Every answer is one line of plain text with `Cache-Control: no-store`. Requests that change
//! anything need `Authorization: Bearer <token>` (compared in constant time); without it, or
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

use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower_cache_layer::CacheHandle;

/// How long `--clear-cache` waits for the running proxy to answer.
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
}

impl Route {
    /// The route for a request path, if any.
    fn for_path(path: &str) -> Option<Self> {
        match path {
            "/clear" => Some(Self::Clear),
            _ => None,
        }
    }

    /// The one method the route answers, as `Allow` lists it.
    fn method(self) -> Method {
        match self {
            Self::Clear => Method::POST,
        }
    }

    /// Whether the route changes anything, and therefore needs the token.
    fn needs_token(self) -> bool {
        match self {
            Self::Clear => true,
        }
    }
}

/// What the admin listener's handler needs.
struct State {
    cache: CacheHandle,
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

/// Answers one admin request.
async fn respond(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(route) = Route::for_path(req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not found: no such admin route");
    };
    let allowed = route.method();
    if req.method() != allowed {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed: use {allowed}"),
        );
        response.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_str(allowed.as_str()).expect("a method is a valid header value"),
        );
        return response;
    }
    if route.needs_token() {
        if let Some(reason) = unauthorized(&req, &state.token) {
            tracing::warn!(path = req.uri().path(), reason, "admin request refused");
            let mut response = plain(StatusCode::UNAUTHORIZED, reason);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tower-cache-layer admin\""),
            );
            return response;
        }
    }
    match route {
        Route::Clear => match state.cache.clear().await {
            Ok(removed) => {
                tracing::info!(removed, "cache cleared");
                plain(StatusCode::OK, removed.to_string())
            }
            Err(err) => {
                tracing::error!(error = %err, "clearing the cache failed");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal server error: cannot clear the cache ({err})"),
                )
            }
        },
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
        cache: CacheHandle,
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
            async move { Ok::<_, std::convert::Infallible>(respond(&state, req).await) }
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

/// The contents of a secret file.
#[derive(PartialEq, Eq)]
struct Secret {
    /// The admin listener's address.
    admin: SocketAddr,
    /// The bearer token, as hex text.
    token: String,
    /// The public listener's address, for messages.
    proxy: Option<SocketAddr>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("admin", &self.admin)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl Secret {
    /// `admin=ADDR`, `token=HEX` and `proxy=ADDR` lines.
    fn to_text(&self) -> String {
        let mut text = format!("admin={}\ntoken={}\n", self.admin, self.token);
        if let Some(proxy) = self.proxy {
            let _ = writeln!(text, "proxy={proxy}");
        }
        text
    }

    /// Parses `key=value` lines; blank lines, `#` comments and unknown keys are ignored.
    fn parse(text: &str) -> Result<Self, &'static str> {
        let (mut admin, mut token, mut proxy) = (None, None, None);
        for line in text.lines().map(str::trim) {
            match line.split_once('=') {
                Some(("admin", value)) => {
                    admin = Some(value.trim().parse().map_err(|_| "a bad admin= line")?);
                }
                Some(("token", value)) => token = Some(value.trim().to_owned()),
                Some(("proxy", value)) => proxy = value.trim().parse().ok(),
                _ => {}
            }
        }
        match (admin, token) {
            (Some(admin), Some(token)) if !token.is_empty() => Ok(Self {
                admin,
                token,
                proxy,
            }),
            (None, _) => Err("no admin= line"),
            _ => Err("no token= line"),
        }
    }
}

/// A new random token: [`TOKEN_BYTES`] bytes from the operating system's generator, as
/// lowercase hex.
fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| format!("cannot generate the admin token: {e}"))?;
    let mut hex = String::with_capacity(2 * TOKEN_BYTES);
    for byte in bytes {
        write!(hex, "{byte:02x}").expect("writing to a String cannot fail");
    }
    Ok(hex)
}

/// The secret file of the proxy whose public listener is on `port`, for this user:
///
/// 1. `$XDG_RUNTIME_DIR/tower-cache-layer/proxy-<port>.admin`, else
/// 2. `$XDG_CACHE_HOME/tower-cache-layer/proxy-<port>.admin`, else
/// 3. `$HOME/.cache/tower-cache-layer/proxy-<port>.admin`, else
/// 4. `<temp dir>/tower-cache-layer-<uid>/proxy-<port>.admin` (on Unix; elsewhere the temp
///    dir is the user's own, and the directory is `tower-cache-layer`).
///
/// Relative or empty variables are ignored, as the XDG base directory spec asks.
pub(crate) fn default_secret_path(port: u16) -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    let file = format!("proxy-{port}.admin");
    if let Some(runtime) = var("XDG_RUNTIME_DIR") {
        return runtime.join("tower-cache-layer").join(file);
    }
    if let Some(cache) = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache"))) {
        return cache.join("tower-cache-layer").join(file);
    }
    #[cfg(unix)]
    let dir = format!("tower-cache-layer-{}", current_uid());
    #[cfg(not(unix))]
    let dir = "tower-cache-layer";
    std::env::temp_dir().join(dir).join(file)
}

/// The effective user id of this process.
#[cfg(unix)]
fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Creates `dir` (and missing parents) with mode 0700. A directory that exists already is
/// left as it is (it may be `/tmp` given in `--admin-file`), but must belong to this user or to
/// root, and must not be writable by others unless it is sticky: nobody else may replace the
/// file in it.
#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    let uid = current_uid();
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(io::Error::other(format!(
            "the directory {} belongs to uid {}, not to you (uid {uid}) or root",
            dir.display(),
            meta.uid()
        )));
    }
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 != 0 && !sticky {
        return Err(io::Error::other(format!(
            "the directory {} is writable by others (mode {:03o})",
            dir.display(),
            meta.mode() & 0o777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes `secret` to `path`, mode 0600: to a temporary file in the same directory, then
/// renamed into place, so that a reader never sees a half-written file.
fn write_secret(path: &Path, secret: &Secret) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    // A leftover from a crashed process with the same pid.
    let _ = std::fs::remove_file(&tmp);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(secret.to_text().as_bytes())?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// Why `--clear-cache` could not read a secret file.
#[derive(Debug)]
enum ReadError {
    /// No file at that path.
    Missing,
    /// Any other reason, as one line.
    Other(String),
}

/// Reads a secret file, refusing one that another user owns or that group or others may read.
fn read_secret(path: &Path) -> Result<Secret, ReadError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(err) => {
            return Err(ReadError::Other(format!(
                "cannot read {}: {err}",
                path.display()
            )));
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file
            .metadata()
            .map_err(|e| ReadError::Other(format!("cannot read {}: {e}", path.display())))?;
        let uid = current_uid();
        if meta.uid() != uid {
            return Err(ReadError::Other(format!(
                "refusing to read {}: it is owned by uid {}, not by you (uid {uid})",
                path.display(),
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(ReadError::Other(format!(
                "refusing to read {}: it is readable by group or others (mode {:03o}); \
                 it must be mode 600",
                path.display(),
                meta.mode() & 0o777
            )));
        }
    }
    let mut text = String::new();
    file.take(4096)
        .read_to_string(&mut text)
        .map_err(|e| ReadError::Other(format!("cannot read {}: {e}", path.display())))?;
    Secret::parse(&text).map_err(|why| {
        ReadError::Other(format!(
            "{} is not a caching_proxy admin file ({why})",
            path.display()
        ))
    })
}

/// `--clear-cache`: finds the proxy's admin listener through its secret file (`secret_path`,
/// or the default one for the public `port`), asks it to empty the cache and returns the
/// number of removed entries, with the proxy's public address if the file names it. Errors
/// are one line.
pub(crate) async fn clear_remote(
    port: u16,
    secret_path: Option<PathBuf>,
) -> Result<(u64, Option<SocketAddr>), String> {
    let explicit = secret_path.is_some();
    let path = match secret_path {
        Some(path) => path,
        None => default_secret_path(port),
    };
    let secret = match read_secret(&path) {
        Ok(secret) => secret,
        Err(ReadError::Missing) if explicit => {
            return Err(format!(
                "no admin file at {}: is the caching proxy running?",
                path.display()
            ));
        }
        Err(ReadError::Missing) => {
            return Err(format!(
                "no caching proxy started by this user is running on port {port} \
                 (no admin file at {}; pass --admin-file if it was started with one)",
                path.display()
            ));
        }
        Err(ReadError::Other(message)) => return Err(message),
    };
    let admin = secret.admin;
    let exchange = async {
        let stream = TcpStream::connect(admin).await.map_err(|e| {
            if e.kind() == io::ErrorKind::ConnectionRefused {
                format!(
                    "the caching proxy is gone: nothing listens on its admin address {admin} \
                     (stale admin file {})",
                    path.display()
                )
            } else {
                format!("cannot connect to the admin address {admin} ({e})")
            }
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("cannot talk HTTP to the admin address {admin} ({e})"))?;
        tokio::spawn(conn);
        let request = Request::post("/clear")
            .header(header::HOST, admin.to_string())
            .header(header::AUTHORIZATION, format!("Bearer {}", secret.token))
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("cannot build the request ({e})"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("no answer from the admin address {admin} ({e})"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("cannot read the answer from {admin} ({e})"))?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::time::timeout(ADMIN_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            format!(
                "no answer from the admin address {admin} within {}s",
                ADMIN_TIMEOUT.as_secs()
            )
        })??;
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    match status {
        StatusCode::OK => text
            .parse()
            .map(|removed| (removed, secret.proxy))
            .map_err(|_| {
                format!(
                    "{admin} is not a caching_proxy admin listener (unexpected answer {text:?})"
                )
            }),
        StatusCode::UNAUTHORIZED => Err(format!(
            "the admin listener at {admin} refused the token in {} ({text})",
            path.display()
        )),
        _ => Err(format!(
            "the admin listener at {admin} did not clear the cache: {status} {text}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_text_round_trips() {
        let secret = Secret {
            admin: SocketAddr::from(([127, 0, 0, 1], 41023)),
            token: "ab".repeat(32),
            proxy: Some(SocketAddr::from(([0, 0, 0, 0], 3000))),
        };
        let text = secret.to_text();
        assert_eq!(
            text,
            format!(
                "admin=127.0.0.1:41023\ntoken={}\nproxy=0.0.0.0:3000\n",
                "ab".repeat(32)
            )
        );
        assert_eq!(Secret::parse(&text), Ok(secret));
        assert_eq!(Secret::parse("token=ab\n"), Err("no admin= line"));
        assert_eq!(Secret::parse("admin=127.0.0.1:1\n"), Err("no token= line"));
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token().expect("token"), new_token().expect("token"));
        assert_eq!(a.len(), 2 * TOKEN_BYTES);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

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
    }
}
