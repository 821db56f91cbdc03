//! The blocking operations of a [`DiskStore`](super::DiskStore), run on tokio's blocking
//! pool: reading, writing and removing entries, and eviction.
//!
//! Every change to the directory that the index reflects (a head renamed into place, a file
//! removed) is made with the index locked, so that the two agree; files are written to
//! `tmp/` and checked-summed before that, without the lock.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::fault::Faults;
use super::file::{BodyWriter, DiskBody};
use super::format::{self, BodyRef, INLINE_MAX, Meta, Unusable};
use super::index::{Index, Slot};
use crate::key::CacheKey;
use crate::store::{StoredBody, StoredEntry, StoredResponse, codec};

/// A disk store's directory, index and counters.
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) capacity: u64,
    pub(crate) state: Mutex<State>,
    pub(crate) next_id: AtomicU64,
    pub(crate) faults: Faults,
}

/// What the lock guards: the index, and the body files open as [`DiskBody`]s.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) index: Index,
    /// Open bodies by address, with their body file ids.
    live: HashMap<usize, u64>,
}

impl State {
    fn is_live(&self, id: u64) -> bool {
        self.live.values().any(|live| *live == id)
    }
}

/// The fan-out subdirectory of a name's last byte.
pub(crate) fn fan(byte: u8) -> String {
    format!("{byte:02x}")
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is complete before anything that can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn head_path(&self, hash: u128) -> PathBuf {
        self.root
            .join(fan(hash as u8))
            .join(format!("{hash:032x}.h"))
    }

    pub(crate) fn body_path(&self, id: u64) -> PathBuf {
        self.root.join(fan(id as u8)).join(format!("{id:016x}.b"))
    }

    pub(crate) fn temp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{:016x}.tmp", self.new_id()))
    }

    /// A body file id (and temporary name) never used in this directory.
    pub(crate) fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn register(&self, address: usize, id: u64) {
        self.lock().live.insert(address, id);
    }

    /// A [`DiskBody`] is dropped: its file is removed if no entry uses it.
    pub(crate) fn unregister(&self, address: usize, id: u64) {
        let mut state = self.lock();
        state.live.remove(&address);
        if !state.index.has_body(id) && !state.is_live(id) {
            let _ = std::fs::remove_file(self.body_path(id));
        }
    }

    /// Removes the entry under `hash` (index and files); whether there was one. The lock is
    /// held.
    fn remove_locked(&self, state: &mut State, hash: u128) -> bool {
        let freed = state.index.remove(hash);
        let existed = std::fs::remove_file(self.head_path(hash)).is_ok();
        for id in freed.iter().flatten() {
            if !state.is_live(*id) {
                let _ = std::fs::remove_file(self.body_path(*id));
            }
        }
        freed.is_some() || existed
    }

    pub(crate) fn remove(&self, hash: u128) -> bool {
        self.remove_locked(&mut self.lock(), hash)
    }

    fn remove_damaged(&self, hash: u128, why: Unusable) {
        tracing::warn!(
            file = %self.head_path(hash).display(),
            "disk cache entry unusable ({why:?}): removed, answering as a miss"
        );
        self.remove(hash);
    }

    /// A block of body file `id` failed its checksum: every entry using it is removed.
    pub(crate) fn damaged_body(&self, id: u64) {
        tracing::warn!(
            file = %self.body_path(id).display(),
            "disk cache body file damaged: its entries are removed"
        );
        let mut state = self.lock();
        for hash in state.index.using_body(id) {
            self.remove_locked(&mut state, hash);
        }
        let _ = std::fs::remove_file(self.body_path(id));
    }

    /// Evicts the least recently used entries until at most `capacity` bytes are in use.
    pub(crate) fn evict_locked(&self, state: &mut State) {
        while let Some(victim) = state.index.victim(self.capacity) {
            self.remove_locked(state, victim);
        }
    }

    /// The entry under `key`, its large bodies open; `None` when absent, expired or
    /// unusable (then removed), or when the disk fails (logged).
    pub(crate) fn read(self: &Arc<Self>, key: &CacheKey) -> Option<StoredEntry> {
        let hash = format::key_hash(key.as_str());
        let bytes = match std::fs::read(self.head_path(hash)) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                // Removed behind the index's back (a clear from another process), unless a
                // put has just renamed a new head into place.
                let mut state = self.lock();
                if !self.head_path(hash).exists() {
                    self.remove_locked(&mut state, hash);
                }
                return None;
            }
            Err(error) => {
                self.faults.report("read an entry", &error);
                return None;
            }
        };
        let (meta, rest) = match format::decode_head(&bytes) {
            Ok(decoded) => decoded,
            Err(why) => {
                self.remove_damaged(hash, why);
                return None;
            }
        };
        if meta.key != key.as_str() {
            return None; // Another key with the same hash.
        }
        if meta.expires.is_some_and(|expires| expires < unix_now()) {
            self.remove(hash);
            return None;
        }
        let entry = codec::decode(rest).filter(|e| e.variants().len() == meta.bodies.len());
        let Some(entry) = entry else {
            self.remove_damaged(hash, Unusable::Version);
            return None;
        };
        let mut variants = Vec::with_capacity(meta.bodies.len());
        for (variant, body) in entry.variants().iter().zip(&meta.bodies) {
            let Some(body) = body else {
                variants.push(Arc::clone(variant));
                continue;
            };
            let body = match self.open_body(*body) {
                Ok(body) => body,
                Err(Ok(why)) => {
                    self.remove_damaged(hash, why);
                    return None;
                }
                // Replaced meanwhile, or the disk fails: a miss.
                Err(Err(_)) => return None,
            };
            variants.push(Arc::new(StoredResponse {
                body: StoredBody::from_source(body),
                ..StoredResponse::clone(variant)
            }));
        }
        self.lock().index.touch(hash);
        Some(StoredEntry::from_variants(variants))
    }

    /// Opens body file `body.id`, checking its length and first bytes.
    fn open_body(self: &Arc<Self>, body: BodyRef) -> Result<Arc<DiskBody>, Result<Unusable, ()>> {
        let path = self.body_path(body.id);
        let file = std::fs::File::open(&path).map_err(|error| {
            if error.kind() != io::ErrorKind::NotFound {
                self.faults.report("read a body file", &error);
            }
            Err(())
        })?;
        let len = file.metadata().map_err(|_| Err(()))?.len();
        if len != format::body_file_len(body.len) {
            return Err(Ok(Unusable::Damaged));
        }
        let mut prefix = [0; format::BODY_PREFIX as usize];
        std::io::Read::read_exact(&mut &file, &mut prefix).map_err(|_| Err(()))?;
        format::check_body_prefix(&prefix).map_err(Ok)?;
        Ok(DiskBody::new(self, body.id, body.len, file))
    }

    /// Where `body` is in this store's body files, if it is all of one.
    fn ours(&self, body: &StoredBody) -> Option<BodyRef> {
        let (source, first, len) = body.source()?;
        let address = Arc::as_ptr(source).cast::<()>() as usize;
        let id = *self.lock().live.get(&address)?;
        (first == 0 && len == source.len()).then_some(BodyRef { id, len })
    }

    /// A new body file holding `bytes`.
    fn write_body(self: &Arc<Self>, bytes: &Bytes) -> io::Result<(BodyRef, Arc<DiskBody>)> {
        let mut writer = BodyWriter::create(self.temp_path())?;
        writer.write(bytes)?;
        let (file, temp, len) = writer.finish()?;
        let id = self.new_id();
        std::fs::rename(&temp, self.body_path(id))?;
        Ok((BodyRef { id, len }, DiskBody::new(self, id, len, file)))
    }

    /// Writes `entry` under `key`, then evicts down to the capacity. A failing disk is logged
    /// and the entry is not stored.
    pub(crate) fn write(
        self: &Arc<Self>,
        key: &CacheKey,
        entry: &StoredEntry,
        ttl: Option<Duration>,
    ) {
        let hash = format::key_hash(key.as_str());
        // Bodies kept alive (and their new files with them) until the index holds them.
        let mut held = Vec::new();
        let mut refs = Vec::new();
        let mut variants = Vec::new();
        for variant in entry.variants() {
            let body = match variant.body().as_bytes() {
                Some(bytes) if bytes.len() <= INLINE_MAX => None,
                Some(bytes) => match self.write_body(bytes) {
                    Ok((body, file)) => {
                        held.push(file);
                        Some(body)
                    }
                    Err(error) => return self.faults.report("write a body file", &error),
                },
                // Another store's body, or part of one: this variant is not kept.
                None => match self.ours(variant.body()) {
                    Some(body) => Some(body),
                    None => continue,
                },
            };
            variants.push(match body {
                Some(_) => Arc::new(StoredResponse {
                    body: StoredBody::default(),
                    ..StoredResponse::clone(variant)
                }),
                None => Arc::clone(variant),
            });
            refs.push(body);
        }
        if variants.is_empty() {
            self.remove(hash);
            return;
        }
        let Ok(rest) = codec::encode(&StoredEntry::from_variants(variants)) else {
            return;
        };
        let meta = Meta {
            key: key.as_str().to_owned(),
            expires: ttl.map(|ttl| unix_now().saturating_add(ttl.as_secs()) + 1),
            tags: tags(entry),
            bodies: refs,
        };
        self.commit(hash, &meta, &format::encode_head(&meta, &rest));
        drop(held);
    }

    /// Puts `head` (of `meta`) in place under `hash` and updates the index.
    fn commit(&self, hash: u128, meta: &Meta, head: &[u8]) {
        let bodies: Vec<_> = meta.bodies.iter().flatten().copied().collect();
        let sizes: Vec<_> = bodies
            .iter()
            .map(|b| (b.id, format::body_file_len(b.len)))
            .collect();
        let size = head.len() as u64 + sizes.iter().map(|(_, size)| size).sum::<u64>();
        if size > self.capacity {
            self.remove(hash);
            return;
        }
        let temp = self.temp_path();
        if let Err(error) = std::fs::write(&temp, head) {
            let _ = std::fs::remove_file(&temp);
            return self.faults.report("write an entry", &error);
        }
        let mut state = self.lock();
        // A body evicted since it was read cannot be used any more.
        let gone = bodies
            .iter()
            .any(|b| !state.index.has_body(b.id) && !self.body_path(b.id).is_file());
        if gone {
            let _ = std::fs::remove_file(&temp);
            return;
        }
        if let Err(error) = std::fs::rename(&temp, self.head_path(hash)) {
            let _ = std::fs::remove_file(&temp);
            drop(state);
            return self.faults.report("write an entry", &error);
        }
        let tags = meta.tags.iter().map(|tag| tag.as_str().into()).collect();
        let ids = bodies.iter().map(|b| b.id).collect();
        let slot = Slot::new(meta.key.as_str().into(), tags, head.len() as u64, ids);
        for id in state.index.insert(hash, slot, &sizes) {
            if !state.is_live(id) {
                let _ = std::fs::remove_file(self.body_path(id));
            }
        }
        self.evict_locked(&mut state);
        drop(state);
        self.faults.recovered();
    }

    /// Removes every entry; how many there were.
    pub(crate) fn clear(&self) -> u64 {
        let mut state = self.lock();
        let (entries, bodies) = state.index.take();
        for hash in &entries {
            let _ = std::fs::remove_file(self.head_path(*hash));
        }
        for id in bodies {
            if !state.is_live(id) {
                let _ = std::fs::remove_file(self.body_path(id));
            }
        }
        entries.len() as u64
    }

    /// The keys of the entries tagged `tag`.
    pub(crate) fn tagged(&self, tag: &str) -> Vec<CacheKey> {
        let state = self.lock();
        state
            .index
            .iter()
            .filter(|(_, slot)| slot.tags.iter().any(|t| &**t == tag))
            .filter_map(|(_, slot)| CacheKey::from_uri(&slot.key.parse().ok()?))
            .collect()
    }
}

/// The distinct tags of `entry`'s variants.
fn tags(entry: &StoredEntry) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for variant in entry.variants() {
        for tag in crate::policy::tags::tags(variant.headers()) {
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_owned());
            }
        }
    }
    tags
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
