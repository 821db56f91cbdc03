//! Opening a directory: leftover temporary files removed, every head's start checked, the
//! index rebuilt (least recently written first), files that cannot be used removed.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::fault::Faults;
use super::format::{self, HEAD_PREFIX, Meta};
use super::index::Slot;
use super::inner::{Inner, State, fan, unix_now};

/// Marks the directory as a cache for backup tools (<https://bford.info/cachedir/>).
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
    # This file is a cache directory tag created by tower-cache-layer's disk store.\n";

/// A head found by the scan.
struct Found {
    hash: u128,
    meta: Meta,
    len: u64,
    written: SystemTime,
}

/// Opens (creating it if needed) the store in `root`, bounded by `capacity` bytes.
pub(crate) fn open(root: PathBuf, capacity: u64) -> io::Result<Arc<Inner>> {
    fs::create_dir_all(root.join("tmp"))?;
    for byte in 0..=u8::MAX {
        fs::create_dir_all(root.join(fan(byte)))?;
    }
    let tag = root.join("CACHEDIR.TAG");
    if !tag.exists() {
        fs::write(tag, CACHEDIR_TAG)?;
    }
    // Writes a crash interrupted: never renamed into place, never used.
    for temp in fs::read_dir(root.join("tmp"))? {
        let _ = fs::remove_file(temp?.path());
    }
    let (mut heads, bodies) = scan(&root)?;
    // A head whose body file is missing or cut short is unusable.
    heads.retain(|found| {
        let usable = found
            .meta
            .bodies
            .iter()
            .flatten()
            .all(|body| bodies.get(&body.id) == Some(&format::body_file_len(body.len)));
        if !usable {
            let _ = fs::remove_file(head_path(&root, found.hash));
        }
        usable
    });
    heads.sort_by_key(|found| found.written);
    let max_id = bodies.keys().max().map_or(0, |id| id + 1);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    let inner = Arc::new(Inner {
        root,
        capacity,
        state: Mutex::new(State::default()),
        next_id: AtomicU64::new(now.max(max_id)),
        faults: Faults::default(),
    });
    let mut state = inner.lock();
    for found in heads {
        let ids: Box<[u64]> = found.meta.bodies.iter().flatten().map(|b| b.id).collect();
        let sizes: Vec<_> = ids.iter().map(|id| (*id, bodies[id])).collect();
        let tags = found.meta.tags.iter().map(|t| t.as_str().into()).collect();
        let slot = Slot::new(found.meta.key.into(), tags, found.len, ids);
        state.index.insert(found.hash, slot, &sizes);
    }
    // Body files no entry uses: written before a crash, before their head was.
    for id in bodies.keys() {
        if !state.index.has_body(*id) {
            let _ = fs::remove_file(inner.body_path(*id));
        }
    }
    inner.evict_locked(&mut state);
    drop(state);
    Ok(inner)
}

fn head_path(root: &Path, hash: u128) -> PathBuf {
    root.join(fan(hash as u8)).join(format!("{hash:032x}.h"))
}

/// The usable heads and the body files (id and length) in `root`; unusable heads are removed.
fn scan(root: &Path) -> io::Result<(Vec<Found>, HashMap<u64, u64>)> {
    let mut heads = Vec::new();
    let mut bodies = HashMap::new();
    let now = unix_now();
    for byte in 0..=u8::MAX {
        for dirent in fs::read_dir(root.join(fan(byte)))? {
            let dirent = dirent?;
            let path = dirent.path();
            let name = dirent.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name.strip_suffix(".b") {
                if let Ok(id) = u64::from_str_radix(id, 16) {
                    bodies.insert(id, dirent.metadata()?.len());
                }
                continue;
            }
            let Some(hash) = name.strip_suffix(".h") else {
                continue;
            };
            let Ok(hash) = u128::from_str_radix(hash, 16) else {
                continue;
            };
            match read_head_start(&path) {
                Ok(Some(found)) if format::key_hash(&found.0.key) == hash => {
                    if found.0.expires.is_some_and(|expires| expires < now) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    heads.push(Found {
                        hash,
                        meta: found.0,
                        len: found.1,
                        written: found.2,
                    });
                }
                Ok(_) => {
                    tracing::info!(file = %path.display(), "unusable disk cache entry removed");
                    let _ = fs::remove_file(&path);
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok((heads, bodies))
}

/// The meta of the head at `path`, its length and when it was written; `None` when it is
/// unusable (another version, damaged, cut short).
fn read_head_start(path: &Path) -> io::Result<Option<(Meta, u64, SystemTime)>> {
    let mut file = fs::File::open(path)?;
    let metadata = file.metadata()?;
    let mut prefix = [0; HEAD_PREFIX];
    if file.read_exact(&mut prefix).is_err() {
        return Ok(None);
    }
    let Ok(prefix) = format::head_prefix(&prefix) else {
        return Ok(None);
    };
    if prefix.file_len() != metadata.len() {
        return Ok(None);
    }
    let mut meta = vec![0; prefix.meta_len];
    file.read_exact(&mut meta)?;
    let Ok(meta) = format::head_meta(&prefix, &meta) else {
        return Ok(None);
    };
    let written = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Some((meta, metadata.len(), written)))
}
