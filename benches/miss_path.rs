//! The cost of a cache miss through the layer (look up, forward, tee the body, store it), next
//! to calling the bare inner service that returns the same bytes. Every iteration asks for a
//! new URL, so each one is a real miss, and collects the body to its end, so the entry is
//! committed to the store. Run with `cargo bench --bench miss_path`.
//!
//! Groups:
//! - `miss/bare/N`, `miss/cache_miss/N`: the origin answers one `Full` frame with an exact size
//!   (as `Content-Length` does); the tee keeps that one `Bytes`, no copy.
//! - `miss_chunked/bare/N`, `miss_chunked/cache_miss/N`: the origin streams 16 KiB frames
//!   without a known size (as a chunked response does); the store concatenates them once.
//! - `miss_evicting/cache_miss/N`: as `miss/cache_miss`, with a 4 MiB cache that is full, so
//!   every store also evicts.
//!
//! For `miss` and `miss_chunked` the iterations run in batches, each against a fresh cache
//! sized to hold the whole batch twice, so they measure storing rather than eviction; building
//! and dropping those caches is not timed.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Either, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_cache_layer::CacheLayer;

mod common;

/// Body sizes measured: 1 KiB and 100 KiB.
const SIZES: [usize; 2] = [1024, 100 * 1024];

/// Frame size of the chunked origin.
const FRAME: usize = 16 * 1024;

/// Bytes of bodies stored per batch of iterations against one fresh cache.
const BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Capacity of the cache in `miss_evicting`: full after a few dozen 100 KiB entries.
const SMALL_CAPACITY: u64 = 4 * 1024 * 1024;

/// A body of several frames without a known size, like a chunked HTTP/1.1 response.
struct Frames {
    frames: VecDeque<Bytes>,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.frames.pop_front().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}

type OriginBody = Either<Full<Bytes>, Frames>;

/// The origin: `body` with `Cache-Control: max-age=3600`, as one exact-size frame or, when
/// `chunked`, as 16 KiB frames of unknown total size.
fn origin(
    body: Bytes,
    chunked: bool,
) -> impl Service<Request<()>, Response = Response<OriginBody>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(move |_req: Request<()>| {
        let body = body.clone();
        async move {
            let body = if chunked {
                let frames = (0..body.len())
                    .step_by(FRAME)
                    .map(|start| body.slice(start..body.len().min(start + FRAME)))
                    .collect();
                Either::Right(Frames { frames })
            } else {
                Either::Left(Full::new(body))
            };
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=3600")
                    .header("content-type", "application/octet-stream")
                    .body(body)
                    .expect("valid response"),
            )
        }
    })
}

/// A request for a URL never asked before.
fn unique_request(counter: &AtomicU64) -> Request<()> {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    Request::get(format!("http://bench.example/miss/{n}"))
        .body(())
        .expect("valid request")
}

/// Sends `req` through `svc` and reads the whole body, as a client would.
async fn fetch<S, B>(svc: S, req: Request<()>) -> Bytes
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    common::fetch(svc, req).await.into_body()
}

fn miss_vs_bare(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let counter = Arc::new(AtomicU64::new(0));

    for (group_name, chunked) in [("miss", false), ("miss_chunked", true)] {
        let mut group = c.benchmark_group(group_name);
        for size in SIZES {
            let body = Bytes::from(vec![b'x'; size]);
            group.throughput(Throughput::Bytes(size as u64));

            let bare = origin(body.clone(), chunked);
            group.bench_with_input(BenchmarkId::new("bare", size), &size, |b, _| {
                b.to_async(&runtime)
                    .iter(|| fetch(bare.clone(), unique_request(&counter)));
            });

            // Check once that this really is a stored miss.
            runtime.block_on(async {
                let cached = ServiceBuilder::new()
                    .layer(CacheLayer::new())
                    .service(origin(body.clone(), chunked));
                let req = || Request::get("http://bench.example/check").body(());
                let first = cached.clone().oneshot(req().expect("valid")).await;
                let first = first.expect("infallible");
                assert_eq!(first.headers()["x-cache"], "MISS");
                first.into_body().collect().await.expect("body");
                let second = cached.oneshot(req().expect("valid")).await;
                assert_eq!(second.expect("infallible").headers()["x-cache"], "HIT");
            });

            let batch = (BATCH_BYTES / size) as u64;
            let capacity = 2 * batch * (size as u64 + 2048);
            group.bench_with_input(BenchmarkId::new("cache_miss", size), &size, |b, _| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let body = body.clone();
                    let counter = Arc::clone(&counter);
                    async move {
                        let mut elapsed = Duration::ZERO;
                        let mut left = iters;
                        while left > 0 {
                            let n = left.min(batch);
                            left -= n;
                            let cached = ServiceBuilder::new()
                                .layer(CacheLayer::builder().max_capacity(capacity).build())
                                .service(origin(body.clone(), chunked));
                            let start = Instant::now();
                            for _ in 0..n {
                                fetch(cached.clone(), unique_request(&counter)).await;
                            }
                            elapsed += start.elapsed();
                        }
                        elapsed
                    }
                });
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("miss_evicting");
    for size in SIZES {
        let body = Bytes::from(vec![b'x'; size]);
        group.throughput(Throughput::Bytes(size as u64));
        let cached = ServiceBuilder::new()
            .layer(CacheLayer::builder().max_capacity(SMALL_CAPACITY).build())
            .service(origin(body, false));
        // Fill it first, so that every measured store evicts.
        runtime.block_on(async {
            for _ in 0..(4 * SMALL_CAPACITY as usize / size) {
                fetch(cached.clone(), unique_request(&counter)).await;
            }
        });
        group.bench_with_input(BenchmarkId::new("cache_miss", size), &size, |b, _| {
            b.to_async(&runtime)
                .iter(|| fetch(cached.clone(), unique_request(&counter)));
        });
    }
    group.finish();
}

criterion_group!(benches, miss_vs_bare);
criterion_main!(benches);
