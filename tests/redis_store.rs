//! The Redis store (feature `redis`), over TCP with real `caching_proxy` processes sharing one
//! real `redis-server` and a real counting origin: entries shared between proxies,
//! invalidations and clears reaching every proxy's memory tier, collapsed forwarding across
//! proxies, and Redis failing under load.
//!
//! Each test starts its own `redis-server` on a free port (`--save '' --appendonly no`) and
//! kills it at the end. Without `redis-server` on the PATH, or with a `caching_proxy` built
//! without the feature, the tests are skipped with a printed reason, unless
//! `TCL_REQUIRE_REDIS` is set (CI sets it): then they fail.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

#[path = "support/proxy.rs"]
mod proxy_process;
use proxy_process::{Proxy, free_port, proxy_binary, start_proxy, test_runtime_dir};

/// Whether the Redis tests can run here; prints why not (or fails, under `TCL_REQUIRE_REDIS`).
fn can_run(test: &str) -> bool {
    let required = std::env::var_os("TCL_REQUIRE_REDIS").is_some_and(|v| !v.is_empty());
    let skip = |reason: String| {
        assert!(!required, "TCL_REQUIRE_REDIS is set, but {reason}");
        // Straight to the process's stderr, past the test harness's capture: a skip is seen.
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "skipping {test}: {reason}");
        false
    };
    let server = Command::new("redis-server").arg("--version").output();
    if !server.is_ok_and(|out| out.status.success()) {
        return skip("redis-server is not installed (apt-get install redis-server)".into());
    }
    let help = Command::new(proxy_binary()).arg("--help").output();
    let has_feature = help
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("--redis-prefix <PREFIX>"));
    if !has_feature {
        return skip(
            "caching_proxy was built without the redis feature \
             (cargo test --all-features, or cargo build --features redis --example caching_proxy)"
                .into(),
        );
    }
    true
}

/// A `redis-server` of the test's own, killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    async fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server not up on {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A counting origin: every path is fresh for a minute and answers its own path; paths
/// under `/slow/` take 300 ms. Unsafe methods are answered `200` (and invalidate).
struct Origin {
    addr: SocketAddr,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl Origin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin address");
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let task_counts = Arc::clone(&counts);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counts = Arc::clone(&task_counts);
                let service = service_fn(move |req: Request<Incoming>| {
                    let path = req.uri().path().to_owned();
                    *counts
                        .lock()
                        .expect("lock")
                        .entry(path.clone())
                        .or_insert(0) += 1;
                    async move {
                        if path.starts_with("/slow/") {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        let response = Response::builder()
                            .header("cache-control", "max-age=60")
                            .header("surrogate-key", "all")
                            .body(Full::<Bytes>::from(path))
                            .expect("a response");
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
        Self { addr, counts }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn count(&self, path: &str) -> usize {
        self.counts
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

/// Proxies to `origin` sharing `redis` under one prefix of the test's own.
async fn proxies(n: usize, origin: &Origin, redis: &RedisServer, prefix: &str) -> Vec<Proxy> {
    let mut started = Vec::new();
    for _ in 0..n {
        let url = redis.url();
        let args = ["--origin", &origin.url(), "--store", &url];
        started.push(start_proxy(&[&args[..], &["--redis-prefix", prefix]].concat()).await);
    }
    started
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `method path` through `proxy`: the status and `X-Cache`.
async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    proxy: &Proxy,
    method: &str,
    path: &str,
) -> Result<(StatusCode, String), String> {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", proxy.addr))
        .body(Full::default())
        .expect("a request");
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let x_cache = response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((status, x_cache))
}

/// Lets a miss's response reach Redis (written in a task once the body is read).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn get(proxy: &Proxy, path: &str) -> String {
    let (status, x_cache) = send(&client(), proxy, "GET", path).await.expect("GET");
    assert_eq!(status, StatusCode::OK, "GET {path}");
    x_cache
}

/// Runs the proxy binary with `args` (a client command) and returns its exit code and stdout.
async fn run_cli(args: &[&str]) -> (Option<i32>, String) {
    let output = tokio::process::Command::new(proxy_binary())
        .args(args)
        .env("XDG_RUNTIME_DIR", test_runtime_dir())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run caching_proxy");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code(), stdout)
}

#[tokio::test]
async fn a_miss_on_one_proxy_is_a_hit_on_another_and_a_put_invalidates_both() {
    if !can_run("redis_store::shared") {
        return;
    }
    let (redis, origin) = (RedisServer::start().await, Origin::start().await);
    let p = proxies(2, &origin, &redis, "shared:").await;
    assert_eq!(get(&p[0], "/doc").await, "MISS");
    settle().await;
    assert_eq!(get(&p[1], "/doc").await, "HIT");
    assert_eq!(get(&p[1], "/doc").await, "HIT");
    assert_eq!(origin.count("/doc"), 1);

    // RFC 9111 §4.4 through A: B's memory tier drops it too.
    let (status, _) = send(&client(), &p[0], "PUT", "/doc").await.expect("PUT");
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&p[1], "/doc").await, "MISS");
    assert_eq!(origin.count("/doc"), 3); // GET, PUT, GET
    settle().await;
    assert_eq!(get(&p[0], "/doc").await, "HIT");
}

#[tokio::test]
async fn clear_purge_and_purge_by_tag_through_one_proxy_reach_every_proxy() {
    if !can_run("redis_store::clear_and_purge") {
        return;
    }
    let (redis, origin) = (RedisServer::start().await, Origin::start().await);
    let p = proxies(2, &origin, &redis, "clear:").await;
    for path in ["/a", "/b"] {
        assert_eq!(get(&p[0], path).await, "MISS");
        settle().await;
        assert_eq!(get(&p[1], path).await, "HIT"); // now in B's memory tier too
    }

    // --purge through A: B's memory tier drops /a, not /b.
    let port = p[0].addr.port().to_string();
    let (_, out) = run_cli(&["--purge", "/a", "--port", &port]).await;
    assert!(out.starts_with("purged "), "{out}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&p[1], "/a").await, "MISS");
    assert_eq!(get(&p[1], "/b").await, "HIT");

    // --purge-tag through A (every origin response carries `Surrogate-Key: all`): the tag's
    // set in Redis names /a (stored again by B's miss) and /b; B's memory tier drops them.
    let (_, out) = run_cli(&["--purge-tag", "all", "--port", &port]).await;
    assert!(out.starts_with("purged 2 entries tagged all"), "{out}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&p[1], "/b").await, "MISS");
    settle().await;

    // --clear-cache through A: everything, everywhere.
    let (_, out) = run_cli(&["--clear-cache", "--port", &port]).await;
    assert!(out.starts_with("cleared "), "{out}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&p[1], "/b").await, "MISS");
    settle().await;
    assert_eq!(get(&p[0], "/b").await, "HIT"); // stored again by B's miss

    // --clear-cache --store redis://…: directly, no proxy needed.
    let url = redis.url();
    let args = ["--clear-cache", "--store", &url, "--redis-prefix", "clear:"];
    let (_, out) = run_cli(&args).await;
    assert!(out.starts_with("cleared 1 entry"), "{out}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&p[1], "/b").await, "MISS");
    settle().await;
    assert_eq!(get(&p[0], "/b").await, "HIT");
}

#[tokio::test]
async fn concurrent_misses_over_three_proxies_reach_the_origin_at_most_three_times() {
    if !can_run("redis_store::collapsing") {
        return;
    }
    let (redis, origin) = (RedisServer::start().await, Origin::start().await);
    let p = Arc::new(proxies(3, &origin, &redis, "collapse:").await);
    let client = client();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (p, client) = (Arc::clone(&p), client.clone());
        tasks.push(tokio::spawn(async move {
            send(&client, &p[i % 3], "GET", "/slow/cold").await
        }));
    }
    let mut statuses = HashMap::new();
    for task in tasks {
        let (status, x_cache) = task.await.expect("task").expect("request");
        assert_eq!(status, StatusCode::OK);
        *statuses.entry(x_cache).or_insert(0) += 1;
    }
    let calls = origin.count("/slow/cold");
    eprintln!("300 concurrent requests over 3 proxies: {calls} origin request(s), {statuses:?}");
    assert!(calls <= 3, "the origin saw {calls} requests");
}

#[tokio::test]
async fn redis_failing_under_load_is_never_an_error_and_hits_return_after_a_restart() {
    if !can_run("redis_store::failure") {
        return;
    }
    let (redis, origin) = (RedisServer::start().await, Origin::start().await);
    // A logs to a file (the proxy logs to stdout), to count what it said.
    let log_path = test_runtime_dir().join(format!("redis-fail-{}.log", free_port()));
    let a = Arc::new(logging_proxy(&origin, &redis, "fail:", &log_path).await);
    let b = proxies(1, &origin, &redis, "fail:").await.remove(0);

    // 8 clients for 2 s against A, half new URLs (each a Redis lookup and write), half hot
    // ones; Redis is killed after 0.5 s.
    let client = client();
    let until = Instant::now() + Duration::from_secs(2);
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (a, client) = (Arc::clone(&a), client.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut bad) = (0_u32, Vec::new());
            for i in 0.. {
                if Instant::now() >= until {
                    break;
                }
                let path = if i % 2 == 0 {
                    format!("/load/{c}/{i}")
                } else {
                    format!("/hot/{}", i % 10)
                };
                match send(&client, &a, "GET", &path).await {
                    Ok((status, _)) if status.is_success() => ok += 1,
                    Ok((status, _)) => bad.push(status.to_string()),
                    Err(error) => bad.push(error),
                }
            }
            (ok, bad)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let port = redis.kill();
    let (mut ok, mut bad) = (0, Vec::new());
    for task in tasks {
        let (o, b) = task.await.expect("task");
        ok += o;
        bad.extend(b);
    }
    eprintln!("8 clients for 2 s, Redis killed after 0.5 s: {ok} answers, {bad:?}");
    assert!(bad.is_empty(), "errors or 5xx: {bad:?}");
    assert!(ok > 100, "only {ok} answers");

    // Redis back (empty) on the same port: a response stored through A is a hit on B again.
    let redis = RedisServer::start_on(port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0.. {
        let path = format!("/after/{i}");
        assert_eq!(get(&a, &path).await, "MISS");
        settle().await;
        if get(&b, &path).await == "HIT" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no hit on B within 10 s of the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The log said it once, not per request.
    drop(a);
    let log = std::fs::read_to_string(&log_path).expect("A's log");
    let _ = std::fs::remove_file(&log_path);
    assert_eq!(log.matches("Redis unreachable").count(), 1, "{log}");
    assert_eq!(log.matches("Redis reachable again").count(), 1, "{log}");
    drop(redis);
}

/// A proxy like [`proxies`] makes, logging at `info` to `log`.
async fn logging_proxy(
    origin: &Origin,
    redis: &RedisServer,
    prefix: &str,
    log: &std::path::Path,
) -> Proxy {
    let port = free_port();
    let child = Command::new(proxy_binary())
        .args(["--port", &port.to_string(), "--origin", &origin.url()])
        .args(["--store", &redis.url(), "--redis-prefix", prefix])
        .env("RUST_LOG", "warn,tower_cache_layer=info")
        .env("XDG_RUNTIME_DIR", test_runtime_dir())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).expect("create the log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn caching_proxy");
    let proxy = Proxy {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(proxy.addr).await.is_err() {
        assert!(Instant::now() < deadline, "caching_proxy not up on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy
}

#[tokio::test]
async fn a_stalled_redis_costs_bounded_time_and_no_errors_and_invalidations_wait_for_it() {
    if !can_run("redis_store::stalled") {
        return;
    }
    let (redis, origin) = (RedisServer::start().await, Origin::start().await);
    let p = Arc::new(proxies(2, &origin, &redis, "stall:").await);
    let pid = redis.child.id().to_string();
    let signal = |name: &str| {
        let status = Command::new("kill").args([name, &pid]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill {name} {pid}");
    };

    assert_eq!(get(&p[0], "/doc").await, "MISS");
    settle().await;
    assert_eq!(get(&p[1], "/doc").await, "HIT"); // in B's memory tier too

    // Redis stops answering (SIGSTOP): each miss waits for its commands' time limits only.
    signal("-STOP");
    let client = client();
    // An invalidation that Redis cannot answer now takes effect once it answers again (the
    // command waits in the connection; one that failed outright is sent again).
    let (status, _) = send(&client, &p[0], "PUT", "/doc").await.expect("PUT");
    assert_eq!(status, StatusCode::OK);
    let mut tasks = Vec::new();
    for c in 0..4 {
        let (p, client) = (Arc::clone(&p), client.clone());
        tasks.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for i in 0..10 {
                let started = Instant::now();
                let (status, _) = send(&client, &p[0], "GET", &format!("/stalled/{c}/{i}"))
                    .await
                    .expect("an answer");
                assert_eq!(status, StatusCode::OK);
                slowest = slowest.max(started.elapsed());
            }
            slowest
        }));
    }
    let mut slowest = Duration::ZERO;
    for task in tasks {
        slowest = slowest.max(task.await.expect("task"));
    }
    signal("-CONT");
    eprintln!("Redis stalled: slowest of 40 misses took {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");

    // Redis answers again: shared hits return.
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0.. {
        let path = format!("/resumed/{i}");
        assert_eq!(get(&p[0], &path).await, "MISS");
        settle().await;
        if get(&p[1], &path).await == "HIT" {
            break;
        }
        assert!(Instant::now() < deadline, "no hit on B within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&p[1], "/doc").await, "MISS");
}
