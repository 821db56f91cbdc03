//! Stored bodies: bytes in memory, or a source a store streams from, and the sink a store
//! takes a body in through as it arrives.

use std::fmt;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body::Body;

use super::StoreError;

/// A body a [`BodySource`] streams: frames of [`Bytes`], or a [`StoreError`] when reading fails.
pub type SourceBody = Pin<Box<dyn Body<Data = Bytes, Error = StoreError> + Send + 'static>>;

/// The body of a stored response: [`Bytes`] in memory, or a [`BodySource`] that a store
/// streams from (a file, say), so that a large object is never read into memory whole.
///
/// Cloning is a reference-count increment. Serving a body held in memory clones the `Bytes`,
/// never the bytes themselves.
#[derive(Clone)]
pub struct StoredBody {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Bytes(Bytes),
    /// Bytes `first..=last` of `source` (`first > last` when empty).
    Source {
        source: Arc<dyn BodySource>,
        first: u64,
        len: u64,
    },
}

impl StoredBody {
    /// A body a store streams from `source`, all of it.
    pub fn from_source(source: Arc<dyn BodySource>) -> Self {
        let len = source.len();
        Self {
            repr: Repr::Source {
                source,
                first: 0,
                len,
            },
        }
    }

    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match &self.repr {
            Repr::Bytes(bytes) => bytes.len() as u64,
            Repr::Source { len, .. } => *len,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, when the body is held in memory.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match &self.repr {
            Repr::Bytes(bytes) => Some(bytes),
            Repr::Source { .. } => None,
        }
    }

    /// Bytes `range` of this body (offsets into it), without copying; `None` when the range
    /// is not within the body.
    pub(crate) fn slice(&self, range: RangeInclusive<u64>) -> Option<Self> {
        let (first, last) = range.into_inner();
        if first > last || last >= self.len() {
            return None;
        }
        let repr = match &self.repr {
            Repr::Bytes(bytes) => {
                let (first, last) = (usize::try_from(first).ok()?, usize::try_from(last).ok()?);
                Repr::Bytes(bytes.slice(first..=last))
            }
            Repr::Source {
                source,
                first: start,
                ..
            } => Repr::Source {
                source: Arc::clone(source),
                first: start + first,
                len: last - first + 1,
            },
        };
        Some(Self { repr })
    }

    /// The source this body streams from, with the offset and length of its bytes in it;
    /// `None` when it is held in memory.
    #[cfg(feature = "disk")]
    pub(crate) fn source(&self) -> Option<(&Arc<dyn BodySource>, u64, u64)> {
        match &self.repr {
            Repr::Bytes(_) => None,
            Repr::Source { source, first, len } => Some((source, *first, *len)),
        }
    }

    /// The body to send: the bytes, or a stream opened on the source.
    pub(crate) fn open(&self) -> Opened {
        match &self.repr {
            Repr::Bytes(bytes) => Opened::Bytes(bytes.clone()),
            Repr::Source { len: 0, .. } => Opened::Bytes(Bytes::new()),
            Repr::Source { source, first, len } => {
                Opened::Stream(source.open(*first..=*first + *len - 1))
            }
        }
    }
}

/// A [`StoredBody`] opened to be sent.
pub(crate) enum Opened {
    Bytes(Bytes),
    Stream(SourceBody),
}

impl From<Bytes> for StoredBody {
    fn from(bytes: Bytes) -> Self {
        Self {
            repr: Repr::Bytes(bytes),
        }
    }
}

impl Default for StoredBody {
    fn default() -> Self {
        Bytes::new().into()
    }
}

impl PartialEq for StoredBody {
    /// Bodies in memory compare by their bytes; a streamed body equals only a view of the
    /// same bytes of the same source.
    fn eq(&self, other: &Self) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Bytes(a), Repr::Bytes(b)) => a == b,
            (
                Repr::Source { source, first, len },
                Repr::Source {
                    source: other,
                    first: other_first,
                    len: other_len,
                },
            ) => Arc::ptr_eq(source, other) && first == other_first && len == other_len,
            _ => false,
        }
    }
}

impl fmt::Debug for StoredBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Bytes(bytes) => f.debug_tuple("StoredBody").field(bytes).finish(),
            Repr::Source { source, first, len } => f
                .debug_struct("StoredBody")
                .field("source", source)
                .field("first", first)
                .field("len", len)
                .finish(),
        }
    }
}

/// Where a store keeps a body outside memory, and streams it from on every hit.
///
/// A disk store, for instance, implements it on a file: [`open`](Self::open) reads the range
/// as the client takes it, so serving a 1 GiB object holds a buffer, not the object.
pub trait BodySource: fmt::Debug + Send + Sync + 'static {
    /// The body's length in bytes.
    fn len(&self) -> u64;

    /// Whether the body is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A stream of the bytes `range` (within `0..len`, never empty).
    ///
    /// A stream that fails, or ends before the range does, ends the response early: its
    /// `Content-Length` tells the client it is incomplete. A source that can tell its bytes
    /// are damaged (a checksum, say) must fail rather than send them.
    fn open(&self, range: RangeInclusive<u64>) -> SourceBody;
}

/// Takes a body in as it streams from the origin on a miss, for a store that keeps bodies
/// outside memory ([`Store::body_sink`](super::Store::body_sink)).
///
/// Each data frame is written as it passes to the client. When the body is complete and
/// storable, [`finish`](Self::finish) is called and its [`StoredBody`] is what the stored
/// response holds; a sink dropped without `finish` (the body failed, was too large or was
/// abandoned) must discard what it wrote.
///
/// An error from either method keeps the response out of the store (it is still served).
/// The cache logs it at debug level only: the sink's store says what failed, as often as is
/// useful (a disk store, once per kind of failure until the disk works again), so that a
/// failing disk is not one warning per request.
pub trait BodySink: Send + 'static {
    /// Writes the next bytes of the body. Called while the response streams to the client,
    /// so it should not block for long (a write to the page cache, not an fsync).
    ///
    /// # Errors
    ///
    /// When the bytes cannot be kept: the response is still served, but not stored.
    fn write(&mut self, data: &Bytes) -> Result<(), StoreError>;

    /// The body is complete: the stored body to serve it from.
    ///
    /// # Errors
    ///
    /// When the body cannot be kept: the response is not stored.
    fn finish(self: Box<Self>) -> Result<StoredBody, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn slices_of_bytes_share_the_bytes() {
        let body = StoredBody::from(Bytes::from_static(b"0123456789"));
        let slice = body.slice(2..=4).unwrap();
        assert_eq!(slice.as_bytes().unwrap().as_ref(), b"234");
        assert_eq!(slice.len(), 3);
        assert!(body.slice(5..=10).is_none());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = body.slice(4..=3);
        assert!(reversed.is_none());
    }

    #[derive(Debug)]
    struct Ten;

    impl BodySource for Ten {
        fn len(&self) -> u64 {
            10
        }

        fn open(&self, range: RangeInclusive<u64>) -> SourceBody {
            let (first, last) = range.into_inner();
            let bytes = Bytes::from_static(b"0123456789").slice(first as usize..=last as usize);
            Box::pin(http_body_util::Full::new(bytes).map_err(|never| match never {}))
        }
    }

    #[test]
    fn slices_of_a_source_are_views_of_it() {
        let body = StoredBody::from_source(Arc::new(Ten));
        let slice = body.slice(3..=6).unwrap().slice(1..=2).unwrap();
        assert_eq!(slice.len(), 2);
        assert!(slice.as_bytes().is_none());
        let Opened::Stream(mut stream) = slice.open() else {
            panic!("a source is streamed");
        };
        let frame = futures_now(stream.as_mut());
        assert_eq!(frame.as_ref(), b"45");
    }

    fn futures_now(
        mut body: Pin<&mut (dyn Body<Data = Bytes, Error = StoreError> + Send)>,
    ) -> Bytes {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match body.as_mut().poll_frame(&mut cx) {
            std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap(),
            _ => panic!("a full body is ready"),
        }
    }
}
