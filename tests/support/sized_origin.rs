//! An origin for the disk store's tests: `/<len>/<name>` answers `len` bytes that depend on
//! `name`, cacheable, slowly enough that large ones take a while.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The bytes the origin sends for `path` (`/<len>/<name>`).
pub fn body_for(path: &str) -> Bytes {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let len: usize = parts.next().and_then(|l| l.parse().ok()).unwrap_or(10);
    let seed = parts
        .next()
        .unwrap_or("")
        .bytes()
        .map(usize::from)
        .sum::<usize>();
    (0..len)
        .map(|i| ((i * 7 + seed) % 251) as u8)
        .collect::<Vec<_>>()
        .into()
}

/// An origin answering `/<len>/<name>` with `len` bytes, cacheable for ten minutes, in
/// 64 KiB frames a millisecond apart (so that large ones take a while), counting requests.
pub struct Origin {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl Origin {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin address");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                let service = service_fn(move |req: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = Slow::new(body_for(req.uri().path()));
                    let response = Response::builder()
                        .header("cache-control", "max-age=600")
                        .body(body)
                        .expect("response");
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(async move {
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { addr, hits }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A body sent in 64 KiB frames, a millisecond apart.
struct Slow {
    data: Bytes,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Slow {
    fn new(data: Bytes) -> Self {
        Self { data, wait: None }
    }
}

impl Body for Slow {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(wait) = &mut self.wait {
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.wait = None;
        }
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let take = self.data.len().min(64 * 1024);
        let frame = self.data.split_to(take);
        self.wait = Some(Box::pin(tokio::time::sleep(Duration::from_millis(1))));
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

use std::future::Future as _;
