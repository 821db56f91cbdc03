//! Conditional requests (RFC 9110 §13) as a cache answers them from a stored response
//! (RFC 9111 §4.3.2), and the entity-tags they compare (RFC 9110 §8.8.3).
//!
//! Everything here works on raw field bytes and never panics: entity-tags may contain commas,
//! fields may be empty, repeated, non-UTF-8 or garbage.

use super::headers::{parse_http_date, skip_list_gap, skip_ows};
use http::header::{
    CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_UNMODIFIED_SINCE, LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use std::time::SystemTime;

/// One entity-tag (RFC 9110 §8.8.3), borrowed from the field value it was parsed from.
///
/// `entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE`. The opaque tag keeps its quotes, so
/// [`to_header_value`](Self::to_header_value) writes it back into a field unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntityTag<'a> {
    weak: bool,
    /// The opaque-tag, quotes included.
    opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    /// Parses exactly one entity-tag; surrounding OWS is ignored.
    ///
    /// Returns `None` for anything else: an unquoted value, a missing closing quote, a
    /// lowercase `w/` prefix, a second tag, or a byte outside `etagc` (RFC 9110 §8.8.3:
    /// `%x21 / %x23-7E / obs-text`).
    pub fn parse(value: &'a [u8]) -> Option<Self> {
        let (tag, rest) = parse_one(skip_ows(value))?;
        skip_ows(rest).is_empty().then_some(tag)
    }

    /// The weak indicator `W/` is present (RFC 9110 §8.8.3).
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The opaque-tag, quotes included (`"xyzzy"` for `W/"xyzzy"`).
    pub fn opaque(&self) -> &'a [u8] {
        self.opaque
    }

    /// The whole entity-tag as sent: `W/"xyzzy"` or `"xyzzy"`.
    pub fn to_header_value(&self) -> HeaderValue {
        let mut bytes = Vec::with_capacity(self.opaque.len() + 2);
        if self.weak {
            bytes.extend_from_slice(b"W/");
        }
        bytes.extend_from_slice(self.opaque);
        // `etagc` excludes controls, so the bytes are always a valid field value; the
        // fallback is unreachable but keeps this total.
        HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
    }
}

/// The parsed value of `If-Match` / `If-None-Match` (RFC 9110 §13.1.1, §13.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntityTagList<'a> {
    /// `*`: any current representation.
    Any,
    /// A list of entity-tags, in order; empty when the field is present but has no member
    /// (RFC 9110 §5.6.1 allows empty list elements).
    Tags(Vec<EntityTag<'a>>),
}

/// Parses an `If-Match` / `If-None-Match` field (all lines combined, RFC 9110 §5.3).
///
/// `*` must be the only member of the whole field; otherwise every member must be an
/// entity-tag. Returns `None` when the field is absent or invalid (an unquoted member, `*`
/// beside tags, junk between members). Entity-tags may contain commas, so the list is split
/// quote-aware.
pub fn parse_etag_list<'a>(
    values: impl IntoIterator<Item = &'a HeaderValue>,
) -> Option<EntityTagList<'a>> {
    let mut tags = Vec::new();
    let mut star = false;
    let mut any_line = false;
    for value in values {
        any_line = true;
        let mut rest = value.as_bytes();
        loop {
            rest = skip_list_gap(rest);
            if rest.is_empty() {
                break;
            }
            // RFC 9110 §13.1.1: If-Match = "*" / #entity-tag
            let after = if let Some(after) = rest.strip_prefix(b"*") {
                star = true;
                after
            } else {
                let (tag, after) = parse_one(rest)?;
                tags.push(tag);
                after
            };
            let after = skip_ows(after);
            if !(after.is_empty() || after[0] == b',') {
                return None;
            }
            rest = after;
        }
    }
    match (any_line, star, tags.is_empty()) {
        (false, _, _) => None,
        (true, true, true) => Some(EntityTagList::Any),
        (true, true, false) => None,
        (true, false, _) => Some(EntityTagList::Tags(tags)),
    }
}

/// The response's `ETag` (RFC 9110 §8.8.3): exactly one field line holding exactly one
/// entity-tag, or `None` (absent, repeated or invalid: not a usable validator).
pub(crate) fn etag(headers: &HeaderMap) -> Option<EntityTag<'_>> {
    let mut lines = headers.get_all(ETAG).iter();
    let first = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    EntityTag::parse(first.as_bytes())
}

/// The response's `Last-Modified` (RFC 9110 §8.8.2), if it is one valid HTTP-date.
pub(crate) fn last_modified(headers: &HeaderMap) -> Option<SystemTime> {
    single_date(headers, &LAST_MODIFIED)
}

/// Weak comparison (RFC 9110 §8.8.3.2): the opaque-tags are equal, weak or not.
pub fn weak_match(a: &EntityTag<'_>, b: &EntityTag<'_>) -> bool {
    a.opaque == b.opaque
}

/// Strong comparison (RFC 9110 §8.8.3.2): both are strong and their opaque-tags are equal.
pub fn strong_match(a: &EntityTag<'_>, b: &EntityTag<'_>) -> bool {
    !a.weak && !b.weak && a.opaque == b.opaque
}

/// What a cache does with a request's preconditions when it holds a fresh response for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Precondition {
    /// No precondition stops the request: serve the stored response as if the request were
    /// unconditional. Returned when the request has no precondition field, when every
    /// precondition the cache evaluates is true, and when preconditions are ignored
    /// (RFC 9110 §13.2.1: the stored response is not 2xx; invalid dates).
    None,
    /// Answer `304 Not Modified` with [`not_modified_headers`] (RFC 9110 §15.4.5).
    NotModified,
    /// Answer `412 Precondition Failed`. [`evaluate_preconditions`] never returns it (it
    /// forwards `If-Match` / `If-Unmodified-Since` instead, see there); it names the outcome
    /// for callers that evaluate those fields themselves.
    Failed,
    /// Do not answer from the cache: forward the request, preconditions intact, and let the
    /// origin decide.
    Forward,
}

/// RFC 9110 §13.2.2, as RFC 9111 §4.3.2 lets a cache apply it to a stored response.
///
/// `stored_status` / `stored_headers` are the stored response the cache would otherwise
/// serve (selected and fresh, or just validated). The first matching rule decides:
///
/// 1. no `If-Match`, `If-None-Match`, `If-Modified-Since` or `If-Unmodified-Since`:
///    [`Precondition::None`] (`If-Range` is [`evaluate_range`](super::range::evaluate_range)'s);
/// 2. a method other than GET / HEAD: [`Precondition::Forward`];
/// 3. a stored status outside 2xx: [`Precondition::None`] (RFC 9110 §13.2.1: preconditions
///    are ignored when the response would not be 2xx or 412);
/// 4. `If-Match`, or a valid `If-Unmodified-Since`: [`Precondition::Forward`]. RFC 9111
///    §4.3.2: "the If-Match and If-Unmodified-Since conditional header fields are not
///    applicable to a cache"; they guard state on the origin, so the origin decides;
/// 5. `If-None-Match` (weak comparison with the stored `ETag`): `*` or a matching tag gives
///    [`Precondition::NotModified`], no match [`Precondition::None`], an unparseable field
///    [`Precondition::Forward`];
/// 6. `If-Modified-Since` (only without `If-None-Match`; one valid HTTP-date): compared with
///    the stored `Last-Modified`, or the stored `Date` without one (RFC 9111 §4.3.2); not
///    later than the field's date gives [`Precondition::NotModified`]. An invalid or repeated
///    field, or a stored response with neither date, is ignored: [`Precondition::None`].
pub fn evaluate_preconditions(
    method: &Method,
    req_headers: &HeaderMap,
    stored_status: StatusCode,
    stored_headers: &HeaderMap,
) -> Precondition {
    let found = Conditions::of(req_headers);
    if !found.any() {
        return Precondition::None;
    }

    // RFC 9111 §4.3.2: a cache does not evaluate preconditions of a request whose semantics
    // a stored response cannot satisfy; only GET and HEAD are answered from the cache.
    if method != Method::GET && method != Method::HEAD {
        return Precondition::Forward;
    }

    // RFC 9110 §13.2.1: "A server MUST ignore all received preconditions if its response to
    // the same request without those conditions ... would have been a status code other than
    // a 2xx (Successful) or 412 (Precondition Failed)."
    if !stored_status.is_success() {
        return Precondition::None;
    }

    // RFC 9111 §4.3.2: If-Match and If-Unmodified-Since are not applicable to a cache.
    // RFC 9110 §13.1.4: an If-Unmodified-Since that is not a valid HTTP-date is ignored.
    if found.if_match || single_date(req_headers, &IF_UNMODIFIED_SINCE).is_some() {
        return Precondition::Forward;
    }

    // RFC 9110 §13.2.2 step 3, §13.1.2: If-None-Match, weak comparison.
    if found.if_none_match {
        return match parse_etag_list(req_headers.get_all(IF_NONE_MATCH)) {
            // RFC 9110 §13.1.2: "*" is false when a current representation exists; the
            // stored 2xx is one. For GET / HEAD a false condition means 304.
            Some(EntityTagList::Any) => Precondition::NotModified,
            Some(EntityTagList::Tags(tags)) => match etag(stored_headers) {
                Some(stored) if tags.iter().any(|tag| weak_match(tag, &stored)) => {
                    Precondition::NotModified
                }
                _ => Precondition::None,
            },
            None => Precondition::Forward,
        };
    }

    // RFC 9110 §13.2.2 step 4, §13.1.3: If-Modified-Since, only without If-None-Match, only
    // for GET / HEAD; ignored when invalid or with more than one member.
    let Some(since) = single_date(req_headers, &IF_MODIFIED_SINCE) else {
        return Precondition::None;
    };
    // RFC 9111 §4.3.2: without Last-Modified, use the stored response's Date.
    let Some(modified) =
        last_modified(stored_headers).or_else(|| single_date(stored_headers, &DATE))
    else {
        return Precondition::None;
    };
    // RFC 9110 §13.1.3: "if the selected representation's last modification date is earlier
    // or equal to the date provided in the field value, the condition is false" (304).
    if modified <= since {
        Precondition::NotModified
    } else {
        Precondition::None
    }
}

/// The fields of a `304 Not Modified` generated from a stored response (RFC 9110 §15.4.5).
///
/// Copies every line of `Cache-Control`, `Content-Location`, `Date`, `ETag`, `Expires` and
/// `Vary`, plus `Last-Modified` (which §15.4.5 allows "for the purpose of guiding cache
/// updates"). The caller adds `Age` and its own status fields.
pub fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    // RFC 9110 §15.4.5: "Content-Location, Date, ETag, and Vary; Cache-Control and Expires"
    for name in [
        CACHE_CONTROL,
        CONTENT_LOCATION,
        DATE,
        ETAG,
        EXPIRES,
        VARY,
        LAST_MODIFIED,
    ] {
        for value in stored.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Parses one entity-tag at the start of `input`; returns it and the input after it.
fn parse_one(input: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    // RFC 9110 §8.8.3: weak = %s"W/" (case-sensitive)
    let (weak, quoted) = match input.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let inner = quoted.strip_prefix(b"\"")?;
    // RFC 9110 §8.8.3: etagc = %x21 / %x23-7E / obs-text; no escapes.
    let end = inner.iter().position(|&b| b == b'"')?;
    if !inner[..end].iter().all(|&b| b == 0x21 || b >= 0x23) || inner[..end].contains(&0x7F) {
        return None;
    }
    let opaque = &quoted[..end + 2];
    Some((EntityTag { weak, opaque }, &inner[end + 1..]))
}

/// One field line holding one valid HTTP-date; `None` when absent, repeated or invalid.
pub(crate) fn single_date(headers: &HeaderMap, name: &http::HeaderName) -> Option<SystemTime> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    parse_http_date(first)
}

/// Does the request carry a precondition (RFC 9110 §13.1): `If-Match`, `If-None-Match`,
/// `If-Modified-Since` or `If-Unmodified-Since`? (`If-Range` modifies a range request and is
/// not counted.)
pub(crate) fn has_preconditions(req_headers: &HeaderMap) -> bool {
    Conditions::of(req_headers).any()
}

/// Which precondition fields a request has.
#[derive(Default)]
struct Conditions {
    if_match: bool,
    if_none_match: bool,
    if_modified_since: bool,
    if_unmodified_since: bool,
}

impl Conditions {
    /// Found in one pass over the request's field names (most requests have a few fields
    /// and none of these: cheaper than four lookups, each hashing its name).
    fn of(req_headers: &HeaderMap) -> Self {
        let mut found = Self::default();
        for name in req_headers.keys() {
            if name == IF_MATCH {
                found.if_match = true;
            } else if name == IF_NONE_MATCH {
                found.if_none_match = true;
            } else if name == IF_MODIFIED_SINCE {
                found.if_modified_since = true;
            } else if name == IF_UNMODIFIED_SINCE {
                found.if_unmodified_since = true;
            }
        }
        found
    }

    fn any(&self) -> bool {
        self.if_match || self.if_none_match || self.if_modified_since || self.if_unmodified_since
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_util::headers;

    use std::time::{Duration, UNIX_EPOCH};

    const T0: u64 = 1_431_696_861;

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn tag(s: &str) -> EntityTag<'_> {
        EntityTag::parse(s.as_bytes()).unwrap()
    }

    fn eval(
        method: Method,
        req: &[(&str, &str)],
        status: u16,
        stored: &[(&str, &str)],
    ) -> Precondition {
        evaluate_preconditions(
            &method,
            &headers(req),
            StatusCode::from_u16(status).unwrap(),
            &headers(stored),
        )
    }

    fn get(req: &[(&str, &str)], stored: &[(&str, &str)]) -> Precondition {
        eval(Method::GET, req, 200, stored)
    }

    // RFC 9110 §8.8.3: strong and weak entity-tags, quotes kept
    #[test]
    fn entity_tag_parses_strong_and_weak() {
        let strong = tag("\"xyzzy\"");
        assert!(!strong.is_weak());
        assert_eq!(strong.opaque(), b"\"xyzzy\"");
        let weak = tag(" W/\"xyzzy\"\t");
        assert!(weak.is_weak());
        assert_eq!(weak.opaque(), b"\"xyzzy\"");
        assert_eq!(weak.to_header_value(), "W/\"xyzzy\"");
        assert_eq!(tag("\"\"").opaque(), b"\"\"");
        assert_eq!(tag("\"a,b\"").opaque(), b"\"a,b\"");
    }

    // RFC 9110 §8.8.3: anything but one quoted entity-tag is invalid
    #[test]
    fn entity_tag_rejects_invalid() {
        for s in [
            &b""[..],
            b"xyzzy",
            b"\"open",
            b"w/\"lower\"",
            b"W/xyzzy",
            b"\"a\" \"b\"",
            b"\"a\"x",
            b"\"sp ace\"",
            b"\"ctl\x01\"",
            b"\"del\x7f\"",
            b"*",
        ] {
            assert_eq!(EntityTag::parse(s), None, "{s:?}");
        }
        // obs-text is allowed.
        assert!(EntityTag::parse(b"\"\xff\"").is_some());
    }

    // RFC 9110 §13.1.1, §13.1.2: lists, "*", quote-aware splitting, multiple lines
    #[test]
    fn etag_list_parsing() {
        let h = headers(&[
            ("if-none-match", "\"a\", W/\"b,c\" ,, "),
            ("if-none-match", "\"d\""),
        ]);
        let Some(EntityTagList::Tags(tags)) = parse_etag_list(h.get_all(IF_NONE_MATCH)) else {
            panic!("expected tags");
        };
        let opaques: Vec<&[u8]> = tags.iter().map(EntityTag::opaque).collect();
        assert_eq!(opaques, [&b"\"a\""[..], b"\"b,c\"", b"\"d\""]);
        assert!(tags[1].is_weak());

        let h = headers(&[("if-none-match", " * ")]);
        assert_eq!(
            parse_etag_list(h.get_all(IF_NONE_MATCH)),
            Some(EntityTagList::Any)
        );
        let h = headers(&[("if-none-match", "")]);
        assert_eq!(
            parse_etag_list(h.get_all(IF_NONE_MATCH)),
            Some(EntityTagList::Tags(Vec::new()))
        );
        assert_eq!(
            parse_etag_list(HeaderMap::new().get_all(IF_NONE_MATCH)),
            None
        );
    }

    // RFC 9110 §13.1.1: "*" mixed with tags, unquoted members and junk are invalid
    #[test]
    fn etag_list_invalid_is_none() {
        for v in [
            "*, \"a\"",
            "\"a\", *",
            "a",
            "\"a\" junk",
            "\"a\"\"b\"",
            "W/",
            "\"unterminated",
        ] {
            let h = headers(&[("if-match", v)]);
            assert_eq!(parse_etag_list(h.get_all(IF_MATCH)), None, "{v:?}");
        }
    }

    // RFC 9110 §8.8.3: ETag is a single entity-tag on a single line
    #[test]
    fn response_etag_must_be_single() {
        assert_eq!(etag(&headers(&[("etag", "\"a\"")])), Some(tag("\"a\"")));
        assert_eq!(
            etag(&headers(&[("etag", "\"a\""), ("etag", "\"b\"")])),
            None
        );
        assert_eq!(etag(&headers(&[("etag", "\"a\", \"b\"")])), None);
        assert_eq!(etag(&headers(&[("etag", "unquoted")])), None);
        assert_eq!(etag(&HeaderMap::new()), None);
    }

    // RFC 9110 §8.8.3.2: the comparison table
    #[test]
    fn weak_and_strong_comparison_table() {
        let cases = [
            ("W/\"1\"", "W/\"1\"", false, true),
            ("W/\"1\"", "W/\"2\"", false, false),
            ("W/\"1\"", "\"1\"", false, true),
            ("\"1\"", "\"1\"", true, true),
        ];
        for (a, b, strong, weak) in cases {
            assert_eq!(strong_match(&tag(a), &tag(b)), strong, "{a} {b}");
            assert_eq!(weak_match(&tag(a), &tag(b)), weak, "{a} {b}");
        }
    }

    // RFC 9110 §13.2.2: no precondition field
    #[test]
    fn no_precondition_is_none() {
        assert_eq!(
            get(&[("range", "bytes=0-1")], &[("etag", "\"a\"")]),
            Precondition::None
        );
    }

    // RFC 9110 §13.1.2: If-None-Match with a weakly matching tag gives 304 for GET and HEAD
    #[test]
    fn if_none_match_weak_match_is_not_modified() {
        let stored = [("etag", "W/\"v1\"")];
        assert_eq!(
            get(&[("if-none-match", "\"x\", \"v1\"")], &stored),
            Precondition::NotModified
        );
        assert_eq!(
            eval(Method::HEAD, &[("if-none-match", "W/\"v1\"")], 200, &stored),
            Precondition::NotModified
        );
    }

    // RFC 9110 §13.1.2: no match means the condition is true: serve the stored response
    #[test]
    fn if_none_match_no_match_is_none() {
        assert_eq!(
            get(&[("if-none-match", "\"v2\"")], &[("etag", "\"v1\"")]),
            Precondition::None
        );
        assert_eq!(get(&[("if-none-match", "\"v2\"")], &[]), Precondition::None);
    }

    // RFC 9110 §13.1.2: "*" matches any current representation
    #[test]
    fn if_none_match_star_is_not_modified() {
        assert_eq!(
            get(&[("if-none-match", "*")], &[]),
            Precondition::NotModified
        );
    }

    // Invalid If-None-Match: the cache does not guess, the origin decides
    #[test]
    fn if_none_match_invalid_is_forwarded() {
        assert_eq!(
            get(&[("if-none-match", "v1")], &[("etag", "\"v1\"")]),
            Precondition::Forward
        );
    }

    // RFC 9111 §4.3.2: If-Match is not applicable to a cache
    #[test]
    fn if_match_is_forwarded() {
        let stored = [("etag", "\"v1\"")];
        assert_eq!(
            get(&[("if-match", "\"v1\"")], &stored),
            Precondition::Forward
        );
        assert_eq!(
            get(&[("if-match", "\"v2\"")], &stored),
            Precondition::Forward
        );
        assert_eq!(
            get(
                &[("if-match", "\"v2\""), ("if-none-match", "\"v1\"")],
                &stored
            ),
            Precondition::Forward
        );
    }

    // RFC 9111 §4.3.2, RFC 9110 §13.1.4: If-Unmodified-Since is forwarded, ignored if invalid
    #[test]
    fn if_unmodified_since_is_forwarded_unless_invalid() {
        let lm = date(T0);
        let stored = [("last-modified", lm.as_str())];
        assert_eq!(
            get(&[("if-unmodified-since", &date(T0))], &stored),
            Precondition::Forward
        );
        assert_eq!(
            get(&[("if-unmodified-since", "garbage")], &stored),
            Precondition::None
        );
    }

    // RFC 9110 §13.1.3: Last-Modified not later than If-Modified-Since gives 304
    #[test]
    fn if_modified_since_not_modified() {
        let stored_lm = date(T0);
        let stored = [("last-modified", stored_lm.as_str())];
        assert_eq!(
            get(&[("if-modified-since", &date(T0))], &stored),
            Precondition::NotModified
        );
        assert_eq!(
            get(&[("if-modified-since", &date(T0 + 5))], &stored),
            Precondition::NotModified
        );
        assert_eq!(
            get(&[("if-modified-since", &date(T0 - 1))], &stored),
            Precondition::None
        );
    }

    // RFC 9111 §4.3.2: without Last-Modified the stored Date is used
    #[test]
    fn if_modified_since_uses_date_without_last_modified() {
        let d = date(T0);
        let stored = [("date", d.as_str())];
        assert_eq!(
            get(&[("if-modified-since", &date(T0))], &stored),
            Precondition::NotModified
        );
        assert_eq!(
            get(&[("if-modified-since", &date(T0 - 10))], &stored),
            Precondition::None
        );
        assert_eq!(
            get(&[("if-modified-since", &date(T0))], &[]),
            Precondition::None
        );
    }

    // RFC 9110 §13.1.3: invalid or repeated If-Modified-Since is ignored
    #[test]
    fn if_modified_since_invalid_is_ignored() {
        let lm = date(T0);
        let stored = [("last-modified", lm.as_str())];
        assert_eq!(
            get(&[("if-modified-since", "0")], &stored),
            Precondition::None
        );
        let later = date(T0 + 5);
        assert_eq!(
            get(
                &[("if-modified-since", &later), ("if-modified-since", &later)],
                &stored
            ),
            Precondition::None
        );
    }

    // RFC 9110 §13.2.2, §13.1.3: If-None-Match takes precedence over If-Modified-Since
    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let lm = date(T0);
        let stored = [("etag", "\"v1\""), ("last-modified", lm.as_str())];
        let later = date(T0 + 5);
        assert_eq!(
            get(
                &[("if-none-match", "\"v2\""), ("if-modified-since", &later)],
                &stored
            ),
            Precondition::None
        );
    }

    // RFC 9110 §13.2.1: preconditions are ignored for a non-2xx stored response
    #[test]
    fn non_2xx_stored_response_ignores_preconditions() {
        assert_eq!(
            eval(Method::GET, &[("if-none-match", "*")], 404, &[]),
            Precondition::None
        );
        assert_eq!(
            eval(Method::GET, &[("if-match", "\"x\"")], 301, &[]),
            Precondition::None
        );
        assert_eq!(
            eval(Method::GET, &[("if-none-match", "*")], 204, &[]),
            Precondition::NotModified
        );
    }

    // RFC 9111 §4.3.2: only GET / HEAD are answered from a stored response
    #[test]
    fn other_methods_are_forwarded() {
        assert_eq!(
            eval(Method::POST, &[("if-none-match", "*")], 200, &[]),
            Precondition::Forward
        );
        assert_eq!(eval(Method::POST, &[], 200, &[]), Precondition::None);
    }

    // RFC 9110 §15.4.5: the fields a 304 carries
    #[test]
    fn not_modified_headers_selects_fields() {
        let stored = headers(&[
            ("cache-control", "max-age=60"),
            ("cache-control", "public"),
            ("content-location", "/a"),
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("etag", "\"v1\""),
            ("expires", "0"),
            ("vary", "accept"),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("content-type", "text/plain"),
            ("content-length", "5"),
            ("x-custom", "1"),
        ]);
        let out = not_modified_headers(&stored);
        assert_eq!(out.len(), 8);
        assert_eq!(out.get_all(CACHE_CONTROL).iter().count(), 2);
        assert!(!out.contains_key("content-type"));
        assert!(!out.contains_key("content-length"));
        assert!(!out.contains_key("x-custom"));
    }

    // Robustness: garbage never panics
    #[test]
    fn garbage_preconditions_do_not_panic() {
        let mut req = HeaderMap::new();
        for v in [
            &b"\xff\xfe"[..],
            b"\"",
            b"W/\"",
            b",,,",
            b"\"\xff\"",
            b"*,*",
        ] {
            req.insert(IF_NONE_MATCH, HeaderValue::from_bytes(v).unwrap());
            req.insert(IF_MODIFIED_SINCE, HeaderValue::from_bytes(v).unwrap());
            let _ = evaluate_preconditions(&Method::GET, &req, StatusCode::OK, &req);
        }
    }

    // RFC 9110 §13.1: the four precondition fields, and only they.
    #[test]
    fn preconditions_are_the_four_if_fields() {
        assert!(!has_preconditions(&HeaderMap::new()));
        for name in [
            "if-match",
            "if-none-match",
            "if-modified-since",
            "if-unmodified-since",
        ] {
            assert!(has_preconditions(&headers(&[(name, "*")])), "{name}");
        }
        let range = headers(&[("range", "bytes=0-1"), ("if-range", "\"a\"")]);
        assert!(!has_preconditions(&range));
    }
}
