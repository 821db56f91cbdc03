//! The store interface over TCP: stores that must wait, stores that keep bodies outside
//! memory and stream them, the `ttl` every put carries, and a store chosen at run time.

mod support;

use std::collections::{HashMap, VecDeque};
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use support::{TestBody, get, response, serve};
use tower_cache_layer::store::{
    BodySink, BodySource, BoxStore, MemoryStore, SourceBody, Store, StoreError, StoredBody,
    StoredEntry,
};
use tower_cache_layer::{CacheKey, CacheLayer};

type Held = HashMap<CacheKey, (Arc<StoredEntry>, Option<Duration>)>;
type Entries = Arc<Mutex<Held>>;

/// A store that answers only after yielding to the runtime (as one on a network does), and
/// keeps bodies in its own "files", streamed back in small frames.
#[derive(Clone, Default)]
struct WaitingStore {
    entries: Entries,
    files: Arc<Mutex<Vec<Arc<Vec<u8>>>>>,
    gets: Arc<AtomicUsize>,
    spool: bool,
}

impl WaitingStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.entries.lock().unwrap()
    }

    fn ttl_of(&self, url: &str) -> Option<Duration> {
        let key = CacheKey::from_uri(&url.parse().unwrap()).unwrap();
        self.lock().get(&key).expect("stored").1
    }
}

impl Store for WaitingStore {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        Ok(self.lock().get(key).map(|(entry, _)| Arc::clone(entry)))
    }

    async fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.lock().insert(key, (value, ttl));
        Ok(())
    }

    async fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
        Ok(self.lock().remove(key).is_some())
    }

    async fn clear(&self) -> Result<u64, StoreError> {
        let mut entries = self.lock();
        let count = entries.len() as u64;
        entries.clear();
        Ok(count)
    }

    fn body_sink(&self, _key: &CacheKey, _length: Option<u64>) -> Option<Box<dyn BodySink>> {
        self.spool.then(|| {
            Box::new(FileSink {
                data: Vec::new(),
                files: Arc::clone(&self.files),
            }) as Box<dyn BodySink>
        })
    }
}

struct FileSink {
    data: Vec<u8>,
    files: Arc<Mutex<Vec<Arc<Vec<u8>>>>>,
}

impl BodySink for FileSink {
    fn write(&mut self, data: &Bytes) -> Result<(), StoreError> {
        self.data.extend_from_slice(data);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<StoredBody, StoreError> {
        let file = Arc::new(self.data);
        self.files.lock().unwrap().push(Arc::clone(&file));
        Ok(StoredBody::from_source(Arc::new(File(file))))
    }
}

#[derive(Debug)]
struct File(Arc<Vec<u8>>);

impl BodySource for File {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn open(&self, range: RangeInclusive<u64>) -> SourceBody {
        let (first, last) = (*range.start() as usize, *range.end() as usize);
        let bytes = Bytes::copy_from_slice(&self.0[first..=last]);
        // Frames of 1000 bytes, as a file read in blocks would give.
        let frames = (0..bytes.len())
            .step_by(1000)
            .map(|at| bytes.slice(at..(at + 1000).min(bytes.len())))
            .collect();
        Box::pin(Frames(frames))
    }
}

/// A body of ready frames.
struct Frames(VecDeque<Bytes>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = StoreError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        Poll::Ready(self.0.pop_front().map(|data| Ok(Frame::data(data))))
    }
}

fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A store that must wait is asked once per request: no future is started and dropped.
#[tokio::test]
async fn a_store_that_waits_is_asked_once_per_hit() {
    let store = WaitingStore::default();
    let layer = CacheLayer::builder().store(store.clone()).build();
    let server = serve(layer, |_| {
        response(&[("cache-control", "max-age=60")], "hello")
    })
    .await;

    assert_eq!(get(&server.url("/a"), &[]).await.x_cache(), "MISS");
    // One `get` for the lookup. None when the miss leads the key's flight: nothing was
    // written to the key since it looked. None for its store: a response without `Vary`
    // replaces whatever is stored, unread.
    let after_miss = store.gets.load(Ordering::SeqCst);
    assert_eq!(after_miss, 1);
    for _ in 0..3 {
        let seen = get(&server.url("/a"), &[]).await;
        assert_eq!(seen.x_cache(), "HIT");
        assert_eq!(seen.body, "hello");
    }
    assert_eq!(store.gets.load(Ordering::SeqCst), after_miss + 3);
    assert_eq!(server.calls(), 1);
}

/// A response that varies is added to what the URL has stored: its store reads the entry
/// first, and the variant stored before it still answers its own requests.
#[tokio::test]
async fn a_varying_response_is_added_to_the_variants_stored() {
    let store = WaitingStore::default();
    let layer = CacheLayer::builder().store(store.clone()).build();
    let server = serve(layer, |req| {
        let lang = match req.headers()["accept-language"].as_bytes() {
            b"en" => "en",
            _ => "fr",
        };
        response(
            &[("cache-control", "max-age=60"), ("vary", "accept-language")],
            lang,
        )
    })
    .await;
    let url = server.url("/v");

    assert_eq!(
        get(&url, &[("accept-language", "en")]).await.x_cache(),
        "MISS"
    );
    let gets = store.gets.load(Ordering::SeqCst);
    assert_eq!(
        get(&url, &[("accept-language", "fr")]).await.x_cache(),
        "MISS"
    );
    // The lookup, and the read before the write that adds the variant.
    assert_eq!(store.gets.load(Ordering::SeqCst), gets + 2);
    for lang in ["en", "fr"] {
        let seen = get(&url, &[("accept-language", lang)]).await;
        assert_eq!(
            (seen.x_cache(), seen.body.as_ref()),
            ("HIT", lang.as_bytes())
        );
    }
    assert_eq!(server.calls(), 2);
}

/// A store whose first look-up, once it has read what the store holds, waits until `open`
/// is notified: the request making it looks the key up before another request's whole miss,
/// and joins the key's flight after it. It keeps entries in a [`MemoryStore`], but answers
/// only through the waiting path (`get`).
#[derive(Clone, Default)]
struct FirstLookupHeld {
    memory: MemoryStore,
    taken: Arc<AtomicUsize>,
    waiting: Arc<tokio::sync::Notify>,
    open: Arc<tokio::sync::Notify>,
}

impl Store for FirstLookupHeld {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<StoredEntry>>, StoreError> {
        let found = self.memory.get(key).await;
        if self.taken.fetch_add(1, Ordering::SeqCst) == 0 {
            self.waiting.notify_one();
            self.open.notified().await;
        }
        found
    }

    async fn put(
        &self,
        key: CacheKey,
        value: Arc<StoredEntry>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.memory.put(key, value, ttl).await
    }

    async fn remove(&self, key: &CacheKey) -> Result<bool, StoreError> {
        self.memory.remove(key).await
    }

    async fn clear(&self) -> Result<u64, StoreError> {
        self.memory.clear().await
    }
}

/// A request that found nothing, and leads its key's flight after another request stored
/// the key, looks again and answers from the store: the origin is asked once.
#[tokio::test]
async fn a_miss_that_leads_after_another_stored_the_key_answers_from_the_store() {
    let store = FirstLookupHeld::default();
    let layer = CacheLayer::builder().store(store.clone()).build();
    let server = serve(layer, |_| {
        response(&[("cache-control", "max-age=60")], "hello")
    })
    .await;
    let url = server.url("/a");

    let late = tokio::spawn({
        let url = url.clone();
        async move { get(&url, &[]).await }
    });
    store.waiting.notified().await;
    let early = get(&url, &[]).await;
    assert_eq!(
        (early.x_cache(), early.body.as_ref()),
        ("MISS", &b"hello"[..])
    );
    store.open.notify_one();
    let late = late.await.unwrap();
    assert_eq!((late.x_cache(), late.body.as_ref()), ("HIT", &b"hello"[..]));
    assert_eq!(server.calls(), 1);
}

/// Every put says how long the entry stays of use: its freshness, stale windows and an hour's
/// grace without a validator; until evicted with one (it can be revalidated).
#[tokio::test]
async fn every_put_carries_how_long_the_entry_is_of_use() {
    let store = WaitingStore::default();
    let layer = CacheLayer::builder().store(store.clone()).build();
    let server = serve(layer, |req| match req.uri().path() {
        "/plain" => response(&[("cache-control", "max-age=60, stale-if-error=100")], "p"),
        _ => response(&[("cache-control", "max-age=60"), ("etag", "\"v\"")], "v"),
    })
    .await;
    get(&server.url("/plain"), &[]).await;
    get(&server.url("/validated"), &[]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let ttl = store.ttl_of(&server.url("/plain")).expect("a ttl");
    let expected = Duration::from_secs(60 + 100 + 3600);
    assert!(
        ttl <= expected && ttl > expected - Duration::from_secs(5),
        "{ttl:?}"
    );
    assert_eq!(store.ttl_of(&server.url("/validated")), None);
}

/// A store that keeps bodies outside memory takes the body in as it streams and serves hits
/// (and ranges of them) from its own medium; the entry holds no body bytes.
#[tokio::test]
async fn a_body_kept_outside_memory_is_streamed_on_hits() {
    let store = WaitingStore {
        spool: true,
        ..WaitingStore::default()
    };
    let layer = CacheLayer::builder().store(store.clone()).build();
    let data = Bytes::from(body_of(10_000));
    let origin = data.clone();
    let server = serve(layer, move |_| {
        let chunks = (0..10)
            .map(|i| origin.slice(i * 1000..(i + 1) * 1000))
            .collect();
        http::Response::builder()
            .header("cache-control", "max-age=60")
            .body(TestBody::chunks(chunks))
            .unwrap()
    })
    .await;

    let miss = get(&server.url("/big"), &[]).await;
    assert_eq!((miss.x_cache(), miss.body.clone()), ("MISS", data.clone()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.files.lock().unwrap().len(), 1);
    {
        let entries = store.lock();
        let (entry, _) = entries.values().next().expect("stored");
        let stored = &entry.variants()[0];
        assert!(
            stored.body().as_bytes().is_none(),
            "the body stays in the store's file"
        );
        assert_eq!(stored.body().len(), 10_000);
        assert!(entry.weight() < 2_000, "weight {}", entry.weight());
    }

    let hit = get(&server.url("/big"), &[]).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.header("content-length"), Some("10000"));
    assert_eq!(hit.body, data);

    let part = get(&server.url("/big"), &[("range", "bytes=2500-4499")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 2500-4499/10000"));
    assert_eq!(part.body, data.slice(2500..4500));
    assert_eq!(server.calls(), 1);
}

/// A store chosen at run time serves as the one it boxes does.
#[tokio::test]
async fn a_boxed_store_behaves_as_the_store_it_holds() {
    let memory = MemoryStore::new(1 << 20);
    for store in [
        BoxStore::new(memory.clone()),
        BoxStore::new(WaitingStore::default()),
    ] {
        let layer = CacheLayer::builder().store(store).build();
        let server = serve(layer, |_| {
            response(&[("cache-control", "max-age=60")], "boxed")
        })
        .await;
        for expected in ["MISS", "HIT"] {
            let seen = get(&server.url("/b"), &[]).await;
            assert_eq!((seen.x_cache(), &seen.body[..]), (expected, &b"boxed"[..]));
        }
        assert_eq!(server.calls(), 1);
    }
    memory.run_pending_tasks().await;
    assert_eq!(memory.entry_count(), 1);
}
