//! Shared by the benchmarks: the bare origin service and a client-side `fetch`.
#![allow(dead_code)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};

/// The bare origin: `body` (a reference-count clone each time) with
/// `Cache-Control: max-age=3600`.
pub fn origin(
    body: Bytes,
) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
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

/// `GET http://bench.example<path>`.
pub fn request(path: &str) -> Request<()> {
    Request::get(format!("http://bench.example{path}"))
        .body(())
        .expect("valid request")
}

/// Sends `req` through `svc` and reads the whole body, as a client would.
pub async fn fetch<S, B>(mut svc: S, req: Request<()>) -> Response<Bytes>
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = svc
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Response::from_parts(parts, body)
}
