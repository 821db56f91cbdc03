//! Command-line configuration: the flags, and the parsers of their values.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::Parser;

mod values;

pub(crate) use self::values::{
    IpNet, Origin, parse_header_limit, parse_non_empty, parse_origin, parse_size, parse_tag,
};

/// A caching proxy: forwards every request to one origin server (with --origin) or, as a
/// forward proxy, to the server its URL names (without), and serves cacheable responses
/// (RFC 9111, shared cache) from memory.
///
/// Responses carry `X-Cache: HIT|MISS`, `Cache-Status` (RFC 9211) and, on hits, `Age`.
/// Log verbosity follows RUST_LOG (default `info`).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
#[command(group = clap::ArgGroup::new("purge_target").args(["purge", "purge_tag"]))]
pub(crate) struct Config {
    /// Port to listen on; with --clear-cache, the port of the running proxy.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) port: u16,

    /// IP address to listen on; with --clear-cache, the address of the running proxy.
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub(crate) bind: IpAddr,

    /// Origin server to forward to: an absolute http:// or https:// URL, optionally with a base
    /// path that is prepended to every request path (e.g. https://example.com/api). Without
    /// it the proxy is a forward proxy: clients (browsers, `curl -x`) send it absolute URLs
    /// for any host, and CONNECT opens tunnels.
    #[arg(long, value_name = "URL", value_parser = parse_origin)]
    pub(crate) origin: Option<Origin>,

    /// Where the cache keeps responses: `memory` (this process), `disk:PATH` (a directory
    /// that survives restarts; cargo feature `disk`) or `redis://HOST:PORT/DB` / `rediss://…`
    /// (shared by several proxies; cargo feature `redis`). Disk and Redis have a memory tier
    /// of --max-capacity in front.
    #[arg(long, value_name = "STORE", default_value = "memory", value_parser = crate::store::parse_store)]
    pub(crate) store: crate::store::StoreSpec,

    /// With a redis:// store: the prefix of every Redis key (entries, tags, locks, the
    /// invalidation channel). Proxies that share Redis and the prefix share their cache.
    /// (Only in a build with the redis feature.)
    #[cfg(feature = "redis")]
    #[arg(long, value_name = "PREFIX", default_value = "tcl:")]
    pub(crate) redis_prefix: String,

    /// Total size of the cache in bytes (of the memory tier in front of a disk or Redis
    /// store); accepts suffixes K, M, G (powers of 1024), e.g. 256M.
    #[arg(long, value_name = "BYTES", default_value = "256M", value_parser = parse_size)]
    pub(crate) max_capacity: u64,

    /// With --store disk:PATH: the most bytes of files the disk store keeps in PATH (suffixes
    /// K, M, G, T); the least recently used entries are evicted beyond it. The default, 10G,
    /// fits most servers' free space while holding far more than the memory tier.
    #[arg(long, value_name = "BYTES", default_value = "10G", value_parser = parse_size)]
    pub(crate) disk_capacity: u64,

    /// Largest response body the cache stores, in bytes (suffixes K, M, G); larger ones are
    /// streamed through uncached.
    #[arg(long, value_name = "BYTES", default_value = "8M", value_parser = parse_size)]
    pub(crate) max_entry_size: u64,

    /// Cache responses that have no explicit freshness (no max-age, s-maxage or Expires) for
    /// this many seconds. no-store, private and explicit freshness still take precedence.
    /// Off by default.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) default_ttl: Option<u64>,

    /// Store a response only once its URL was requested this many times within
    /// --min-uses-window (nginx's proxy_cache_min_uses); earlier requests are forwarded and
    /// passed on unstored (`Cache-Status: …; fwd=miss; …; detail=min-uses`). 1 (the default)
    /// stores every storable response.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub(crate) min_uses: u32,

    /// The window, in seconds, within which --min-uses requests must arrive, counted from a
    /// URL's first request.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub(crate) min_uses_window: u64,

    /// Store every storable response, even while the memory store is full. By default a full
    /// store keeps a response only from its URL's second request within 10 minutes (the
    /// doorkeeper: a full store would turn most one-off URLs away after storing them anyway);
    /// first requests are passed on unstored (`Cache-Status: …; detail=store-full`).
    #[arg(long)]
    pub(crate) no_doorkeeper: bool,

    /// Store responses that carry Set-Cookie, as RFC 9111 allows. Off by default: a shared
    /// cache would hand one user's cookie to the next, so such responses pass through
    /// uncached unless the origin names the cookie in `private="set-cookie"`.
    #[arg(long)]
    pub(crate) store_set_cookie: bool,

    /// Answer 504 Gateway Timeout when the origin has not sent response headers within this
    /// many seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub(crate) origin_timeout: u64,

    /// When the origin cannot be reached (or sends no response headers in time), serve a
    /// stored response that is stale by at most this many seconds instead of 502/504 (RFC 9111
    /// §4.2.4), unless it has must-revalidate, proxy-revalidate, no-cache or s-maxage. 0 turns
    /// it off.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub(crate) max_stale_if_unreachable: u64,

    /// Largest request head (request line and header fields) a client may send, in bytes
    /// (suffixes K, M, G; at least 8K). A larger one is answered 431 Request Header Fields Too
    /// Large and its connection closed.
    #[arg(long, value_name = "BYTES", default_value = "64K", value_parser = parse_header_limit)]
    pub(crate) max_header_bytes: usize,

    /// Close a client connection that has not sent a complete request head within this many
    /// seconds of connecting, or of its previous response (against slowloris clients; idle
    /// keep-alive connections are closed after this time too).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub(crate) header_read_timeout: u64,

    /// Threads that serve requests. Default: one per CPU the proxy may run on (its CPU
    /// affinity, as `taskset` sets it). With 1 the proxy runs on a single-threaded runtime,
    /// which costs less per request than a multi-threaded one of one thread (a quarter less
    /// CPU per miss on the shared benchmark).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) threads: Option<u16>,

    /// Serve at most this many client connections at once. At the limit, the least recently
    /// active idle keep-alive connection is closed to admit a new one; only while every
    /// connection has a request in flight do new connections wait in the listen backlog.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub(crate) max_connections: u32,

    /// Send the client's own authority (its `Host`, or the host of an absolute-form target)
    /// to the origin instead of the origin's, and key the cache by it, as nginx's
    /// `proxy_set_header Host $host` or Apache's `ProxyPreserveHost On`. Off by default: the
    /// origin sees its own authority and every client shares one cache entry per URL.
    #[arg(long)]
    pub(crate) preserve_host: bool,

    /// A peer (an address or a CIDR range, e.g. 10.0.0.0/8) whose `X-Forwarded-For` is kept
    /// and extended, such as a load balancer in front of the proxy. Repeatable. Everyone
    /// else's forwarding fields are replaced.
    #[arg(long, value_name = "CIDR")]
    pub(crate) trusted_proxy: Vec<IpNet>,

    /// Close pooled origin connections unused for this many seconds. Keep it below the
    /// origin's keep-alive timeout (Node.js and Apache close after 5 s) so that the proxy
    /// rarely sends on a connection the origin is closing.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 4,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub(crate) origin_idle_timeout: u64,

    /// Serve only clients from this address or CIDR range (e.g. 10.0.0.0/8); repeatable.
    /// Others get 403 Forbidden. Default: everyone with --origin, loopback clients only
    /// for a forward proxy.
    #[arg(long, value_name = "CIDR")]
    pub(crate) allow: Vec<IpNet>,

    /// Forward proxy: the ports CONNECT may open tunnels to (comma-separated).
    #[arg(
        long,
        value_name = "PORTS",
        value_delimiter = ',',
        default_value = "443",
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub(crate) connect_ports: Vec<u16>,

    /// A PEM file of certificate authorities to trust for https:// origins, besides the
    /// Mozilla roots (an origin with a private or self-signed CA). Repeatable.
    #[arg(long, value_name = "FILE", value_parser = crate::tls::parse_ca_file)]
    pub(crate) origin_ca: Vec<crate::tls::CaFile>,

    /// Read settings from this TOML file: each key a flag's long name (`max-capacity =
    /// "512M"`, `store-set-cookie = true`, `trusted-proxy = ["10.0.0.0/8"]`). Flags given on
    /// the command line override the file.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,

    /// Do not start a proxy: ask the proxy this user runs on --port to empty its cache (through
    /// the admin address and token in its admin file), print how many entries it removed and
    /// exit. With --store disk:PATH and no proxy listening on --port, empties PATH directly.
    /// With --store redis://…, empty that Redis store directly instead (under
    /// --redis-prefix), no proxy needed: every proxy sharing it drops its memory tier too.
    #[arg(long, conflicts_with_all = SERVING_FLAGS)]
    pub(crate) clear_cache: bool,

    /// Do not start a proxy: ask the proxy this user runs on --port (through its admin file,
    /// as --clear-cache does) to purge the entry for this path (`/x?y`, resolved as the proxy
    /// keys requests: against its origin and base path) or absolute URL, with every Vary
    /// variant; print how many entries it purged and exit.
    #[arg(
        long,
        value_name = "PATH_OR_URL",
        value_parser = parse_non_empty,
        conflicts_with_all = SERVING_FLAGS,
        conflicts_with_all = ["clear_cache", "purge_tag"]
    )]
    pub(crate) purge: Option<String>,

    /// Do not start a proxy: ask the proxy this user runs on --port to purge every entry
    /// tagged TAG in its `Surrogate-Key` (space-separated) or `Cache-Tag` (comma-separated)
    /// response field; print how many entries it purged and exit.
    #[arg(
        long,
        value_name = "TAG",
        value_parser = parse_tag,
        conflicts_with_all = SERVING_FLAGS,
        conflicts_with = "clear_cache"
    )]
    pub(crate) purge_tag: Option<String>,

    /// With --purge or --purge-tag: mark the entries stale instead of removing them, so the
    /// next request revalidates them with the origin, and the stale copy can still answer if
    /// the origin fails (stale-if-error, --max-stale-if-unreachable).
    #[arg(long, requires = "purge_target")]
    pub(crate) soft: bool,

    /// Port of the admin listener, which always binds 127.0.0.1 (0: a free port picked by the
    /// system). Its address and a fresh random token are written to the admin file.
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = 0,
        conflicts_with_all = ["clear_cache", "purge", "purge_tag"]
    )]
    pub(crate) admin_port: u16,

    /// The admin file (admin address and token) to write, or with --clear-cache, --purge or
    /// --purge-tag to read.
    /// Default: tower-cache-layer/proxy-<port>.admin under $XDG_RUNTIME_DIR, else
    /// $XDG_CACHE_HOME or ~/.cache, else the temp dir (tower-cache-layer-<uid>/).
    #[arg(long, value_name = "PATH")]
    pub(crate) admin_file: Option<PathBuf>,
}

/// The flags that only make sense when serving: `--clear-cache`, `--purge` and `--purge-tag`
/// conflict with them.
const SERVING_FLAGS: [&str; 20] = [
    "origin",
    "min_uses",
    "min_uses_window",
    "no_doorkeeper",
    "max_capacity",
    "disk_capacity",
    "max_entry_size",
    "default_ttl",
    "origin_timeout",
    "max_stale_if_unreachable",
    "store_set_cookie",
    "max_header_bytes",
    "header_read_timeout",
    "max_connections",
    "preserve_host",
    "trusted_proxy",
    "origin_idle_timeout",
    "allow",
    "connect_ports",
    "origin_ca",
];

impl Config {
    /// What `--purge` or `--purge-tag` (with `--soft`) asks for, if either is given.
    pub(crate) fn purge_query(&self) -> Option<crate::admin::PurgeQuery> {
        use crate::admin::{PurgeQuery, PurgeTarget};
        let target = match (&self.purge, &self.purge_tag) {
            (Some(url), _) => PurgeTarget::Url(url.clone()),
            (None, Some(tag)) => PurgeTarget::Tag(tag.clone()),
            (None, None) => return None,
        };
        Some(PurgeQuery {
            target,
            soft: self.soft,
        })
    }
}
