//! Helpers of the Redis store's tests (`tests/redis_store.rs`): a `redis-server` of their
//! own, a counting origin, proxies sharing Redis, and a client.
#![allow(dead_code)]

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

use super::proxy_process::{Proxy, free_port, proxy_binary, start_proxy, test_runtime_dir};

/// Whether the Redis tests can run here; prints why not (or fails, under `TCL_REQUIRE_REDIS`).
pub fn can_run(test: &str) -> bool {
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
pub struct RedisServer {
    pub child: Child,
    pub port: u16,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> Self {
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn kill(mut self) -> u16 {
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
pub struct Origin {
    addr: SocketAddr,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl Origin {
    pub async fn start() -> Self {
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

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self, path: &str) -> usize {
        self.counts
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

/// Proxies to `origin` sharing `redis` under one prefix of the test's own.
pub async fn proxies(n: usize, origin: &Origin, redis: &RedisServer, prefix: &str) -> Vec<Proxy> {
    let mut started = Vec::new();
    for _ in 0..n {
        let url = redis.url();
        let args = ["--origin", &origin.url(), "--store", &url];
        started.push(start_proxy(&[&args[..], &["--redis-prefix", prefix]].concat()).await);
    }
    started
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `method path` through `proxy`: the status and `X-Cache`.
pub async fn send(
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
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

pub async fn get(proxy: &Proxy, path: &str) -> String {
    let (status, x_cache) = send(&client(), proxy, "GET", path).await.expect("GET");
    assert_eq!(status, StatusCode::OK, "GET {path}");
    x_cache
}

/// Runs the proxy binary with `args` (a client command) and returns its exit code and stdout.
pub async fn run_cli(args: &[&str]) -> (Option<i32>, String) {
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

/// A proxy like [`proxies`] makes, logging at `info` to `log`.
pub async fn logging_proxy(
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
