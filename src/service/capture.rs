//! Forwarded responses: marked with the cache's status fields, and teed into the store when
//! they may be stored.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::DATE;
use http::{HeaderMap, Response, StatusCode};
use http_body::Body;

use super::Exchange;
use crate::OriginUnreachable;
use crate::body::{Kept, ResponseBody, Tee};
use crate::flight::{FlightGuard, Reservation};
use crate::metrics::RequestOutcome;
use crate::policy::decide::{self, Keep};
use crate::policy::headers::{ADDED_FIELDS, exact_value};
use crate::policy::storable::is_storable_with;
use crate::policy::{CacheControl, ResponsePolicy, Vary, VaryKey, targeted_cache_control};
use crate::shared::{Commit, Shared};
use crate::store::Store;

impl<St> Shared<St> {
    /// The `Cache-Control` this cache obeys: the targeted field when configured, present and
    /// valid (RFC 9213 §2.1), else `Cache-Control`.
    pub(super) fn cache_control(&self, headers: &HeaderMap) -> CacheControl {
        self.targeted
            .as_ref()
            .and_then(|field| targeted_cache_control(headers, field))
            .unwrap_or_else(|| CacheControl::from_headers(headers))
    }
}

impl<St: Store> Shared<St> {
    /// Marks a response from the inner service, and tees its body into the store when it may
    /// be stored.
    pub(super) fn forwarded<B>(
        self: &Arc<Self>,
        response: Response<B>,
        exchange: Exchange,
        flight: Option<FlightGuard>,
    ) -> Response<ResponseBody<B>>
    where
        B: Body<Data = Bytes>,
    {
        let (mut parts, body) = response.into_parts();
        if exchange.for_client {
            self.count(RequestOutcome::Miss);
        }
        // Made by the inner service, not the origin: never stored. `flight` is dropped, so
        // the requests waiting for it go forward themselves.
        if parts.extensions.get::<OriginUnreachable>().is_some() {
            self.status
                .forwarded_parts(&mut parts, exchange.forward, None);
            let body = ResponseBody::pass(body).counted(self.metrics.origin_bytes());
            return Response::from_parts(parts, body);
        }
        // RFC 9110 §6.6.1: a cache adds `Date` to a response that lacks one.
        if !parts.headers.contains_key(DATE) {
            let date = httpdate::fmt_http_date(exchange.response_time);
            if let Some(date) = exact_value(date) {
                // A map at `http`'s size limit goes without (and is not stored).
                let _ = parts.headers.try_insert(DATE, date);
            }
        }
        let cc = self.cache_control(&parts.headers);
        let forward = exchange.forward;
        let (body, detail) = match self.keep(&exchange, &parts, &cc, &body) {
            Keep::Store => {
                // Room in the index for the fields the cache adds (its status fields here, a
                // hit's to a copy of the stored map), made once: the stored copy is then a
                // clone of this map (see `compacted`), not a map built anew. A stored map has
                // at most `MAX_NAMES` names (`decide::keep`): far within `http`'s limit.
                let _ = parts.headers.try_reserve(ADDED_FIELDS);
                (self.capture(&parts, &cc, body, exchange, flight), None)
            }
            Keep::PassOn {
                reason,
                worth_waiting,
            } => {
                let reason_text = reason.as_str();
                tracing::trace!(key = %exchange.key, reason = reason_text, "response not stored");
                self.metrics.not_stored(reason);
                if !worth_waiting {
                    self.flights.not_storable(&exchange.key, flight);
                }
                // Otherwise `flight` is dropped here (`Outcome::Failed`): the requests waiting
                // for it go forward themselves.
                (ResponseBody::pass(body), Some(reason_text))
            }
        };
        self.status.forwarded_parts(&mut parts, forward, detail);
        Response::from_parts(parts, body.counted(self.metrics.origin_bytes()))
    }

    /// Is the response (`parts`, its `Cache-Control` `cc`, `body`) to a forwarded request
    /// stored? RFC 9111 §3 ([`is_storable_with`]), then the size bound ([`decide::keep`]).
    fn keep<B: Body>(
        &self,
        exchange: &Exchange,
        parts: &http::response::Parts,
        cc: &CacheControl,
        body: &B,
    ) -> Keep {
        let storable = is_storable_with(
            &exchange.method,
            &exchange.req_headers,
            &exchange.req_cc,
            parts.status,
            &parts.headers,
            cc,
            &self.options,
            exchange.response_time,
        );
        let at_least = body.size_hint().lower();
        decide::keep(
            storable,
            cc,
            &parts.headers,
            at_least,
            self.max_entry_size,
            exchange.admitted,
        )
    }

    /// The body of a storable response, teed into the store as it streams (committed at
    /// once when it is already complete).
    fn capture<B>(
        self: &Arc<Self>,
        parts: &http::response::Parts,
        cc: &CacheControl,
        body: B,
        exchange: Exchange,
        flight: Option<FlightGuard>,
    ) -> ResponseBody<B>
    where
        B: Body<Data = Bytes>,
    {
        let headers = decide::stored_fields(&parts.headers, cc);
        let policy = ResponsePolicy::new(
            parts.status,
            &headers,
            cc,
            &self.options,
            exchange.request_time,
            exchange.response_time,
        );
        // RFC 9111 §4.1: the request fields the response varies on, and the configured key
        // fields as if it named them too.
        let vary = match Vary::from_headers(&headers) {
            Vary::Fields(mut fields) => {
                fields.extend(self.key_headers.iter().cloned());
                VaryKey::capture(&fields, &exchange.req_headers)
            }
            _ if self.key_headers.is_empty() => VaryKey::default(),
            _ => VaryKey::capture(&self.key_headers, &exchange.req_headers),
        };
        let expected = body.size_hint().exact();
        // A store that keeps bodies outside memory takes this one in as it streams.
        let spool = match expected {
            Some(len) if len > self.max_entry_size as u64 => None,
            _ => self.store.body_sink(&exchange.key, expected),
        };
        let mut reservation = Reservation::new(Arc::clone(&self.capture));
        let kept = self.kept(expected, spool.is_some(), &mut reservation);
        let tee = Tee {
            key: exchange.key,
            status: parts.status,
            headers,
            policy,
            vary,
            // An empty map is not cloned: its clone would still allocate.
            extensions: if parts.extensions.is_empty() {
                http::Extensions::new()
            } else {
                parts.extensions.clone()
            },
            req_headers: exchange.req_headers,
            kept,
            spool,
            len: 0,
            expected,
            limit: self.max_entry_size,
            sink: Arc::clone(self) as Arc<dyn Commit>,
            reservation,
            flights: Arc::clone(&self.flights),
            flight,
            share: None,
            stream: None,
        };
        // A body that is already complete (a 204, an empty 200) may never be polled: hyper
        // does not read a body it must not or need not send.
        if body.is_end_stream() || body.size_hint().exact() == Some(0) {
            tee.commit();
            ResponseBody::pass(body)
        } else {
            let mut tee = tee;
            tee.share = self.sharing(&tee);
            tee.share_if_followed(None);
            ResponseBody::miss(body, tee)
        }
    }

    /// How a body of `expected` length is kept in memory: in one buffer of that length when
    /// it is known, within the size limit, and `reservation` can hold it whole; else as its
    /// frames. Nothing is reserved for a body a store `spooled` to its own medium.
    fn kept(&self, expected: Option<u64>, spooled: bool, reservation: &mut Reservation) -> Kept {
        let whole = expected
            .filter(|&len| !spooled && len <= self.max_entry_size as u64)
            .and_then(|len| usize::try_from(len).ok())
            .filter(|&len| reservation.grow(len));
        match whole {
            Some(len) => Kept::Sized(BytesMut::with_capacity(len)),
            None => Kept::Frames(Vec::new()),
        }
    }

    /// Read-while-write: whether the body `tee` captures may be shared with the requests
    /// waiting for its flight as it arrives ([`crate::growing`]), so that they answer from it
    /// at once, as they would from the stored response; `Some(stall)`, the collapse timeout,
    /// when it may.
    ///
    /// Only a body of known length (`Content-Length`) that is kept in memory whole, within
    /// the size limit, and not a part (RFC 9111 §3.3: stored only when it matches its
    /// `Content-Range`). Otherwise, or when nobody leads a flight, the followers wait for the
    /// response to be stored, as before. It is shared once a request follows
    /// ([`Tee::share_if_followed`]): a miss nobody waits for makes no copy for followers.
    fn sharing(&self, tee: &Tee) -> Option<Duration> {
        let stall = self.collapse?;
        tee.flight.as_ref()?;
        match tee.expected {
            Some(len) if len > 0 && len <= self.max_entry_size as u64 => {}
            _ => return None,
        }
        (tee.spool.is_none() && tee.status != StatusCode::PARTIAL_CONTENT).then_some(stall)
    }
}
