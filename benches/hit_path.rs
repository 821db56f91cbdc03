//! The cost of a cache hit through the layer, next to calling the bare inner service that
//! returns the same bytes. Run with `cargo bench --bench hit_path`.

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_cache_layer::CacheLayer;

fn origin(
    body: Bytes,
) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(move |_req: Request<()>| {
        let body = body.clone();
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=3600")
                    .header("content-type", "application/octet-stream")
                    .body(Full::new(body))
                    .expect("valid response"),
            )
        }
    })
}

fn request() -> Request<()> {
    Request::get("http://bench.example/bytes")
        .body(())
        .expect("valid request")
}

fn hit_vs_bare(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("hit");
    for size in [1024usize, 100 * 1024] {
        let body = Bytes::from(vec![b'x'; size]);
        let bare = origin(body.clone());
        group.bench_with_input(BenchmarkId::new("bare", size), &size, |b, _| {
            b.to_async(&runtime).iter(|| {
                let svc = bare.clone();
                async move {
                    let response = svc.oneshot(request()).await.expect("infallible");
                    response
                        .into_body()
                        .collect()
                        .await
                        .expect("body")
                        .to_bytes()
                }
            });
        });

        let cached = ServiceBuilder::new()
            .layer(CacheLayer::new())
            .service(origin(body));
        runtime.block_on(async {
            let warm = cached.clone().oneshot(request()).await.expect("infallible");
            warm.into_body().collect().await.expect("body");
        });
        group.bench_with_input(BenchmarkId::new("cache_hit", size), &size, |b, _| {
            b.to_async(&runtime).iter(|| {
                let mut svc = cached.clone();
                async move {
                    let response = svc
                        .ready()
                        .await
                        .expect("ready")
                        .call(request())
                        .await
                        .expect("infallible");
                    debug_assert_eq!(response.headers()["x-cache"], "HIT");
                    response
                        .into_body()
                        .collect()
                        .await
                        .expect("body")
                        .to_bytes()
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, hit_vs_bare);
criterion_main!(benches);
