//! Body files: written block by block as a body arrives ([`DiskSink`], [`BodyWriter`]), and
//! streamed back block by block, each block checked before its bytes are sent
//! ([`DiskBody`]).

use std::fs::File;
use std::io::{self, Write};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::Frame;
use tokio::task::JoinHandle;

use super::Inner;
use super::format::{self, BLOCK, INLINE_MAX, Unusable};
use crate::store::{BodySink, BodySource, SourceBody, StoreError, StoredBody};

/// Writes a body file in blocks, to a temporary path (removed if dropped unfinished).
pub(crate) struct BodyWriter {
    file: File,
    temp: Option<PathBuf>,
    block: Vec<u8>,
    index: u64,
    len: u64,
}

impl BodyWriter {
    /// A new body file at `temp`.
    pub(crate) fn create(temp: PathBuf) -> io::Result<Self> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)?;
        // From here on, dropping the writer removes the file.
        let mut writer = Self {
            file,
            temp: Some(temp),
            block: Vec::with_capacity(BLOCK + 4),
            index: 0,
            len: 0,
        };
        writer.file.write_all(&format::body_prefix())?;
        Ok(writer)
    }

    /// Appends `data`.
    pub(crate) fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let take = (BLOCK - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.len += take as u64;
            if self.block.len() == BLOCK {
                self.flush_block()?;
            }
        }
        Ok(())
    }

    fn flush_block(&mut self) -> io::Result<()> {
        let crc = format::block_crc(self.index, &self.block);
        self.block.extend_from_slice(&crc.to_le_bytes());
        self.file.write_all(&self.block)?;
        self.block.clear();
        self.index += 1;
        Ok(())
    }

    /// Writes the last block: the file (open for reading too), its temporary path and the
    /// body's length.
    pub(crate) fn finish(mut self) -> io::Result<(File, PathBuf, u64)> {
        if !self.block.is_empty() {
            self.flush_block()?;
        }
        let temp = self.temp.take().expect("finished once");
        let file = self.file.try_clone()?;
        Ok((file, temp, self.len))
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Takes a body in as it arrives: in memory up to [`INLINE_MAX`] bytes (it is then kept in
/// its head file), else in a body file.
pub(crate) struct DiskSink {
    store: Arc<Inner>,
    buffered: Vec<u8>,
    writer: Option<BodyWriter>,
}

impl DiskSink {
    pub(crate) fn new(store: Arc<Inner>) -> Self {
        Self {
            store,
            buffered: Vec::new(),
            writer: None,
        }
    }

    fn write_file(&mut self, data: &[u8]) -> io::Result<()> {
        if self.writer.is_none() {
            let mut writer = BodyWriter::create(self.store.temp_path())?;
            writer.write(&std::mem::take(&mut self.buffered))?;
            self.writer = Some(writer);
        }
        self.writer.as_mut().expect("just created").write(data)
    }
}

impl BodySink for DiskSink {
    fn write(&mut self, data: &Bytes) -> Result<(), StoreError> {
        if self.writer.is_none() && self.buffered.len() + data.len() <= INLINE_MAX {
            self.buffered.extend_from_slice(data);
            return Ok(());
        }
        self.write_file(data).map_err(|error| {
            // Logged once per kind by the store; the cache drops this sink, which removes
            // the temporary file.
            self.store.faults.report("write a body file", &error);
            StoreError::new(error)
        })
    }

    fn finish(self: Box<Self>) -> Result<StoredBody, StoreError> {
        let this = *self;
        let Some(writer) = this.writer else {
            return Ok(Bytes::copy_from_slice(&this.buffered).into());
        };
        let adopted = writer.finish().and_then(|(file, temp, len)| {
            let id = this.store.new_id();
            std::fs::rename(&temp, this.store.body_path(id))?;
            Ok(DiskBody::new(&this.store, id, len, file))
        });
        match adopted {
            Ok(body) => {
                this.store.faults.recovered();
                Ok(StoredBody::from_source(body))
            }
            Err(error) => {
                this.store.faults.report("write a body file", &error);
                Err(StoreError::new(error))
            }
        }
    }
}

/// A body file, open: what a stored response's body streams from. The file stays readable
/// while this lives, even if it is evicted (unlinked) meanwhile.
pub(crate) struct DiskBody {
    pub(crate) id: u64,
    len: u64,
    file: Arc<File>,
    store: Weak<Inner>,
}

impl DiskBody {
    /// Body file `id` of `len` bytes, open as `file`, registered as this store's.
    pub(crate) fn new(store: &Arc<Inner>, id: u64, len: u64, file: File) -> Arc<Self> {
        let body = Arc::new(Self {
            id,
            len,
            file: Arc::new(file),
            store: Arc::downgrade(store),
        });
        store.register(address(&body), id);
        body
    }
}

/// The address a `DiskBody` is known by while it lives.
pub(crate) fn address(body: &DiskBody) -> usize {
    std::ptr::from_ref(body) as usize
}

impl std::fmt::Debug for DiskBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskBody")
            .field("id", &format_args!("{:016x}", self.id))
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Drop for DiskBody {
    fn drop(&mut self) {
        if let Some(store) = self.store.upgrade() {
            store.unregister(address(self), self.id);
        }
    }
}

impl BodySource for DiskBody {
    fn len(&self) -> u64 {
        self.len
    }

    fn open(&self, range: RangeInclusive<u64>) -> SourceBody {
        let (first, last) = range.into_inner();
        Box::pin(BlockStream {
            file: Arc::clone(&self.file),
            store: self.store.clone(),
            id: self.id,
            len: self.len,
            next: first,
            end: last.min(self.len.saturating_sub(1)) + 1,
            pending: None,
        })
    }
}

/// What reading a block gives: its checked data, or why not.
type Read = Result<Bytes, Failure>;

enum Failure {
    Io(io::Error),
    Damaged,
}

/// Bytes `next..end` of a body file, a block at a time, the next block read while the
/// current one is sent.
struct BlockStream {
    file: Arc<File>,
    store: Weak<Inner>,
    id: u64,
    len: u64,
    next: u64,
    end: u64,
    pending: Option<JoinHandle<Read>>,
}

impl BlockStream {
    /// Starts reading the block holding byte `at`, on tokio's blocking pool.
    fn start(&self, at: u64) -> Option<JoinHandle<Read>> {
        let (file, len) = (Arc::clone(&self.file), self.len);
        let index = at / BLOCK as u64;
        tokio::runtime::Handle::try_current()
            .ok()
            .map(|runtime| runtime.spawn_blocking(move || read_block(&file, len, index)))
    }

    fn fail(&mut self, failure: Failure) -> StoreError {
        self.next = self.end;
        let store = self.store.upgrade();
        match failure {
            Failure::Damaged => {
                if let Some(store) = store {
                    store.damaged_body(self.id);
                }
                StoreError::new("a block of a cached body file is damaged; entry removed")
            }
            Failure::Io(error) => {
                if let Some(store) = store {
                    store.faults.report("read a body file", &error);
                }
                StoreError::new(error)
            }
        }
    }
}

impl http_body::Body for BlockStream {
    type Data = Bytes;
    type Error = StoreError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        let this = &mut *self;
        if this.next >= this.end {
            return Poll::Ready(None);
        }
        if this.pending.is_none() {
            this.pending = this.start(this.next);
        }
        let read = match &mut this.pending {
            Some(handle) => {
                let joined = ready!(Pin::new(handle).poll(cx));
                this.pending = None;
                joined.unwrap_or_else(|error| Err(Failure::Io(io::Error::other(error))))
            }
            // No runtime to read on: read here.
            None => read_block(&this.file, this.len, this.next / BLOCK as u64),
        };
        let block = match read {
            Ok(block) => block,
            Err(failure) => return Poll::Ready(Some(Err(this.fail(failure)))),
        };
        let block_start = this.next / BLOCK as u64 * BLOCK as u64;
        let from = (this.next - block_start) as usize;
        let to = ((this.end - block_start) as usize).min(block.len());
        let data = block.slice(from..to);
        this.next = block_start + to as u64;
        if this.next < this.end {
            this.pending = this.start(this.next);
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.end
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.end.saturating_sub(self.next))
    }
}

use std::future::Future as _;

/// Reads and checks block `index` of a body of `len` bytes.
fn read_block(file: &File, len: u64, index: u64) -> Read {
    let data_len = (len - index * BLOCK as u64).min(BLOCK as u64) as usize;
    let mut buf = vec![0; data_len + 4];
    read_exact_at(file, &mut buf, format::block_offset(index)).map_err(|error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            Failure::Damaged
        } else {
            Failure::Io(error)
        }
    })?;
    match format::check_block(index, &buf) {
        Ok(_) => {
            buf.truncate(data_len);
            Ok(Bytes::from(buf))
        }
        Err(Unusable::Damaged | Unusable::Version) => Err(Failure::Damaged),
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}
