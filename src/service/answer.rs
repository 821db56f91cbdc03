//! Answers from stored responses: fresh, stale, byte ranges, the client's preconditions.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{AGE, CONTENT_LENGTH, CONTENT_RANGE};
use http::{HeaderMap, Method, Request, Response, StatusCode};

use super::{Exchange, FromStore};
use crate::body::ResponseBody;
use crate::metrics::RequestOutcome;
use crate::policy::CacheControl;
use crate::policy::conditional::{
    Precondition, evaluate_preconditions, has_preconditions, not_modified_headers,
};
use crate::policy::decide::{self, Found, Lookup};
use crate::policy::headers::{decimal_value, exact_value};
use crate::policy::range::{
    ContentRange, RangeDecision, content_range, evaluate_range, evaluate_range_in_part,
    unsatisfied_range,
};
use crate::shared::Shared;
use crate::status::Served;
use crate::store::{StoredBody, StoredEntry, StoredResponse};

impl<St> Shared<St> {
    /// Answers a request from the store when what it selected (`selected`, from `stored`)
    /// may be reused, as [`decide::lookup`] decides; else says why it goes forward.
    pub(super) fn stored_answer<B, ReqBody>(
        &self,
        stored: Option<&StoredEntry>,
        selected: Option<&Arc<StoredResponse>>,
        req: &Request<ReqBody>,
        req_cc: &CacheControl,
        now: SystemTime,
    ) -> FromStore<B> {
        let found = match (stored, selected) {
            (_, Some(candidate)) => Found::Selected(&candidate.policy, candidate.status),
            (Some(_), None) => Found::OtherVariants,
            (None, None) => Found::Nothing,
        };
        let (method, req_headers) = (req.method(), req.headers());
        let (served, otherwise) = match decide::lookup(found, method, req_headers, req_cc, now) {
            Lookup::Fresh { otherwise } => (Served::Fresh, otherwise),
            Lookup::StaleWhileRevalidate { otherwise } => (Served::StaleWhileRevalidate, otherwise),
            Lookup::Forward(why) => return FromStore::Forward(why),
            Lookup::OnlyIfCachedMiss => return FromStore::OnlyIfCachedMiss,
        };
        let Some(candidate) = selected else {
            return FromStore::forward(req_cc, otherwise);
        };
        match self.answer_from_store(method, req_headers, candidate, now, served) {
            Some(response) if served == Served::StaleWhileRevalidate => {
                FromStore::AnswerAndRevalidate(response, Arc::clone(candidate))
            }
            Some(response) => FromStore::Answer(response),
            // A precondition or range the cache leaves to the origin.
            None => FromStore::forward(req_cc, otherwise),
        }
    }

    /// The 504 for an `only-if-cached` request with nothing usable stored (RFC 9111
    /// §5.2.1.7).
    pub(super) fn only_if_cached_miss<B>(&self) -> Response<ResponseBody<B>> {
        let mut response = Response::new(ResponseBody::full(Bytes::new()));
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        self.status
            .generated(response.headers_mut(), "only-if-cached");
        response
    }

    /// Answers from `entry` when it holds a response the request selects (RFC 9111 §4.1) and
    /// may take without contacting the origin (§4.2, §5.2.1); `None` otherwise.
    pub(super) fn fresh_answer<B>(
        &self,
        entry: &StoredEntry,
        method: &Method,
        req_headers: &HeaderMap,
        req_cc: &CacheControl,
        now: SystemTime,
        served: Served,
    ) -> Option<Response<ResponseBody<B>>> {
        let stored = self.select(entry, req_headers)?;
        if !decide::answers_without_origin(&stored.policy, req_cc, req_headers, now) {
            return None;
        }
        self.answer_from_store(method, req_headers, stored, now, served)
    }

    /// Serves `stored` in place of a failed origin answer (`origin_status`; `None` when the
    /// origin could not be reached), where [`decide::stale_fallback`] allows it.
    pub(super) fn stale_answer<B>(
        &self,
        exchange: &Exchange,
        stored: &StoredResponse,
        origin_status: Option<StatusCode>,
    ) -> Option<Response<ResponseBody<B>>> {
        let now = exchange.response_time;
        let (req_cc, req_headers) = (&exchange.req_cc, &exchange.req_headers);
        let max = self.options.max_stale_if_unreachable;
        let served =
            decide::stale_fallback(&stored.policy, req_cc, req_headers, now, origin_status, max)?;
        self.answer_from_store(&exchange.method, req_headers, stored, now, served)
    }

    /// Answers a request from a stored response: a header-map clone and a `Bytes` clone (a
    /// slice of it for a range). `None` when the request needs the origin after all: a
    /// precondition or a range the cache does not evaluate itself.
    pub(super) fn answer_from_store<B>(
        &self,
        method: &Method,
        req_headers: &HeaderMap,
        stored: &StoredResponse,
        now: SystemTime,
        served: Served,
    ) -> Option<Response<ResponseBody<B>>> {
        // RFC 9111 §4.2.3, §5.1: every response from the cache carries its current age.
        let age = stored.policy.age(now);
        let ttl = decide::signed_ttl(&stored.policy, age);
        // A stored partial response (RFC 9111 §3.3): where its bytes sit in the representation.
        let part = match stored.status {
            StatusCode::PARTIAL_CONTENT => Some(ContentRange::from_headers(&stored.headers)?),
            _ => None,
        };
        let (status, mut headers, body) = stored_reply(method, req_headers, stored, part)?;
        self.count(match served {
            Served::Fresh => RequestOutcome::Hit,
            Served::Revalidated => RequestOutcome::Revalidated,
            Served::Collapsed(_) => RequestOutcome::Collapsed,
            Served::StaleWhileRevalidate | Served::StaleIfError(_) | Served::StaleIfUnreachable => {
                RequestOutcome::Stale
            }
        });
        headers.insert(AGE, decimal_value(age.as_secs()));
        self.status.served(&mut headers, served, ttl);
        let body = if method == Method::HEAD {
            ResponseBody::served_empty()
        } else {
            self.metrics.served_from_cache(body.len());
            ResponseBody::stored(&body)
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        // The stored status with its extensions (hyper's `ReasonPhrase` among them); a status
        // the cache made up (304, 206, 412, 416) has its standard reason phrase.
        if status == stored.status && part.is_none() && !stored.extensions.is_empty() {
            *response.extensions_mut() = stored.extensions.clone();
        }
        Some(response)
    }
}

/// The status, header fields and body of an answer from `stored` (a part at `part` of the
/// representation, when it is one), after the client's preconditions; `None` when the
/// request is left to the origin.
fn stored_reply(
    method: &Method,
    req_headers: &HeaderMap,
    stored: &StoredResponse,
    part: Option<ContentRange>,
) -> Option<(StatusCode, HeaderMap, StoredBody)> {
    // RFC 9111 §4.3.2, RFC 9110 §13.2.2: the cache evaluates the client's preconditions
    // against the stored response (a complete one: a part goes to the origin).
    let precondition = match part {
        Some(_) if has_preconditions(req_headers) => return None,
        Some(_) => Precondition::None,
        None => evaluate_preconditions(method, req_headers, stored.status, &stored.headers),
    };
    Some(match precondition {
        Precondition::NotModified => (
            StatusCode::NOT_MODIFIED,
            not_modified_headers(&stored.headers),
            StoredBody::default(),
        ),
        Precondition::Failed => (
            StatusCode::PRECONDITION_FAILED,
            HeaderMap::new(),
            StoredBody::default(),
        ),
        Precondition::Forward => return None,
        Precondition::None => ranged_answer(method, req_headers, stored, part)?,
    })
}

/// The stored response, or the byte range of it the request asks for: status, header fields
/// and body. `part` is where a stored partial response sits in the representation. `None`
/// when the range is left to the origin.
fn ranged_answer(
    method: &Method,
    req_headers: &HeaderMap,
    stored: &StoredResponse,
    part: Option<ContentRange>,
) -> Option<(StatusCode, HeaderMap, StoredBody)> {
    // The complete length, and the offset of the stored bytes in it.
    let (len, offset) = match part {
        Some(part) => (part.complete, part.first),
        None => (stored.body.len(), 0),
    };
    // RFC 9110 §14.2: a single byte range of a stored 200 is served from it, and
    // (RFC 9111 §3.3) from a stored 206 that holds it.
    let decision = match part {
        Some(_) => evaluate_range_in_part(method, req_headers, &stored.headers),
        None => evaluate_range(method, req_headers, stored.status, &stored.headers, len),
    };
    Some(match decision {
        // A clone copies the map's tables as they are (no name hashed again). Stored maps'
        // index tables have room for the fields the cache adds (`Age`, `X-Cache`,
        // `Cache-Status`), so adding them rehashes nothing; the field list itself is cloned at
        // its length and grows once.
        RangeDecision::Full => (stored.status, stored.headers.clone(), stored.body.clone()),
        RangeDecision::Partial { start, end } => {
            let mut headers = stored.headers.clone();
            let range = content_range(start, end, len);
            headers.insert(CONTENT_RANGE, exact_value(range)?);
            headers.insert(CONTENT_LENGTH, decimal_value(end - start + 1));
            let (from, to) = (start.checked_sub(offset)?, end.checked_sub(offset)?);
            (
                StatusCode::PARTIAL_CONTENT,
                headers,
                stored.body.slice(from..=to)?,
            )
        }
        RangeDecision::Unsatisfiable => {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_RANGE, exact_value(unsatisfied_range(len))?);
            (
                StatusCode::RANGE_NOT_SATISFIABLE,
                headers,
                StoredBody::default(),
            )
        }
        RangeDecision::Forward => return None,
    })
}
