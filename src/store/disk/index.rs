//! The in-memory index of a [`DiskStore`](super::DiskStore): which entries and body files
//! are on disk, their sizes, and the order they were last used in (for eviction).

use std::collections::{BTreeMap, HashMap};

/// An entry on disk.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    /// The key, as text.
    pub(crate) key: Box<str>,
    /// Its tags, for purging by tag.
    pub(crate) tags: Box<[Box<str>]>,
    /// The head file's length.
    pub(crate) head_len: u64,
    /// The body files it uses.
    pub(crate) bodies: Box<[u64]>,
    /// When it was last used (the index's clock).
    tick: u64,
}

impl Slot {
    pub(crate) fn new(
        key: Box<str>,
        tags: Box<[Box<str>]>,
        head_len: u64,
        bodies: Box<[u64]>,
    ) -> Self {
        Self {
            key,
            tags,
            head_len,
            bodies,
            tick: 0,
        }
    }
}

/// A body file on disk, and how many entries use it.
#[derive(Clone, Copy, Debug)]
struct BodyFile {
    refs: u32,
    size: u64,
}

/// Entries by key hash, least recently used first, and the body files they use.
#[derive(Debug, Default)]
pub(crate) struct Index {
    entries: HashMap<u128, Slot>,
    order: BTreeMap<u64, u128>,
    bodies: HashMap<u64, BodyFile>,
    tick: u64,
    bytes: u64,
}

impl Index {
    /// Bytes on disk: head files and body files in use.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every entry, in no order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u128, &Slot)> {
        self.entries.iter().map(|(hash, slot)| (*hash, slot))
    }

    /// Whether an entry uses body file `id`.
    pub(crate) fn has_body(&self, id: u64) -> bool {
        self.bodies.contains_key(&id)
    }

    /// Marks `hash` as just used.
    pub(crate) fn touch(&mut self, hash: u128) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.entries.get_mut(&hash) {
            self.order.remove(&slot.tick);
            slot.tick = tick;
            self.order.insert(tick, hash);
        }
    }

    /// Inserts or replaces the entry under `hash`, as just used; `sizes` are the sizes of the
    /// body files it uses that the index may not know yet. Returns the body files no entry
    /// uses any more (to delete).
    pub(crate) fn insert(&mut self, hash: u128, mut slot: Slot, sizes: &[(u64, u64)]) -> Vec<u64> {
        for &id in slot.bodies.iter() {
            let size = sizes
                .iter()
                .find(|(of, _)| *of == id)
                .map_or(0, |(_, size)| *size);
            let body = self.bodies.entry(id).or_insert_with(|| {
                self.bytes += size;
                BodyFile { refs: 0, size }
            });
            body.refs += 1;
        }
        self.bytes += slot.head_len;
        self.tick += 1;
        slot.tick = self.tick;
        self.order.insert(slot.tick, hash);
        match self.entries.insert(hash, slot) {
            Some(old) => self.release(&old),
            None => Vec::new(),
        }
    }

    /// Removes the entry under `hash`: the body files no entry uses any more (to delete),
    /// `None` when there was no entry.
    pub(crate) fn remove(&mut self, hash: u128) -> Option<Vec<u64>> {
        let old = self.entries.remove(&hash)?;
        Some(self.release(&old))
    }

    /// Forgets `old` (already out of `entries`).
    fn release(&mut self, old: &Slot) -> Vec<u64> {
        self.order.remove(&old.tick);
        self.bytes -= old.head_len;
        let mut freed = Vec::new();
        for id in old.bodies.iter() {
            if let Some(body) = self.bodies.get_mut(id) {
                body.refs -= 1;
                if body.refs == 0 {
                    self.bytes -= body.size;
                    self.bodies.remove(id);
                    freed.push(*id);
                }
            }
        }
        freed
    }

    /// The least recently used entry, when more than `capacity` bytes are in use.
    pub(crate) fn victim(&self, capacity: u64) -> Option<u128> {
        if self.bytes <= capacity {
            return None;
        }
        self.order.values().next().copied()
    }

    /// The entries that use body file `id`.
    pub(crate) fn using_body(&self, id: u64) -> Vec<u128> {
        self.entries
            .iter()
            .filter(|(_, slot)| slot.bodies.contains(&id))
            .map(|(hash, _)| *hash)
            .collect()
    }

    /// Forgets everything; returns the entries and body files there were.
    pub(crate) fn take(&mut self) -> (Vec<u128>, Vec<u64>) {
        let entries = self.entries.drain().map(|(hash, _)| hash).collect();
        let bodies = self.bodies.drain().map(|(id, _)| id).collect();
        self.order.clear();
        self.bytes = 0;
        (entries, bodies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(head_len: u64, bodies: &[u64]) -> Slot {
        Slot::new("k".into(), Box::new([]), head_len, bodies.into())
    }

    #[test]
    fn sizes_count_shared_bodies_once_and_free_them_last() {
        let mut index = Index::default();
        assert!(index.insert(1, slot(10, &[100]), &[(100, 1000)]).is_empty());
        assert!(index.insert(2, slot(20, &[100]), &[]).is_empty());
        assert_eq!(index.bytes(), 1030);
        assert_eq!(index.remove(1), Some(Vec::new()));
        assert_eq!(index.remove(2), Some(vec![100]));
        assert_eq!(index.remove(2), None);
        assert_eq!(index.bytes(), 0);
    }

    #[test]
    fn replacing_an_entry_keeps_the_bodies_it_still_uses() {
        let mut index = Index::default();
        index.insert(1, slot(10, &[100, 101]), &[(100, 1000), (101, 500)]);
        let freed = index.insert(1, slot(12, &[100, 102]), &[(102, 300)]);
        assert_eq!(freed, vec![101]);
        assert_eq!(index.bytes(), 12 + 1000 + 300);
        assert_eq!(index.len(), 1);
        assert!(index.has_body(100) && !index.has_body(101));
    }

    #[test]
    fn the_least_recently_used_goes_first() {
        let mut index = Index::default();
        for hash in 1..=3 {
            index.insert(hash, slot(100, &[]), &[]);
        }
        assert_eq!(index.victim(300), None);
        assert_eq!(index.victim(299), Some(1));
        index.touch(1);
        assert_eq!(index.victim(299), Some(2));
        index.remove(2);
        assert_eq!(index.victim(199), Some(3));
        assert_eq!(index.using_body(5), Vec::<u128>::new());
        let (entries, _) = index.take();
        assert_eq!(entries.len(), 2);
        assert_eq!(index.bytes(), 0);
    }
}
