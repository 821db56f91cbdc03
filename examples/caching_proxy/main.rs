//! A standalone caching reverse proxy: every request goes to one origin server, and
//! cacheable answers are kept in a shared RFC 9111 cache (`tower_cache_layer::CacheLayer`).
//!
//! ```text
//! cargo run --release --example caching_proxy -- --port 3000 --origin http://127.0.0.1:8000
//! curl -i localhost:3000/index.html     # x-cache: MISS
//! curl -i localhost:3000/index.html     # x-cache: HIT
//! cargo run --release --example caching_proxy -- --clear-cache --port 3000
//! cargo run --release --example caching_proxy -- --purge /index.html --port 3000
//! cargo run --release --example caching_proxy -- --purge-tag product-42 --soft --port 3000
//! ```
//!
//! The path of a request, one module each:
//!
//! ```text
//! server (limits, log) -> front (checks, one authority) -> CacheLayer
//!     -> front (Host, Via, forwarding fields) -> forward (hyper-util Client) -> origin
//! ```
//!
//! `config` holds the flags, `admin` the admin interface, `wire` the reasons given to
//! hyper's own error answers. The cache and the forwarding service are built as
//! `ServiceBuilder::new().layer(cache_layer).service(OriginFields::new(front, peer, proxy))`
//! and served with hyper-util's `TowerToHyperService` and `auto::Builder` (HTTP/1 and HTTP/2).
//!
//! # Admin interface
//!
//! The public listener serves no admin function: every path, including
//! `/.well-known/tower-cache-layer/clear`, goes to the origin. A separate admin listener on
//! `127.0.0.1:--admin-port` (default: a port the system picks) answers `POST /clear` with the
//! number of removed entries, and `POST /purge?url=<path or URL>` or `?tag=<tag>` (with
//! `&soft=1` to mark stale instead) with the number of purged ones, and `GET /metrics` with
//! the cache's metrics in the Prometheus text format, for requests carrying
//! `Authorization: Bearer <token>`. Every minute with requests, one log line gives that
//! minute's hit ratio. At startup
//! the proxy writes the admin address and a random token to a 0600 admin file derived from its
//! public port (`$XDG_RUNTIME_DIR/tower-cache-layer/proxy-<port>.admin`, …; or `--admin-file`),
//! removed on graceful shutdown. `caching_proxy --clear-cache --port <PORT>` (or `--purge
//! <PATH_OR_URL>`, `--purge-tag <TAG>`, with `--soft`) reads that file and sends the request.
//! See the `admin` module.
//!
//! # Client limits
//!
//! - `--max-header-bytes` (64 KiB): a longer request head gets `431 Request Header Fields Too
//!   Large` (HTTP/1) and the connection is closed.
//! - `--header-read-timeout` (10 s): a connection that has not sent a complete request head
//!   this long after connecting or after its previous response is closed (slowloris).
//! - `--max-connections` (1024): at the limit, the least recently active idle keep-alive
//!   connection is closed to admit a new one; while every connection has a request in flight,
//!   new connections wait in the listen backlog.
//! - Ctrl-C or SIGTERM: the listener closes at once (new connections are refused) and
//!   responses in flight are finished, for up to 10 s; then the process exits with code 0.
//!
//! # Not supported
//!
//! Protocol upgrades (WebSocket): `Upgrade` is a hop-by-hop header and is removed. `CONNECT`
//! is answered `501 Not Implemented`.

mod admin;
mod config;
mod config_file;
mod conns;
mod forward;
mod front;
mod log;
mod metrics;
mod server;
mod store;
mod tls;
mod tunnel;
mod wire;

/// With the `mimalloc` feature, the proxy allocates with mimalloc.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::Config;

/// Parses the command line; on an error prints one line to stderr and exits with code 2
/// (`--help` and `--version` print as usual).
fn parse_config() -> Config {
    let args =
        config_file::with_config_file(std::env::args_os().collect()).unwrap_or_else(|line| {
            eprintln!("{line}");
            std::process::exit(2);
        });
    Config::try_parse_from(args).unwrap_or_else(|err| {
        if !err.use_stderr() {
            err.exit();
        }
        // Clap's message is "error: …" with details, a usage block and a hint, separated by
        // blank lines: keep the first paragraph, on one line.
        let rendered = err.render().to_string();
        let line = rendered
            .lines()
            .take_while(|line| !line.trim().is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        eprintln!("{line}");
        std::process::exit(2);
    })
}

/// The running proxy's public address for a message: as its admin file names it (`proxy`),
/// else as the user gave it; a wildcard address means loopback.
fn shown_address(config: &Config, proxy: Option<SocketAddr>) -> SocketAddr {
    let addr = proxy.unwrap_or(SocketAddr::new(config.bind, config.port));
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Whether something accepts connections on the proxy's address (`--bind`, `--port`): with
/// `--clear-cache --store disk:PATH`, a running proxy must empty its own cache (its memory
/// tier too), else the directory is emptied directly.
#[cfg(feature = "disk")]
async fn proxy_listening(config: &Config) -> bool {
    let addr = shown_address(config, None);
    let connect = tokio::net::TcpStream::connect(addr);
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), connect).await,
        Ok(Ok(_))
    )
}

/// The tokio runtime for `threads` worker threads (`--threads`; default one per CPU the
/// process may run on). One thread gets a single-threaded runtime: it serves every task itself,
/// without the multi-threaded runtime's queues, wake-ups across threads and parking, which
/// cost a miss (two connections' tasks waking each other) about a quarter of its CPU time.
fn runtime(threads: Option<u16>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads.map(usize::from).or_else(|| {
        std::thread::available_parallelism()
            .ok()
            .map(std::num::NonZero::get)
    });
    match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Runtime::new(),
    }
}

/// Entry point: `--clear-cache`, `--purge` and `--purge-tag` talk to a running proxy,
/// otherwise runs one.
fn main() -> ExitCode {
    let config = parse_config();
    // RUST_LOG as `level` or `target=level,...` (e.g. `warn`, `info,caching_proxy=debug`);
    // anything else falls back to `info`.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    // Lines are written by a thread of their own; `_flush` writes out the last ones on exit.
    let (log_writer, _flush) = log::LogWriter::stdout();
    log_writer.direct();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stdout().is_terminal())
                .with_writer(log_writer),
        )
        .with(filter)
        .init();
    let runtime = match runtime(config.threads) {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };

    #[cfg(feature = "disk")]
    if let (true, store::StoreSpec::Disk(path)) = (config.clear_cache, &config.store) {
        if !runtime.block_on(proxy_listening(&config)) {
            return match runtime.block_on(store::clear_disk(path)) {
                Ok(removed) => {
                    let noun = if removed == 1 { "entry" } else { "entries" };
                    println!("cleared {removed} {noun} from disk:{}", path.display());
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    if config.clear_cache {
        if let Some(result) = runtime.block_on(store::clear_direct(&config)) {
            return match result {
                Ok((removed, target)) => {
                    let noun = if removed == 1 { "entry" } else { "entries" };
                    println!("cleared {removed} {noun} from the cache in {target}");
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::FAILURE
                }
            };
        }
        let result = runtime.block_on(admin::clear_remote(config.port, config.admin_file.clone()));
        return match result {
            Ok((removed, proxy)) => {
                let addr = shown_address(&config, proxy);
                let noun = if removed == 1 { "entry" } else { "entries" };
                println!("cleared {removed} {noun} from the cache at {addr}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(query) = config.purge_query() {
        let result = runtime.block_on(admin::purge_remote(
            config.port,
            config.admin_file.clone(),
            &query,
        ));
        return match result {
            Ok((count, proxy)) => {
                let addr = shown_address(&config, proxy);
                let noun = if count == 1 { "entry" } else { "entries" };
                let what = match &query.target {
                    admin::PurgeTarget::Url(url) => format!("for {url}"),
                    admin::PurgeTarget::Tag(tag) => format!("tagged {tag}"),
                };
                if query.soft {
                    println!("marked {count} {noun} {what} stale in the cache at {addr}");
                } else {
                    println!("purged {count} {noun} {what} from the cache at {addr}");
                }
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        };
    }

    match runtime.block_on(server::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
