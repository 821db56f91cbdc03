//! Failure handling of `examples/caching_proxy/`, end to end over TCP: the built example binary
//! runs as a child process in front of origins that fail in various ways, most of them raw
//! `TcpListener`s that write exactly the bytes a test needs (a body cut short, a chunked body
//! without its last chunk, no answer at all).
//!
//! Each test asserts what the client receives (status, body bytes, or that the message was
//! incomplete), how many requests reached the origin (a broken response is never stored, so
//! the next request goes to the origin again) and, where it matters, that the proxy let go of
//! the origin's connection.
//!
//! `cargo test` builds the examples before running the tests; with a test filter such as
//! `--test resilience` build it first: `cargo build --example caching_proxy`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Upper bound for anything a test waits for; every wait here is far shorter in practice.
const BOUND: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// The proxy process (as in `tests/proxy_cli.rs`)
// ---------------------------------------------------------------------------------------------

#[path = "support/proxy.rs"]
mod proxy_process;
use proxy_process::{Proxy, start_proxy};

// ---------------------------------------------------------------------------------------------
// A raw origin
// ---------------------------------------------------------------------------------------------

/// An origin on `127.0.0.1:0` that reads each connection's request head and hands the socket
/// to a handler, which writes whatever bytes the test needs.
struct RawOrigin {
    addr: SocketAddr,
    /// Complete request heads received.
    requests: Arc<AtomicUsize>,
    /// The accept loop; aborting it closes the listener.
    task: JoinHandle<()>,
}

impl RawOrigin {
    /// Requests that reached the origin so far.
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// `http://127.0.0.1:<port>`.
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes the listener: from now on connections to the origin are refused. (Handlers
    /// answer with `Connection: close`, so no pooled connection outlives this.)
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Starts a raw origin; `handler(n, stream)` answers the `n`-th request (from 1).
async fn raw_origin<F, Fut>(handler: F) -> RawOrigin
where
    F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the origin");
    let addr = listener.local_addr().expect("origin address");
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (counter, handler) = (Arc::clone(&counter), Arc::clone(&handler));
            tokio::spawn(async move {
                if read_head(&mut stream).await {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    handler(n, stream).await;
                }
            });
        }
    });
    RawOrigin {
        addr,
        requests,
        task,
    }
}

/// Reads up to the end of a request head; `false` if the connection ended first.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// A complete, cacheable `Content-Length` response; the origin closes the connection after it.
fn complete_response(body: &[u8], cache_control: &str) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncache-control: {cache_control}\r\n\
         content-type: text/plain\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

/// Writes `bytes` and closes the connection normally.
async fn answer(mut stream: TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
}

/// Waits until the peer closes `stream` (EOF or reset); panics after [`BOUND`].
async fn wait_closed_by_peer(stream: &mut TcpStream) {
    let closed = tokio::time::timeout(BOUND, async {
        let mut buf = [0; 4096];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the proxy kept the origin connection open");
}

// ---------------------------------------------------------------------------------------------
// A client
// ---------------------------------------------------------------------------------------------

/// What a client got for one request.
#[derive(Debug)]
enum Outcome {
    /// A complete response: hyper read the whole message as framed.
    Complete {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// The message was cut off: no response head, or a body that ended in an error.
    Incomplete {
        status: Option<StatusCode>,
        /// Body bytes received before the error.
        received: usize,
        error: String,
    },
}

impl Outcome {
    /// The complete response; panics on an incomplete one.
    fn complete(self) -> (StatusCode, HeaderMap, Bytes) {
        match self {
            Outcome::Complete {
                status,
                headers,
                body,
            } => (status, headers, body),
            incomplete => panic!("expected a complete response, got {incomplete:?}"),
        }
    }
}

/// `GET path` from the proxy over a fresh HTTP/1.1 connection; panics if it takes more than
/// [`BOUND`].
async fn get(proxy: &Proxy, path: &str) -> Outcome {
    get_addr(proxy.addr, path).await
}

/// `GET path` from the proxy at `addr`, as [`get`].
async fn get_addr(addr: SocketAddr, path: &str) -> Outcome {
    let exchange = async move {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the proxy");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(conn);
        let req = Request::get(path)
            .header(http::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .expect("valid request");
        let response = match sender.send_request(req).await {
            Ok(response) => response,
            Err(err) => {
                return Outcome::Incomplete {
                    status: None,
                    received: 0,
                    error: err.to_string(),
                };
            }
        };
        let (parts, mut body) = response.into_parts();
        let mut data = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(chunk) = frame.into_data() {
                        data.extend_from_slice(&chunk);
                    }
                }
                Err(err) => {
                    return Outcome::Incomplete {
                        status: Some(parts.status),
                        received: data.len(),
                        error: err.to_string(),
                    };
                }
            }
        }
        Outcome::Complete {
            status: parts.status,
            headers: parts.headers,
            body: data.into(),
        }
    };
    tokio::time::timeout(BOUND, exchange)
        .await
        .unwrap_or_else(|_| panic!("no complete exchange for {path} within {BOUND:?}"))
}

/// A header's value as text (empty if missing).
fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// Origin down or silent
// ---------------------------------------------------------------------------------------------

/// An origin that refuses connections: `502` with a one-line text reason, never cached.
#[tokio::test]
async fn origin_refusing_connections_is_a_502_with_a_short_text_body() {
    let origin = raw_origin(|_, stream| async move {
        answer(stream, &complete_response(b"up", "max-age=60")).await;
    })
    .await;
    let url = origin.url();
    origin.stop().await;
    let proxy = start_proxy(&["--origin", &url]).await;

    for _ in 0..2 {
        let (status, headers, body) = get(&proxy, "/down").await.complete();
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            header(&headers, "content-type"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(header(&headers, "x-cache"), "MISS");
        let text = String::from_utf8_lossy(&body);
        assert_eq!(text, "bad gateway: the origin is unreachable\n");
        assert_eq!(text.lines().count(), 1, "body: {text:?}");
        assert!(body.len() < 200, "body: {text:?}");
    }
}

/// An origin that accepts the request and hangs up without a word: `502`.
#[tokio::test]
async fn origin_closing_without_an_answer_is_a_502() {
    let origin = raw_origin(|_, stream| async move { drop(stream) }).await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let (status, headers, body) = get(&proxy, "/hang-up").await.complete();
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        header(&headers, "content-type"),
        "text/plain; charset=utf-8"
    );
    let text = String::from_utf8_lossy(&body);
    assert_eq!(text, "bad gateway: the origin failed to answer\n");
    assert!(origin.requests() >= 1);
}

/// An origin that sends no response headers within `--origin-timeout`: `504`, and the proxy
/// drops that origin connection rather than leaving it waiting.
#[tokio::test]
async fn origin_silent_past_the_origin_timeout_is_a_504_and_its_connection_is_dropped() {
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
    let origin = raw_origin(move |_, mut stream| {
        let closed_tx = closed_tx.clone();
        async move {
            // Never answer; report when the proxy hangs up.
            wait_closed_by_peer(&mut stream).await;
            let _ = closed_tx.send(());
        }
    })
    .await;
    let proxy = start_proxy(&["--origin", &origin.url(), "--origin-timeout", "1"]).await;

    let (status, headers, body) = get(&proxy, "/silent").await.complete();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        header(&headers, "content-type"),
        "text/plain; charset=utf-8"
    );
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("gateway timeout"), "body: {text:?}");
    assert_eq!(origin.requests(), 1);

    let closed = tokio::time::timeout(BOUND, closed_rx.recv()).await;
    assert!(
        matches!(closed, Ok(Some(()))),
        "the origin connection was not closed after the 504"
    );
}

// ---------------------------------------------------------------------------------------------
// Bodies cut short
// ---------------------------------------------------------------------------------------------

/// The body the origin announces in full (`Content-Length: 1000`).
const FULL_LEN: usize = 1000;

/// How much of it a broken origin sends.
const SENT_LEN: usize = 100;

/// How a broken origin ends its response.
#[derive(Clone, Copy, Debug)]
enum Break {
    /// `Content-Length: 1000`, 100 bytes, then an abrupt close (reset).
    ResetMidBody,
    /// `Content-Length: 1000`, 100 bytes, then an orderly close of its sending side while the
    /// connection stays open: the origin simply does not honour its `Content-Length`.
    ShortContentLength,
    /// `Transfer-Encoding: chunked`, one 100-byte chunk, then a close without the last chunk.
    ChunkedWithoutLastChunk,
}

/// The origin's first answer breaks as `how`; later answers are complete and cacheable.
async fn breaking_origin(how: Break) -> RawOrigin {
    raw_origin(move |n, mut stream| async move {
        if n > 1 {
            answer(stream, &complete_response(&[b'y'; FULL_LEN], "max-age=60")).await;
            return;
        }
        let head = match how {
            Break::ResetMidBody | Break::ShortContentLength => format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {FULL_LEN}\r\ncache-control: max-age=60\r\n\r\n"
            ),
            Break::ChunkedWithoutLastChunk => {
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncache-control: max-age=60\r\n\r\n"
                    .to_owned()
            }
        };
        let mut bytes = head.into_bytes();
        if let Break::ChunkedWithoutLastChunk = how {
            bytes.extend_from_slice(format!("{SENT_LEN:x}\r\n").as_bytes());
            bytes.extend_from_slice(&[b'x'; SENT_LEN]);
            bytes.extend_from_slice(b"\r\n");
        } else {
            bytes.extend_from_slice(&[b'x'; SENT_LEN]);
        }
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
        match how {
            Break::ResetMidBody => {
                let _ = stream.set_zero_linger();
                drop(stream);
            }
            Break::ShortContentLength => {
                let _ = stream.shutdown().await;
                wait_closed_by_peer(&mut stream).await;
            }
            Break::ChunkedWithoutLastChunk => drop(stream),
        }
    })
    .await
}

/// The client sees the broken response as incomplete, nothing is stored (the next request
/// reaches the origin), and a complete answer is then cached as usual.
async fn broken_body_is_an_error_and_is_not_stored(how: Break) {
    let origin = breaking_origin(how).await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    match get(&proxy, "/broken").await {
        Outcome::Incomplete {
            status,
            received,
            error,
        } => {
            assert!(
                matches!(status, None | Some(StatusCode::OK)),
                "{how:?}: {status:?} ({error})"
            );
            assert!(received <= SENT_LEN, "{how:?}: {received} bytes ({error})");
        }
        complete => panic!("{how:?}: a broken body reached the client as complete: {complete:?}"),
    }
    assert_eq!(origin.requests(), 1);

    let (status, headers, body) = get(&proxy, "/broken").await.complete();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "x-cache"),
        "MISS",
        "{how:?}: the partial body was stored"
    );
    assert_eq!(body.len(), FULL_LEN);
    assert!(body.iter().all(|&b| b == b'y'));
    assert_eq!(
        origin.requests(),
        2,
        "{how:?}: the second request was not forwarded"
    );

    let (status, headers, body) = get(&proxy, "/broken").await.complete();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-cache"), "HIT");
    assert_eq!(body.len(), FULL_LEN);
    assert!(body.iter().all(|&b| b == b'y'));
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn origin_resetting_mid_body_is_an_error_for_the_client_and_is_not_stored() {
    broken_body_is_an_error_and_is_not_stored(Break::ResetMidBody).await;
}

#[tokio::test]
async fn origin_not_honouring_its_content_length_is_an_error_and_is_not_stored() {
    broken_body_is_an_error_and_is_not_stored(Break::ShortContentLength).await;
}

#[tokio::test]
async fn chunked_body_cut_before_the_last_chunk_is_an_error_and_is_not_stored() {
    broken_body_is_an_error_and_is_not_stored(Break::ChunkedWithoutLastChunk).await;
}

// ---------------------------------------------------------------------------------------------
// Stale answers when the origin is gone (RFC 5861 §4, RFC 9111 §5.2.2.2)
// ---------------------------------------------------------------------------------------------

/// Stores a response with `cache_control` (a miss), stops the origin and waits
/// until the stored response is stale: returns the proxy's answer then.
async fn answer_after_origin_stopped(
    cache_control: &'static str,
) -> (StatusCode, HeaderMap, Bytes) {
    answer_after_origin_stopped_with(cache_control, &[]).await
}

/// As [`answer_after_origin_stopped`], with extra proxy flags.
async fn answer_after_origin_stopped_with(
    cache_control: &'static str,
    flags: &[&str],
) -> (StatusCode, HeaderMap, Bytes) {
    let origin = raw_origin(move |_, stream| async move {
        answer(stream, &complete_response(b"stored body", cache_control)).await;
    })
    .await;
    let origin_url = origin.url();
    let mut args = vec!["--origin", &origin_url];
    args.extend_from_slice(flags);
    let proxy = start_proxy(&args).await;

    let (status, headers, body) = get(&proxy, "/page").await.complete();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-cache"), "MISS");
    assert_eq!(body, "stored body");
    assert_eq!(origin.requests(), 1);

    origin.stop().await;
    // The stored response has `max-age=1`: after 1.5 s it is stale by the proxy's clock. (The
    // proxy's clock cannot be moved from here, so this one wait is real.)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    get(&proxy, "/page").await.complete()
}

#[tokio::test]
async fn stale_if_error_response_is_served_stale_when_the_origin_is_gone() {
    let (status, headers, body) = answer_after_origin_stopped("max-age=1, stale-if-error=60").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-cache"), "HIT");
    assert!(
        header(&headers, "cache-status").contains("detail=stale-if-error"),
        "cache-status: {:?}",
        header(&headers, "cache-status")
    );
    assert_eq!(body, "stored body");
}

#[tokio::test]
async fn must_revalidate_response_is_not_served_stale_when_the_origin_is_gone() {
    let (status, headers, body) =
        answer_after_origin_stopped("max-age=1, stale-if-error=60, must-revalidate").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(header(&headers, "x-cache"), "MISS");
    // The stored response was found, stale, and forwarded for validation.
    assert!(
        header(&headers, "cache-status").contains("fwd=stale"),
        "cache-status: {:?}",
        header(&headers, "cache-status")
    );
    let text = String::from_utf8_lossy(&body);
    assert_eq!(text, "bad gateway: the origin is unreachable\n");
}

/// RFC 9111 §4.2.4: a cache that cannot reach the origin may serve a stale response, without
/// any `stale-if-error` (up to `--max-stale-if-unreachable`, an hour by default).
#[tokio::test]
async fn stale_response_is_served_when_the_origin_is_gone() {
    let (status, headers, body) = answer_after_origin_stopped("max-age=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-cache"), "HIT");
    let cache_status = header(&headers, "cache-status");
    assert!(
        cache_status.contains("fwd=stale") && cache_status.contains("detail=origin-unreachable"),
        "cache-status: {cache_status:?}"
    );
    assert!(!cache_status.contains("fwd-status"), "{cache_status:?}");
    assert_eq!(body, "stored body");
}

/// RFC 9111 §4.2.4, §5.2.2: never when a directive forbids serving it stale (the suite's
/// `stale-close-*` tests); the proxy's own 502 then carries no `fwd-status` (RFC 9211 §2.3:
/// nothing came from the next hop).
#[tokio::test]
async fn no_cache_proxy_revalidate_s_maxage_are_not_served_stale_when_the_origin_is_gone() {
    for cache_control in [
        "max-age=1, no-cache",
        "max-age=1, proxy-revalidate",
        "s-maxage=1",
    ] {
        let (status, headers, body) = answer_after_origin_stopped(cache_control).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{cache_control}");
        let cache_status = header(&headers, "cache-status");
        assert!(
            cache_status.contains("detail=origin-unreachable")
                && !cache_status.contains("fwd-status"),
            "{cache_control}: cache-status: {cache_status:?}"
        );
        // The proxy's own answer (its wording is the proxy's business).
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with("bad gateway"), "body: {text:?}");
    }
}

/// `--max-stale-if-unreachable 0` turns it off.
#[tokio::test]
async fn max_stale_if_unreachable_zero_answers_502() {
    let (status, headers, _) =
        answer_after_origin_stopped_with("max-age=1", &["--max-stale-if-unreachable", "0"]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(header(&headers, "x-cache"), "MISS");
}

// ---------------------------------------------------------------------------------------------
// Status lines
// ---------------------------------------------------------------------------------------------

/// Sends `GET path` over a raw connection and returns the status line of the answer.
async fn raw_status_line(addr: SocketAddr, path: &str) -> String {
    let exchange = async move {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        text.lines().next().unwrap_or_default().to_owned()
    };
    tokio::time::timeout(BOUND, exchange)
        .await
        .expect("answer in time")
}

/// The reason phrase of a stored response comes back on hits (`599 Whatever`, not `599 <none>`).
#[tokio::test]
async fn reason_phrase_of_a_stored_response_is_kept_on_hits() {
    let origin = raw_origin(|_, stream| async move {
        let bytes = b"HTTP/1.1 599 Whatever\r\ncontent-length: 2\r\ncache-control: max-age=60\r\n\
                      connection: close\r\n\r\nok";
        answer(stream, bytes).await;
    })
    .await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;
    assert_eq!(
        raw_status_line(proxy.addr, "/r").await,
        "HTTP/1.1 599 Whatever"
    );
    assert_eq!(
        raw_status_line(proxy.addr, "/r").await,
        "HTTP/1.1 599 Whatever"
    );
    assert_eq!(origin.requests(), 1, "the second answer was a hit");
}

// ---------------------------------------------------------------------------------------------
// The client goes away
// ---------------------------------------------------------------------------------------------

/// A body far larger than the socket buffers between origin and proxy, so the origin cannot
/// finish writing it unless the proxy keeps reading.
const HUGE_LEN: usize = 64 * 1024 * 1024;

/// A client that hangs up in the middle of a cacheable miss: nothing is stored (the next
/// request is a miss that reaches the origin), and the proxy drops the origin connection (the
/// origin's writes fail instead of blocking forever).
#[tokio::test]
async fn client_hanging_up_mid_download_stores_nothing_and_releases_the_origin() {
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let gate = Arc::new(std::sync::Mutex::new(Some(gate_rx)));
    let (result_tx, mut result_rx) = mpsc::unbounded_channel::<io::Result<usize>>();
    let origin = raw_origin(move |n, mut stream| {
        let (gate, result_tx) = (Arc::clone(&gate), result_tx.clone());
        async move {
            if n > 1 {
                answer(stream, &complete_response(b"complete", "max-age=60")).await;
                return;
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {HUGE_LEN}\r\ncache-control: max-age=60\r\n\r\n"
            );
            let chunk = vec![b'z'; 16 * 1024];
            let mut written = 0;
            let result = async {
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&chunk).await?;
                written += chunk.len();
                let gate_rx = gate.lock().expect("gate lock").take();
                if let Some(gate_rx) = gate_rx {
                    let _ = gate_rx.await;
                }
                while written < HUGE_LEN {
                    stream.write_all(&chunk).await?;
                    written += chunk.len();
                }
                Ok(written)
            }
            .await;
            let _ = result_tx.send(result);
        }
    })
    .await;
    let max_entry = (2 * HUGE_LEN).to_string();
    let proxy = start_proxy(&["--origin", &origin.url(), "--max-entry-size", &max_entry]).await;

    // A raw client reads the head and some body, then hangs up.
    let mut client = TcpStream::connect(proxy.addr)
        .await
        .expect("connect to the proxy");
    client
        .write_all(b"GET /huge HTTP/1.1\r\nhost: proxy\r\n\r\n")
        .await
        .expect("send the request");
    let mut received = Vec::new();
    let mut buf = [0; 8192];
    while !received.windows(4).any(|w| w == b"\r\n\r\n") || received.len() < 4096 {
        let n = tokio::time::timeout(BOUND, client.read(&mut buf))
            .await
            .expect("the start of the response within 5s")
            .expect("read the response");
        assert_ne!(n, 0, "the proxy closed the connection");
        received.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text:?}");
    assert!(text.contains("x-cache: MISS"), "{text:?}");
    drop(client);

    // The origin carries on writing; the proxy must hang up on it.
    let _ = gate_tx.send(());
    let result = tokio::time::timeout(BOUND, result_rx.recv())
        .await
        .expect("the origin's writes still block after 5s: the proxy holds its connection")
        .expect("the origin reports its result");
    match result {
        Err(_) => {}
        Ok(written) => panic!("the origin wrote all {written} bytes to a proxy without a client"),
    }
    assert_eq!(origin.requests(), 1);

    let (status, headers, body) = get(&proxy, "/huge").await.complete();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "x-cache"),
        "MISS",
        "a partial body was stored"
    );
    assert_eq!(body, "complete");
    assert_eq!(origin.requests(), 2);

    let (_, headers, body) = get(&proxy, "/huge").await.complete();
    assert_eq!(header(&headers, "x-cache"), "HIT");
    assert_eq!(body, "complete");
    assert_eq!(origin.requests(), 2);
}

/// An origin that stops answering in time (`--origin-timeout`, so the proxy itself makes the
/// `504`) is covered by a stored `stale-if-error` response too.
#[tokio::test]
async fn stale_if_error_response_is_served_stale_when_the_origin_times_out() {
    let origin = raw_origin(|n, mut stream| async move {
        if n == 1 {
            let body = complete_response(b"stored body", "max-age=1, stale-if-error=60");
            answer(stream, &body).await;
        } else {
            // Never answer; hold the connection until the proxy gives up on it.
            wait_closed_by_peer(&mut stream).await;
        }
    })
    .await;
    let proxy = start_proxy(&["--origin", &origin.url(), "--origin-timeout", "1"]).await;

    let (status, headers, _) = get(&proxy, "/page").await.complete();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-cache"), "MISS");
    // Stale by the proxy's clock after 1.5 s (`max-age=1`); a real wait, as above.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (status, headers, body) = get(&proxy, "/page").await.complete();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-cache"), "HIT");
    assert!(
        header(&headers, "cache-status").contains("detail=stale-if-error"),
        "cache-status: {:?}",
        header(&headers, "cache-status")
    );
    assert_eq!(body, "stored body");
    assert_eq!(
        origin.requests(),
        2,
        "the stale response was tried at the origin first"
    );
}

/// A second request for the same URL while the first one's body is still streaming (and then
/// breaks) never gets the broken body as complete: when it collapsed onto the first, it
/// streams the first one's body (read-while-write) and is cut with it, as in Varnish; when it
/// arrived after the break, it went to the origin itself and got the whole response. Either
/// way the next request gets the whole response.
#[tokio::test]
async fn request_during_a_miss_that_breaks_never_gets_it_as_complete() {
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let gate = Arc::new(std::sync::Mutex::new(Some(gate_rx)));
    let origin = raw_origin(move |n, mut stream| {
        let gate = Arc::clone(&gate);
        async move {
            if n > 1 {
                answer(stream, &complete_response(&[b'y'; FULL_LEN], "max-age=60")).await;
                return;
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {FULL_LEN}\r\ncache-control: max-age=60\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&[b'x'; SENT_LEN]).await;
            let gate_rx = gate.lock().expect("gate lock").take();
            if let Some(gate_rx) = gate_rx {
                let _ = gate_rx.await;
            }
            let _ = stream.set_zero_linger();
        }
    })
    .await;
    let proxy = start_proxy(&["--origin", &origin.url()]).await;

    let first = {
        let addr = proxy.addr;
        tokio::spawn(async move { get_addr(addr, "/shared").await })
    };
    let deadline = Instant::now() + BOUND;
    while origin.requests() == 0 {
        assert!(
            Instant::now() < deadline,
            "the first request did not reach the origin"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = {
        let addr = proxy.addr;
        tokio::spawn(async move { get_addr(addr, "/shared").await })
    };
    // Give the second request time to reach the proxy while the first is in flight; if it is
    // slower, it simply arrives after the break, which the test accepts too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = gate_tx.send(());

    let first = first.await.expect("first client task");
    assert!(
        matches!(first, Outcome::Incomplete { .. }),
        "the broken body reached the first client as complete: {first:?}"
    );
    match second.await.expect("second client task") {
        Outcome::Complete { status, body, .. } => {
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body.len(), FULL_LEN, "the second client got a broken body");
            assert!(body.iter().all(|&b| b == b'y'));
        }
        Outcome::Incomplete { received, .. } => assert!(received < FULL_LEN),
    }
    let (status, _, body) = get(&proxy, "/shared").await.complete();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), FULL_LEN);
    assert!(body.iter().all(|&b| b == b'y'));
    assert_eq!(origin.requests(), 2);
}
