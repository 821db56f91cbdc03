//! The admin interface: clearing the cache, and the `--clear-cache` client.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_cache_layer::CacheHandle;

/// Path of the admin endpoint that empties the cache (method `POST`, loopback clients only).
pub(crate) const CLEAR_PATH: &str = "/.well-known/tower-cache-layer/clear";

/// How long `--clear-cache` waits for the running proxy to answer.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin endpoint: `POST` from a loopback peer empties the cache and answers the number
/// of removed entries.
pub(crate) async fn admin(
    cache: &CacheHandle,
    peer: SocketAddr,
    method: &Method,
) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: String| {
        let mut response = Response::new(Full::new(Bytes::from(text)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    };
    if !peer.ip().to_canonical().is_loopback() {
        return plain(
            StatusCode::FORBIDDEN,
            "forbidden: the cache can only be cleared from the proxy's own host\n".into(),
        );
    }
    if method != Method::POST {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use POST\n".into(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    match cache.clear().await {
        Ok(removed) => {
            tracing::info!(removed, "cache cleared");
            plain(StatusCode::OK, removed.to_string())
        }
        Err(err) => {
            tracing::error!(error = %err, "clearing the cache failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: cannot clear the cache ({err})\n"),
            )
        }
    }
}

/// `--clear-cache`: asks the proxy at `addr` to empty its cache; returns the removed count.
pub(crate) async fn clear_remote(addr: SocketAddr) -> Result<u64, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("no caching proxy is listening on {addr} ({e})"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("cannot talk HTTP to {addr} ({e})"))?;
    tokio::spawn(conn);
    let request = Request::post(CLEAR_PATH)
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no answer from {addr} ({e})"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("cannot read the answer from {addr} ({e})"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    if status != StatusCode::OK {
        return Err(format!(
            "the server at {addr} refused to clear the cache: {status} {}",
            text.trim()
        ));
    }
    text.trim().parse().map_err(|_| {
        format!("the server at {addr} is not a caching_proxy (unexpected answer to {CLEAR_PATH})")
    })
}
