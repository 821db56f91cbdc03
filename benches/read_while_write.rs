//! Read-while-write: N concurrent requests for one new key, collapsed onto one leader, each
//! reading the body as the origin sends it. Measures the time until all N have the whole
//! body. Run with `cargo bench --bench read_while_write`.
//!
//! Groups:
//! - `read_while_write/bare/N`: N requests each sent to the bare origin (N fetches).
//! - `read_while_write/collapsed/N`: N requests through the layer; one reaches the origin, the
//!   others stream its body from the growing buffer as it arrives.
//!
//! The origin sends 1 MiB in 16 KiB frames with an exact size (as `Content-Length` does), and
//! returns `Pending` once before each frame (waking itself at once), as a body arriving from
//! the network does: the followers join while the leader's body is still arriving. Each
//! iteration uses a fresh cache (built untimed), so each one is a real miss.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower::{Service, ServiceBuilder};
use tower_cache_layer::CacheLayer;

mod common;

/// The body's size, and its frames' size.
const SIZE: usize = 1024 * 1024;
const FRAME: usize = 16 * 1024;

/// Concurrent requests for the one key.
const CONCURRENCY: [usize; 3] = [1, 8, 64];

/// A body of several frames of a known total size, each after one `Pending`.
struct Trickle {
    frames: VecDeque<Bytes>,
    left: u64,
    ready: bool,
}

impl Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if !self.ready && !self.frames.is_empty() {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        let frame = self.frames.pop_front();
        if let Some(data) = &frame {
            self.left -= data.len() as u64;
        }
        Poll::Ready(frame.map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// The origin: `body` in 16 KiB frames with `Cache-Control: max-age=3600`; counts its calls.
fn origin(
    body: Bytes,
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<()>, Response = Response<Trickle>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(move |_req: Request<()>| {
        calls.fetch_add(1, Ordering::Relaxed);
        let frames = (0..body.len())
            .step_by(FRAME)
            .map(|start| body.slice(start..body.len().min(start + FRAME)))
            .collect();
        let trickle = Trickle {
            frames,
            left: body.len() as u64,
            ready: false,
        };
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=3600")
                    .header("content-type", "application/octet-stream")
                    .body(trickle)
                    .expect("valid response"),
            )
        }
    })
}

/// Sends `n` concurrent requests for `/rww` through `svc` (the first one first) and waits
/// until all have their whole body; returns the bodies' lengths and `Cache-Status` values.
async fn burst<S, B>(svc: S, n: usize) -> Vec<(usize, String)>
where
    S: Service<Request<()>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
{
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..n {
        let svc = svc.clone();
        requests.spawn(async move {
            let response = common::fetch(svc, common::request("/rww")).await;
            let status = response
                .headers()
                .get("cache-status")
                .map(|value| value.to_str().expect("ascii").to_owned())
                .unwrap_or_default();
            (response.into_body().len(), status)
        });
    }
    let mut seen = Vec::with_capacity(n);
    while let Some(result) = requests.join_next().await {
        seen.push(result.expect("request task"));
    }
    seen
}

fn read_while_write(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let body = Bytes::from(vec![b'x'; SIZE]);
    let cached = {
        let body = body.clone();
        move |calls: &Arc<AtomicUsize>| {
            ServiceBuilder::new()
                .layer(CacheLayer::new())
                .service(origin(body.clone(), Arc::clone(calls)))
        }
    };

    // Check once that the requests collapse onto one fetch and all get the whole body.
    runtime.block_on(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = burst(cached(&calls), 64).await;
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "one request reached the origin"
        );
        assert!(seen.iter().all(|(len, _)| *len == SIZE));
        let collapsed = seen.iter().filter(|(_, s)| s.contains("collapsed")).count();
        assert_eq!(collapsed, 63, "the others read the leader's body");
    });

    let mut group = c.benchmark_group("read_while_write");
    for n in CONCURRENCY {
        group.throughput(Throughput::Bytes((SIZE * n) as u64));
        let bare = origin(body.clone(), Arc::new(AtomicUsize::new(0)));
        group.bench_with_input(BenchmarkId::new("bare", n), &n, |b, &n| {
            b.to_async(&runtime).iter(|| burst(bare.clone(), n));
        });
        group.bench_with_input(BenchmarkId::new("collapsed", n), &n, |b, &n| {
            b.to_async(&runtime).iter_custom(|iters| {
                let fresh = cached.clone();
                async move {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        let svc = fresh(&Arc::new(AtomicUsize::new(0)));
                        let start = Instant::now();
                        burst(svc.clone(), n).await;
                        elapsed += start.elapsed();
                        // The cache and its entry are dropped untimed.
                        drop(svc);
                    }
                    elapsed
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, read_while_write);
criterion_main!(benches);
