//! Many tasks at once through one cache, on a multi-thread tokio runtime: 64 tasks hitting one
//! hot key, 64 tasks hitting many keys, and 64 tasks missing on new URLs, each next to the bare
//! inner service returning the same 1 KiB. Run with `cargo bench --bench concurrent`.
//!
//! One iteration is one request from each of the 64 tasks: for `iters` iterations, 64
//! long-lived tasks each send `iters` requests back to back, and the wall time of the whole run
//! is reported (so `time` is per 64 requests, and the throughput is in requests per second).
//! Spawning the tasks is inside the timing but happens once per sample, not per request.
//!
//! Groups (`concurrent_64/<case>`):
//! - `bare`: the inner service alone.
//! - `hit_one_key`: every task asks for the same stored URL (contention on one entry).
//! - `hit_many_keys`: the tasks walk over 4096 stored URLs, each task from its own offset.
//! - `miss_unique`: every request is a new URL; bodies are read to the end so they are stored.
//!   The iterations run in batches of [`MISS_BATCH`], each against a fresh cache that holds the
//!   whole batch, so this measures storing, not eviction; building and dropping those caches is
//!   not timed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body::Body;
use tower::{Service, ServiceBuilder};
use tower_cache_layer::CacheLayer;

mod common;
use common::{origin, request};

/// Sends `req` through `svc`, reads the whole body and returns the `x-cache` value, if any.
async fn fetch<S, B>(svc: S, req: Request<()>) -> Option<http::HeaderValue>
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = common::fetch(svc, req).await;
    debug_assert_eq!(response.body().len(), SIZE);
    response.headers().get("x-cache").cloned()
}

/// Concurrent tasks per iteration.
const TASKS: u64 = 64;

/// Stored URLs in `hit_many_keys`.
const KEYS: u64 = 4096;

/// Body size.
const SIZE: usize = 1024;

/// Iterations (of [`TASKS`] requests each) per fresh cache in `miss_unique`.
const MISS_BATCH: u64 = 256;

/// Capacity of the caches: 64 MiB, well over [`KEYS`] or `MISS_BATCH * TASKS` entries of
/// about 3 KiB each as weighed.
const CAPACITY: u64 = 64 * 1024 * 1024;

/// Which URL task `task` asks for in its iteration `i`.
#[derive(Clone, Copy)]
enum Keys {
    One,
    Many,
    Unique,
}

impl Keys {
    fn path(self, task: u64, i: u64, unique: &AtomicU64) -> String {
        match self {
            Keys::One => "/hot".to_owned(),
            Keys::Many => format!("/key/{}", (task * (KEYS / TASKS) + i) % KEYS),
            Keys::Unique => format!("/miss/{}", unique.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

/// Runs `iters` rounds of one request from each of [`TASKS`] tasks; returns the wall time.
fn run<S, B>(
    runtime: &tokio::runtime::Runtime,
    svc: &S,
    keys: Keys,
    unique: &Arc<AtomicU64>,
    iters: u64,
) -> Duration
where
    S: Service<Request<()>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
{
    runtime.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let svc = svc.clone();
                let unique = Arc::clone(unique);
                tokio::spawn(async move {
                    for i in 0..iters {
                        let req = request(&keys.path(task, i, &unique));
                        fetch(svc.clone(), req).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        start.elapsed()
    })
}

fn concurrent(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let unique = Arc::new(AtomicU64::new(0));
    let body = Bytes::from(vec![b'x'; SIZE]);

    let mut group = c.benchmark_group("concurrent_64");
    group.throughput(Throughput::Elements(TASKS));

    let bare = origin(body.clone());
    group.bench_function(BenchmarkId::new("bare", SIZE), |b| {
        b.iter_custom(|iters| run(&runtime, &bare, Keys::Many, &unique, iters));
    });

    let cached = ServiceBuilder::new()
        .layer(CacheLayer::builder().max_capacity(CAPACITY).build())
        .service(origin(body.clone()));
    runtime.block_on(async {
        for path in std::iter::once("/hot".to_owned()).chain((0..KEYS).map(|k| format!("/key/{k}")))
        {
            assert_eq!(
                fetch(cached.clone(), request(&path))
                    .await
                    .expect("x-cache"),
                "MISS"
            );
            assert_eq!(
                fetch(cached.clone(), request(&path))
                    .await
                    .expect("x-cache"),
                "HIT"
            );
        }
    });

    for (name, keys) in [("hit_one_key", Keys::One), ("hit_many_keys", Keys::Many)] {
        group.bench_function(BenchmarkId::new(name, SIZE), |b| {
            b.iter_custom(|iters| run(&runtime, &cached, keys, &unique, iters));
        });
    }

    group.bench_function(BenchmarkId::new("miss_unique", SIZE), |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(MISS_BATCH);
                left -= n;
                let fresh = ServiceBuilder::new()
                    .layer(CacheLayer::builder().max_capacity(CAPACITY).build())
                    .service(origin(body.clone()));
                elapsed += run(&runtime, &fresh, Keys::Unique, &unique, n);
            }
            elapsed
        });
    });
    group.finish();
}

criterion_group!(benches, concurrent);
criterion_main!(benches);
