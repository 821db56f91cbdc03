//! The caching proxy's admin interface, end to end: the public port serves no admin function
//! (not even to a loopback peer), the admin listener needs the token from the admin file, and
//! `--clear-cache --port P` finds the running proxy through that file.
//!
//! Every proxy and `--clear-cache` here runs with `XDG_RUNTIME_DIR` set to a fresh temporary
//! directory, so nothing is written under the real `$HOME`.
//!
//! `cargo test` builds the examples before running the tests; with a test filter such as
//! `--test admin` build it first: `cargo build --example caching_proxy`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use http::{Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};

#[path = "support/proxy.rs"]
mod proxy_process;
use proxy_process::{Proxy, free_port};
#[path = "support/counting_origin.rs"]
mod counting_origin;
use counting_origin::{CountingOrigin, TempDir, admin_file_value, reply, run_binary, send};

/// The path that used to clear the cache on the public port.
const OLD_CLEAR_PATH: &str = "/.well-known/tower-cache-layer/clear";

/// A counting origin: `/max-age` is cacheable for a minute; every other request is answered
/// `origin saw METHOD PATH`, not cacheable.
async fn start_origin() -> CountingOrigin {
    CountingOrigin::builder()
        .route("/max-age", |_| {
            let builder = Response::builder().header("cache-control", "max-age=60");
            reply(builder, "fresh for a minute")
        })
        .fallback(|exchange| {
            let builder = Response::builder().header("cache-control", "no-store");
            let (method, path) = (exchange.req.method(), exchange.path());
            reply(builder, format!("origin saw {method} {path}"))
        })
        .start()
        .await
}

/// Starts the proxy with `XDG_RUNTIME_DIR=runtime_dir` and waits for its admin file.
async fn start_proxy_in(runtime_dir: &TempDir, args: &[&str]) -> Proxy {
    proxy_process::start_proxy_in(&runtime_dir.0, args).await
}

/// Runs the binary with `args` and `XDG_RUNTIME_DIR=runtime_dir` to completion:
/// (exit code, stdout, stderr).
async fn run_in(runtime_dir: &TempDir, args: &[&str]) -> (Option<i32>, String, String) {
    run_binary(args, Some(&runtime_dir.0)).await
}

/// A same-host TCP relay on `127.0.0.1:0` that forwards bytes to `target`, as a reverse proxy
/// on the proxy's host would: the proxy sees a loopback peer.
async fn start_relay(target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the relay");
    let addr = listener.local_addr().expect("relay address");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut upstream) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    addr
}

/// `POST /.well-known/tower-cache-layer/clear` on the public port, from a loopback peer (a
/// same-host relay), is an ordinary request: forwarded to the origin, and the cache keeps its
/// entries.
#[tokio::test]
async fn the_old_clear_path_on_the_public_port_is_forwarded_and_clears_nothing() {
    let dir = TempDir::new("admin");
    let origin = start_origin().await;
    let proxy = start_proxy_in(&dir, &["--origin", &origin.url()]).await;
    let relay = start_relay(proxy.addr).await;

    let first = send(relay, "GET", "/max-age", &[]).await;
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let second = send(relay, "GET", "/max-age", &[]).await;
    assert_eq!(second.header("x-cache"), Some("HIT"));
    assert_eq!(origin.hits(), 1);

    for method in ["POST", "GET"] {
        let answer = send(relay, method, OLD_CLEAR_PATH, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{method}");
        assert_eq!(answer.header("x-cache"), Some("MISS"), "{method}");
        assert_eq!(
            answer.text(),
            format!("origin saw {method} {OLD_CLEAR_PATH}")
        );
    }
    assert_eq!(origin.hits(), 3, "both requests reached the origin");

    let after = send(relay, "GET", "/max-age", &[]).await;
    assert_eq!(
        after.header("x-cache"),
        Some("HIT"),
        "the cache was cleared"
    );
    assert_eq!(after.body, "fresh for a minute");
    assert_eq!(origin.hits(), 3);
}

/// `--clear-cache --port P` is all it takes: the admin file for port P names the admin
/// listener and the token.
#[tokio::test]
async fn clear_cache_with_only_the_port_clears_the_running_proxy() {
    let dir = TempDir::new("admin");
    let origin = start_origin().await;
    let proxy = start_proxy_in(&dir, &["--origin", &origin.url()]).await;
    assert_eq!(
        send(proxy.addr, "GET", "/max-age", &[])
            .await
            .header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        send(proxy.addr, "GET", "/max-age", &[])
            .await
            .header("x-cache"),
        Some("HIT")
    );

    let port = proxy.addr.port().to_string();
    let (code, stdout, stderr) = run_in(&dir, &["--clear-cache", "--port", &port]).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(
        stdout,
        format!("cleared 1 entry from the cache at {}\n", proxy.addr)
    );

    assert_eq!(
        send(proxy.addr, "GET", "/max-age", &[])
            .await
            .header("x-cache"),
        Some("MISS")
    );
    assert_eq!(origin.hits(), 2);

    let (code, stdout, stderr) = run_in(&dir, &["--clear-cache", "--port", &port]).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(
        stdout,
        format!("cleared 1 entry from the cache at {}\n", proxy.addr)
    );
}

/// The admin file is private (0600 in a 0700 directory), names a loopback admin listener and
/// a 32-byte hex token, and is removed on graceful shutdown.
#[cfg(unix)]
#[tokio::test]
async fn the_admin_file_is_private_and_removed_on_graceful_shutdown() {
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new("admin");
    let origin = start_origin().await;
    let mut proxy = start_proxy_in(&dir, &["--origin", &origin.url()]).await;
    let file = dir.admin_file(proxy.addr.port());

    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&file), 0o600, "the admin file's mode");
    assert_eq!(
        mode(file.parent().expect("a directory")),
        0o700,
        "its directory's mode"
    );
    let admin: SocketAddr = admin_file_value(&file, "admin")
        .parse()
        .expect("admin= is an address");
    assert!(admin.ip().is_loopback(), "admin listener on {admin}");
    assert_ne!(admin.port(), proxy.addr.port());
    let token = admin_file_value(&file, "token");
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");

    let status = Command::new("kill")
        .args(["-TERM", &proxy.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let exit = loop {
        if let Some(exit) = proxy.child.try_wait().expect("poll the proxy") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not exit within 5s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit}");
    assert!(!file.exists(), "the admin file is still there");
}

/// The admin listener: a change needs the token (401 with `WWW-Authenticate: Bearer`
/// otherwise, and nothing is cleared); unknown paths 404, other methods 405 with `Allow`;
/// every answer is one line of text with `Cache-Control: no-store`.
#[tokio::test]
async fn the_admin_listener_needs_the_token() {
    let dir = TempDir::new("admin");
    let origin = start_origin().await;
    let proxy = start_proxy_in(&dir, &["--origin", &origin.url()]).await;
    let file = dir.admin_file(proxy.addr.port());
    let admin: SocketAddr = admin_file_value(&file, "admin")
        .parse()
        .expect("admin= is an address");
    let token = admin_file_value(&file, "token");
    send(proxy.addr, "GET", "/max-age", &[]).await;

    let wrong = format!("Bearer {}", "0".repeat(64));
    let almost = format!("Bearer {}", &token[..63]);
    let basic = format!("Basic {token}");
    for authorization in [None, Some(wrong.as_str()), Some(&almost), Some(&basic)] {
        let headers: Vec<_> = authorization
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        let answer = send(admin, "POST", "/clear", &headers).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert!(
            answer
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{:?}",
            answer.headers
        );
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        let text = answer.text();
        assert!(text.starts_with("unauthorized: "), "{text:?}");
        assert_eq!(text.lines().count(), 1, "{text:?}");
    }
    let hit = send(proxy.addr, "GET", "/max-age", &[]).await;
    assert_eq!(
        hit.header("x-cache"),
        Some("HIT"),
        "a refused request cleared the cache"
    );

    let get = send(admin, "GET", "/clear", &[]).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.header("allow"), Some("POST"));
    assert_eq!(get.header("cache-control"), Some("no-store"));
    let unknown = send(admin, "POST", "/nothing-here", &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.header("cache-control"), Some("no-store"));
    assert_eq!(unknown.text().lines().count(), 1);

    let bearer = format!("Bearer {token}");
    let cleared = send(admin, "POST", "/clear", &[("authorization", &bearer)]).await;
    assert_eq!(cleared.status, StatusCode::OK);
    assert_eq!(cleared.header("cache-control"), Some("no-store"));
    assert_eq!(cleared.text(), "1\n");
    let miss = send(proxy.addr, "GET", "/max-age", &[]).await;
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    assert_eq!(origin.hits(), 2);
}

/// `--admin-file` moves the file, for the proxy and for `--clear-cache` alike; a copy with
/// another token is refused (exit 1, one line).
#[tokio::test]
async fn admin_file_flag_and_a_refused_token() {
    let dir = TempDir::new("admin");
    let origin = start_origin().await;
    let file = dir.0.join("custom").join("my-proxy.admin");
    let file_arg = file.to_str().expect("a UTF-8 temp dir");
    let proxy = start_proxy_in(&dir, &["--origin", &origin.url(), "--admin-file", file_arg]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !file.is_file() {
        assert!(Instant::now() < deadline, "no admin file at {file:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!dir.admin_file(proxy.addr.port()).exists());
    send(proxy.addr, "GET", "/max-age", &[]).await;

    let (code, stdout, stderr) = run_in(&dir, &["--clear-cache", "--admin-file", file_arg]).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(
        stdout.starts_with("cleared 1 entry from the cache at "),
        "{stdout}"
    );

    let forged = dir.0.join("forged.admin");
    let admin = admin_file_value(&file, "admin");
    write_private(
        &forged,
        &format!("admin={admin}\ntoken={}\n", "0".repeat(64)),
    );
    let forged_arg = forged.to_str().expect("a UTF-8 temp dir");
    let (code, stdout, stderr) = run_in(&dir, &["--clear-cache", "--admin-file", forged_arg]).await;
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.contains("refused the token"), "stderr: {stderr}");
}

/// Writes `text` to a new file with mode 0600.
fn write_private(path: &Path, text: &str) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).expect("create the file");
    std::io::Write::write_all(&mut file, text.as_bytes()).expect("write the file");
}

/// `--clear-cache` says in one line on stderr, exit 1, why it cannot reach a proxy: no admin
/// file for that port, a stale one (nothing listens on its admin address), or one that others
/// may read.
#[tokio::test]
async fn clear_cache_without_a_running_proxy_exits_1_with_one_line() {
    let dir = TempDir::new("admin");
    let port = free_port();
    let port_arg = port.to_string();

    let (code, stdout, stderr) = run_in(&dir, &["--clear-cache", "--port", &port_arg]).await;
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(
        stderr.contains(&format!(
            "no caching proxy started by this user is running on port {port}"
        )),
        "stderr: {stderr}"
    );

    // A file left behind by a proxy that was killed.
    let file = dir.admin_file(port);
    std::fs::create_dir_all(file.parent().expect("a directory")).expect("create the directory");
    let gone = SocketAddr::from(([127, 0, 0, 1], free_port()));
    write_private(&file, &format!("admin={gone}\ntoken={}\n", "ab".repeat(32)));
    let (code, stdout, stderr) = run_in(&dir, &["--clear-cache", "--port", &port_arg]).await;
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(
        stderr.contains("the caching proxy is gone"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains(&gone.to_string()), "stderr: {stderr}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod 644");
        let (code, stdout, stderr) = run_in(&dir, &["--clear-cache", "--port", &port_arg]).await;
        assert_eq!(code, Some(1));
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
        assert!(
            stderr.contains("refusing to read") && stderr.contains("readable by group or others"),
            "stderr: {stderr}"
        );
    }
}
