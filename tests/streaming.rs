//! Bodies over TCP: streamed before complete, over the size limit, failing midway.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use support::{TestBody, client, get, serve, try_send};
use tokio::sync::oneshot;
use tower_cache_layer::CacheLayer;

fn chunked(chunks: usize, size: usize) -> Response<TestBody> {
    let chunks = (0..chunks)
        .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; size]))
        .collect();
    Response::builder()
        .header("cache-control", "max-age=60")
        .body(TestBody::chunks(chunks))
        .unwrap()
}

fn expected(chunks: usize, size: usize) -> Vec<u8> {
    (0..chunks)
        .flat_map(|i| vec![b'a' + (i % 26) as u8; size])
        .collect()
}

// A miss reaches the client frame by frame: the first bytes arrive while the origin is still
// holding back the rest of the body, and the completed body is then stored.
#[tokio::test]
async fn miss_streams_before_the_body_is_complete() {
    let gate = std::sync::Arc::new(std::sync::Mutex::new(None::<oneshot::Receiver<()>>));
    let (release, held) = oneshot::channel();
    *gate.lock().unwrap() = Some(held);
    let origin_gate = gate.clone();
    let server = serve(CacheLayer::new(), move |_| {
        let chunks = vec![Bytes::from_static(b"first "), Bytes::from_static(b"second")];
        let body = match origin_gate.lock().unwrap().take() {
            Some(held) => TestBody::chunks(chunks).gated(1, held),
            None => TestBody::chunks(chunks),
        };
        Response::builder()
            .header("cache-control", "max-age=60")
            .body(body)
            .unwrap()
    })
    .await;

    let response = client()
        .request(
            Request::get(server.url("/s"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.headers()["x-cache"], "MISS");
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the first frame arrives while the origin holds the rest")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(first, "first ");
    release.send(()).unwrap();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second");

    let hit = get(&server.url("/s"), &[]).await;
    assert_eq!(
        (hit.x_cache(), &hit.body[..]),
        ("HIT", &b"first second"[..])
    );
    assert_eq!(hit.header("content-length"), Some("12"));
    assert_eq!(server.calls(), 1);
}

// A body larger than max_entry_size streams to the client whole and is not stored.
#[tokio::test]
async fn body_over_the_limit_streams_uncached() {
    let layer = CacheLayer::builder().max_entry_size(64 * 1024).build();
    let server = serve(layer, |_| chunked(20, 16 * 1024)).await;
    for _ in 0..2 {
        let r = get(&server.url("/big"), &[]).await;
        assert_eq!(r.x_cache(), "MISS");
        assert_eq!(r.body.len(), 20 * 16 * 1024);
        assert_eq!(&r.body[..], &expected(20, 16 * 1024)[..]);
    }
    assert_eq!(server.calls(), 2);
}

// With a Content-Length over the limit, the response is not even captured.
#[tokio::test]
async fn known_length_over_the_limit_is_passed_through() {
    let layer = CacheLayer::builder().max_entry_size(1000).build();
    let server = serve(layer, |_| {
        Response::builder()
            .header("cache-control", "max-age=60")
            .body(TestBody::full(vec![b'x'; 5000]))
            .unwrap()
    })
    .await;
    let r = get(&server.url("/big"), &[]).await;
    assert_eq!(r.body.len(), 5000);
    assert!(
        r.cache_status().contains("detail=too-large"),
        "{}",
        r.cache_status()
    );
    assert_eq!(get(&server.url("/big"), &[]).await.x_cache(), "MISS");
}

// A body just under the limit in many frames is stored and served whole.
#[tokio::test]
async fn multi_frame_body_is_stored_whole() {
    let layer = CacheLayer::builder().max_entry_size(64 * 1024).build();
    let server = serve(layer, |_| chunked(4, 16 * 1024)).await;
    get(&server.url("/m"), &[]).await;
    let hit = get(&server.url("/m"), &[]).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(&hit.body[..], &expected(4, 16 * 1024)[..]);
    assert_eq!(server.calls(), 1);
}

// An origin body that fails midway: the client sees a broken response, not a short body that
// looks complete, and nothing is stored.
#[tokio::test]
async fn body_error_midway_is_not_stored() {
    let server = serve(CacheLayer::new(), |_| {
        Response::builder()
            .header("cache-control", "max-age=60")
            .body(TestBody::chunks(vec![Bytes::from_static(b"partial")]).failing())
            .unwrap()
    })
    .await;
    let first = try_send(
        Request::get(server.url("/f"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert!(
        first.is_err(),
        "a truncated body must surface as an error: {first:?}"
    );
    let second = try_send(
        Request::get(server.url("/f"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert!(
        second.is_err(),
        "the partial body was not stored and served: {second:?}"
    );
    assert_eq!(server.calls(), 2);
}

// The inner service's errors reach the caller unchanged.
#[tokio::test]
async fn inner_errors_pass_through() {
    use tower::{Service, ServiceBuilder, ServiceExt};
    #[derive(Debug, PartialEq)]
    struct Boom;
    let mut svc = ServiceBuilder::new()
        .layer(CacheLayer::new())
        .service_fn(|_req: Request<Full<Bytes>>| async { Err::<Response<Full<Bytes>>, _>(Boom) });
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::get("http://h/").body(Full::default()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err, Boom);
}

/// Two GETs of `uri` through `layer` in process (hyper would not send a body whose length
/// differs from the one it announced, so these bodies cannot go over TCP), the inner service
/// answering each with `body()`: the first response's body bytes, then the second's headers
/// and body bytes.
async fn twice_in_process(
    layer: CacheLayer,
    body: impl Fn() -> TestBody + Clone + Send + 'static,
) -> (Bytes, http::HeaderMap, Bytes) {
    use tower::{ServiceBuilder, ServiceExt};
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(move |_req: Request<()>| {
            let body = body.clone();
            async move {
                Ok::<_, std::io::Error>(
                    Response::builder()
                        .header("cache-control", "max-age=60")
                        .body(body())
                        .unwrap(),
                )
            }
        }));
    let request = || Request::get("http://h.example/lying").body(()).unwrap();
    let first = service.clone().oneshot(request()).await.unwrap();
    let first = first.into_body().collect().await.unwrap().to_bytes();
    let second = service.oneshot(request()).await.unwrap();
    let (parts, body) = second.into_parts();
    assert_eq!(parts.headers["x-cache"], "HIT");
    (
        first,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

// A body that sends more than the length it announced is captured whole, past the buffer made
// for the announced length, and stored with its real length.
#[tokio::test]
async fn a_body_longer_than_announced_is_stored_as_received() {
    let body = || {
        TestBody::chunks(vec![Bytes::from_static(b"abc"), Bytes::from_static(b"def")]).with_exact(4)
    };
    let (first, headers, stored) = twice_in_process(CacheLayer::new(), body).await;
    assert_eq!(&first[..], b"abcdef");
    assert_eq!(&stored[..], b"abcdef");
    assert_eq!(headers["content-length"], "6");
}

// A body that ends before the length it announced is stored with the bytes it sent, and says
// so in its `Content-Length`: never the announced length with missing bytes.
#[tokio::test]
async fn a_body_shorter_than_announced_is_stored_as_received() {
    let body = || TestBody::chunks(vec![Bytes::from_static(b"abc")]).with_exact(10);
    let (first, headers, stored) = twice_in_process(CacheLayer::new(), body).await;
    assert_eq!(&first[..], b"abc");
    assert_eq!(&stored[..], b"abc");
    assert_eq!(headers["content-length"], "3");
}
