//! Invalidation by unsafe methods (RFC 9111 §4.4), over TCP.

mod support;

use http::{Method, Request, StatusCode};
use http_body_util::Full;
use support::{get, response, send, serve};
use tower_cache_layer::CacheLayer;

async fn unsafe_request(method: Method, url: &str) -> support::Seen {
    send(
        Request::builder()
            .method(method)
            .uri(url)
            .body(Full::from("x"))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_target() {
    let server = serve(CacheLayer::new(), |req| {
        let mut r = response(&[("cache-control", "max-age=60")], "x");
        if req.uri().path() == "/fails" && req.method() != Method::GET {
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        r
    })
    .await;
    for method in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::from_bytes(b"PURGEIT").unwrap(),
    ] {
        get(&server.url("/t"), &[]).await;
        assert_eq!(get(&server.url("/t"), &[]).await.x_cache(), "HIT");
        let r = unsafe_request(method.clone(), &server.url("/t")).await;
        assert_eq!(r.x_cache(), "MISS");
        assert_eq!(
            get(&server.url("/t"), &[]).await.x_cache(),
            "MISS",
            "{method}"
        );
    }
    // An error response does not invalidate.
    get(&server.url("/fails"), &[]).await;
    unsafe_request(Method::POST, &server.url("/fails")).await;
    assert_eq!(get(&server.url("/fails"), &[]).await.x_cache(), "HIT");
    // Safe methods do not invalidate.
    get(&server.url("/safe"), &[]).await;
    unsafe_request(Method::OPTIONS, &server.url("/safe")).await;
    assert_eq!(get(&server.url("/safe"), &[]).await.x_cache(), "HIT");
}

// RFC 9111 §4.4: Location and Content-Location on the same origin are invalidated too; other
// origins are not.
#[tokio::test]
async fn location_and_content_location_are_invalidated_on_the_same_origin() {
    let server = serve(CacheLayer::new(), |req| {
        if req.method() == Method::POST {
            let mut r = response(
                &[("location", "/created"), ("content-location", "other/item")],
                "",
            );
            *r.status_mut() = StatusCode::CREATED;
            return r;
        }
        if req.method() == Method::PUT {
            return response(&[("location", "http://elsewhere.example/created")], "");
        }
        response(&[("cache-control", "max-age=60")], "x")
    })
    .await;
    for path in ["/created", "/dir/other/item", "/dir/post"] {
        get(&server.url(path), &[]).await;
    }
    unsafe_request(Method::PUT, &server.url("/dir/put")).await;
    assert_eq!(get(&server.url("/created"), &[]).await.x_cache(), "HIT");
    unsafe_request(Method::POST, &server.url("/dir/post")).await;
    assert_eq!(get(&server.url("/created"), &[]).await.x_cache(), "MISS");
    assert_eq!(
        get(&server.url("/dir/other/item"), &[]).await.x_cache(),
        "MISS"
    );
    assert_eq!(get(&server.url("/dir/post"), &[]).await.x_cache(), "MISS");
}
