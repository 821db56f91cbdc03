//! `--store`: where the cache keeps responses. Memory by default; a directory (`disk:PATH`,
//! feature `disk`) or Redis (`redis://…`, feature `redis`), each behind a memory tier.

use std::fmt;
use std::path::PathBuf;

use tower_cache_layer::store::{BoxStore, MemoryStore};

use crate::config::Config;

/// Where the cache keeps responses, as `--store` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoreSpec {
    /// In this process's memory (`memory`, the default).
    Memory,
    /// In a directory (`disk:PATH`).
    Disk(PathBuf),
    /// In Redis (`redis://HOST:PORT/DB` or `rediss://…`).
    Redis(String),
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Disk(path) => write!(f, "disk:{}", path.display()),
            Self::Redis(url) => f.write_str(url),
        }
    }
}

/// Parses `--store`: `memory`, `disk:PATH`, `redis://…` or `rediss://…`. A store this build
/// lacks is a flag error that names the cargo feature to build with.
pub(crate) fn parse_store(s: &str) -> Result<StoreSpec, String> {
    let spec = if s == "memory" {
        StoreSpec::Memory
    } else if let Some(path) = s.strip_prefix("disk:") {
        if path.is_empty() {
            return Err("disk: needs a directory, e.g. disk:/var/cache/proxy".into());
        }
        StoreSpec::Disk(PathBuf::from(path))
    } else if s.starts_with("redis://") || s.starts_with("rediss://") {
        StoreSpec::Redis(s.to_owned())
    } else {
        return Err("expected memory, disk:PATH, redis://HOST:PORT/DB or rediss://…".into());
    };
    let missing = match &spec {
        StoreSpec::Disk(_) if !cfg!(feature = "disk") => Some("disk"),
        StoreSpec::Redis(_) if !cfg!(feature = "redis") => Some("redis"),
        _ => None,
    };
    match missing {
        Some(feature) => Err(format!(
            "this caching_proxy was built without the {feature} store \
             (cargo run --release --features {feature} --example caching_proxy)"
        )),
        None => Ok(spec),
    }
}

/// Opens the store `config` names, with `--max-capacity` bytes of memory in front of a disk
/// or Redis store.
pub(crate) async fn open(config: &Config) -> Result<BoxStore, String> {
    let memory = MemoryStore::new(config.max_capacity);
    match &config.store {
        StoreSpec::Memory => Ok(BoxStore::new(memory)),
        #[cfg(feature = "disk")]
        StoreSpec::Disk(path) => disk(memory, path, config).await,
        #[cfg(feature = "redis")]
        StoreSpec::Redis(url) => redis(memory, url, config).await,
        #[allow(unreachable_patterns)]
        other => Err(format!("{other}: not in this build")),
    }
}

/// A disk store under `path` of `--disk-capacity` bytes, behind `memory`. Opening scans the
/// directory, on the blocking pool.
#[cfg(feature = "disk")]
async fn disk(
    memory: MemoryStore,
    path: &std::path::Path,
    config: &Config,
) -> Result<BoxStore, String> {
    use tower_cache_layer::store::{DiskStore, Tiered};
    let (dir, capacity) = (path.to_path_buf(), config.disk_capacity);
    let disk = tokio::task::spawn_blocking(move || DiskStore::open(dir, capacity))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    tracing::info!(
        "disk store at {}: {} entries, {} of {} bytes",
        path.display(),
        disk.entry_count(),
        disk.disk_size(),
        disk.capacity()
    );
    Ok(BoxStore::new(Tiered::new(memory, disk)))
}

/// `--clear-cache --store disk:PATH` with no proxy on `--port`: empties the directory directly
/// and returns how many entries it held.
#[cfg(feature = "disk")]
pub(crate) async fn clear_disk(path: &std::path::Path) -> Result<u64, String> {
    use tower_cache_layer::store::{DiskStore, Store};
    let dir = path.to_path_buf();
    let disk = tokio::task::spawn_blocking(move || DiskStore::open(dir, u64::MAX))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    disk.clear().await.map_err(|e| e.to_string())
}

/// A Redis store at `url`, behind `memory`: entries under `--redis-prefix`, what other
/// proxies change dropped from `memory`, and one entry (all its variants) at most four times
/// `--max-entry-size` in Redis.
#[cfg(feature = "redis")]
async fn redis(memory: MemoryStore, url: &str, config: &Config) -> Result<BoxStore, String> {
    use tower_cache_layer::store::Tiered;
    let redis = redis_store(url, config)
        .front(memory.clone())
        .max_value_size(
            usize::try_from(config.max_entry_size.saturating_mul(4)).unwrap_or(usize::MAX),
        )
        .connect()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    tracing::info!(prefix = %config.redis_prefix, "cache in Redis at {}", redis_target(url));
    Ok(BoxStore::new(Tiered::new(memory, redis)))
}

/// The Redis store `url` names, with the prefix `config` gives.
#[cfg(feature = "redis")]
fn redis_store(url: &str, config: &Config) -> tower_cache_layer::store::RedisStoreBuilder {
    if url.starts_with("rediss://") {
        // redis-rs uses the process's default rustls provider; this proxy uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    tower_cache_layer::store::RedisStore::builder(url).prefix(config.redis_prefix.clone())
}

/// `url` without credentials, for messages.
#[cfg(feature = "redis")]
fn redis_target(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{rest}")
}

/// `--clear-cache --store redis://…`: empties the Redis store directly, and every proxy
/// sharing it drops its memory tier. `None` when `config` names no Redis store.
pub(crate) async fn clear_direct(config: &Config) -> Option<Result<(u64, String), String>> {
    #[cfg(feature = "redis")]
    if let StoreSpec::Redis(url) = &config.store {
        use tower_cache_layer::store::Store as _;
        let cleared = async {
            let store = redis_store(url, config)
                .connect()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let removed = store
                .clear()
                .await
                .map_err(|e| format!("cannot clear {}: {e}", redis_target(url)))?;
            Ok((removed, redis_target(url)))
        };
        return Some(cleared.await);
    }
    let _ = config;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_flags() {
        assert_eq!(parse_store("memory"), Ok(StoreSpec::Memory));
        assert!(parse_store("disk:").is_err());
        assert!(parse_store("ftp://x").is_err());
        assert!(parse_store("").is_err());
        let disk = parse_store("disk:/tmp/c");
        assert_eq!(disk.is_ok(), cfg!(feature = "disk"), "{disk:?}");
        let redis = parse_store("redis://127.0.0.1:6379/0");
        assert_eq!(redis.is_ok(), cfg!(feature = "redis"), "{redis:?}");
        if let Err(message) = redis {
            assert!(message.contains("--features redis"), "{message}");
        }
    }
}
