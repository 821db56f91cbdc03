//! A fast origin server for the load, soak and memory scripts (`scripts/load.sh`,
//! `scripts/soak.sh`, `scripts/memory.sh`), and the reference "bare hyper server that returns
//! the same bytes from memory" that the caching proxy is compared with.
//!
//! ```text
//! cargo run --release --example bench_origin -- --port 8000
//! curl -si localhost:8000/bytes/1024          # 1024 bytes, Cache-Control: public, max-age=3600
//! curl -si localhost:8000/miss/1024/anything  # the same, for unique URLs (every one a miss)
//! curl -s localhost:8000/stream/1073741824 -o /dev/null   # 1 GiB, streamed, no caching headers
//! ```
//!
//! Routes (`GET` and `HEAD`; anything else is `404` or `405`):
//!
//! - `/bytes/N`: `N` bytes (at most [`MAX_BYTES`]) with `Content-Length` and
//!   `Cache-Control: public, max-age=3600`. The bytes are computed once at start; each response
//!   is a reference-counted slice of them, so the server does no per-request copying.
//! - `/miss/N/<anything>` (or `/miss/<anything>`, 1024 bytes): as `/bytes/N`, also cacheable;
//!   a load generator that makes every path unique turns every request into a cache miss.
//!   `/miss/N/<anything>?no-store` answers the same with `Cache-Control: no-store`: a miss
//!   that a cache looks up and forwards but does not store.
//! - `/stream/N`: `N` bytes (any `u64`) in 64 KiB chunks produced as the client reads them,
//!   never held in memory, without `Content-Length` (chunked) and without any caching header.
//!   `/stream/N?cacheable` adds `Cache-Control: public, max-age=3600`, so that a cache in front
//!   tries to store it and must give up at its entry-size limit while the body streams on.
//!
//! Nothing is logged per request. The server runs on a multi-thread tokio runtime (one worker
//! per CPU the process may use, so `taskset` limits it) and speaks HTTP/1.1 and HTTP/2 through
//! hyper-util's `auto` builder.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use clap::Parser;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Largest body `/bytes/N` and `/miss/N/…` serve: 64 MiB.
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Size of each chunk of `/stream/N`.
const STREAM_CHUNK: usize = 64 * 1024;

/// Body size of `/miss/<anything>` without a size segment.
const DEFAULT_MISS_SIZE: usize = 1024;

/// The cache headers of `/bytes` and `/miss`.
const CACHEABLE: &str = "public, max-age=3600";

/// An origin server for benchmarks: fixed bytes from memory, cacheable or streamed.
#[derive(Debug, Parser)]
#[command(about)]
struct Config {
    /// Port to listen on; 0 picks a free one (the chosen address is printed on stdout).
    #[arg(long, default_value_t = 8000)]
    port: u16,

    /// IP address to listen on.
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
}

/// The body of every response: a slice of the precomputed bytes, or a generated stream.
type OriginBody = Either<Full<Bytes>, Generated>;

/// `N` bytes produced chunk by chunk while the client reads: each frame is a clone of one
/// shared 64 KiB chunk (or a slice of it for the last one), so memory stays constant.
#[derive(Debug)]
struct Generated {
    chunk: Bytes,
    remaining: u64,
}

impl Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = usize::try_from(self.remaining).map_or(self.chunk.len(), |remaining| {
            remaining.min(self.chunk.len())
        });
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..len)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        // Deliberately not exact: the response goes out chunked, without `Content-Length`,
        // so a cache in front cannot tell its size before the body ends.
        SizeHint::new()
    }
}

/// The precomputed data every response is cut from.
#[derive(Clone, Debug)]
struct Data {
    /// [`MAX_BYTES`] bytes of printable text.
    bytes: Bytes,
    /// The chunk `/stream/N` repeats.
    chunk: Bytes,
}

impl Data {
    fn new() -> Self {
        let pattern = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
        let bytes: Vec<u8> = pattern.iter().copied().cycle().take(MAX_BYTES).collect();
        let bytes = Bytes::from(bytes);
        let chunk = bytes.slice(..STREAM_CHUNK);
        Self { bytes, chunk }
    }
}

/// Answers one request from `data`.
fn respond(data: &Data, req: &Request<Incoming>) -> Response<OriginBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET or HEAD\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let path = req.uri().path();
    let mut segments = path.trim_start_matches('/').splitn(3, '/');
    match (segments.next(), segments.next()) {
        (Some("bytes"), Some(n)) => match n.parse::<usize>() {
            Ok(n) if n <= MAX_BYTES => cacheable(data, n),
            _ => plain(
                StatusCode::BAD_REQUEST,
                "expected /bytes/N, N <= 67108864\n",
            ),
        },
        (Some("miss"), Some(n)) => {
            let mut response = match (n.parse::<usize>(), segments.next()) {
                (Ok(n), Some(_)) if n <= MAX_BYTES => cacheable(data, n),
                (Ok(_), Some(_)) => {
                    return plain(StatusCode::BAD_REQUEST, "N must be <= 67108864\n");
                }
                _ => cacheable(data, DEFAULT_MISS_SIZE),
            };
            if req.uri().query() == Some("no-store") {
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            response
        }
        (Some("stream"), Some(n)) => match n.parse::<u64>() {
            Ok(n) => {
                let mut response = Response::new(Either::Right(Generated {
                    chunk: data.chunk.clone(),
                    remaining: n,
                }));
                if req.uri().query() == Some("cacheable") {
                    response
                        .headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHEABLE));
                }
                response
            }
            Err(_) => plain(StatusCode::BAD_REQUEST, "expected /stream/N\n"),
        },
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: try /bytes/N, /miss/N/<unique>, /stream/N\n",
        ),
    }
}

/// `n` precomputed bytes, cacheable for an hour.
fn cacheable(data: &Data, n: usize) -> Response<OriginBody> {
    let mut response = Response::new(Either::Left(Full::new(data.bytes.slice(..n))));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHEABLE));
    response
}

/// A short plain-text answer that no cache stores.
fn plain(status: StatusCode, text: &'static str) -> Response<OriginBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Accepts connections until the process is killed.
async fn serve(config: Config) -> std::io::Result<()> {
    let listener = TcpListener::bind(SocketAddr::new(config.bind, config.port)).await?;
    println!(
        "bench_origin listening on http://{}",
        listener.local_addr()?
    );
    let data = Data::new();
    let server = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                eprintln!("bench_origin: accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let data = data.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = respond(&data, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            // Clients closing connections mid-response are expected under load; ignore them.
            let _ = server.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the tokio runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
