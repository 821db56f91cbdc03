//! The caching proxy on a disk store (`--store disk:PATH`), over TCP with the real proxy
//! binary and a counting origin: restarts, `kill -9` during writes, damaged files, clearing
//! and eviction. Each test has its own directory.
#![cfg(feature = "disk")]

#[path = "support/proxy.rs"]
mod proxy_process;
mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use proxy_process::{Proxy, free_port, proxy_binary, start_proxy_in, test_runtime_dir};
use support::{Seen, get, try_send};
use tokio::net::TcpListener;

/// A test's cache directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("tcl-disk-it-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    fn spec(&self) -> String {
        format!("disk:{}", self.0.display())
    }

    /// The head (`h`) or body (`b`) files in the directory.
    fn files(&self, extension: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for sub in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(sub.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = file.path();
                if path.extension().is_some_and(|e| e == extension) {
                    found.push(path);
                }
            }
        }
        found
    }

    fn bytes_used(&self) -> u64 {
        let files = self.files("h").into_iter().chain(self.files("b"));
        files
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether the proxy binary has the disk store; prints why not when it lacks it.
fn disk_proxy_available() -> bool {
    let dir = Dir::new("probe");
    let output = Command::new(proxy_binary())
        .args(["--clear-cache", "--store", &dir.spec()])
        .args(["--port", &free_port().to_string()])
        .output()
        .expect("run caching_proxy");
    if output.status.success() {
        return true;
    }
    eprintln!(
        "skipped: {} lacks the disk store ({}); build it with \
         `cargo build --features disk --example caching_proxy`",
        proxy_binary().display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    false
}

/// The bytes the origin sends for `path` (`/<len>/<name>`).
fn body_for(path: &str) -> Bytes {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let len: usize = parts.next().and_then(|l| l.parse().ok()).unwrap_or(10);
    let seed = parts
        .next()
        .unwrap_or("")
        .bytes()
        .map(usize::from)
        .sum::<usize>();
    (0..len)
        .map(|i| ((i * 7 + seed) % 251) as u8)
        .collect::<Vec<_>>()
        .into()
}

/// An origin answering `/<len>/<name>` with `len` bytes, cacheable for ten minutes, in
/// 64 KiB frames a millisecond apart (so that large ones take a while), counting requests.
struct Origin {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Origin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin address");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                let service = service_fn(move |req: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = Slow::new(body_for(req.uri().path()));
                    let response = Response::builder()
                        .header("cache-control", "max-age=600")
                        .body(body)
                        .expect("response");
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(async move {
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { addr, hits }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A body sent in 64 KiB frames, a millisecond apart.
struct Slow {
    data: Bytes,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Slow {
    fn new(data: Bytes) -> Self {
        Self { data, wait: None }
    }
}

impl Body for Slow {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(wait) = &mut self.wait {
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.wait = None;
        }
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let take = self.data.len().min(64 * 1024);
        let frame = self.data.split_to(take);
        self.wait = Some(Box::pin(tokio::time::sleep(Duration::from_millis(1))));
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

use std::future::Future as _;

async fn proxy(origin: &Origin, dir: &Dir, extra: &[&str]) -> Proxy {
    let spec = dir.spec();
    let mut args = vec!["--origin", &*origin.url().leak(), "--store", &*spec.leak()];
    args.extend(["--max-entry-size", "64M"]);
    args.extend(extra);
    start_proxy_in(&test_runtime_dir(), &args).await
}

async fn fetch(proxy: &Proxy, path: &str) -> Seen {
    get(&format!("http://{}{path}", proxy.addr), &[]).await
}

fn age(seen: &Seen) -> u64 {
    seen.header("age").and_then(|a| a.parse().ok()).unwrap_or(0)
}

/// Lets the proxy finish writing what it just received.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_restarted_proxy_answers_hits_with_ages_that_continue() {
    if !disk_proxy_available() {
        return;
    }
    let (origin, dir) = (Origin::start().await, Dir::new("restart"));
    let first = proxy(&origin, &dir, &[]).await;
    for path in ["/1024/small", "/3000000/big"] {
        let miss = fetch(&first, path).await;
        assert_eq!(
            (miss.status, miss.x_cache()),
            (http::StatusCode::OK, "MISS")
        );
        assert_eq!(miss.body, body_for(path));
    }
    settle().await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let second = proxy(&origin, &dir, &[]).await;
    for path in ["/1024/small", "/3000000/big"] {
        let hit = fetch(&second, path).await;
        assert_eq!(
            (hit.status, hit.x_cache()),
            (http::StatusCode::OK, "HIT"),
            "{path}"
        );
        assert_eq!(hit.body, body_for(path), "{path}");
        assert!(
            age(&hit) >= 2,
            "Age {} continues from the stored time",
            age(&hit)
        );
    }
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn kill_9_during_large_writes_leaves_nothing_torn() {
    if !disk_proxy_available() {
        return;
    }
    let (origin, dir) = (Origin::start().await, Dir::new("kill9"));
    let first = proxy(&origin, &dir, &[]).await;
    let stored: Vec<String> = (0..4).map(|i| format!("/2000000/done{i}")).collect();
    for path in &stored {
        assert_eq!(fetch(&first, path).await.body, body_for(path));
    }
    settle().await;
    // Many large misses streaming (and being written) when the proxy is killed.
    let torn: Vec<String> = (0..12).map(|i| format!("/8000000/torn{i}")).collect();
    let addr = first.addr;
    for path in &torn {
        let url = format!("http://{addr}{path}");
        tokio::spawn(async move {
            let _ = try_send(Request::get(url).body(Default::default()).unwrap()).await;
        });
    }
    // Killed as soon as most of them are being written.
    let temp_files = || std::fs::read_dir(dir.0.join("tmp")).unwrap().count();
    for _ in 0..400 {
        if temp_files() >= torn.len() / 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(first); // SIGKILL
    let partial = temp_files();
    assert!(partial > 0, "killed while body files were being written");
    let second = proxy(&origin, &dir, &[]).await;
    assert_eq!(std::fs::read_dir(dir.0.join("tmp")).unwrap().count(), 0);
    let mut misses = 0;
    for path in stored.iter().chain(&torn) {
        let seen = fetch(&second, path).await;
        assert_eq!(seen.status, http::StatusCode::OK, "{path}");
        assert_eq!(seen.body, body_for(path), "{path} ({})", seen.x_cache());
        if stored.contains(path) {
            assert_eq!(seen.x_cache(), "HIT", "{path}");
        }
        misses += usize::from(seen.x_cache() == "MISS");
    }
    eprintln!("{partial} partial body files at the kill; {misses} misses after the restart");
}

/// Flips one byte of `file` at `at` (from the end when negative).
fn flip(file: &Path, at: isize) {
    let mut bytes = std::fs::read(file).unwrap();
    let at = if at < 0 {
        bytes.len() - at.unsigned_abs()
    } else {
        at as usize
    };
    bytes[at] ^= 0x55;
    std::fs::write(file, bytes).unwrap();
}

/// Stores `path`, stops the proxy, damages the one file with `extension` by `damage`, and
/// restarts: the first answer is a miss with the right bytes, and the damaged file is gone.
async fn damaged(name: &str, path: &str, extension: &str, damage: impl Fn(&Path)) {
    let (origin, dir) = (Origin::start().await, Dir::new(name));
    let first = proxy(&origin, &dir, &[]).await;
    assert_eq!(fetch(&first, path).await.x_cache(), "MISS");
    settle().await;
    drop(first);
    let file = dir.files(extension).pop().expect("one file");
    damage(&file);
    let broken = std::fs::read(&file).unwrap();
    let second = proxy(&origin, &dir, &[]).await;
    let seen = fetch(&second, path).await;
    assert_eq!(
        (seen.status, seen.x_cache()),
        (http::StatusCode::OK, "MISS"),
        "{name}"
    );
    assert_eq!(seen.body, body_for(path), "{name}");
    settle().await;
    // Removed, and stored again.
    assert!(
        std::fs::read(&file).map_or(true, |now| now != broken),
        "{name}"
    );
    drop(second);
    let third = proxy(&origin, &dir, &[]).await;
    let seen = fetch(&third, path).await;
    assert_eq!((seen.x_cache(), seen.body.clone()), ("HIT", body_for(path)));
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn a_damaged_body_or_head_is_a_miss_and_removed() {
    if !disk_proxy_available() {
        return;
    }
    // A small body is in its head file; flip a byte of the body, at its end.
    damaged("body", "/1024/a", "h", |file| flip(file, -100)).await;
    // A byte of the head's metadata (the key), checked when the directory is scanned.
    damaged("head", "/1024/b", "h", |file| flip(file, 30)).await;
    // An unknown format version.
    damaged("version", "/1024/c", "h", |file| {
        let mut bytes = std::fs::read(file).unwrap();
        bytes[4] = 200;
        std::fs::write(file, bytes).unwrap();
    })
    .await;
    // A large body's file, in its header (checked when a hit opens it; a damaged block is
    // found as it streams, see below).
    damaged("large", "/500000/d", "b", |file| flip(file, 9)).await;
}

#[tokio::test]
async fn a_damaged_block_cuts_a_streamed_hit_short_and_removes_the_entry() {
    if !disk_proxy_available() {
        return;
    }
    let (origin, dir) = (Origin::start().await, Dir::new("block"));
    let first = proxy(&origin, &dir, &[]).await;
    let path = "/1000000/e";
    fetch(&first, path).await;
    settle().await;
    drop(first);
    flip(&dir.files("b").pop().unwrap(), 700_000);
    let second = proxy(&origin, &dir, &[]).await;
    let url = format!("http://{}{path}", second.addr);
    let cut = try_send(Request::get(&url).body(Default::default()).unwrap()).await;
    assert!(
        cut.is_err(),
        "the damaged block is never sent: the response is cut short"
    );
    settle().await;
    let again = fetch(&second, path).await;
    assert_eq!(
        (again.x_cache(), again.body.clone()),
        ("MISS", body_for(path))
    );
}

#[tokio::test]
async fn clear_cache_empties_the_directory_with_no_proxy_running() {
    if !disk_proxy_available() {
        return;
    }
    let (origin, dir) = (Origin::start().await, Dir::new("clear"));
    let first = proxy(&origin, &dir, &[]).await;
    for path in ["/100/a", "/200000/b"] {
        fetch(&first, path).await;
    }
    settle().await;
    drop(first);
    let output = Command::new(proxy_binary())
        .args(["--clear-cache", "--store", &dir.spec()])
        .args(["--port", &free_port().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("cleared 2 entries"), "{stdout}");
    assert!(dir.files("h").is_empty() && dir.files("b").is_empty());
    let second = proxy(&origin, &dir, &[]).await;
    assert_eq!(fetch(&second, "/100/a").await.x_cache(), "MISS");
}

#[tokio::test]
async fn eviction_keeps_the_directory_under_the_disk_capacity() {
    if !disk_proxy_available() {
        return;
    }
    let (origin, dir) = (Origin::start().await, Dir::new("evict"));
    let proxy = proxy(&origin, &dir, &["--disk-capacity", "1M"]).await;
    for i in 0..10 {
        let path = format!("/300000/{i}");
        assert_eq!(fetch(&proxy, &path).await.body, body_for(&path));
        settle().await;
        assert!(dir.bytes_used() <= 1 << 20, "{} bytes", dir.bytes_used());
    }
    // The most recent is kept, the first is gone.
    assert_eq!(fetch(&proxy, "/300000/9").await.x_cache(), "HIT");
    assert_eq!(fetch(&proxy, "/300000/0").await.x_cache(), "MISS");
}
