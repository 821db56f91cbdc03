//! The disk store on its own: files, checksums, eviction, reopening.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;

use super::DiskStore;
use crate::key::example_key as key;
use crate::policy::{ResponsePolicy, VaryKey};
use crate::store::{MemoryStore, Opened, Store, StoredBody, StoredEntry, StoredResponse, Tiered};

/// A fresh directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("tcl-disk-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    /// The files under the directory with this extension.
    fn files(&self, extension: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for sub in std::fs::read_dir(&self.0).unwrap() {
            let sub = sub.unwrap().path();
            if sub.is_dir() {
                for file in std::fs::read_dir(&sub).unwrap() {
                    let file = file.unwrap().path();
                    if file.extension().is_some_and(|e| e == extension) {
                        found.push(file);
                    }
                }
            }
        }
        found
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn response_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn entry(body: impl Into<StoredBody>) -> Arc<StoredEntry> {
    let policy =
        ResponsePolicy::from_parts(Duration::from_secs(60), Duration::ZERO, response_time());
    let mut headers = HeaderMap::new();
    headers.insert("surrogate-key", "t1 t2".parse().unwrap());
    let response = StoredResponse::new(StatusCode::OK, headers, body, policy, VaryKey::default());
    Arc::new(StoredEntry::new(Arc::new(response)))
}

fn data(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into()
}

/// The bytes `range` of `body`, read as a client would.
async fn read(body: &StoredBody) -> Result<Bytes, crate::store::StoreError> {
    match body.open() {
        Opened::Bytes(bytes) => Ok(bytes),
        Opened::Stream(stream) => Ok(stream.collect().await?.to_bytes()),
    }
}

/// A body taken in through the store's sink, in frames of 10,000 bytes.
fn sunk(store: &DiskStore, bytes: &Bytes) -> StoredBody {
    let mut sink = store.body_sink(&key("/x"), None).expect("a sink");
    for at in (0..bytes.len()).step_by(10_000) {
        sink.write(&bytes.slice(at..(at + 10_000).min(bytes.len())))
            .unwrap();
    }
    sink.finish().unwrap()
}

#[tokio::test]
async fn a_small_entry_survives_reopening_with_its_metadata() {
    let dir = Dir::new("small");
    let store = DiskStore::open(&dir.0, 1 << 20).unwrap();
    store.put(key("/a"), entry(data(1000)), None).await.unwrap();
    drop(store);
    let store = DiskStore::open(&dir.0, 1 << 20).unwrap();
    assert_eq!(store.entry_count(), 1);
    let found = store.get(&key("/a")).await.unwrap().expect("kept");
    let response = &found.variants()[0];
    assert_eq!(response.body().as_bytes().unwrap(), &data(1000));
    assert_eq!(response.policy().response_time(), response_time());
    assert_eq!(store.keys_tagged("t2").await.unwrap(), vec![key("/a")]);
    assert!(store.get(&key("/b")).await.unwrap().is_none());
    assert!(store.remove(&key("/a")).await.unwrap());
    assert!(dir.files("h").is_empty());
}

#[tokio::test]
async fn a_large_body_streams_from_its_file_in_checked_blocks() {
    let dir = Dir::new("large");
    let store = DiskStore::open(&dir.0, 1 << 24).unwrap();
    let bytes = data(300_000);
    let body = sunk(&store, &bytes);
    assert!(body.as_bytes().is_none(), "kept in a file");
    store.put(key("/big"), entry(body), None).await.unwrap();
    let store = DiskStore::open(&dir.0, 1 << 24).unwrap();
    let found = store.get(&key("/big")).await.unwrap().expect("kept");
    let body = found.variants()[0].body();
    assert_eq!(read(body).await.unwrap(), bytes);
    let part = body.slice(65_000..=200_000).unwrap();
    assert_eq!(read(&part).await.unwrap(), bytes.slice(65_000..=200_000));
    // Put again, with the same body: one body file, still in use.
    store
        .put(key("/big"), Arc::clone(&found), None)
        .await
        .unwrap();
    assert_eq!(dir.files("b").len(), 1);
    assert_eq!(read(body).await.unwrap(), bytes);
}

#[tokio::test]
async fn a_small_body_of_unknown_length_stays_in_memory() {
    let dir = Dir::new("unknown");
    let store = DiskStore::open(&dir.0, 1 << 20).unwrap();
    assert!(store.body_sink(&key("/x"), Some(1000)).is_none());
    let body = sunk(&store, &data(20_000));
    assert_eq!(body.as_bytes().unwrap(), &data(20_000));
    assert!(dir.files("b").is_empty());
}

#[tokio::test]
async fn a_damaged_head_is_a_miss_and_removed() {
    let dir = Dir::new("head");
    let store = DiskStore::open(&dir.0, 1 << 20).unwrap();
    store.put(key("/a"), entry(data(1000)), None).await.unwrap();
    let head = dir.files("h").pop().unwrap();
    let mut bytes = std::fs::read(&head).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 1;
    std::fs::write(&head, bytes).unwrap();
    assert!(store.get(&key("/a")).await.unwrap().is_none());
    assert!(!head.exists());
    assert_eq!(store.entry_count(), 0);
}

#[tokio::test]
async fn an_unknown_version_is_a_miss() {
    let dir = Dir::new("version");
    let store = DiskStore::open(&dir.0, 1 << 20).unwrap();
    store.put(key("/a"), entry(data(10)), None).await.unwrap();
    let head = dir.files("h").pop().unwrap();
    let mut bytes = std::fs::read(&head).unwrap();
    bytes[4] = 99;
    std::fs::write(&head, &bytes).unwrap();
    assert!(store.get(&key("/a")).await.unwrap().is_none());
    // At open too.
    store.put(key("/a"), entry(data(10)), None).await.unwrap();
    std::fs::write(&head, &bytes).unwrap();
    let store = DiskStore::open(&dir.0, 1 << 20).unwrap();
    assert_eq!(store.entry_count(), 0);
    assert!(!head.exists());
}

#[tokio::test]
async fn a_damaged_block_fails_the_stream_and_removes_the_entry() {
    let dir = Dir::new("block");
    let store = DiskStore::open(&dir.0, 1 << 24).unwrap();
    let bytes = data(300_000);
    store
        .put(key("/big"), entry(sunk(&store, &bytes)), None)
        .await
        .unwrap();
    let file = dir.files("b").pop().unwrap();
    let mut raw = std::fs::read(&file).unwrap();
    raw[200_000] ^= 1;
    std::fs::write(&file, raw).unwrap();
    let found = store.get(&key("/big")).await.unwrap().expect("found");
    let body = found.variants()[0].body();
    // The first blocks are good; the damaged one is never sent.
    assert_eq!(
        read(&body.slice(0..=1000).unwrap()).await.unwrap(),
        bytes.slice(0..=1000)
    );
    assert!(read(body).await.is_err());
    assert!(store.get(&key("/big")).await.unwrap().is_none());
    drop(found);
    assert!(dir.files("b").is_empty() && dir.files("h").is_empty());
}

#[tokio::test]
async fn the_least_recently_used_entries_are_evicted() {
    let dir = Dir::new("evict");
    let store = DiskStore::open(&dir.0, 50_000).unwrap();
    for i in 0..5 {
        store
            .put(key(&format!("/{i}")), entry(data(9_000)), None)
            .await
            .unwrap();
    }
    assert!(store.get(&key("/0")).await.unwrap().is_some());
    store
        .put(key("/5"), entry(data(9_000)), None)
        .await
        .unwrap();
    assert!(store.disk_size() <= 50_000, "{}", store.disk_size());
    assert!(
        store.get(&key("/0")).await.unwrap().is_some(),
        "used recently"
    );
    assert!(
        store.get(&key("/1")).await.unwrap().is_none(),
        "least recently used"
    );
    // Larger than the whole store: not kept.
    store
        .put(key("/huge"), entry(sunk(&store, &data(60_000))), None)
        .await
        .unwrap();
    assert!(store.get(&key("/huge")).await.unwrap().is_none());
    let size: u64 = dir
        .files("h")
        .iter()
        .chain(&dir.files("b"))
        .map(|f| f.metadata().unwrap().len())
        .sum();
    assert!(size <= 50_000, "{size}");
    // Reopened with less room: evicted at open.
    let store = DiskStore::open(&dir.0, 20_000).unwrap();
    assert!(store.disk_size() <= 20_000 && store.entry_count() >= 1);
}

#[tokio::test]
async fn open_removes_what_a_crash_left() {
    let dir = Dir::new("crash");
    let store = DiskStore::open(&dir.0, 1 << 24).unwrap();
    store
        .put(key("/a"), entry(sunk(&store, &data(100_000))), None)
        .await
        .unwrap();
    // A body written but never named by a head, a temporary file, a head cut short.
    let orphan = sunk(&store, &data(100_000));
    std::mem::forget(orphan);
    std::fs::write(dir.0.join("tmp").join("0000000000000001.tmp"), b"partial").unwrap();
    let head = dir.files("h").pop().unwrap();
    let bytes = std::fs::read(&head).unwrap();
    store.put(key("/b"), entry(data(10)), None).await.unwrap();
    std::fs::write(&head, &bytes[..bytes.len() / 2]).unwrap();
    drop(store);
    let store = DiskStore::open(&dir.0, 1 << 24).unwrap();
    assert_eq!(store.entry_count(), 1);
    assert!(
        dir.files("b").is_empty(),
        "the orphan and the cut entry's body"
    );
    assert_eq!(std::fs::read_dir(dir.0.join("tmp")).unwrap().count(), 0);
    assert!(store.get(&key("/b")).await.unwrap().is_some());
    assert_eq!(store.clear().await.unwrap(), 1);
    assert!(dir.files("h").is_empty());
}

#[tokio::test]
async fn expired_entries_are_misses() {
    let dir = Dir::new("expired");
    let store = DiskStore::open(&dir.0, 1 << 20).unwrap();
    store
        .put(key("/a"), entry(data(10)), Some(Duration::ZERO))
        .await
        .unwrap();
    store
        .put(key("/b"), entry(data(10)), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::thread::sleep(Duration::from_millis(1000));
    assert!(store.get(&key("/a")).await.unwrap().is_none());
    assert!(store.get(&key("/b")).await.unwrap().is_some());
}

#[tokio::test]
async fn a_failing_disk_stores_nothing_and_fails_nothing() {
    let dir = Dir::new("failing");
    let store = DiskStore::open(&dir.0, 1 << 24).unwrap();
    // Temporary files cannot be created (even as root): every write fails.
    std::fs::remove_dir(dir.0.join("tmp")).unwrap();
    std::fs::write(dir.0.join("tmp"), b"").unwrap();
    // The sink says it cannot keep the body; the cache then stores nothing.
    let bytes = data(100_000);
    let mut sink = store.body_sink(&key("/x"), None).expect("a sink");
    let written: Result<Vec<()>, _> = (0..bytes.len())
        .step_by(10_000)
        .map(|at| sink.write(&bytes.slice(at..at + 10_000)))
        .collect();
    assert!(written.is_err(), "a body the disk cannot take is an error");
    store.put(key("/a"), entry(data(100)), None).await.unwrap();
    store
        .put(key("/b"), entry(data(100_000)), None)
        .await
        .unwrap();
    assert_eq!(store.entry_count(), 0);
    assert!(store.get(&key("/a")).await.unwrap().is_none());
}

#[tokio::test]
async fn only_entries_held_in_memory_go_in_front() {
    let dir = Dir::new("tiered");
    let disk = DiskStore::open(&dir.0, 1 << 24).unwrap();
    let tiered = Tiered::new(MemoryStore::new(1 << 24), disk.clone());
    tiered
        .put(key("/small"), entry(data(100)), None)
        .await
        .unwrap();
    tiered
        .put(key("/big"), entry(sunk(&disk, &data(100_000))), None)
        .await
        .unwrap();
    assert!(tiered.get_now(&key("/small")).is_some());
    assert!(tiered.get_now(&key("/big")).is_none());
    let big = tiered.get(&key("/big")).await.unwrap().expect("from disk");
    assert_eq!(read(big.variants()[0].body()).await.unwrap(), data(100_000));
    assert!(
        tiered.get_now(&key("/big")).is_none(),
        "not filled in front"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_body_removed_while_it_streams_still_reads_right() {
    let dir = Dir::new("unlinked");
    let store = DiskStore::open(&dir.0, 1 << 24).unwrap();
    let bytes = data(300_000);
    store
        .put(key("/big"), entry(sunk(&store, &bytes)), None)
        .await
        .unwrap();
    let found = store.get(&key("/big")).await.unwrap().expect("kept");
    // Evicted (here: cleared) while a hit holds the body open: the store keeps the file until
    // the hit is done (a later put may still use it); unlinked anyway, it reads the same.
    assert_eq!(store.clear().await.unwrap(), 1);
    assert_eq!(dir.files("b").len(), 1, "kept while open");
    for file in dir.files("b") {
        std::fs::remove_file(file).unwrap();
    }
    assert_eq!(read(found.variants()[0].body()).await.unwrap(), bytes);
    drop(found);
    assert!(dir.files("b").is_empty());
}
