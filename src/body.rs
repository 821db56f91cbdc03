//! The response body: cached bytes, a miss being streamed and captured, or a pass-through.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http::{Extensions, HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::flight::{FlightGuard, Flights, Reservation};
use crate::growing::{Writer, growing, is_cut};
use crate::key::CacheKey;
use crate::metrics::ByteCount;
use crate::policy::headers::{compacted, decimal_value, says_length};
use crate::policy::range::ContentRange;
use crate::policy::{ResponsePolicy, VaryKey};
use crate::shared::Commit;
use crate::store::{BodySink, Opened, SourceBody, StoredBody, StoredResponse};

pin_project! {
    /// The body of every response from [`Cache`](crate::Cache).
    ///
    /// A hit yields the stored [`Bytes`] as one frame (a reference-count clone, no copy). A miss
    /// streams the inner body frame by frame, as it arrives, while keeping a copy of the data
    /// for the store; the copy is stored only when the body ended within the size limit. A
    /// response that is not cacheable passes through untouched.
    ///
    /// Errors of the inner body are passed on unchanged, and a body that fails or is dropped
    /// before its end is never stored.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        // `hit`: built from a stored response (`X-Cache: HIT`); false for a body the cache
        // made itself (the `only-if-cached` 504).
        Full { data: Option<Bytes>, hit: bool },
        // A stored body a store streams from its own medium.
        Source { body: Option<SourceBody> },
        // `prefix`: stored bytes sent before the inner body (a stored part completed by the
        // origin's rest, RFC 9111 §3.4); never captured.
        // `counted`: counts the inner body's bytes (the metrics' bytes from the origin).
        // `tee` is boxed: a response is moved several times on its way out, and a hit's
        // should not carry the room a capture needs.
        Miss { prefix: Option<Bytes>, #[pin] body: B, tee: Option<Box<Tee>>, counted: ByteCount },
        Pass { prefix: Option<Bytes>, #[pin] body: B, counted: ByteCount },
    }
}

impl<B> ResponseBody<B> {
    /// Whether this is the body of an answer from a stored response: exactly the responses
    /// the layer marks `X-Cache: HIT` (fresh, revalidated, stale or collapsed; see
    /// `Cache-Status` for which), whether or not it sends that field. A miss, a response passed
    /// through and one the cache made itself (`504` for `only-if-cached`) say `false`.
    ///
    /// For a request log or metrics beside the cache, without looking a header field up:
    ///
    /// ```
    /// use std::convert::Infallible;
    ///
    /// use http::{Method, Request, Response};
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{Service, ServiceBuilder, ServiceExt};
    /// use tower_cache_layer::CacheLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let origin = tower::service_fn(|_req: Request<Full<bytes::Bytes>>| async {
    ///     let response = Response::builder().header("cache-control", "max-age=60");
    ///     Ok::<_, Infallible>(response.body(Full::from("hello")).unwrap())
    /// });
    /// let mut service = ServiceBuilder::new().layer(CacheLayer::new()).service(origin);
    /// let asks = [
    ///     (Method::GET, "http://example.com/a", None, false),  // a miss, stored
    ///     (Method::GET, "http://example.com/a", None, true),   // a hit
    ///     (Method::HEAD, "http://example.com/a", None, true),  // a hit, without the body
    ///     (Method::GET, "http://example.com/b", Some("only-if-cached"), false), // the 504 it makes
    /// ];
    /// for (method, path, cache_control, hit) in asks {
    ///     let mut request = Request::builder().method(method).uri(path);
    ///     if let Some(value) = cache_control {
    ///         request = request.header("cache-control", value);
    ///     }
    ///     let response = service.ready().await?.call(request.body(Full::default())?).await?;
    ///     assert_eq!(response.body().is_hit(), hit);
    ///     assert_eq!(response.headers()["x-cache"], if hit { "HIT" } else { "MISS" });
    ///     response.into_body().collect().await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_hit(&self) -> bool {
        match &self.kind {
            Kind::Full { hit, .. } => *hit,
            Kind::Source { .. } => true,
            Kind::Miss { .. } | Kind::Pass { .. } => false,
        }
    }

    /// A body the cache made itself (not a hit).
    pub(crate) fn full(data: Bytes) -> Self {
        Self::bytes(data, false)
    }

    /// The body of a HEAD request's answer from a stored response. (A 304 or 412 from the
    /// cache is made by [`stored`](Self::stored) from an empty stored body.)
    pub(crate) fn served_empty() -> Self {
        Self::bytes(Bytes::new(), true)
    }

    fn bytes(data: Bytes, hit: bool) -> Self {
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
                hit,
            },
        }
    }

    /// A stored body: its bytes, or a stream from the store.
    pub(crate) fn stored(body: &StoredBody) -> Self {
        match body.open() {
            Opened::Bytes(data) => Self::bytes(data, true),
            Opened::Stream(body) => Self {
                kind: Kind::Source { body: Some(body) },
            },
        }
    }

    pub(crate) fn miss(body: B, tee: Tee) -> Self {
        Self {
            kind: Kind::Miss {
                prefix: None,
                body,
                tee: Some(Box::new(tee)),
                counted: ByteCount::default(),
            },
        }
    }

    pub(crate) fn pass(body: B) -> Self {
        Self {
            kind: Kind::Pass {
                prefix: None,
                body,
                counted: ByteCount::default(),
            },
        }
    }

    /// This body with the inner body's bytes counted by `count` as they pass.
    pub(crate) fn counted(mut self, count: ByteCount) -> Self {
        if let Kind::Miss { counted, .. } | Kind::Pass { counted, .. } = &mut self.kind {
            *counted = count;
        }
        self
    }

    /// This body with `data` sent first (not captured for the store).
    pub(crate) fn with_prefix(mut self, data: Bytes) -> Self {
        let data = (!data.is_empty()).then_some(data);
        match &mut self.kind {
            Kind::Miss { prefix, .. } | Kind::Pass { prefix, .. } => *prefix = data,
            Kind::Full { .. } | Kind::Source { .. } => {
                unreachable!("a stored response is never completed")
            }
        }
        self
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Full { data, .. } => {
                Poll::Ready(data.take().map(|data| Ok(Frame::data(data))))
            }
            KindProj::Source { body } => poll_source(body, cx),
            KindProj::Pass {
                prefix,
                body,
                counted,
            } => match prefix.take() {
                Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                None => {
                    let frame = ready!(body.poll_frame(cx));
                    if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
                        counted.add(data.len());
                    }
                    Poll::Ready(frame)
                }
            },
            KindProj::Miss {
                prefix,
                mut body,
                tee,
                counted,
            } => {
                if let Some(data) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                let Poll::Ready(frame) = body.as_mut().poll_frame(cx) else {
                    if let Some(capture) = tee.as_mut() {
                        capture.share_if_followed(Some(cx.waker()));
                    }
                    return Poll::Pending;
                };
                match &frame {
                    Some(Ok(frame)) => {
                        counted.add(frame.data_ref().map_or(0, Bytes::len));
                        if let (Some(data), Some(capture)) = (frame.data_ref(), tee.as_mut()) {
                            match capture.push(data) {
                                Captured::Kept => {}
                                // Keep streaming, stop capturing; a response over the size
                                // limit will be again, so its key is not waited on.
                                Captured::TooLarge => {
                                    if let Some(capture) = tee.take() {
                                        capture.flights.not_storable(&capture.key, capture.flight);
                                    }
                                }
                                Captured::OverBudget => *tee = None,
                            }
                        }
                        // hyper stops polling once the announced length was sent, so the end
                        // is recognised here too, not only on `Ready(None)`: when the body says
                        // so, or when its exact size (e.g. `Content-Length`) has arrived.
                        let complete = tee
                            .as_ref()
                            .is_some_and(|capture| capture.expected == Some(capture.len as u64));
                        if complete || body.is_end_stream() {
                            if let Some(capture) = tee.take() {
                                capture.commit();
                            }
                        } else if let Some(capture) = tee.as_mut() {
                            capture.share_if_followed(None);
                        }
                    }
                    // A partial body is never stored.
                    Some(Err(_)) => *tee = None,
                    None => {
                        if let Some(capture) = tee.take() {
                            capture.commit();
                        }
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data, .. } => data.is_none(),
            Kind::Source { body } => body.as_ref().is_none_or(|body| body.is_end_stream()),
            Kind::Miss { prefix, body, .. } | Kind::Pass { prefix, body, .. } => {
                prefix.is_none() && body.is_end_stream()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Source { body } => body
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), |body| body.size_hint()),
            Kind::Miss { prefix, body, .. } | Kind::Pass { prefix, body, .. } => {
                let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let inner = body.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(extra));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(extra));
                }
                hint
            }
        }
    }
}

/// The next frame of a body streamed from a store, or from a response still being received
/// (read-while-write). A store or response that fails mid-body ends it: the response's
/// `Content-Length` tells the client it is incomplete (the body's error type is the
/// inner service's, which a store error cannot become).
fn poll_source<E>(
    source: &mut Option<SourceBody>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, E>>> {
    let Some(body) = source else {
        return Poll::Ready(None);
    };
    match ready!(body.as_mut().poll_frame(cx)) {
        Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
        // A response being received that broke (read-while-write): said where it broke.
        Some(Err(error)) if is_cut(&error) => {
            tracing::debug!(%error, "cut short");
            *source = None;
            Poll::Ready(None)
        }
        Some(Err(error)) => {
            tracing::warn!(%error, "cache store failed while sending a stored body; cut short");
            *source = None;
            Poll::Ready(None)
        }
        None => {
            *source = None;
            Poll::Ready(None)
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Full { .. } => "Full",
            Kind::Source { .. } => "Source",
            Kind::Miss { .. } => "Miss",
            Kind::Pass { .. } => "Pass",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

/// The copy of a miss being captured for the store.
pub(crate) struct Tee {
    pub(crate) key: CacheKey,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) policy: ResponsePolicy,
    pub(crate) vary: VaryKey,
    pub(crate) extensions: Extensions,
    pub(crate) req_headers: HeaderMap,
    /// The body kept in memory (unless `spool` takes it).
    pub(crate) kept: Kept,
    /// Where a store that keeps bodies outside memory takes this one in as it streams
    /// ([`Store::body_sink`](crate::store::Store::body_sink)); `None`: kept in `kept`.
    pub(crate) spool: Option<Box<dyn BodySink>>,
    pub(crate) len: usize,
    /// The body's exact size when known in advance (`SizeHint::exact`).
    pub(crate) expected: Option<u64>,
    pub(crate) limit: usize,
    pub(crate) sink: Arc<dyn Commit>,
    /// The bytes captured so far, counted against the layer's capture budget.
    pub(crate) reservation: Reservation,
    /// Where a response over the size limit is recorded as not storable.
    pub(crate) flights: Arc<Flights>,
    /// Held while this is the request others wait for; released with its outcome when
    /// stored or found not storable, or dropped (failed).
    pub(crate) flight: Option<FlightGuard>,
    /// The collapse timeout, while the body may be shared with the requests that follow this
    /// one and is not yet: it is shared once one does ([`Tee::share_if_followed`]).
    pub(crate) share: Option<Duration>,
    /// The body shared with those requests as it arrives (read-while-write), when it is:
    /// its bytes are then reserved whole in the capture budget already. Dropped with the
    /// capture before the end, it fails their bodies.
    pub(crate) stream: Option<Writer>,
}

/// A body being captured in memory.
pub(crate) enum Kept {
    /// Copied as it arrives into one buffer of its announced length, reserved whole in the
    /// capture budget up front: stored as it is, without a copy at the end.
    Sized(BytesMut),
    /// Its frames (reference-count clones, reserved as they arrive), copied into one
    /// exact-size buffer at the end: a body of unknown length, one the budget could not
    /// reserve whole, or one longer than announced.
    Frames(Vec<Bytes>),
}

/// What became of a captured frame.
enum Captured {
    Kept,
    /// The body is larger than the largest storable response.
    TooLarge,
    /// Misses being captured hold as many bytes as the layer allows, or the store's sink
    /// failed.
    OverBudget,
}

impl Tee {
    /// Read-while-write: shares the body with the requests that follow this one, if one does
    /// and it may be shared ([`Tee::share`]); what arrived so far first. `waker`, the body
    /// task's while it waits for the origin: when nobody follows yet, it is woken when a
    /// request does, so that the follower gets what arrived so far then, not with the next
    /// frame.
    pub(crate) fn share_if_followed(&mut self, waker: Option<&Waker>) {
        if self.share.is_some()
            && self
                .flight
                .as_ref()
                .is_some_and(|flight| flight.is_followed(waker))
        {
            self.start_sharing();
        }
    }

    /// Publishes the response with a growing body ([`crate::growing`]) that holds the bytes
    /// captured so far and is fed every frame from now on. Its bytes are reserved whole in
    /// the capture budget (those captured so far move to that reservation); when the budget
    /// has no room, the body is not shared, and followers wait for it to be stored.
    fn start_sharing(&mut self) {
        let (Some(stall), Some(flight), Some(len)) =
            (self.share.take(), &self.flight, self.expected)
        else {
            return;
        };
        let mut whole = self.reservation.twin();
        if !usize::try_from(len).is_ok_and(|bytes| whole.grow(bytes)) {
            return;
        }
        let (writer, source) = growing(len, whole, stall);
        match &self.kept {
            // The growing body holds its own copy: the buffer stays reserved.
            Kept::Sized(buf) if buf.is_empty() => {}
            Kept::Sized(buf) => writer.push(&Bytes::copy_from_slice(buf)),
            // The same bytes: counted in the growing body's reservation from now on.
            Kept::Frames(frames) => {
                for frame in frames {
                    writer.push(frame);
                }
                self.reservation.clear();
            }
        }
        let mut headers = self.headers.clone();
        // As `Tee::commit` sets it on the stored response. This response is only served to
        // followers, never stored or weighed: the map is not made again.
        if !says_length(&headers, len) {
            headers.insert(CONTENT_LENGTH, decimal_value(len));
        }
        let response = StoredResponse {
            status: self.status,
            headers,
            body: StoredBody::from_source(source),
            policy: self.policy,
            vary: self.vary.clone(),
            extensions: self.extensions.clone(),
        };
        flight.publish(Arc::new(response));
        self.stream = Some(writer);
    }

    /// Records a data frame.
    fn push(&mut self, data: &Bytes) -> Captured {
        self.len = self.len.saturating_add(data.len());
        if self.len > self.limit {
            return Captured::TooLarge;
        }
        if let Some(spool) = &mut self.spool {
            return match spool.write(data) {
                Ok(()) => Captured::Kept,
                Err(error) => {
                    // The store reports its own failures (`BodySink`): only a trace here.
                    tracing::debug!(key = %self.key, %error, "cache store failed to take a body in");
                    Captured::OverBudget
                }
            };
        }
        if let Some(stream) = &self.stream {
            stream.push(data);
        }
        if let Kept::Sized(buf) = &mut self.kept {
            if self.expected.is_some_and(|len| self.len as u64 <= len) {
                buf.extend_from_slice(data);
                return Captured::Kept;
            }
            // Longer than announced: kept as frames from here on, reserved as they come.
            self.kept = Kept::Frames(vec![std::mem::take(buf).freeze()]);
        }
        // A shared body is reserved whole already.
        if self.stream.is_none() && !self.reservation.grow(data.len()) {
            return Captured::OverBudget;
        }
        if let Kept::Frames(frames) = &mut self.kept {
            if !data.is_empty() {
                frames.push(data.clone());
            }
        }
        Captured::Kept
    }

    /// The body is complete: build the entry and hand it to the store.
    pub(crate) fn commit(mut self) {
        // The requests reading it as it arrived have it all: before it is stored, whether it
        // is or not.
        if let Some(stream) = self.stream.take() {
            stream.finish();
            if let Some(flight) = &self.flight {
                flight.unpublish();
            }
        }
        let body = match self.spool.take() {
            Some(spool) => match spool.finish() {
                Ok(body) if body.len() == self.len as u64 => body,
                Ok(_) => return,
                Err(error) => {
                    tracing::debug!(key = %self.key, %error, "cache store failed to keep a body");
                    return;
                }
            },
            None => self.collected(),
        };
        // RFC 9111 §3.3: a part is stored only when it holds exactly the bytes its
        // `Content-Range` names.
        if self.status == StatusCode::PARTIAL_CONTENT
            && ContentRange::from_headers(&self.headers).map(|part| part.len()) != Some(body.len())
        {
            return;
        }
        let mut headers = self.headers;
        // The whole body is known now; its length answers HEAD requests correctly later.
        // RFC 9110 §8.6: never on a 204.
        let len = body.len() as u64;
        if self.status != StatusCode::NO_CONTENT && !says_length(&headers, len) {
            headers.insert(CONTENT_LENGTH, decimal_value(len));
            // A field added to a stored map: made again as the store weighs it.
            headers = compacted(&headers);
        }
        let response = StoredResponse {
            status: self.status,
            headers,
            body,
            policy: self.policy,
            vary: self.vary,
            extensions: self.extensions,
        };
        self.sink
            .commit(self.key, response, self.req_headers, self.flight);
    }

    /// The body kept in memory, in one exact-size buffer: frames are copied, even a single
    /// one, as it may be a slice of a larger read buffer, which storing it would keep alive
    /// unaccounted. The store's byte bound holds only if what it weighs is what it holds.
    fn collected(&mut self) -> StoredBody {
        match std::mem::replace(&mut self.kept, Kept::Frames(Vec::new())) {
            Kept::Sized(buf) if buf.len() == buf.capacity() => buf.freeze().into(),
            // Shorter than announced.
            Kept::Sized(buf) => Bytes::copy_from_slice(&buf).into(),
            Kept::Frames(frames) => {
                let mut buf = BytesMut::with_capacity(self.len);
                for frame in &frames {
                    buf.extend_from_slice(frame);
                }
                buf.freeze().into()
            }
        }
    }
}
