//! The request log: one line per request, with method, path, status, `X-Cache`, time taken
//! and client. A request the client abandoned before its answer was ready (it closed the
//! connection) is logged too, with status 499 as nginx does.

use std::net::SocketAddr;
use std::time::Instant;

use http::{Method, Request, Response};

/// The log line of one request in progress; written by [`RequestLog::finish`], or with
/// status 499 when dropped unfinished.
#[derive(Debug)]
pub(crate) struct RequestLog {
    method: Method,
    path: String,
    peer: SocketAddr,
    started: Instant,
    finished: bool,
}

/// The status logged for a request whose client went away first (nginx's convention).
const CLIENT_CLOSED: u16 = 499;

impl RequestLog {
    /// Starts the line for `req`, or `None` when the log level hides it (nothing is gathered
    /// then).
    pub(crate) fn start<B>(req: &Request<B>, peer: SocketAddr) -> Option<Self> {
        if !tracing::enabled!(tracing::Level::INFO) {
            return None;
        }
        let uri = req.uri();
        // A forward proxy's absolute-form targets and CONNECT's host:port are logged whole.
        let path = if uri.scheme().is_some() || req.method() == Method::CONNECT {
            uri.to_string()
        } else {
            uri.path_and_query()
                .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned())
        };
        Some(Self {
            method: req.method().clone(),
            path,
            peer,
            started: Instant::now(),
            finished: false,
        })
    }

    /// Writes the line for `response`.
    pub(crate) fn finish<B>(mut self, response: &Response<B>) {
        self.finished = true;
        let cache = response
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        self.write(response.status().as_u16(), cache);
    }

    fn write(&self, status: u16, cache: &str) {
        tracing::info!(
            method = %self.method,
            path = %self.path,
            status,
            cache = %cache,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            peer = %self.peer,
        );
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        if !self.finished {
            self.write(CLIENT_CLOSED, "-");
        }
    }
}
