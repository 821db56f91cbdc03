//! The caching proxy on a disk store (`--store disk:PATH`), over TCP with the real proxy
//! binary and a counting origin: restarts, `kill -9` during writes, damaged files, clearing
//! and eviction. Each test has its own directory.
#![cfg(feature = "disk")]

#[path = "support/proxy.rs"]
mod proxy_process;
#[path = "support/sized_origin.rs"]
mod sized_origin;
mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Request;
use proxy_process::{Proxy, free_port, proxy_binary, start_proxy_in, test_runtime_dir};
use sized_origin::{Origin, body_for};
use support::{Seen, get, try_send};

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

/// Whether the proxy binary has the disk store; prints why not when it lacks it. Any other
/// failure of the probe fails the test: only a binary built without the feature skips it.
fn disk_proxy_available() -> bool {
    // A directory of each probe's own: tests run at once, and a shared one was removed under
    // a running probe.
    static PROBES: AtomicUsize = AtomicUsize::new(0);
    let dir = Dir::new(&format!("probe-{}", PROBES.fetch_add(1, Ordering::Relaxed)));
    let output = Command::new(proxy_binary())
        .args(["--clear-cache", "--store", &dir.spec()])
        .args(["--port", &free_port().to_string()])
        .output()
        .expect("run caching_proxy");
    if output.status.success() {
        return true;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("built without the disk store"),
        "the disk store's probe failed: {stderr}"
    );
    // Straight to stderr, past the test harness's capture: shown in every run.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {} lacks the disk store ({}); build it with \
         `cargo build --features disk --example caching_proxy`",
        proxy_binary().display(),
        stderr.trim()
    );
    false
}

async fn proxy(origin: &Origin, dir: &Dir, extra: &[&str]) -> Proxy {
    let (url, spec) = (origin.url(), dir.spec());
    let mut args = vec![
        "--origin",
        &url,
        "--store",
        &spec,
        "--max-entry-size",
        "64M",
    ];
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

/// With a proxy on `--port`, `--clear-cache --store disk:PATH` asks it: its memory tier is
/// emptied too.
#[tokio::test]
async fn clear_cache_goes_through_the_running_proxy() {
    if !disk_proxy_available() {
        return;
    }
    let (origin, dir) = (Origin::start().await, Dir::new("clear-running"));
    let running = proxy(&origin, &dir, &[]).await;
    fetch(&running, "/100/a").await;
    settle().await;
    assert_eq!(fetch(&running, "/100/a").await.x_cache(), "HIT");
    let output = Command::new(proxy_binary())
        .args(["--clear-cache", "--store", &dir.spec()])
        .args(["--port", &running.addr.port().to_string()])
        .env("XDG_RUNTIME_DIR", test_runtime_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains(&format!("cache at {}", running.addr)),
        "{stdout}"
    );
    assert!(dir.files("h").is_empty());
    assert_eq!(fetch(&running, "/100/a").await.x_cache(), "MISS");
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

#[tokio::test]
async fn a_failing_disk_is_a_miss_never_an_error_and_logged_once() {
    if !disk_proxy_available() {
        return;
    }
    let (origin, dir) = (Origin::start().await, Dir::new("failing"));
    // Started here, to read its log (on stdout) from a file.
    let log = std::env::temp_dir().join(format!("tcl-disk-it-{}-failing.log", std::process::id()));
    let port = free_port();
    let child = Command::new(proxy_binary())
        .args(["--port", &port.to_string(), "--origin", &origin.url()])
        .args(["--store", &dir.spec(), "--max-capacity", "0"])
        .env("RUST_LOG", "warn")
        .env("XDG_RUNTIME_DIR", test_runtime_dir())
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let proxy = Proxy {
        child,
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    };
    while tokio::net::TcpStream::connect(proxy.addr).await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // No file can be created any more (even by root): every write fails.
    std::fs::remove_dir_all(dir.0.join("tmp")).unwrap();
    std::fs::write(dir.0.join("tmp"), b"").unwrap();
    for round in 0..3 {
        for path in ["/1024/small", "/300000/large"] {
            let seen = fetch(&proxy, path).await;
            assert_eq!(seen.status, http::StatusCode::OK, "{path} {round}");
            assert_eq!(
                (seen.x_cache(), seen.body.clone()),
                ("MISS", body_for(path))
            );
        }
    }
    settle().await;
    drop(proxy);
    let logged = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    for what in ["cannot write an entry", "cannot write a body file"] {
        assert_eq!(logged.matches(what).count(), 1, "{what}: {logged}");
    }
    assert!(!logged.contains("cache store failed"), "{logged}");
}
