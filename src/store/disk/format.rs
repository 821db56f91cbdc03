//! The two kinds of files of a [`DiskStore`](super::DiskStore), and their checksums.
//!
//! A *head* file (`XX/<32 hex digits>.h`, named by a hash of the key) holds one entry:
//!
//! ```text
//! "TCLh" | version u8 | 0 0 0 | meta_len u32 | rest_len u32 | meta_crc u32 | rest_crc u32
//! meta: postcard Meta (key, expiry, tags, where each variant's body is)
//! rest: the entry in the versioned codec form (store::codec), bodies kept in files empty
//! ```
//!
//! `meta_crc` is the CRC-32 of bytes 4..16 (version and lengths) and the meta, so that the
//! directory scan at open reads and checks only the start of each head; `rest_crc` covers the
//! rest, checked on every read. Small bodies (at most [`INLINE_MAX`]) are inside the rest.
//!
//! A *body* file (`XX/<16 hex digits>.b`, named by a body id) holds one larger body:
//!
//! ```text
//! "TCLb" | version u8 | 0 0 0 | block_size u32 | crc of bytes 4..12 u32
//! block 0 data | crc32(0u64 LE, data) u32 | block 1 data | crc … | last (shorter) block | crc
//! ```
//!
//! Each block is checked as it is read, so a hit streams verified bytes, a range reads only
//! its blocks, and a damaged block fails the stream before its bytes are sent. The block
//! index in each CRC catches blocks out of place. All integers are little-endian.

use serde::{Deserialize, Serialize};

/// The version of both file kinds; a file of another version is a miss, and is removed.
pub(crate) const VERSION: u8 = 1;
const HEAD_MAGIC: &[u8; 4] = b"TCLh";
const BODY_MAGIC: &[u8; 4] = b"TCLb";
/// Bytes before a head's meta.
pub(crate) const HEAD_PREFIX: usize = 24;
/// Bytes before a body's first block.
pub(crate) const BODY_PREFIX: u64 = 16;
/// The data bytes of each block of a body file (the last one may be shorter).
pub(crate) const BLOCK: usize = 64 * 1024;
/// Bodies up to this size are kept inside their head file, and read whole on a hit.
pub(crate) const INLINE_MAX: usize = 64 * 1024;

/// What the directory scan needs of an entry, at the start of its head file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// The cache key (checked on read: two keys may share a file name's hash).
    pub(crate) key: String,
    /// When the entry stops being of use, in seconds since the Unix epoch.
    pub(crate) expires: Option<u64>,
    /// The tags of its variants (`Surrogate-Key`, `Cache-Tag`), for purging by tag.
    pub(crate) tags: Vec<String>,
    /// Per variant, in order: `None` when its body is in the head, else its body file.
    pub(crate) bodies: Vec<Option<BodyRef>>,
}

/// A body kept in a body file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BodyRef {
    /// The body file's id (its name).
    pub(crate) id: u64,
    /// The body's length in bytes (not the file's).
    pub(crate) len: u64,
}

/// Why a file cannot be used. Either way it is a miss and the file is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Written by another version of this format.
    Version,
    /// Cut short, or a checksum does not match.
    Damaged,
}

/// A head's first [`HEAD_PREFIX`] bytes, checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prefix {
    pub(crate) meta_len: usize,
    pub(crate) rest_len: usize,
    meta_crc: u32,
    rest_crc: u32,
    raw: [u8; 12],
}

impl Prefix {
    /// The whole head file's length.
    pub(crate) fn file_len(&self) -> u64 {
        (HEAD_PREFIX + self.meta_len + self.rest_len) as u64
    }
}

/// A head file: `meta` and the encoded entry `rest`.
pub(crate) fn encode_head(meta: &Meta, rest: &[u8]) -> Vec<u8> {
    let meta_bytes = postcard::to_allocvec(meta).expect("a Meta always encodes");
    let mut out = Vec::with_capacity(HEAD_PREFIX + meta_bytes.len() + rest.len());
    out.extend_from_slice(HEAD_MAGIC);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);
    out.extend_from_slice(&u32_len(meta_bytes.len()).to_le_bytes());
    out.extend_from_slice(&u32_len(rest.len()).to_le_bytes());
    let mut meta_crc = crc32fast::Hasher::new();
    meta_crc.update(&out[4..16]);
    meta_crc.update(&meta_bytes);
    out.extend_from_slice(&meta_crc.finalize().to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(rest).to_le_bytes());
    out.extend_from_slice(&meta_bytes);
    out.extend_from_slice(rest);
    out
}

fn u32_len(len: usize) -> u32 {
    // Heads hold headers and bodies of at most INLINE_MAX bytes per variant, far below 4 GiB.
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Checks a head's first [`HEAD_PREFIX`] bytes (magic and version).
pub(crate) fn head_prefix(bytes: &[u8]) -> Result<Prefix, Unusable> {
    if bytes.len() < HEAD_PREFIX || &bytes[..4] != HEAD_MAGIC {
        return Err(Unusable::Damaged);
    }
    if bytes[4] != VERSION {
        return Err(Unusable::Version);
    }
    let mut raw = [0; 12];
    raw.copy_from_slice(&bytes[4..16]);
    Ok(Prefix {
        meta_len: le32(&bytes[8..12]) as usize,
        rest_len: le32(&bytes[12..16]) as usize,
        meta_crc: le32(&bytes[16..20]),
        rest_crc: le32(&bytes[20..24]),
        raw,
    })
}

/// The meta of a head, from its `meta_len` bytes after the prefix, checked.
pub(crate) fn head_meta(prefix: &Prefix, bytes: &[u8]) -> Result<Meta, Unusable> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&prefix.raw);
    crc.update(bytes);
    if bytes.len() != prefix.meta_len || crc.finalize() != prefix.meta_crc {
        return Err(Unusable::Damaged);
    }
    postcard::from_bytes(bytes).map_err(|_| Unusable::Damaged)
}

/// A whole head file: its meta and its encoded entry, checked.
pub(crate) fn decode_head(bytes: &[u8]) -> Result<(Meta, &[u8]), Unusable> {
    let prefix = head_prefix(bytes)?;
    if bytes.len() as u64 != prefix.file_len() {
        return Err(Unusable::Damaged);
    }
    let (meta, rest) = bytes[HEAD_PREFIX..].split_at(prefix.meta_len);
    let meta = head_meta(&prefix, meta)?;
    if crc32fast::hash(rest) != prefix.rest_crc {
        return Err(Unusable::Damaged);
    }
    Ok((meta, rest))
}

/// The first bytes of every body file.
pub(crate) fn body_prefix() -> [u8; BODY_PREFIX as usize] {
    let mut out = [0; BODY_PREFIX as usize];
    out[..4].copy_from_slice(BODY_MAGIC);
    out[4] = VERSION;
    out[8..12].copy_from_slice(&u32_len(BLOCK).to_le_bytes());
    let crc = crc32fast::hash(&out[4..12]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a body file's first bytes.
pub(crate) fn check_body_prefix(bytes: &[u8]) -> Result<(), Unusable> {
    if bytes.len() < BODY_PREFIX as usize || &bytes[..4] != BODY_MAGIC {
        return Err(Unusable::Damaged);
    }
    if bytes[4] != VERSION {
        return Err(Unusable::Version);
    }
    if bytes[..BODY_PREFIX as usize] != body_prefix() {
        return Err(Unusable::Damaged);
    }
    Ok(())
}

/// The length of the body file of a body of `len` bytes.
pub(crate) fn body_file_len(len: u64) -> u64 {
    BODY_PREFIX + len + 4 * len.div_ceil(BLOCK as u64)
}

/// Where block `index` starts in a body file.
pub(crate) fn block_offset(index: u64) -> u64 {
    BODY_PREFIX + index * (BLOCK as u64 + 4)
}

/// The checksum of block `index` holding `data`.
pub(crate) fn block_crc(index: u64, data: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&index.to_le_bytes());
    crc.update(data);
    crc.finalize()
}

/// The data of block `index`, read as `bytes` (data and checksum), checked.
pub(crate) fn check_block(index: u64, bytes: &[u8]) -> Result<&[u8], Unusable> {
    let split = bytes.len().checked_sub(4).ok_or(Unusable::Damaged)?;
    let (data, crc) = bytes.split_at(split);
    if block_crc(index, data) == le32(crc) {
        Ok(data)
    } else {
        Err(Unusable::Damaged)
    }
}

/// A stable 128-bit hash of a key (FNV-1a), for head file names.
pub(crate) fn key_hash(key: &str) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    key.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u128::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            key: "http://example.com/a".into(),
            expires: Some(1_700_000_000),
            tags: vec!["t1".into()],
            bodies: vec![None, Some(BodyRef { id: 7, len: 70_000 })],
        }
    }

    #[test]
    fn a_head_round_trips() {
        let bytes = encode_head(&meta(), b"entry bytes");
        let (decoded, rest) = decode_head(&bytes).unwrap();
        assert_eq!(decoded, meta());
        assert_eq!(rest, b"entry bytes");
        let prefix = head_prefix(&bytes).unwrap();
        assert_eq!(prefix.file_len(), bytes.len() as u64);
        let meta_bytes = &bytes[HEAD_PREFIX..HEAD_PREFIX + prefix.meta_len];
        assert_eq!(head_meta(&prefix, meta_bytes).unwrap(), meta());
    }

    #[test]
    fn every_flipped_byte_or_cut_of_a_head_is_caught() {
        let bytes = encode_head(&meta(), b"entry bytes");
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x20;
            let expected = if at == 4 {
                Unusable::Version
            } else {
                Unusable::Damaged
            };
            assert_eq!(decode_head(&flipped).unwrap_err(), expected, "byte {at}");
        }
        for len in 0..bytes.len() {
            assert!(decode_head(&bytes[..len]).is_err(), "cut at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_head(&longer).is_err());
    }

    #[test]
    fn an_unknown_version_is_told_apart() {
        let mut head = encode_head(&meta(), b"x");
        head[4] = VERSION + 1;
        assert_eq!(decode_head(&head).unwrap_err(), Unusable::Version);
        let mut body = body_prefix();
        body[4] = VERSION + 1;
        assert_eq!(check_body_prefix(&body).unwrap_err(), Unusable::Version);
        assert!(check_body_prefix(&body_prefix()).is_ok());
        body = body_prefix();
        body[9] ^= 1;
        assert_eq!(check_body_prefix(&body).unwrap_err(), Unusable::Damaged);
    }

    #[test]
    fn blocks_are_checked_with_their_place() {
        let data = b"some block data";
        let mut bytes = data.to_vec();
        bytes.extend_from_slice(&block_crc(3, data).to_le_bytes());
        assert_eq!(check_block(3, &bytes).unwrap(), data);
        assert!(check_block(4, &bytes).is_err(), "a block out of place");
        bytes[2] ^= 1;
        assert!(check_block(3, &bytes).is_err());
        assert!(check_block(0, b"abc").is_err());
    }

    #[test]
    fn body_file_lengths() {
        assert_eq!(body_file_len(0), BODY_PREFIX);
        assert_eq!(body_file_len(1), BODY_PREFIX + 5);
        assert_eq!(body_file_len(BLOCK as u64), BODY_PREFIX + BLOCK as u64 + 4);
        assert_eq!(
            body_file_len(BLOCK as u64 + 1),
            BODY_PREFIX + BLOCK as u64 + 9
        );
        assert_eq!(block_offset(2), BODY_PREFIX + 2 * (BLOCK as u64 + 4));
    }

    #[test]
    fn key_hashes_are_stable() {
        // The hash names files: it must never change within a format version.
        assert_eq!(key_hash(""), 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        assert_ne!(key_hash("http://a/"), key_hash("http://b/"));
    }
}
