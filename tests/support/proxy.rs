//! The example proxy as a child process, for the tests that drive it over TCP.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// `target/<profile>/examples/caching_proxy`, next to this test's `target/<profile>/deps/`.
pub fn proxy_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps/");
    let binary = profile_dir
        .join("examples")
        .join(format!("caching_proxy{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} is missing: build it with `cargo build --example caching_proxy` \
         (a plain `cargo test` builds it)",
        binary.display()
    );
    binary
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = StdTcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("ephemeral address").port()
}

/// A directory for the admin files of the proxies the tests start (mode 0700, as the proxy
/// requires of an existing directory it writes secrets in).
pub fn test_runtime_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tower-cache-layer-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the tests' runtime directory");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .expect("make the tests' runtime directory private");
    }
    dir
}

/// A running proxy process, killed when dropped.
pub struct Proxy {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the proxy with `args` on a free port and waits until it accepts TCP connections.
pub async fn start_proxy(args: &[&str]) -> Proxy {
    start_proxy_in(&test_runtime_dir(), args).await
}

/// Starts the proxy with `args` on a free port and `XDG_RUNTIME_DIR=runtime_dir` (where it
/// writes its admin file), and waits until it accepts TCP connections and its admin file is
/// written.
pub async fn start_proxy_in(runtime_dir: &Path, args: &[&str]) -> Proxy {
    // Another test may grab the free port before the proxy binds it: try a few ports.
    for _ in 0..3 {
        let port = free_port();
        let child = Command::new(proxy_binary())
            .args(["--port", &port.to_string()])
            .args(args)
            .env("RUST_LOG", "warn")
            // Admin files go to a directory of the tests', not the user's runtime directory.
            .env("XDG_RUNTIME_DIR", runtime_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the caching_proxy example");
        let mut proxy = Proxy {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let admin_file = runtime_dir
            .join("tower-cache-layer")
            .join(format!("proxy-{port}.admin"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = proxy.child.try_wait().expect("poll the proxy process") {
                let mut stderr = String::new();
                if let Some(mut pipe) = proxy.child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                if stderr.contains("cannot listen") {
                    break; // port taken meanwhile: next port
                }
                panic!("caching_proxy {args:?} exited with {status} before listening: {stderr}");
            }
            // The admin file is written after the public listener is bound.
            let ready = args.contains(&"--admin-file") || admin_file.is_file();
            if ready && TcpStream::connect(proxy.addr).await.is_ok() {
                return proxy;
            }
            assert!(
                Instant::now() < deadline,
                "caching_proxy {args:?} was not ready on {} within 10s",
                proxy.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("could not find a free port for caching_proxy");
}
