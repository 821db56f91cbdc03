//! Read-while-write, over TCP with a counting origin: requests that collapse onto a miss
//! stream the leader's body as it arrives, instead of waiting for it to be stored.
//!
//! The origin holds its body back on a gate the test releases: a follower that had to wait
//! for the store would never see a byte before the release, so the tests need no timing.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use support::{Server, TestBody, client, get, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tower_cache_layer::CacheLayer;

/// 64 chunks of 64 KiB: a 4 MiB body, each chunk a different byte.
const CHUNKS: usize = 64;
const CHUNK: usize = 64 * 1024;
/// The chunks the origin sends before it waits for the gate.
const BEFORE_GATE: usize = 8;
/// A bound on every wait, so that a broken cache fails the test instead of hanging it; never
/// an assertion about how long anything takes.
const BOUND: Duration = Duration::from_secs(30);

fn chunks() -> Vec<Bytes> {
    (0..CHUNKS)
        .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; CHUNK]))
        .collect()
}

fn whole() -> Vec<u8> {
    chunks().concat()
}

/// An origin whose first body is `first` (held on `gate` after `BEFORE_GATE` chunks), and
/// whose later ones are the whole body at once; every body announces the whole length.
async fn origin(first: TestBody, gate: oneshot::Receiver<()>) -> Server {
    let first = Arc::new(Mutex::new(Some(first.gated(BEFORE_GATE, gate))));
    serve(CacheLayer::new(), move |_| {
        let body = first
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(|| TestBody::chunks(chunks()));
        Response::builder()
            .header("cache-control", "max-age=60")
            .body(body.with_exact((CHUNKS * CHUNK) as u64))
            .unwrap()
    })
    .await
}

/// Sends `GET url` and returns the response once its head arrived (bounded by [`BOUND`]).
async fn start(url: &str) -> Response<Incoming> {
    start_with(url, &[]).await
}

/// [`start`] with extra header fields.
async fn start_with(url: &str, headers: &[(&str, &str)]) -> Response<Incoming> {
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::default()).unwrap();
    tokio::time::timeout(BOUND, client().request(request))
        .await
        .expect("the response head arrives")
        .expect("the request succeeds")
}

/// Reads `body` until it has at least `at_least` bytes (bounded by [`BOUND`]).
async fn read_at_least(body: &mut Incoming, at_least: usize) -> Vec<u8> {
    let mut read = Vec::new();
    while read.len() < at_least {
        let frame = tokio::time::timeout(BOUND, body.frame())
            .await
            .expect("the bytes arrive while the origin is held")
            .expect("the body goes on")
            .expect("the body is not cut");
        if let Ok(data) = frame.into_data() {
            read.extend_from_slice(&data);
        }
    }
    read
}

/// The rest of `body`: `Err` when it was cut.
async fn read_rest(body: Incoming) -> Result<Bytes, hyper::Error> {
    tokio::time::timeout(BOUND, body.collect())
        .await
        .expect("the body ends")
        .map(http_body_util::Collected::to_bytes)
}

// A request that collapses onto a miss gets the leader's first bytes while the origin is still
// holding back the rest: they reach it as they reach the leader, not once the body is stored.
// Then both get the whole body, the origin saw one request, and the body is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_streams_the_leaders_body_as_it_arrives() {
    let (release, gate) = oneshot::channel();
    let server = origin(TestBody::chunks(chunks()), gate).await;
    let url = server.url("/big");

    let leader = start(&url).await;
    assert_eq!(leader.headers()["x-cache"], "MISS");
    let mut leader = leader.into_body();
    let before_gate = BEFORE_GATE * CHUNK;
    let leader_first = read_at_least(&mut leader, before_gate).await;

    let follower = start(&url).await;
    assert_eq!(follower.status(), 200);
    assert_eq!(
        follower.headers()["content-length"],
        (CHUNKS * CHUNK).to_string()
    );
    let cache_status = follower.headers()["cache-status"].to_str().unwrap();
    assert!(cache_status.contains("collapsed"), "{cache_status}");
    let mut follower = follower.into_body();
    // The origin is still held: the follower reads what the leader received so far.
    let follower_first = read_at_least(&mut follower, before_gate).await;
    assert_eq!(server.calls(), 1);
    assert_eq!(follower_first[..before_gate], whole()[..before_gate]);
    assert_eq!(leader_first[..before_gate], whole()[..before_gate]);

    release.send(()).unwrap();
    let leader_body = [leader_first, read_rest(leader).await.unwrap().to_vec()].concat();
    let follower_body = [follower_first, read_rest(follower).await.unwrap().to_vec()].concat();
    assert_eq!(leader_body, whole());
    assert_eq!(follower_body, whole());
    assert_eq!(server.calls(), 1, "one request reached the origin");

    // Stored as before (when the last byte passed the leader's capture): the next request is
    // a hit.
    let hit = get(&url, &[]).await;
    assert_eq!((hit.x_cache(), hit.body.len()), ("HIT", CHUNKS * CHUNK));
    assert_eq!(server.calls(), 1);
}

// The origin fails mid-body: the follower's body is cut (an error, never a short body taken
// for the whole), nothing is stored, and the next request goes to the origin again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_failing_mid_body_cuts_the_followers() {
    let (release, gate) = oneshot::channel();
    let first = TestBody::chunks(chunks()[..BEFORE_GATE + 2].to_vec()).failing();
    let server = origin(first, gate).await;
    let url = server.url("/fails");

    let mut leader = start(&url).await.into_body();
    let _ = read_at_least(&mut leader, CHUNK).await;
    let mut follower = start(&url).await.into_body();
    let follower_first = read_at_least(&mut follower, CHUNK).await;
    assert_eq!(follower_first[..CHUNK], whole()[..CHUNK]);

    release.send(()).unwrap();
    assert!(
        read_rest(follower).await.is_err(),
        "the follower's body is cut"
    );
    assert!(read_rest(leader).await.is_err(), "the leader's body is cut");

    let next = get(&url, &[]).await;
    assert_eq!(next.x_cache(), "MISS");
    assert_eq!(next.body, whole());
    assert_eq!(server.calls(), 2);
}

// The leader's client goes away mid-body: the capture stops with it, so the follower reading
// the same body is cut cleanly (it does not hang), and the next request fetches again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_hangs_up_cuts_the_followers() {
    let (_held, gate) = oneshot::channel();
    let server = origin(TestBody::chunks(chunks()), gate).await;

    // The leader: a raw client that reads the start of the response, then hangs up.
    let mut leader = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    leader
        .write_all(b"GET /gone HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(leader.read(&mut buf).await.unwrap() > 0);

    let url = format!("http://{}/gone", server.addr);
    let request = Request::get(&url)
        .header("host", "test")
        .body(Full::default())
        .unwrap();
    let follower = tokio::time::timeout(BOUND, client().request(request))
        .await
        .unwrap()
        .unwrap();
    assert!(
        follower.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("collapsed")
    );
    let mut follower = follower.into_body();
    let _ = read_at_least(&mut follower, CHUNK).await;
    drop(leader);
    assert!(
        read_rest(follower).await.is_err(),
        "the follower's body is cut"
    );

    let request = Request::get(&url)
        .header("host", "test")
        .body(Full::default())
        .unwrap();
    let next = support::send(request).await;
    assert_eq!(next.body, whole());
    assert_eq!(server.calls(), 2);
}

// A follower asking for a range gets it from the leader's body as it arrives (RFC 9110 §14.2),
// as it would from the stored response: here whole while the origin still holds the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_gets_its_range_from_the_leaders_body() {
    let (release, gate) = oneshot::channel();
    let server = origin(TestBody::chunks(chunks()), gate).await;
    let url = server.url("/ranged");

    let mut leader = start(&url).await.into_body();
    let leader_first = read_at_least(&mut leader, CHUNK).await;
    let first = CHUNK + 10;
    let range = format!("bytes={first}-{}", first + 99);
    let follower = start_with(&url, &[("range", &range)]).await;
    assert_eq!(follower.status(), 206);
    assert_eq!(
        follower.headers()["content-range"],
        format!("bytes {first}-{}/{}", first + 99, CHUNKS * CHUNK)
    );
    // Complete before the origin sends the rest.
    let part = read_rest(follower.into_body()).await.unwrap();
    assert_eq!(part, whole()[first..first + 100]);

    release.send(()).unwrap();
    let rest = read_rest(leader).await.unwrap();
    assert_eq!([leader_first, rest.to_vec()].concat(), whole());
    assert_eq!(server.calls(), 1);
}

// RFC 9111 §4.1: a follower whose request selects another variant than the leader's response
// is not answered from it: it waits for that response to be stored, then goes forward.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_of_another_variant_goes_forward() {
    let (release, gate) = oneshot::channel();
    let gate = Arc::new(Mutex::new(Some(gate)));
    let server = serve(CacheLayer::new(), move |req| {
        let encoding = req.headers()["accept-encoding"].to_str().unwrap();
        let body = format!("for {encoding}");
        let len = body.len() as u64;
        let chunks = vec![
            Bytes::from_static(b"for "),
            Bytes::from(body[4..].to_owned()),
        ];
        let body = match gate.lock().unwrap().take() {
            Some(gate) => TestBody::chunks(chunks).gated(1, gate),
            None => TestBody::chunks(chunks),
        };
        Response::builder()
            .header("cache-control", "max-age=60")
            .header("vary", "accept-encoding")
            .body(body.with_exact(len))
            .unwrap()
    })
    .await;
    let url = server.url("/negotiated");

    let mut leader = start_with(&url, &[("accept-encoding", "gzip")])
        .await
        .into_body();
    let _ = read_at_least(&mut leader, 1).await;
    let follower = tokio::spawn({
        let url = url.clone();
        async move { get(&url, &[("accept-encoding", "br")]).await }
    });
    // Time for the follower to join the flight (the test holds either way).
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.send(()).unwrap();
    assert_eq!(read_rest(leader).await.unwrap(), "gzip");

    let follower = follower.await.unwrap();
    assert_eq!(
        (follower.x_cache(), &follower.body[..]),
        ("MISS", &b"for br"[..])
    );
    assert!(!follower.cache_status().contains("collapsed"));
    assert_eq!(server.calls(), 2);
}

// A follower never waits without bound: when the leader's body makes no progress for the
// collapse timeout, the follower's body is cut (the leader's is the origin's to end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_of_a_stalled_leader_is_cut_after_the_collapse_timeout() {
    let (_held_forever, gate) = oneshot::channel();
    let first = Arc::new(Mutex::new(Some(TestBody::chunks(chunks()).gated(1, gate))));
    let layer = CacheLayer::builder()
        .collapse_requests(Some(Duration::from_millis(200)))
        .build();
    let server = serve(layer, move |_| {
        let body = first.lock().unwrap().take().expect("one request");
        Response::builder()
            .header("cache-control", "max-age=60")
            .body(body.with_exact((CHUNKS * CHUNK) as u64))
            .unwrap()
    })
    .await;
    let url = server.url("/stalled");

    let mut leader = start(&url).await.into_body();
    let _ = read_at_least(&mut leader, CHUNK).await;
    let mut follower = start(&url).await.into_body();
    assert_eq!(read_at_least(&mut follower, CHUNK).await, whole()[..CHUNK]);
    assert!(
        read_rest(follower).await.is_err(),
        "the follower's body is cut"
    );
    assert_eq!(server.calls(), 1);
}
