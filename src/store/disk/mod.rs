//! [`DiskStore`]: entries kept in a directory, surviving restarts (feature `disk`).

mod fault;
mod file;
mod format;
mod index;
mod inner;
mod scan;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use self::inner::Inner;
use super::{BodySink, Store, StoreError, StoredEntry};
use crate::key::CacheKey;

/// A store in a directory: embedded (no server), bounded in bytes, and kept across restarts.
///
/// # Layout
///
/// Each entry is a *head* file, `XX/<hash of the key>.h`, holding its header fields, its
/// freshness metadata (with the time it was received, so ages continue after a restart) and
/// bodies of up to 64 KiB. A larger body is a *body* file, `XX/<id>.b`, written as it streams
/// from the origin ([`Store::body_sink`]) and read back 64 KiB at a time on a hit, so that a
/// 1 GiB object never sits in memory. `XX` spreads files over 256 subdirectories.
///
/// # Crash safety
///
/// Files are written under `tmp/` and renamed into place once complete (as nginx does), a body
/// file before the head that names it, so a reader sees a whole file or none. Every file
/// starts with a format version and carries CRC-32 checksums: over a head, and over each
/// 64 KiB block of a body (checked as the block is read, before its bytes are sent). A file
/// of another version, or damaged, is a miss and is removed; a body found damaged while it
/// streams ends the response early (its `Content-Length` tells the client) and removes the
/// entry. At open, leftover temporary files, unusable heads and body files no head names are
/// removed. Nothing is `fsync`ed: after a power loss recent entries may be lost (and are then
/// caught by their checksums), never served damaged.
///
/// # Eviction and errors
///
/// An in-memory index, rebuilt at [`open`](Self::open) by scanning the directory, keeps the
/// size of every file; when more than `capacity` bytes are used, the least recently used
/// entries are removed (after a restart, the least recently written first). Each entry also
/// expires after the `ttl` it was put with.
///
/// A failing disk (full, no permission) never fails a request: the lookup is a miss, the write
/// is skipped, and the failure is logged once per kind until the disk works again.
///
/// One process uses a directory at a time. [`Tiered`](super::Tiered) puts a memory tier in
/// front: entries whose bodies are all in memory are answered from there.
///
/// # Example
///
/// ```
/// use tower_cache_layer::CacheLayer;
/// use tower_cache_layer::store::{DiskStore, MemoryStore, Tiered};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let dir = std::env::temp_dir().join(format!("disk-store-doc-{}", std::process::id()));
/// // 10 GiB on disk, with 64 MiB of the most used small responses in memory in front.
/// let disk = DiskStore::open(&dir, 10 << 30)?;
/// assert_eq!(disk.entry_count(), 0);
/// let layer = CacheLayer::builder()
///     .store(Tiered::new(MemoryStore::new(64 << 20), disk))
///     .build();
/// # let _ = layer;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DiskStore {
    inner: Arc<Inner>,
}

impl DiskStore {
    /// Opens the store in `dir` (created if missing), holding at most `capacity` bytes of
    /// files.
    ///
    /// Opening scans the directory (the start of every head file) to rebuild the index, and
    /// evicts down to `capacity`: it blocks, for a time that grows with the number of entries
    /// (in async code, call it with `tokio::task::spawn_blocking`).
    ///
    /// # Errors
    ///
    /// When the directory cannot be created or read.
    pub fn open(dir: impl AsRef<Path>, capacity: u64) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        let inner = scan::open(dir.to_path_buf(), capacity)
            .map_err(|error| StoreError::new(format!("disk store {}: {error}", dir.display())))?;
        Ok(Self { inner })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// The most bytes of files the store keeps.
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// Number of entries.
    pub fn entry_count(&self) -> u64 {
        self.inner.lock().index.len() as u64
    }

    /// Bytes of files in use: heads and the body files entries use.
    pub fn disk_size(&self) -> u64 {
        self.inner.lock().index.bytes()
    }
}

impl fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStore")
            .field("path", &self.inner.root)
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

/// Runs `work` on tokio's blocking pool (here, without a runtime).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime.spawn_blocking(work).await.map_err(StoreError::new),
        Err(_) => Ok(work()),
    }
}

impl Store for DiskStore {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        let (inner, key) = (Arc::clone(&self.inner), key.clone());
        let entry = blocking(move || inner.read(&key)).await?;
        Ok(entry.map(Arc::new))
    }

    async fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.write(&key, &value, ttl)).await
    }

    async fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
        let inner = Arc::clone(&self.inner);
        let hash = format::key_hash(key.as_str());
        blocking(move || inner.remove(hash)).await
    }

    async fn clear(&self) -> Result<u64, StoreError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.clear()).await
    }

    /// Reads and writes that failed and were answered as misses or skipped (each is also
    /// logged, once per kind).
    fn failures(&self) -> u64 {
        self.inner.faults.count()
    }

    /// Looks tags up in the in-memory index: no file is read.
    async fn keys_tagged(&self, tag: &str) -> Result<Vec<CacheKey>, StoreError> {
        Ok(self.inner.tagged(tag))
    }

    /// A sink for a body of unknown length or over 64 KiB: it is kept in memory up to
    /// 64 KiB (and then stored in its head file), else written to a body file as it arrives.
    fn body_sink(&self, _key: &CacheKey, length: Option<u64>) -> Option<Box<dyn BodySink>> {
        match length {
            Some(len) if len <= format::INLINE_MAX as u64 => None,
            _ => Some(Box::new(file::DiskSink::new(Arc::clone(&self.inner)))),
        }
    }
}

#[cfg(test)]
mod tests;
