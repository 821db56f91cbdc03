//! Helpers shared by the integration tests: a real hyper server on 127.0.0.1:0 running an
//! origin handler behind a [`CacheLayer`], a counting origin, test bodies and a TCP client.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceBuilder;
use tower_cache_layer::CacheLayer;

/// A body an origin handler returns: chunks, an optional wait before the rest, an optional
/// error at the end.
pub struct TestBody {
    chunks: VecDeque<Bytes>,
    gate: Option<(usize, oneshot::Receiver<()>)>,
    sent: usize,
    fail: bool,
    exact: Option<u64>,
}

impl TestBody {
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        let len = data.len() as u64;
        Self::chunks(vec![data]).with_exact(len)
    }

    pub fn chunks(chunks: Vec<Bytes>) -> Self {
        Self {
            chunks: chunks.into(),
            gate: None,
            sent: 0,
            fail: false,
            exact: None,
        }
    }

    pub fn empty() -> Self {
        Self::chunks(Vec::new()).with_exact(0)
    }

    /// Reports an exact size (as a `Content-Length` body would).
    pub fn with_exact(mut self, len: u64) -> Self {
        self.exact = Some(len);
        self
    }

    /// Fails with an I/O error after the chunks.
    pub fn failing(mut self) -> Self {
        self.fail = true;
        self
    }

    /// Waits for `gate` after `after` chunks were sent.
    pub fn gated(mut self, after: usize, gate: oneshot::Receiver<()>) -> Self {
        self.gate = Some((after, gate));
        self
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some((after, gate)) = &mut this.gate {
            if this.sent == *after {
                match Pin::new(gate).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(_) => this.gate = None,
                }
            }
        }
        match this.chunks.pop_front() {
            Some(chunk) => {
                this.sent += 1;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None if this.fail => {
                this.fail = false;
                Poll::Ready(Some(Err(io::Error::other("origin failed mid-body"))))
            }
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(len) => SizeHint::with_exact(len),
            None => SizeHint::default(),
        }
    }
}

use std::future::Future as _;

/// A running server: `CacheLayer` around a counting in-process origin, over TCP.
pub struct Server {
    pub addr: SocketAddr,
    pub origin_calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub fn calls(&self) -> usize {
        self.origin_calls.load(Ordering::SeqCst)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `layer` around `handler` on 127.0.0.1:0; the handler's calls are counted.
pub async fn serve<F, St>(layer: CacheLayer<St>, handler: F) -> Server
where
    F: Fn(&Request<Incoming>) -> Response<TestBody> + Clone + Send + Sync + 'static,
    St: tower_cache_layer::store::Store,
{
    let origin_calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&origin_calls);
    let service = ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |req: Request<Incoming>| {
            counter.fetch_add(1, Ordering::SeqCst);
            let response = handler(&req);
            async move { Ok::<_, Infallible>(response) }
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server {
        addr,
        origin_calls,
        task,
    }
}

/// A response as the test client saw it.
#[derive(Debug)]
pub struct Seen {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header"))
    }

    pub fn x_cache(&self) -> &str {
        self.header("x-cache").expect("x-cache header")
    }

    pub fn cache_status(&self) -> &str {
        self.header("cache-status").expect("cache-status header")
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `request` over TCP and reads the whole response.
pub async fn send(request: Request<Full<Bytes>>) -> Seen {
    try_send(request).await.expect("request failed")
}

pub async fn try_send(
    request: Request<Full<Bytes>>,
) -> Result<Seen, Box<dyn std::error::Error + Send + Sync>> {
    let response = client().request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Seen {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// `GET url` with extra header fields.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Seen {
    let mut builder = Request::get(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(builder.body(Full::default()).expect("request")).await
}

/// A response with the given header fields and body.
pub fn response(headers: &[(&str, &str)], body: &'static str) -> Response<TestBody> {
    let mut builder = Response::builder();
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(TestBody::full(body)).expect("response")
}

/// `Last-Modified`/`Date`-style value for `secs` seconds ago.
pub fn http_date_ago(secs: u64) -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now() - std::time::Duration::from_secs(secs))
}

/// Like [`serve`], with every response dated by `clock` (as an origin sharing the cache's
/// clock would), so that tests moving the clock see consistent ages.
pub async fn serve_dated<F>(
    layer: CacheLayer,
    clock: tower_cache_layer::clock::ManualClock,
    handler: F,
) -> Server
where
    F: Fn(&Request<Incoming>) -> Response<TestBody> + Clone + Send + Sync + 'static,
{
    use tower_cache_layer::clock::Clock;
    serve(layer, move |req| {
        let mut response = handler(req);
        let date = httpdate::fmt_http_date(clock.now());
        response
            .headers_mut()
            .insert(http::header::DATE, date.parse().expect("http-date"));
        response
    })
    .await
}
