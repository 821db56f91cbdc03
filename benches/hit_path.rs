//! The cost of a cache hit through the layer, next to calling the bare inner service that
//! returns the same bytes. Run with `cargo bench --bench hit_path`.

mod common;

use bytes::Bytes;
use common::{fetch, origin, request};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tower::ServiceBuilder;
use tower_cache_layer::CacheLayer;

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
            b.to_async(&runtime)
                .iter(|| fetch(bare.clone(), request("/bytes")));
        });

        let cached = ServiceBuilder::new()
            .layer(CacheLayer::new())
            .service(origin(body));
        runtime.block_on(async {
            let warm = fetch(cached.clone(), request("/bytes")).await;
            assert_eq!(warm.headers()["x-cache"], "MISS");
            let hit = fetch(cached.clone(), request("/bytes")).await;
            assert_eq!(hit.headers()["x-cache"], "HIT");
        });
        group.bench_with_input(BenchmarkId::new("cache_hit", size), &size, |b, _| {
            b.to_async(&runtime)
                .iter(|| fetch(cached.clone(), request("/bytes")));
        });
    }
    group.finish();
}

criterion_group!(benches, hit_vs_bare);
criterion_main!(benches);
