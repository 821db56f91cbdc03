//! Fair connections in the caching proxy: at `--max-connections`, idle keep-alive connections
//! are closed to admit new clients (the least recently active first), and a connection with a
//! response in flight never is.
//!
//! `--header-read-timeout 60` throughout, so that the idle timeout cannot be what frees slots.
//!
//! `cargo test` builds the examples before running the tests; with a test filter such as
//! `--test connections` build it first: `cargo build --example caching_proxy`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

#[path = "support/proxy.rs"]
mod proxy_process;
use proxy_process::start_proxy;
#[path = "support/counting_origin.rs"]
mod counting_origin;
use counting_origin::{CountingOrigin, TempDir, gated, open_gate_and_read, read_at_least, reply};

/// What `/gated` sends at once.
const GATED_HEAD: &[u8] = b"first part;";

/// What `/gated` sends once the gate opens.
const GATED_REST: usize = 64 * 1024;

/// A counting origin: `/gated` sends [`GATED_HEAD`], then [`GATED_REST`] bytes once the gate
/// opens; anything else is answered `hello PATH`, not cacheable.
async fn start_origin() -> CountingOrigin {
    let no_store = || Response::builder().header("cache-control", "no-store");
    CountingOrigin::builder()
        .route("/gated", move |exchange| {
            let gate = exchange.gate.clone();
            gated(no_store(), GATED_HEAD, GATED_REST, gate)
        })
        .fallback(move |exchange| reply(no_store(), format!("hello {}", exchange.path())))
        .start()
        .await
}

/// A keep-alive HTTP/1.1 client connection to the proxy.
struct Client {
    sender: SendRequest<Full<Bytes>>,
    /// Ends when the proxy closes the connection.
    conn: JoinHandle<()>,
    addr: SocketAddr,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the proxy");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        Self { sender, conn, addr }
    }

    /// Sends `GET path` and waits up to `bound` for the response headers.
    async fn get(&mut self, path: &str, bound: Duration) -> Response<Incoming> {
        let req = Request::get(path)
            .header(http::header::HOST, self.addr.to_string())
            .body(Full::default())
            .expect("valid request");
        tokio::time::timeout(bound, self.sender.send_request(req))
            .await
            .unwrap_or_else(|_| panic!("no answer to GET {path} within {bound:?}"))
            .expect("a response")
    }

    /// `GET path`; asserts a 200 with body `hello PATH` within `bound`.
    async fn get_hello(&mut self, path: &str, bound: Duration) {
        let answer = tokio::time::timeout(bound, async {
            let response = self.get(path, bound).await;
            let status = response.status();
            let body = response.into_body().collect().await.expect("the body");
            (status, body.to_bytes())
        })
        .await
        .unwrap_or_else(|_| panic!("no complete answer to GET {path} within {bound:?}"));
        assert_eq!(answer.0, StatusCode::OK, "GET {path}");
        assert_eq!(answer.1, format!("hello {path}"), "GET {path}");
    }

    /// Whether the proxy has closed the connection.
    fn is_closed(&self) -> bool {
        self.conn.is_finished()
    }
}

/// 70 keep-alive connections that each sent one request and stay idle, against
/// `--max-connections 64`: every one of them and then 4 new clients are answered, because
/// idle connections are closed to make room.
#[tokio::test]
async fn idle_keep_alive_connections_make_room_for_new_clients() {
    let origin = start_origin().await;
    let dir = TempDir::new("connections");
    let proxy = start_proxy(&[
        "--origin",
        &origin.url(),
        "--max-connections",
        "64",
        "--header-read-timeout",
        "60",
        "--admin-file",
        &dir.arg("proxy.admin"),
    ])
    .await;

    let mut idle = Vec::new();
    for n in 0..70 {
        let mut client = Client::connect(proxy.addr).await;
        client
            .get_hello(&format!("/idle/{n}"), Duration::from_secs(5))
            .await;
        idle.push(client);
    }

    // Each newcomer keeps its connection open to the end, as the idle clients do: one that
    // closed after its answer would free a slot for the next newcomer, and an idle connection
    // fewer would be closed.
    let newcomers: Vec<_> = (0..4)
        .map(|n| {
            let addr = proxy.addr;
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                client
                    .get_hello(&format!("/new/{n}"), Duration::from_secs(5))
                    .await;
                client
            })
        })
        .collect();
    let mut answered = Vec::new();
    for newcomer in newcomers {
        answered.push(newcomer.await.expect("a new client was answered"));
    }
    assert_eq!(origin.hits(), 74);

    // Ten idle connections made room, and they were among the least recently active: the
    // exact order of two neighbours can differ by a scheduling hair, so allow a little slack.
    let closed = || {
        (0..idle.len())
            .filter(|&n| idle[n].is_closed())
            .collect::<Vec<_>>()
    };
    // Graceful closes finish in their own time: wait for ten (5 s at most), then a little
    // longer, so that an eleventh would show.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while closed().len() < 10 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let closed = closed();
    assert_eq!(closed.len(), 10, "closed idle connections: {closed:?}");
    assert!(
        closed.iter().all(|&n| n < 16),
        "more recently active connections were closed: {closed:?}"
    );
    assert!(
        answered.iter().all(|client| !client.is_closed()),
        "a newcomer's connection was closed"
    );
}

/// A connection with a response in flight is never closed to make room: new clients are
/// admitted by closing the idle ones, and the busy response completes in full.
#[tokio::test]
async fn a_busy_connection_is_never_closed_to_make_room() {
    let origin = start_origin().await;
    let dir = TempDir::new("connections");
    let proxy = start_proxy(&[
        "--origin",
        &origin.url(),
        "--max-connections",
        "2",
        "--header-read-timeout",
        "60",
        "--admin-file",
        &dir.arg("proxy.admin"),
    ])
    .await;
    let bound = Duration::from_secs(5);

    let mut busy = Client::connect(proxy.addr).await;
    let response = busy.get("/gated", bound).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    read_at_least(&mut body, GATED_HEAD.len()).await;

    // Each newcomer takes the idle connection's slot, never the busy one's.
    let mut previous = Client::connect(proxy.addr).await;
    previous.get_hello("/first", bound).await;
    for n in 0..3 {
        let mut next = Client::connect(proxy.addr).await;
        next.get_hello(&format!("/next/{n}"), bound).await;
        tokio::time::timeout(bound, &mut previous.conn)
            .await
            .expect("the idle connection was closed")
            .expect("connection task");
        assert!(!busy.is_closed(), "the busy connection was closed");
        previous = next;
    }

    let rest = open_gate_and_read(&origin, body).await;
    assert_eq!(rest.len(), GATED_REST);
    assert!(rest.iter().all(|&b| b == b'x'));
    assert_eq!(origin.hits(), 5);
}
