//! The `--clear-cache` and `--purge` client.

use std::io::{self};
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http::header::{self};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::ADMIN_TIMEOUT;
use super::query::PurgeQuery;
use super::secret::{ReadError, default_secret_path, read_secret};

/// `--clear-cache`: finds the proxy's admin listener through its secret file (`secret_path`,
/// or the default one for the public `port`), asks it to empty the cache and returns the
/// number of removed entries, with the proxy's public address if the file names it. Errors
/// are one line.
pub(crate) async fn clear_remote(
    port: u16,
    secret_path: Option<PathBuf>,
) -> Result<(u64, Option<SocketAddr>), String> {
    admin_post(port, secret_path, "/clear".to_owned(), "clear the cache").await
}

/// `--purge`, `--purge-tag`: as [`clear_remote`], asks the proxy to purge what `query`
/// names and returns the number of purged entries.
pub(crate) async fn purge_remote(
    port: u16,
    secret_path: Option<PathBuf>,
    query: &PurgeQuery,
) -> Result<(u64, Option<SocketAddr>), String> {
    let target = format!("/purge?{}", query.to_query());
    admin_post(port, secret_path, target, "purge").await
}

/// Sends `POST target` to the admin listener named by the secret file and reads the count
/// it answers; `action` says what was asked, for the error message.
async fn admin_post(
    port: u16,
    secret_path: Option<PathBuf>,
    target: String,
    action: &str,
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
        let request = Request::post(target)
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
    // One line, whatever answered.
    let text = text.lines().next().unwrap_or("").trim();
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
            "the admin listener at {admin} did not {action}: {status} {text}"
        )),
    }
}
