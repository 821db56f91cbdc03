//! Serving stale content: RFC 5861 stale-while-revalidate and stale-if-error, over TCP.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use http::StatusCode;
use support::{get, response, serve_dated};
use tower_cache_layer::CacheLayer;
use tower_cache_layer::clock::ManualClock;

fn clocked() -> (CacheLayer, ManualClock) {
    let clock = ManualClock::new(SystemTime::now());
    let layer = CacheLayer::builder().clock(clock.clone()).build();
    (layer, clock)
}

/// Waits (bounded) until `cond` holds; background work has no other completion signal.
/// An inner service behind `layer` that answers `kept` with `cache_control` to its first
/// call (counted in `calls`) and fails with "origin unreachable" after that.
fn kept_then_erring(
    layer: CacheLayer,
    cache_control: &'static str,
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<
    http::Request<http_body_util::Full<bytes::Bytes>>,
    Response = http::Response<tower_cache_layer::ResponseBody<http_body_util::Full<bytes::Bytes>>>,
    Error = &'static str,
> {
    tower::ServiceBuilder::new().layer(layer).service_fn(
        move |_req: http::Request<http_body_util::Full<bytes::Bytes>>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Ok(http::Response::builder()
                        .header("cache-control", cache_control)
                        .body(http_body_util::Full::from("kept"))
                        .unwrap())
                } else {
                    Err("origin unreachable")
                }
            }
        },
    )
}

async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}

// RFC 5861 §3: within stale-while-revalidate, the stale response is served at once and
// revalidated once in the background; the next request gets the new response.
#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let (layer, clock) = clocked();
    let version = Arc::new(AtomicUsize::new(1));
    let v = version.clone();
    let server = serve_dated(layer, clock.clone(), move |_| {
        let body: &'static str = if v.load(Ordering::SeqCst) == 1 {
            "old"
        } else {
            "new"
        };
        response(
            &[("cache-control", "max-age=1, stale-while-revalidate=60")],
            body,
        )
    })
    .await;
    get(&server.url("/w"), &[]).await;
    version.store(2, Ordering::SeqCst);
    clock.advance(Duration::from_secs(5));

    let stale = get(&server.url("/w"), &[]).await;
    assert_eq!((stale.x_cache(), &stale.body[..]), ("HIT", &b"old"[..]));
    // RFC 9211 §2.1: answered from the store without waiting for the origin: a hit.
    assert!(
        stale.cache_status().contains("; hit;")
            && stale.cache_status().contains("stale-while-revalidate"),
        "{}",
        stale.cache_status()
    );
    eventually(|| server.calls() == 2).await;
    // Let the background task store the new response.
    let mut refreshed = get(&server.url("/w"), &[]).await;
    for _ in 0..100 {
        if refreshed.body == "new" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        refreshed = get(&server.url("/w"), &[]).await;
    }
    assert_eq!(
        (refreshed.x_cache(), &refreshed.body[..]),
        ("HIT", &b"new"[..])
    );
    assert_eq!(server.calls(), 2);
}

// Only one background revalidation per key runs at a time.
#[tokio::test]
async fn stale_while_revalidate_is_single_flight() {
    let (layer, clock) = clocked();
    let gate = Arc::new(std::sync::Mutex::new(
        None::<tokio::sync::oneshot::Receiver<()>>,
    ));
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let origin_gate = gate.clone();
    let server = serve_dated(layer, clock.clone(), move |_| {
        let mut r = response(
            &[("cache-control", "max-age=1, stale-while-revalidate=60")],
            "v",
        );
        // The revalidation's body is held back until released, so it stays in flight while
        // the other requests arrive.
        if let Some(held) = origin_gate.lock().unwrap().take() {
            let body = std::mem::replace(r.body_mut(), support::TestBody::empty());
            *r.body_mut() = body.gated(0, held);
        }
        r
    })
    .await;
    get(&server.url("/sf"), &[]).await;
    *gate.lock().unwrap() = Some(held);
    clock.advance(Duration::from_secs(5));
    for _ in 0..5 {
        assert_eq!(get(&server.url("/sf"), &[]).await.x_cache(), "HIT");
    }
    eventually(|| server.calls() >= 2).await;
    release.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        server.calls(),
        2,
        "one background revalidation for five stale hits"
    );
}

// RFC 5861 §4: when the origin answers 5xx, a stale response within stale-if-error is served.
#[tokio::test]
async fn stale_if_error_covers_origin_errors() {
    let (layer, clock) = clocked();
    let failing = Arc::new(AtomicUsize::new(0));
    let f = failing.clone();
    let server = serve_dated(layer, clock.clone(), move |req| {
        let mut r = match req.uri().path() {
            "/sie" => response(&[("cache-control", "max-age=1, stale-if-error=60")], "good"),
            _ => response(
                &[(
                    "cache-control",
                    "max-age=1, stale-if-error=60, must-revalidate",
                )],
                "good",
            ),
        };
        if f.load(Ordering::SeqCst) == 1 {
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        r
    })
    .await;
    get(&server.url("/sie"), &[]).await;
    get(&server.url("/strict"), &[]).await;
    failing.store(1, Ordering::SeqCst);
    clock.advance(Duration::from_secs(10));

    let covered = get(&server.url("/sie"), &[]).await;
    assert_eq!(
        (
            covered.status.as_u16(),
            covered.x_cache(),
            &covered.body[..]
        ),
        (200, "HIT", &b"good"[..])
    );
    assert!(
        covered.cache_status().contains("fwd-status=503"),
        "{}",
        covered.cache_status()
    );

    // RFC 9111 §5.2.2.2: must-revalidate forbids it.
    let strict = get(&server.url("/strict"), &[]).await;
    assert_eq!((strict.status.as_u16(), strict.x_cache()), (503, "MISS"));

    // Past the window, the error goes through.
    clock.advance(Duration::from_secs(120));
    assert_eq!(get(&server.url("/sie"), &[]).await.status, 503);
}

// RFC 5861 §4: an inner service error is covered too.
#[tokio::test]
async fn stale_if_error_covers_inner_service_errors() {
    use http::Request;
    use http_body_util::{BodyExt, Full};
    use tower::{Service, ServiceExt};

    let clock = ManualClock::new(SystemTime::now());
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    // Only stale-if-error here: serving stale when the origin is unreachable is off.
    let layer = CacheLayer::builder()
        .clock(clock.clone())
        .max_stale_if_unreachable(Duration::ZERO)
        .build();
    let mut svc = kept_then_erring(layer, "max-age=1, stale-if-error=60", c);
    let req = || Request::get("http://h/e").body(Full::default()).unwrap();
    let first = svc.ready().await.unwrap().call(req()).await.unwrap();
    first.into_body().collect().await.unwrap();
    clock.advance(Duration::from_secs(5));
    let stale = svc.ready().await.unwrap().call(req()).await.unwrap();
    assert_eq!(stale.headers()["x-cache"], "HIT");
    assert_eq!(
        stale.into_body().collect().await.unwrap().to_bytes(),
        "kept"
    );
    clock.advance(Duration::from_secs(100));
    let err = svc.ready().await.unwrap().call(req()).await.unwrap_err();
    assert_eq!(err.to_string(), "origin unreachable");
}

// RFC 9111 §4.2.4: a response the inner service marked `OriginUnreachable` lets the cache
// serve stale up to `max_stale_if_unreachable`; past it, the marked response is passed on,
// not stored, with no `fwd-status` (RFC 9211 §2.3).
#[tokio::test]
async fn stale_served_while_the_origin_is_unreachable_up_to_the_bound() {
    use tower_cache_layer::OriginUnreachable;

    let clock = ManualClock::new(SystemTime::now());
    let layer = CacheLayer::builder()
        .clock(clock.clone())
        .max_stale_if_unreachable(Duration::from_secs(600))
        .build();
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = down.clone();
    let server = serve_dated(layer, clock.clone(), move |_| {
        if d.load(Ordering::SeqCst) {
            let mut r = response(&[], "bad gateway");
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r.extensions_mut().insert(OriginUnreachable);
            r
        } else {
            response(&[("cache-control", "max-age=10")], "kept")
        }
    })
    .await;
    get(&server.url("/u"), &[]).await;
    down.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(300));

    let stale = get(&server.url("/u"), &[]).await;
    assert_eq!(
        (stale.status, &stale.body[..]),
        (StatusCode::OK, &b"kept"[..])
    );
    assert_eq!(stale.x_cache(), "HIT");
    assert!(
        stale.cache_status().contains("fwd=stale")
            && stale.cache_status().contains("detail=origin-unreachable"),
        "{}",
        stale.cache_status()
    );

    clock.advance(Duration::from_secs(600));
    let gone = get(&server.url("/u"), &[]).await;
    assert_eq!(gone.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        gone.cache_status(),
        "tower-cache-layer; fwd=stale; detail=origin-unreachable"
    );
    assert_eq!(server.calls(), 3);
}

// RFC 9111 §4.2.4: an error from the inner service is "unreachable" too.
#[tokio::test]
async fn stale_served_when_the_inner_service_errs() {
    use http::Request;
    use http_body_util::{BodyExt, Full};
    use tower::{Service, ServiceExt};

    let clock = ManualClock::new(SystemTime::now());
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let layer = CacheLayer::builder().clock(clock.clone()).build();
    let mut svc = kept_then_erring(layer, "max-age=1", c);
    let req = || Request::get("http://h/e").body(Full::default()).unwrap();
    let first = svc.ready().await.unwrap().call(req()).await.unwrap();
    first.into_body().collect().await.unwrap();
    clock.advance(Duration::from_secs(60));
    let stale = svc.ready().await.unwrap().call(req()).await.unwrap();
    assert_eq!(stale.headers()["x-cache"], "HIT");
    assert!(
        stale.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("detail=origin-unreachable")
    );
    // Past the default bound of one hour: the error.
    clock.advance(Duration::from_secs(3600));
    let err = svc.ready().await.unwrap().call(req()).await.unwrap_err();
    assert_eq!(err.to_string(), "origin unreachable");
}
