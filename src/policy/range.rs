//! Range requests answered from a stored response (RFC 9110 §14, §13.1.5; RFC 9111 §3.3,
//! §3.4).
//!
//! The cache answers GET with one byte range from a stored 200, or from a stored 206 whose
//! range covers it. Everything else is either served whole (the Range header ignored, which
//! RFC 9110 §14.2 always allows) or forwarded to the origin.

use super::conditional::{
    EntityTag, etag, has_preconditions, last_modified, single_date, strong_match,
};
use super::headers::{exact_value, is_tchar, trim_ows};
use http::header::{CONTENT_RANGE, DATE, ETAG, IF_RANGE, RANGE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use std::time::Duration;

/// What to answer to a request that may carry `Range`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RangeDecision {
    /// Serve the whole stored response (no `Range`, an ignored one, or a false `If-Range`).
    Full,
    /// Serve `206 Partial Content` with bytes `start..=end` and
    /// `Content-Range: `[`content_range`]`(start, end, len)`; `start <= end < len` always holds.
    Partial {
        /// First byte offset, inclusive.
        start: u64,
        /// Last byte offset, inclusive.
        end: u64,
    },
    /// Serve `416 Range Not Satisfiable` with `Content-Range: unsatisfied_range(len)`.
    Unsatisfiable,
    /// A range request the cache does not answer itself (several ranges, another unit, several
    /// `Range` lines): forward it to the origin.
    Forward,
}

/// The `Content-Range` of a single-part `206` (RFC 9110 §14.4): bytes `first..=last` of a
/// representation of `complete` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte offset, inclusive.
    pub first: u64,
    /// Last byte offset, inclusive; `first <= last < complete`.
    pub last: u64,
    /// The complete length of the representation.
    pub complete: u64,
}

impl ContentRange {
    /// Parses exactly one `Content-Range: bytes first-last/complete` line (RFC 9110 §14.4)
    /// with a known complete length; `None` for anything else (an unknown length `*`, an
    /// unsatisfied range, another unit, several lines, `last < first`, `last >= complete`).
    /// Only such a partial response is stored (RFC 9111 §3.3).
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut lines = headers.get_all(CONTENT_RANGE).iter();
        let (Some(value), None) = (lines.next(), lines.next()) else {
            return None;
        };
        let value = trim_ows(value.as_bytes());
        let space = value.iter().position(|&b| b == b' ')?;
        if !value[..space].eq_ignore_ascii_case(b"bytes") {
            return None;
        }
        let rest = &value[space + 1..];
        let slash = rest.iter().position(|&b| b == b'/')?;
        let dash = rest[..slash].iter().position(|&b| b == b'-')?;
        let first = exact_digits(&rest[..dash])?;
        let last = exact_digits(&rest[dash + 1..slash])?;
        let complete = exact_digits(&rest[slash + 1..])?;
        (first <= last && last < complete).then_some(Self {
            first,
            last,
            complete,
        })
    }

    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never empty: a range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// RFC 9111 §3.4: may a newly received partial response be combined with a stored one, and
/// into which range?
///
/// "A cache MAY combine these ranges into a single stored response ... if they all share the
/// same strong validator": both `stored` and `new` must carry one `ETag` that matches by
/// strong comparison (RFC 9110 §8.8.3.2), one `Content-Range` ([`ContentRange`]) each with
/// the same complete length, and ranges that overlap or adjoin. Returns the union of the two
/// ranges; the combined response is complete when it covers `0..complete`. Without a strong
/// validator nothing is combined: nothing tells two parts of the same representation from
/// parts of two versions of it.
pub fn combine_parts(stored: &HeaderMap, new: &HeaderMap) -> Option<ContentRange> {
    let (Some(old_tag), Some(new_tag)) = (etag(stored), etag(new)) else {
        return None;
    };
    if !strong_match(&old_tag, &new_tag) {
        return None;
    }
    let (a, b) = (
        ContentRange::from_headers(stored)?,
        ContentRange::from_headers(new)?,
    );
    let adjoin = b.first <= a.last.saturating_add(1) && a.first <= b.last.saturating_add(1);
    (a.complete == b.complete && adjoin).then(|| ContentRange {
        first: a.first.min(b.first),
        last: a.last.max(b.last),
        complete: a.complete,
    })
}

/// RFC 9111 §3.4: where a request without `Range` may ask the origin for the rest of a stored
/// partial response instead of all of it.
///
/// Returns the first byte the stored part lacks when it is a prefix of the representation
/// (`Content-Range: bytes 0-N/len`) with a strong `ETag`: the caller then sends
/// `Range: bytes=N+1-` with `If-Range: <that ETag>`, so that the origin answers either the
/// missing bytes of the same representation (a `206` that [`completing_part`] accepts) or,
/// when it changed, all of the new one (`200`). `None` otherwise: without a strong validator
/// the parts could not be combined (§3.4), so the request goes forward whole.
pub(crate) fn rest_of_part(stored_headers: &HeaderMap) -> Option<u64> {
    let part = ContentRange::from_headers(stored_headers)?;
    let strong = etag(stored_headers).is_some_and(|tag| strong_match(&tag, &tag));
    (part.first == 0 && strong).then_some(part.last + 1)
}

/// RFC 9111 §3.4: does `new`, the origin's `206` to a request made with [`rest_of_part`],
/// complete the stored prefix? Returns how many stored bytes come before the new part's
/// bytes (its first offset) when the two share a strong validator and together cover the
/// whole representation, with the new part running to its end.
pub(crate) fn completing_part(stored_headers: &HeaderMap, new_headers: &HeaderMap) -> Option<u64> {
    let stored = ContentRange::from_headers(stored_headers)?;
    let new = ContentRange::from_headers(new_headers)?;
    let merged = combine_parts(stored_headers, new_headers)?;
    let whole = stored.first == 0 && merged.first == 0 && merged.last + 1 == merged.complete;
    (whole && new.last + 1 == new.complete).then_some(new.first)
}

/// `1*DIGIT` that fits a `u64`.
fn exact_digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// RFC 9111 §3.3 for a stored partial response (`206`, one [`ContentRange`] in
/// `stored_headers`): the request is decided as for the complete representation
/// ([`evaluate_range`] with the complete length), then a range the part covers is
/// [`RangeDecision::Partial`] (offsets in the complete representation), an unsatisfiable one
/// [`RangeDecision::Unsatisfiable`], and everything else (no `Range`, a range beyond the
/// stored part, a false `If-Range`, a method other than GET, no usable `Content-Range`)
/// [`RangeDecision::Forward`]: a part never answers a request for more than it holds.
pub fn evaluate_range_in_part(
    method: &Method,
    req_headers: &HeaderMap,
    stored_headers: &HeaderMap,
) -> RangeDecision {
    let Some(stored) = ContentRange::from_headers(stored_headers) else {
        return RangeDecision::Forward;
    };
    let whole = evaluate_range(
        method,
        req_headers,
        StatusCode::OK,
        stored_headers,
        stored.complete,
    );
    match whole {
        RangeDecision::Partial { start, end } if stored.first <= start && end <= stored.last => {
            whole
        }
        RangeDecision::Unsatisfiable if method == Method::GET => whole,
        _ => RangeDecision::Forward,
    }
}

/// RFC 9110 §14.2 and §13.1.5 for a stored response of `len` content bytes.
///
/// The first matching rule decides:
///
/// 1. a method other than GET, a stored status other than 200, or no `Range`:
///    [`RangeDecision::Full`] (RFC 9110 §14.2: range handling is defined for GET only);
/// 2. several `Range` field lines: [`RangeDecision::Forward`];
/// 3. `If-Range` present and false: [`RangeDecision::Full`]. An entity-tag must match the
///    stored `ETag` by strong comparison (a weak tag is always false); an HTTP-date must
///    equal the stored `Last-Modified` exactly *and* that `Last-Modified` must be a strong
///    validator, i.e. the stored `Date` is at least one second later (RFC 9110 §8.8.2.2);
///    anything invalid or repeated is false;
/// 4. a `Range` that is not `unit=range-set` with a token unit: [`RangeDecision::Full`]
///    (ignored); a unit other than `bytes` (case-insensitive): [`RangeDecision::Forward`];
/// 5. more than one range-spec: [`RangeDecision::Forward`]; none, or an invalid one (such
///    as `5-3`, `a-b`, `-`): [`RangeDecision::Full`];
/// 6. `first-last` / `first-`: [`RangeDecision::Unsatisfiable`] when `first >= len`,
///    otherwise [`RangeDecision::Partial`] with `last` clipped to `len - 1`;
/// 7. `-suffix`: [`RangeDecision::Unsatisfiable`] when `suffix` is 0; [`RangeDecision::Full`]
///    when `len` is 0 (the range is satisfiable by RFC 9110 §14.1.1 but the result is empty,
///    which a 206 cannot express); otherwise the last `min(suffix, len)` bytes.
///
/// Offsets too large for `u64` saturate, so they behave as "beyond the end".
pub fn evaluate_range(
    method: &Method,
    req_headers: &HeaderMap,
    stored_status: StatusCode,
    stored_headers: &HeaderMap,
    len: u64,
) -> RangeDecision {
    // RFC 9110 §14.2: "A server MUST ignore a Range header field received with a request
    // method that is unrecognized or for which range handling is not defined" (GET only).
    if method != Method::GET || stored_status != StatusCode::OK {
        return RangeDecision::Full;
    }
    let mut lines = req_headers.get_all(RANGE).iter();
    let Some(range) = lines.next() else {
        return RangeDecision::Full;
    };
    if lines.next().is_some() {
        return RangeDecision::Forward;
    }

    // RFC 9110 §13.2.2 step 5, §13.1.5: a false If-Range means "ignore Range, send 200".
    if req_headers.contains_key(IF_RANGE) && !if_range_holds(req_headers, stored_headers) {
        return RangeDecision::Full;
    }

    // RFC 9110 §14.2: ranges-specifier = range-unit "=" range-set
    let value = range.as_bytes();
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return RangeDecision::Full;
    };
    let unit = &value[..eq];
    if unit.is_empty() || !unit.iter().all(|&b| is_tchar(b)) {
        return RangeDecision::Full;
    }
    // RFC 9110 §14.1: range units are compared case-insensitively; §14.2: an unknown unit
    // is ignored by an origin and MAY be discarded by a proxy: the origin decides here.
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return RangeDecision::Forward;
    }

    // RFC 9110 §14.1.1: range-set = 1#range-spec (empty list elements are ignored).
    let mut specs = value[eq + 1..]
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|spec| !spec.is_empty());
    let Some(spec) = specs.next() else {
        return RangeDecision::Full;
    };
    if specs.next().is_some() {
        return RangeDecision::Forward;
    }

    match parse_spec(spec) {
        // RFC 9110 §14.1.1: an invalid range-spec; §14.2: a server MAY ignore Range.
        None => RangeDecision::Full,
        Some(Spec::Int { first, last }) => {
            // RFC 9110 §14.1.1: "A int-range is invalid if the last-pos value is present and
            // less than the first-pos."
            if last.is_some_and(|last| last < first) {
                return RangeDecision::Full;
            }
            // RFC 9110 §14.1.1: unsatisfiable when first-pos is not less than the length.
            if first >= len {
                return RangeDecision::Unsatisfiable;
            }
            // RFC 9110 §14.1.1: a last-pos at or past the end means "to the end".
            let end = last.map_or(len - 1, |last| last.min(len - 1));
            RangeDecision::Partial { start: first, end }
        }
        Some(Spec::Suffix(0)) => RangeDecision::Unsatisfiable,
        Some(Spec::Suffix(_)) if len == 0 => RangeDecision::Full,
        // RFC 9110 §14.1.1: "If the selected representation is shorter than the specified
        // suffix-length, the entire representation is used."
        Some(Spec::Suffix(n)) => RangeDecision::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        },
    }
}

/// `Content-Range` of a 206 (RFC 9110 §14.4): `bytes 0-99/1000`.
pub fn content_range(start: u64, end: u64, len: u64) -> String {
    format!("bytes {start}-{end}/{len}")
}

/// `Content-Range` of a 416 (RFC 9110 §14.4, §15.5.17): `bytes */1000`.
pub(crate) fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// One byte range-spec (RFC 9110 §14.1.1).
enum Spec {
    /// `first-pos "-" [ last-pos ]`
    Int { first: u64, last: Option<u64> },
    /// `"-" suffix-length`
    Suffix(u64),
}

fn parse_spec(spec: &[u8]) -> Option<Spec> {
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        // RFC 9110 §14.1.1: suffix-range = "-" suffix-length
        return Some(Spec::Suffix(digits(last)?));
    }
    let first = digits(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(digits(last)?)
    };
    Some(Spec::Int { first, last })
}

/// `1*DIGIT` as a saturating `u64`.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |acc, &b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// RFC 9110 §13.1.5: is the `If-Range` condition true for the stored response?
fn if_range_holds(req_headers: &HeaderMap, stored: &HeaderMap) -> bool {
    let mut lines = req_headers.get_all(IF_RANGE).iter();
    let (Some(value), None) = (lines.next(), lines.next()) else {
        return false;
    };
    let bytes = trim_ows(value.as_bytes());
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/") {
        // RFC 9110 §13.1.5: "the condition is true if the entity-tag ... matches using the
        // strong comparison function"; a weak tag never does.
        return match (EntityTag::parse(bytes), etag(stored)) {
            (Some(tag), Some(stored_tag)) => strong_match(&tag, &stored_tag),
            _ => false,
        };
    }
    // RFC 9110 §13.1.5: an HTTP-date is true only if it is a strong validator that exactly
    // matches Last-Modified; RFC 9110 §8.8.2.2: a cache may deem its stored Last-Modified
    // strong when the stored Date is at least one second later.
    let Some(date) = single_date(req_headers, &IF_RANGE) else {
        return false;
    };
    match (last_modified(stored), single_date(stored, &DATE)) {
        (Some(modified), Some(stored_date)) => {
            modified == date
                && stored_date
                    .duration_since(modified)
                    .is_ok_and(|gap| gap >= Duration::from_secs(1))
        }
        _ => false,
    }
}

/// RFC 9111 §3.4: the `Range` and `If-Range` values that ask the origin for the rest of a
/// stored part (status `part_status`, fields `part_headers`) instead of all of the
/// representation. `None` when the request goes forward as the client sent it: the part is
/// not a prefix with a strong `ETag` ([`rest_of_part`]), or the request is not a plain `GET`
/// (a `HEAD`, its own `Range` or `If-Range`, a precondition of RFC 9110 §13.1), which the
/// stored bytes and the rest together could not answer as asked.
pub(crate) fn rest_request(
    method: &Method,
    client_headers: &HeaderMap,
    part_status: StatusCode,
    part_headers: &HeaderMap,
) -> Option<(HeaderValue, HeaderValue)> {
    let plain = method == Method::GET
        && !client_headers.contains_key(RANGE)
        && !client_headers.contains_key(IF_RANGE)
        && !has_preconditions(client_headers);
    if !plain || part_status != StatusCode::PARTIAL_CONTENT {
        return None;
    }
    let next = rest_of_part(part_headers)?;
    let range = exact_value(format!("bytes={next}-"))?;
    let tag = part_headers.get(ETAG)?.clone();
    Some((range, tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_util::headers;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    const T0: u64 = 1_431_696_861;

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn decide_with(req: &[(&str, &str)], stored: &[(&str, &str)], len: u64) -> RangeDecision {
        evaluate_range(
            &Method::GET,
            &headers(req),
            StatusCode::OK,
            &headers(stored),
            len,
        )
    }

    fn decide(range: &str, len: u64) -> RangeDecision {
        decide_with(&[("range", range)], &[], len)
    }

    fn partial(start: u64, end: u64) -> RangeDecision {
        RangeDecision::Partial { start, end }
    }

    // RFC 9110 §14.2: no Range, full response
    #[test]
    fn no_range_is_full() {
        assert_eq!(decide_with(&[], &[], 100), RangeDecision::Full);
    }

    // RFC 9110 §14.1.1: first-last, first-, clipped to the end
    #[test]
    fn int_range_is_partial_and_clipped() {
        assert_eq!(decide("bytes=0-99", 1000), partial(0, 99));
        assert_eq!(decide("bytes=500-", 1000), partial(500, 999));
        assert_eq!(decide("bytes=990-2000", 1000), partial(990, 999));
        assert_eq!(decide("bytes=5-5", 1000), partial(5, 5));
    }

    // RFC 9110 §14.1.1: suffix ranges, longer than the representation means all of it
    #[test]
    fn suffix_range_is_partial() {
        assert_eq!(decide("bytes=-100", 1000), partial(900, 999));
        assert_eq!(decide("bytes=-5000", 1000), partial(0, 999));
    }

    // RFC 9110 §14.1: the unit is case-insensitive; OWS around list elements is allowed
    #[test]
    fn unit_case_insensitive_and_ows() {
        assert_eq!(decide("Bytes=0-1", 10), partial(0, 1));
        assert_eq!(decide("BYTES= 0-1 ,", 10), partial(0, 1));
    }

    // RFC 9110 §14.1.1: first-pos at or past the end is unsatisfiable
    #[test]
    fn first_pos_past_end_is_unsatisfiable() {
        assert_eq!(decide("bytes=1000-", 1000), RangeDecision::Unsatisfiable);
        assert_eq!(
            decide("bytes=1000-1001", 1000),
            RangeDecision::Unsatisfiable
        );
        assert_eq!(decide("bytes=0-", 0), RangeDecision::Unsatisfiable);
        assert_eq!(
            decide("bytes=99999999999999999999999-", 1000),
            RangeDecision::Unsatisfiable
        );
    }

    // RFC 9110 §14.1.1: a zero suffix-length is unsatisfiable
    #[test]
    fn zero_suffix_is_unsatisfiable() {
        assert_eq!(decide("bytes=-0", 1000), RangeDecision::Unsatisfiable);
        assert_eq!(decide("bytes=-0", 0), RangeDecision::Unsatisfiable);
    }

    // RFC 9110 §14.1.1: a suffix on an empty representation is satisfiable but empty: 200
    #[test]
    fn suffix_on_empty_representation_is_full() {
        assert_eq!(decide("bytes=-5", 0), RangeDecision::Full);
    }

    // RFC 9110 §14.1.1, §14.2: invalid range-specs are ignored
    #[test]
    fn invalid_range_is_full() {
        for r in [
            "bytes=5-3",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=1 -2",
            "bytes",
            "=0-1",
            "by tes=0-1",
            "bytes=,,",
            "bytes=0x1-2",
        ] {
            assert_eq!(decide(r, 1000), RangeDecision::Full, "{r:?}");
        }
    }

    // RFC 9110 §14.1.1: several ranges are left to the origin
    #[test]
    fn multiple_ranges_are_forwarded() {
        assert_eq!(decide("bytes=0-1,5-6", 1000), RangeDecision::Forward);
        assert_eq!(decide("bytes=0-1, -5", 1000), RangeDecision::Forward);
        assert_eq!(
            decide_with(&[("range", "bytes=0-1"), ("range", "bytes=2-3")], &[], 10),
            RangeDecision::Forward
        );
    }

    // RFC 9110 §14.2: other units are left to the origin
    #[test]
    fn other_unit_is_forwarded() {
        assert_eq!(decide("items=0-1", 1000), RangeDecision::Forward);
        assert_eq!(decide("none=0-1", 1000), RangeDecision::Forward);
    }

    // RFC 9110 §14.2: Range is defined for GET only; only a stored 200 is sliced
    #[test]
    fn only_get_and_stored_200() {
        let req = headers(&[("range", "bytes=0-1")]);
        let none = HeaderMap::new();
        assert_eq!(
            evaluate_range(&Method::HEAD, &req, StatusCode::OK, &none, 10),
            RangeDecision::Full
        );
        assert_eq!(
            evaluate_range(&Method::GET, &req, StatusCode::NOT_FOUND, &none, 10),
            RangeDecision::Full
        );
    }

    // RFC 9110 §13.1.5: If-Range entity-tag, strong comparison
    #[test]
    fn if_range_etag_strong_match() {
        let stored = [("etag", "\"v1\"")];
        let range = ("range", "bytes=0-1");
        assert_eq!(
            decide_with(&[range, ("if-range", "\"v1\"")], &stored, 10),
            partial(0, 1)
        );
        assert_eq!(
            decide_with(&[range, ("if-range", "\"v2\"")], &stored, 10),
            RangeDecision::Full
        );
        assert_eq!(
            decide_with(&[range, ("if-range", "W/\"v1\"")], &stored, 10),
            RangeDecision::Full
        );
        let weak_stored = [("etag", "W/\"v1\"")];
        assert_eq!(
            decide_with(&[range, ("if-range", "\"v1\"")], &weak_stored, 10),
            RangeDecision::Full
        );
        assert_eq!(
            decide_with(&[range, ("if-range", "\"v1\"")], &[], 10),
            RangeDecision::Full
        );
    }

    // RFC 9110 §13.1.5, §8.8.2.2: If-Range date must equal a strong Last-Modified
    #[test]
    fn if_range_date_exact_strong_last_modified() {
        let (lm, d) = (date(T0), date(T0 + 10));
        let stored = [("last-modified", lm.as_str()), ("date", d.as_str())];
        let range = ("range", "bytes=0-1");
        assert_eq!(
            decide_with(&[range, ("if-range", &lm)], &stored, 10),
            partial(0, 1)
        );
        let other = date(T0 + 1);
        assert_eq!(
            decide_with(&[range, ("if-range", &other)], &stored, 10),
            RangeDecision::Full
        );
        // Date less than one second after Last-Modified: Last-Modified is weak.
        let weak = [("last-modified", lm.as_str()), ("date", lm.as_str())];
        assert_eq!(
            decide_with(&[range, ("if-range", &lm)], &weak, 10),
            RangeDecision::Full
        );
        // No Date: strength unknown.
        let no_date = [("last-modified", lm.as_str())];
        assert_eq!(
            decide_with(&[range, ("if-range", &lm)], &no_date, 10),
            RangeDecision::Full
        );
        assert_eq!(
            decide_with(&[range, ("if-range", "garbage")], &stored, 10),
            RangeDecision::Full
        );
    }

    // RFC 9110 §13.1.5: a false If-Range ignores even a range the cache would forward
    #[test]
    fn false_if_range_wins_over_forward() {
        let req = [("range", "bytes=0-1,3-4"), ("if-range", "\"v2\"")];
        assert_eq!(
            decide_with(&req, &[("etag", "\"v1\"")], 10),
            RangeDecision::Full
        );
    }

    // RFC 9110 §14.4: Content-Range values
    #[test]
    fn content_range_formats() {
        assert_eq!(content_range(0, 99, 1000), "bytes 0-99/1000");
        assert_eq!(unsatisfied_range(1000), "bytes */1000");
    }

    // Robustness: garbage never panics
    #[test]
    fn garbage_range_does_not_panic() {
        for v in [
            &b"\xff=\xff"[..],
            b"bytes=\xff-",
            b"=",
            b"bytes==",
            b"bytes=-\xff",
            b"-",
        ] {
            let mut h = HeaderMap::new();
            h.insert(RANGE, HeaderValue::from_bytes(v).unwrap());
            h.insert(IF_RANGE, HeaderValue::from_bytes(v).unwrap());
            let _ = evaluate_range(&Method::GET, &h, StatusCode::OK, &h, u64::MAX);
            h.remove(IF_RANGE);
            let _ = evaluate_range(&Method::GET, &h, StatusCode::OK, &h, 0);
        }
    }

    // RFC 9110 §14.4: Content-Range of a single part with a known length
    #[test]
    fn content_range_parsed() {
        let cr = |v: &str| ContentRange::from_headers(&headers(&[("content-range", v)]));
        assert_eq!(
            cr("bytes 4-9/10"),
            Some(ContentRange {
                first: 4,
                last: 9,
                complete: 10
            })
        );
        assert_eq!(cr("BYTES 0-0/1").map(|c| c.len()), Some(1));
        for bad in [
            "bytes 4-9/*",
            "bytes */10",
            "bytes 9-4/10",
            "bytes 4-10/10",
            "items 0-1/2",
            "bytes 0-1",
            "bytes a-b/c",
            "bytes 0-99999999999999999999/1",
        ] {
            assert_eq!(cr(bad), None, "{bad}");
        }
    }

    // RFC 9111 §3.3: a stored 206 answers the ranges it covers, forwards the others
    #[test]
    fn stored_partial_answers_covered_ranges() {
        let stored = headers(&[("content-range", "bytes 4-9/10")]);
        let decide =
            |req: &[(&str, &str)]| evaluate_range_in_part(&Method::GET, &headers(req), &stored);
        assert_eq!(decide(&[("range", "bytes=-5")]), partial(5, 9));
        assert_eq!(decide(&[("range", "bytes=6-8")]), partial(6, 8));
        assert_eq!(decide(&[("range", "bytes=6-")]), partial(6, 9));
        assert_eq!(decide(&[("range", "bytes=-1")]), partial(9, 9));
        assert_eq!(decide(&[("range", "bytes=4-9")]), partial(4, 9));
        assert_eq!(decide(&[("range", "bytes=3-5")]), RangeDecision::Forward);
        assert_eq!(decide(&[("range", "bytes=0-")]), RangeDecision::Forward);
        assert_eq!(
            decide(&[("range", "bytes=10-")]),
            RangeDecision::Unsatisfiable
        );
        assert_eq!(decide(&[]), RangeDecision::Forward);
        assert_eq!(
            evaluate_range_in_part(&Method::HEAD, &headers(&[("range", "bytes=5-")]), &stored),
            RangeDecision::Forward
        );
        assert_eq!(
            evaluate_range_in_part(
                &Method::GET,
                &headers(&[("range", "bytes=5-")]),
                &headers(&[])
            ),
            RangeDecision::Forward
        );
    }

    // RFC 9111 §3.4: parts combine only with the same strong validator and touching ranges
    #[test]
    fn parts_combine_with_a_shared_strong_validator() {
        let part = |etag: &str, range: &str| headers(&[("etag", etag), ("content-range", range)]);
        let cr = |first, last| {
            Some(ContentRange {
                first,
                last,
                complete: 10,
            })
        };
        let a = part("\"v\"", "bytes 0-4/10");
        assert_eq!(combine_parts(&a, &part("\"v\"", "bytes 5-9/10")), cr(0, 9));
        assert_eq!(combine_parts(&a, &part("\"v\"", "bytes 3-6/10")), cr(0, 6));
        assert_eq!(combine_parts(&part("\"v\"", "bytes 5-9/10"), &a), cr(0, 9));
        // A gap, another length, another tag, a weak tag, no tag: nothing combines.
        assert_eq!(combine_parts(&a, &part("\"v\"", "bytes 6-9/10")), None);
        assert_eq!(combine_parts(&a, &part("\"v\"", "bytes 5-9/11")), None);
        assert_eq!(combine_parts(&a, &part("\"w\"", "bytes 5-9/10")), None);
        let weak = part("W/\"v\"", "bytes 0-4/10");
        assert_eq!(combine_parts(&weak, &part("W/\"v\"", "bytes 5-9/10")), None);
        let untagged = headers(&[("content-range", "bytes 0-4/10")]);
        let untagged_rest = headers(&[("content-range", "bytes 5-9/10")]);
        assert_eq!(combine_parts(&untagged, &untagged_rest), None);
    }

    // RFC 9111 §3.4: a stored prefix with a strong validator is completed with the rest
    #[test]
    fn rest_of_a_stored_prefix() {
        let part = |etag: &str, range: &str| headers(&[("etag", etag), ("content-range", range)]);
        assert_eq!(rest_of_part(&part("\"v\"", "bytes 0-4/10")), Some(5));
        assert_eq!(rest_of_part(&part("W/\"v\"", "bytes 0-4/10")), None);
        assert_eq!(rest_of_part(&part("\"v\"", "bytes 2-4/10")), None);
        assert_eq!(
            rest_of_part(&headers(&[("content-range", "bytes 0-4/10")])),
            None
        );
        let stored = part("\"v\"", "bytes 0-4/10");
        assert_eq!(
            completing_part(&stored, &part("\"v\"", "bytes 5-9/10")),
            Some(5)
        );
        assert_eq!(
            completing_part(&stored, &part("\"v\"", "bytes 3-9/10")),
            Some(3)
        );
        assert_eq!(
            completing_part(&stored, &part("\"v\"", "bytes 5-8/10")),
            None
        );
        assert_eq!(
            completing_part(&stored, &part("\"w\"", "bytes 5-9/10")),
            None
        );
        assert_eq!(
            completing_part(&stored, &part("\"v\"", "bytes 6-9/10")),
            None
        );
    }

    // RFC 9111 §3.4: a plain GET for a stored prefix with a strong ETag asks for the rest.
    #[test]
    fn rest_request_asks_for_the_rest_of_a_strong_prefix() {
        let part = headers(&[("content-range", "bytes 0-99/1000"), ("etag", "\"v1\"")]);
        let get = Method::GET;
        let partial = StatusCode::PARTIAL_CONTENT;
        let (range, tag) = rest_request(&get, &HeaderMap::new(), partial, &part).unwrap();
        assert_eq!(range, "bytes=100-");
        assert_eq!(tag, "\"v1\"");
        // Not a part, not a prefix, or a weak tag: nothing to complete.
        assert!(rest_request(&get, &HeaderMap::new(), StatusCode::OK, &part).is_none());
        let middle = headers(&[("content-range", "bytes 10-99/1000"), ("etag", "\"v1\"")]);
        assert!(rest_request(&get, &HeaderMap::new(), partial, &middle).is_none());
        let weak = headers(&[("content-range", "bytes 0-99/1000"), ("etag", "W/\"v1\"")]);
        assert!(rest_request(&get, &HeaderMap::new(), partial, &weak).is_none());
        // Not a plain GET: HEAD, the client's own range, a precondition (RFC 9110 §13.1).
        assert!(rest_request(&Method::HEAD, &HeaderMap::new(), partial, &part).is_none());
        for (name, value) in [
            ("range", "bytes=0-9"),
            ("if-range", "\"v1\""),
            ("if-none-match", "\"v1\""),
            ("if-unmodified-since", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ] {
            let client = headers(&[(name, value)]);
            assert!(
                rest_request(&get, &client, partial, &part).is_none(),
                "{name}"
            );
        }
    }
}
