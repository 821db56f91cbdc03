//! The in-memory store's byte bound holds only if it weighs what an entry really costs: the
//! key, the header map, the body, the shared pointers around them and moka's bookkeeping,
//! each allocation as the allocator rounds it. This test counts the bytes the allocator
//! really hands out while a cache stores a few thousand typical responses, and compares them
//! with what the store says it holds.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt, service_fn};
use tower_cache_layer::CacheLayer;
use tower_cache_layer::store::MemoryStore;

/// Live bytes as glibc's malloc reserves them: the usable size of every block plus its
/// 8-byte header.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe extern "C" {
    fn malloc_usable_size(ptr: *mut u8) -> usize;
}

fn cost(ptr: *mut u8) -> isize {
    // SAFETY: `ptr` was returned by the system allocator (glibc malloc) and is live.
    (unsafe { malloc_usable_size(ptr) } + 8) as isize
}

// SAFETY: every call is passed to the system allocator unchanged; only counts are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(cost(ptr), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(cost(ptr), Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let before = cost(ptr);
        // SAFETY: forwarded as is.
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            LIVE.fetch_add(cost(moved) - before, Ordering::Relaxed);
        }
        moved
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A typical cacheable origin response: 1 KiB of body and the fields servers send; without
/// `Content-Length` (as a chunked one arrives) when `sized` is false, so that the cache adds
/// the field to the map it stores.
fn origin_response(sized: bool) -> Response<Full<Bytes>> {
    let builder = Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "public, max-age=3600")
        .header("date", "Fri, 27 Nov 2026 12:00:00 GMT")
        .header("last-modified", "Thu, 26 Nov 2026 12:00:00 GMT")
        .header("etag", "\"5f3c-1a2b3c4d\"")
        .header("server", "origin/1.0")
        .header("x-request-id", "7d1c2a9e-35b4-4c7e-8e11-0b6f3f1d9a42");
    let builder = if sized {
        builder.header("content-length", "1024")
    } else {
        builder
    };
    builder
        .body(Full::new(Bytes::from(vec![b'x'; 1024])))
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn the_store_weighs_what_its_entries_cost() {
    const ENTRIES: usize = 4000;
    let store = MemoryStore::new(1 << 30);
    let layer = CacheLayer::with_store(store.clone());
    let mut svc = tower::Layer::layer(
        &layer,
        service_fn(|req: Request<Full<Bytes>>| async move {
            let sized = !req.uri().path().starts_with("/chunked/");
            Ok::<_, Infallible>(origin_response(sized))
        }),
    );
    // Warm up what is allocated once (moka's tables, the runtime's timers, the clock).
    for i in 0..64 {
        fetch(&mut svc, &format!("http://example.com/warm/{i}")).await;
    }
    store.run_pending_tasks().await;

    // Responses with `Content-Length`, then without (a field the cache adds).
    for (kind, prefix) in [("sized", "articles"), ("chunked", "chunked")] {
        let (weighed_before, live_before) = (store.weighted_size(), LIVE.load(Ordering::SeqCst));
        // A miss that stores each response, then a hit on it: what hits share with the entry
        // (reference counts made on the first clone) is part of what it costs.
        for round in 0..2 {
            for i in 0..ENTRIES {
                let url = format!("http://example.com/{prefix}/2026/11/{i:08}?ref=home");
                let body = fetch(&mut svc, &url).await;
                assert_eq!(body.len(), 1024, "{kind}, round {round}");
            }
        }
        store.run_pending_tasks().await;

        let weighed = (store.weighted_size() - weighed_before) as f64 / ENTRIES as f64;
        let live = (LIVE.load(Ordering::SeqCst) - live_before) as f64 / ENTRIES as f64;
        println!("{kind}, per entry: {live:.0} bytes allocated, {weighed:.0} bytes weighed");
        assert!(
            weighed >= live,
            "{kind}: the store weighs {weighed:.0} bytes an entry, the allocator holds {live:.0}"
        );
        assert!(
            weighed <= live * 1.25,
            "{kind}: the store weighs {weighed:.0} bytes an entry, far above the {live:.0} it holds"
        );
    }
    assert_eq!(store.entry_count(), 2 * ENTRIES as u64 + 64);
}

async fn fetch<S>(svc: &mut S, url: &str) -> Bytes
where
    S: Service<
            Request<Full<Bytes>>,
            Response = Response<tower_cache_layer::ResponseBody<Full<Bytes>>>,
        >,
    S::Error: std::fmt::Debug,
{
    let request = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    response.into_body().collect().await.unwrap().to_bytes()
}
