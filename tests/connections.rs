//! Fair connections in the caching proxy: at `--max-connections`, idle keep-alive connections
//! are closed to admit new clients (the least recently active first), and a connection with a
//! response in flight never is.
//!
//! `--header-read-timeout 60` throughout, so that the idle timeout cannot be what frees slots.
//!
//! `cargo test` builds the examples before running the tests; with a test filter such as
//! `--test connections` build it first: `cargo build --example caching_proxy`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

#[path = "support/proxy.rs"]
mod proxy_process;
use proxy_process::start_proxy;

/// What `/gated` sends at once.
const GATED_HEAD: &[u8] = b"first part;";

/// What `/gated` sends once the gate opens.
const GATED_REST: usize = 64 * 1024;

/// A counting origin: `/gated` sends [`GATED_HEAD`], then [`GATED_REST`] bytes once the gate
/// opens; anything else is answered `hello PATH`, not cacheable.
struct Origin {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl Origin {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A response body fed through a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|data| data.map(|d| Ok(Frame::data(d))))
    }
}

async fn start_origin() -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the origin");
    let addr = listener.local_addr().expect("origin address");
    let hits = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (task_hits, task_gate) = (Arc::clone(&hits), Arc::clone(&gate));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (hits, gate) = (Arc::clone(&task_hits), Arc::clone(&task_gate));
            let service = service_fn(move |req: Request<Incoming>| {
                hits.fetch_add(1, Ordering::SeqCst);
                let gate = Arc::clone(&gate);
                async move {
                    let builder = Response::builder().header("cache-control", "no-store");
                    let response: Response<BoxBody<Bytes, Infallible>> =
                        if req.uri().path() == "/gated" {
                            let (tx, rx) = mpsc::channel(1);
                            tokio::spawn(async move {
                                let _ = tx.send(Bytes::from_static(GATED_HEAD)).await;
                                if let Ok(permit) = gate.acquire().await {
                                    permit.forget();
                                }
                                let _ = tx.send(Bytes::from(vec![b'x'; GATED_REST])).await;
                            });
                            builder
                                .header("content-length", GATED_HEAD.len() + GATED_REST)
                                .body(ChannelBody(rx).boxed())
                        } else {
                            builder.body(Full::from(format!("hello {}", req.uri().path())).boxed())
                        }
                        .expect("valid response");
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Origin { addr, hits, gate }
}

/// A temporary directory for the proxy's admin file (not under the real `$HOME`), removed
/// when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tower-cache-layer-test-connections-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    fn admin_file(&self) -> String {
        let path = self.0.join("proxy.admin");
        path.to_str().expect("a UTF-8 temp dir").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
    let dir = TempDir::new();
    let proxy = start_proxy(&[
        "--origin",
        &origin.url(),
        "--max-connections",
        "64",
        "--header-read-timeout",
        "60",
        "--admin-file",
        &dir.admin_file(),
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

    let newcomers: Vec<_> = (0..4)
        .map(|n| {
            let addr = proxy.addr;
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                client
                    .get_hello(&format!("/new/{n}"), Duration::from_secs(5))
                    .await;
            })
        })
        .collect();
    for newcomer in newcomers {
        newcomer.await.expect("a new client was answered");
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
}

/// A connection with a response in flight is never closed to make room: new clients are
/// admitted by closing the idle ones, and the busy response completes in full.
#[tokio::test]
async fn a_busy_connection_is_never_closed_to_make_room() {
    let origin = start_origin().await;
    let dir = TempDir::new();
    let proxy = start_proxy(&[
        "--origin",
        &origin.url(),
        "--max-connections",
        "2",
        "--header-read-timeout",
        "60",
        "--admin-file",
        &dir.admin_file(),
    ])
    .await;
    let bound = Duration::from_secs(5);

    let mut busy = Client::connect(proxy.addr).await;
    let response = busy.get("/gated", bound).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = Vec::new();
    while received.len() < GATED_HEAD.len() {
        let frame = tokio::time::timeout(bound, body.frame())
            .await
            .expect("the first part within 5s")
            .expect("the first part")
            .expect("no body error");
        if let Ok(data) = frame.into_data() {
            received.extend_from_slice(&data);
        }
    }

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

    origin.gate.add_permits(1);
    let rest = tokio::time::timeout(bound, body.collect())
        .await
        .expect("the rest of the body within 5s")
        .expect("the rest of the body, complete")
        .to_bytes();
    assert_eq!(rest.len(), GATED_REST);
    assert!(rest.iter().all(|&b| b == b'x'));
    assert_eq!(origin.hits(), 5);
}
