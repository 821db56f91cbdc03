//! Collapsed forwarding and the capture budget, over TCP with a counting origin.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use support::{TestBody, client, get, serve, try_send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tower_cache_layer::CacheLayer;

/// Gates for the origin's bodies: the n-th response waits on the n-th gate, if there is one.
#[derive(Clone, Default)]
struct Gates(Arc<Mutex<Vec<Option<oneshot::Receiver<()>>>>>);

impl Gates {
    fn add(&self) -> oneshot::Sender<()> {
        let (release, held) = oneshot::channel();
        self.0.lock().unwrap().push(Some(held));
        release
    }

    fn body(&self, call: usize, chunks: Vec<Bytes>) -> TestBody {
        let held = self.0.lock().unwrap().get_mut(call).and_then(Option::take);
        match held {
            Some(held) => TestBody::chunks(chunks).gated(1, held),
            None => TestBody::chunks(chunks),
        }
    }
}

fn hello_world() -> Vec<Bytes> {
    vec![Bytes::from_static(b"hello "), Bytes::from_static(b"world")]
}

/// Serves `layer` around an origin answering `chunks` with `cache_control`; its n-th response
/// (counting from 0) is held after its first chunk until the n-th gate of `gates` is released.
async fn gated_origin(
    layer: CacheLayer,
    gates: &Gates,
    cache_control: &'static str,
    chunks: Vec<Bytes>,
) -> support::Server {
    let gates = gates.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    serve(layer, move |_| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        Response::builder()
            .header("cache-control", cache_control)
            .body(gates.body(call, chunks.clone()))
            .unwrap()
    })
    .await
}

/// Waits (bounded) until `cond` holds.
async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}

// A burst of 1,000 concurrent requests for one cold URL reaches the origin once; everyone gets
// the whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_for_one_cold_url_reaches_the_origin_once() {
    let gates = Gates::default();
    let release = gates.add();
    let server = gated_origin(CacheLayer::new(), &gates, "max-age=60", hello_world()).await;

    let url = server.url("/cold");
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let url = url.clone();
        requests.spawn(async move { get(&url, &[]).await });
    }
    // The origin holds its one response back while the crowd arrives.
    eventually(|| server.calls() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    release.send(()).unwrap();

    let (mut misses, mut collapsed) = (0, 0);
    while let Some(seen) = requests.join_next().await {
        let seen = seen.unwrap();
        assert_eq!(seen.status, 200);
        assert_eq!(seen.body, "hello world");
        if seen.x_cache() == "MISS" {
            misses += 1;
        }
        if seen.cache_status().contains("collapsed") {
            collapsed += 1;
        }
    }
    assert_eq!(server.calls(), 1, "one request reached the origin");
    assert_eq!(misses, 1);
    assert!(collapsed > 0, "waiting requests are marked collapsed");
}

// A key whose response cannot be stored is remembered: its requests then go forward side by
// side instead of waiting for one another (hit-for-miss).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncacheable_keys_do_not_serialize_requests() {
    let gates = Gates::default();
    let server = gated_origin(CacheLayer::new(), &gates, "no-store", hello_world()).await;
    let url = server.url("/private");
    // The first response teaches the cache that this key is not storable.
    assert_eq!(get(&url, &[]).await.body, "hello world");

    // Two requests whose responses are both held back until both reached the origin: they
    // can only complete if they were forwarded concurrently.
    let releases = [gates.add(), gates.add()];
    gates.0.lock().unwrap().insert(0, None);
    let a = tokio::spawn({
        let url = url.clone();
        async move { get(&url, &[]).await }
    });
    let b = tokio::spawn({
        let url = url.clone();
        async move { get(&url, &[]).await }
    });
    eventually(|| server.calls() == 3).await;
    for release in releases {
        release.send(()).unwrap();
    }
    for seen in [a.await.unwrap(), b.await.unwrap()] {
        assert_eq!(
            (seen.x_cache(), &seen.body[..]),
            ("MISS", &b"hello world"[..])
        );
        assert!(!seen.cache_status().contains("collapsed"));
    }
}

// The leading request's client goes away mid-body: nothing partial is stored, a waiting
// request takes over, and every waiter gets the whole response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_takes_over_when_the_leader_is_cancelled() {
    let gates = Gates::default();
    let _held_forever = gates.add();
    let server = gated_origin(CacheLayer::new(), &gates, "max-age=60", hello_world()).await;

    // The leader: a raw client that reads the start of the response, then hangs up.
    let mut leader = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    leader
        .write_all(b"GET /taken-over HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = leader.read(&mut buf).await.unwrap();
    assert!(n > 0);
    eventually(|| server.calls() == 1).await;

    let url = format!("http://{}/taken-over", server.addr);
    let mut waiters = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let request = Request::get(url.clone())
            .header("host", "test")
            .body(Full::default())
            .unwrap();
        waiters.spawn(async move { try_send(request).await });
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(leader);

    while let Some(seen) = waiters.join_next().await {
        let seen = seen.unwrap().expect("waiters get an answer");
        assert_eq!(
            (seen.status.as_u16(), &seen.body[..]),
            (200, &b"hello world"[..])
        );
    }
    assert_eq!(server.calls(), 2, "the cancelled fetch, then one take-over");
}

// A waiter gives up after the configured time and fetches on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_gives_up_after_the_collapse_timeout() {
    let gates = Gates::default();
    let _held_forever = gates.add();
    let layer = CacheLayer::builder()
        .collapse_requests(Some(Duration::from_millis(200)))
        .build();
    let server = gated_origin(layer, &gates, "max-age=60", hello_world()).await;
    let stuck = client().request(
        Request::get(server.url("/slow"))
            .body(Full::default())
            .unwrap(),
    );
    let stuck = tokio::spawn(stuck);
    eventually(|| server.calls() == 1).await;
    let waiter = get(&server.url("/slow"), &[]).await;
    assert_eq!(
        (waiter.x_cache(), &waiter.body[..]),
        ("MISS", &b"hello world"[..])
    );
    assert_eq!(server.calls(), 2);
    stuck.abort();
}

// The bytes captured by misses in flight are bounded: a miss past the budget still streams
// whole to its client, uncached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_budget_bounds_concurrent_misses() {
    let gates = Gates::default();
    let releases = [gates.add(), gates.add()];
    let layer = CacheLayer::builder().max_capture_bytes(10_000).build();
    let chunks = vec![Bytes::from(vec![b'x'; 8_000]), Bytes::from_static(b"end")];
    let server = gated_origin(layer, &gates, "max-age=60", chunks).await;
    let a = tokio::spawn(get_owned(server.url("/a")));
    eventually(|| server.calls() == 1).await;
    let b = tokio::spawn(get_owned(server.url("/b")));
    eventually(|| server.calls() == 2).await;
    // Both have sent their first 8,000 bytes: only one fits the 10,000-byte budget.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for release in releases {
        release.send(()).unwrap();
    }
    for seen in [a.await.unwrap(), b.await.unwrap()] {
        assert_eq!(seen.body.len(), 8_003);
    }
    let hits = [
        get(&server.url("/a"), &[]).await,
        get(&server.url("/b"), &[]).await,
    ]
    .iter()
    .filter(|seen| seen.x_cache() == "HIT")
    .count();
    assert_eq!(
        hits, 1,
        "one capture fit the budget, the other streamed uncached"
    );
}

async fn get_owned(url: String) -> support::Seen {
    get(&url, &[]).await
}

// Requests with `Authorization` get answers a shared cache rarely may reuse (RFC 9111 §3.5):
// they go forward side by side, never queued behind one another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_requests_are_not_collapsed() {
    let gates = Gates::default();
    let releases = [gates.add(), gates.add()];
    let server = gated_origin(CacheLayer::new(), &gates, "max-age=60", hello_world()).await;
    let url = server.url("/account");
    let request = |user: &'static str| {
        let url = url.clone();
        async move { get(&url, &[("authorization", user)]).await }
    };
    let a = tokio::spawn(request("Bearer alice"));
    let b = tokio::spawn(request("Bearer bob"));
    // Both held at the origin at once: only possible if neither waited for the other.
    eventually(|| server.calls() == 2).await;
    for release in releases {
        release.send(()).unwrap();
    }
    for seen in [a.await.unwrap(), b.await.unwrap()] {
        assert_eq!(
            (seen.x_cache(), &seen.body[..]),
            ("MISS", &b"hello world"[..])
        );
    }
}
