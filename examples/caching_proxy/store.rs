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

/// A Redis store at `url`, behind `memory`.
#[cfg(feature = "redis")]
async fn redis(memory: MemoryStore, url: &str, config: &Config) -> Result<BoxStore, String> {
    let _ = (memory, config);
    Err(format!("{url}: the Redis store is not built yet"))
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
