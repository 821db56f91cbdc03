//! Validation (RFC 9111 §4.3): the conditional request a cache sends, which stored response a
//! `304 Not Modified` or a HEAD response refers to, and how it updates the stored header
//! fields (RFC 9111 §3.2).

use super::CacheControl;
use super::conditional::{
    EntityTag, EntityTagList, etag, last_modified, parse_etag_list, strong_match, weak_match,
};
use super::headers::{remove_hop_by_hop, trim_ows};
use super::storable::fields_not_to_store;
use http::header::{
    AGE, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Adds the stored response's validators to an outgoing request (RFC 9111 §4.3.1).
///
/// - `ETag`: sent in `If-None-Match` (a MUST). Without a client `If-None-Match` the stored
///   tag is the field. With one, the stored tag is merged into it, as RFC 9111 §4.3.2 allows:
///   the client's lines become one line listing the client's tags and then the stored tag
///   (unless a client tag already matches it weakly). A client `*` or an unparseable client
///   field is left untouched and nothing is added to it.
/// - `Last-Modified`: sent as `If-Modified-Since` (a SHOULD) in IMF-fixdate form, unless the
///   request is for a subrange (`Range` present) or already has `If-Modified-Since` (the
///   client's date is kept). It is sent alongside `If-None-Match`, as §4.3.1 recommends, for
///   intermediaries that do not understand entity-tags.
///
/// An `ETag` that is not one valid entity-tag and a `Last-Modified` that is not one valid
/// HTTP-date are not validators and are not sent.
///
/// Returns whether, afterwards, the request carries at least one of the stored response's
/// validators: one this call added, or the same one already sent by the client (a client
/// tag that weakly matches the stored `ETag`, a client `If-Modified-Since` equal to the
/// stored `Last-Modified`). When it is `false`, a `304` cannot be expected to validate the
/// stored response.
pub fn add_validators(stored: &HeaderMap, outgoing: &mut HeaderMap) -> bool {
    let mut carries = false;

    // RFC 9111 §4.3.1: "MUST send the relevant entity tags (using If-Match, If-None-Match, or
    // If-Range) if the entity tags were provided in the stored response(s) being validated."
    if let Some(stored_tag) = etag(stored) {
        let merged = match parse_etag_list(outgoing.get_all(IF_NONE_MATCH)) {
            None if !outgoing.contains_key(IF_NONE_MATCH) => Some(stored_tag.to_header_value()),
            // RFC 9111 §4.3.2: "the cache MAY combine the received list with a list of entity
            // tags from its own stored set of responses".
            Some(EntityTagList::Tags(tags)) => {
                if tags.iter().any(|tag| weak_match(tag, &stored_tag)) {
                    carries = true;
                    None
                } else {
                    merged_if_none_match(outgoing, &stored_tag)
                }
            }
            // `*` already covers every representation; an invalid field is the client's.
            Some(EntityTagList::Any) | None => None,
        };
        if let Some(value) = merged {
            outgoing.insert(IF_NONE_MATCH, value);
            carries = true;
        }
    }

    // RFC 9111 §4.3.1: "SHOULD send the Last-Modified value (using If-Modified-Since) if the
    // request is not for a subrange, a single stored response is being validated, and that
    // response contains a Last-Modified value."
    if let Some(modified) = last_modified(stored) {
        match outgoing.get(IF_MODIFIED_SINCE) {
            None if !outgoing.contains_key(RANGE) => {
                let value = HeaderValue::from_str(&httpdate::fmt_http_date(modified));
                if let Ok(value) = value {
                    outgoing.insert(IF_MODIFIED_SINCE, value);
                    carries = true;
                }
            }
            None => {}
            Some(client) => {
                carries |= super::headers::parse_http_date(client) == Some(modified);
            }
        }
    }
    carries
}

/// The client's `If-None-Match` lines joined into one, with `stored` appended.
fn merged_if_none_match(outgoing: &HeaderMap, stored: &EntityTag<'_>) -> Option<HeaderValue> {
    let mut bytes = Vec::new();
    for value in outgoing.get_all(IF_NONE_MATCH) {
        let member = trim_ows(value.as_bytes());
        if member.is_empty() {
            continue;
        }
        bytes.extend_from_slice(member);
        bytes.extend_from_slice(b", ");
    }
    bytes.extend_from_slice(stored.to_header_value().as_bytes());
    HeaderValue::from_bytes(&bytes).ok()
}

/// Does a `304 Not Modified` select this stored response for update? (RFC 9111 §4.3.4)
///
/// The first rule that applies decides:
///
/// 1. the 304 has a strong `ETag`: the stored response must have the same strong `ETag`
///    (strong comparison). If it does not, it MUST NOT be updated, even when `Last-Modified`
///    agrees;
/// 2. the 304 has other validators (a weak `ETag`, a `Last-Modified`): each one it has must
///    be present in the stored response and agree (weak comparison for the `ETag`, the same
///    instant for `Last-Modified`). `Last-Modified` is treated like a weak validator here: it
///    only selects when nothing it carries contradicts the stored response;
/// 3. the 304 has no validator at all: only a stored response that also lacks both `ETag`
///    and `Last-Modified` is selected (RFC 9111 §4.3.4, third bullet: with a single stored
///    response, which is the case for one cache key and one `Vary` variant).
///
/// An `ETag` or `Last-Modified` that does not parse is not a validator.
pub fn not_modified_matches(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    let (new_tag, new_modified) = (etag(not_modified), last_modified(not_modified));
    let (stored_tag, stored_modified) = (etag(stored), last_modified(stored));

    // RFC 9111 §4.3.4: "If the new response contains one or more strong validators ... If none
    // of the initial set contains at least one of the same strong validators, then the cache
    // MUST NOT use the new response to update any stored responses."
    if let Some(new_tag) = new_tag.filter(|tag| !tag.is_weak()) {
        return stored_tag.is_some_and(|stored_tag| strong_match(&stored_tag, &new_tag));
    }

    // RFC 9111 §4.3.4: "If the new response contains no strong validators but does contain
    // one or more weak validators, and those validators correspond to one of the initial
    // set's stored responses, then the most recent of those matching stored responses is
    // identified for update."
    if new_tag.is_some() || new_modified.is_some() {
        let tag_ok = new_tag.is_none_or(|new_tag| {
            stored_tag.is_some_and(|stored_tag| weak_match(&stored_tag, &new_tag))
        });
        let modified_ok = new_modified.is_none_or(|new| stored_modified == Some(new));
        return tag_ok && modified_ok;
    }

    // RFC 9111 §4.3.4: "If the new response does not include any form of validator ..., and
    // there is only one stored response in the initial set, and that stored response also
    // lacks a validator, then that stored response is identified for update."
    stored_tag.is_none() && stored_modified.is_none()
}

/// The stored header fields updated from a 304 (RFC 9111 §4.3.4) or HEAD (§4.3.5) response,
/// per RFC 9111 §3.2.
///
/// Starts from `stored`; for every field name in `update`, all stored lines of that name are
/// replaced by all of the update's lines, except for:
///
/// - fields excepted from storage (§3.1): hop-by-hop fields (`Connection`, the fields it
///   names, `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`, …), `Proxy-Authenticate`,
///   `Proxy-Authentication-Info`, `Proxy-Authorization`, and the field names of a qualified
///   `private="…"` / `no-cache="…"` in the update's `Cache-Control`
///   (`fields_not_to_store`);
/// - `Content-Length` (a MUST in §3.2: it describes the stored content, not the update's);
/// - `Content-Range`, which §3.2 lets a cache omit as "automatically processed";
/// - the fields that describe the stored bytes themselves, which the 304 did not send:
///   `ETag`, `Content-Encoding` and `Content-MD5` ("header fields that the cache's stored
///   response depends upon", §3.2). Replacing them would label the stored body with another
///   representation's metadata.
///
/// `Content-Type` and the rest are updated.
///
/// `Age` is the one deviation: a stored `Age` describes the old message, so it is removed
/// when `update` has none (otherwise the updated response would be aged twice by RFC 9111
/// §4.2.3 once its age is recomputed from the new response time). Callers should add a `Date`
/// to a `update` lacking one (RFC 9110 §6.6.1) before calling this.
pub fn freshen_headers(stored: &HeaderMap, update: &HeaderMap) -> HeaderMap {
    let mut out = stored.clone();
    let mut update = update.clone();
    // RFC 9111 §3.1: the Connection header field and fields listed in it, and other
    // hop-by-hop fields (RFC 9110 §7.6.1), are not stored.
    remove_hop_by_hop(&mut update);
    // RFC 9111 §3.1: Proxy-Authenticate, Proxy-Authentication-Info, Proxy-Authorization.
    update.remove(HeaderName::from_static("proxy-authentication-info"));
    // RFC 9111 §3.1, §5.2.2.4, §5.2.2.7: qualified no-cache / private fields are not stored.
    for name in fields_not_to_store(&CacheControl::from_headers(&update)) {
        update.remove(name);
    }
    // RFC 9111 §3.2: "The Content-Length header field" is not updated; Content-Range MAY be
    // omitted as a field that is "automatically processed and removed".
    update.remove(CONTENT_LENGTH);
    update.remove(CONTENT_RANGE);
    // RFC 9111 §3.2: fields the stored content depends on keep describing it.
    update.remove(ETAG);
    update.remove(CONTENT_ENCODING);
    update.remove(HeaderName::from_static("content-md5"));

    // RFC 9111 §4.2.3: age_value belongs to the response it arrived with.
    if !update.contains_key(AGE) {
        out.remove(AGE);
    }

    // RFC 9111 §3.2: "add each header field in the provided response to the stored response,
    // replacing field values that are already present".
    let names: Vec<HeaderName> = update.keys().cloned().collect();
    for name in names {
        out.remove(&name);
        for value in update.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// May a 200 response to a HEAD request update this stored GET response? (RFC 9111 §4.3.5)
///
/// True when every validator field the HEAD response carries (`ETag`, `Last-Modified`) has a
/// matching value in the stored response, and, if the HEAD response has `Content-Length`,
/// the stored response has the same `Content-Length`. Values are compared as parsed
/// entity-tags (weakness included), HTTP-dates and integers, falling back to the trimmed
/// bytes of all lines when they do not parse. A stored response without `Content-Length`
/// does not match a HEAD response with one: callers that store complete bodies should record
/// their length in `Content-Length`.
///
/// `false` means RFC 9111 §4.3.5's "otherwise, the cache SHOULD consider the stored response
/// to be stale": mark it stale or remove it. The caller checks that the HEAD status is 200,
/// then updates with [`freshen_headers`].
pub fn head_freshens(stored: &HeaderMap, head: &HeaderMap) -> bool {
    // RFC 9111 §4.3.5: "if the stored response and HEAD response have matching values for any
    // received validator fields (ETag and Last-Modified) and, if the HEAD response has a
    // Content-Length header field, the value of Content-Length matches that of the stored
    // response".
    let etag_ok = !head.contains_key(ETAG)
        || match (etag(stored), etag(head)) {
            (Some(a), Some(b)) => a == b,
            _ => same_raw(stored, head, &ETAG),
        };
    let modified_ok = !head.contains_key(LAST_MODIFIED)
        || match (last_modified(stored), last_modified(head)) {
            (Some(a), Some(b)) => a == b,
            _ => same_raw(stored, head, &LAST_MODIFIED),
        };
    let length_ok = !head.contains_key(CONTENT_LENGTH)
        || match (content_length(stored), content_length(head)) {
            (Some(a), Some(b)) => a == b,
            _ => same_raw(stored, head, &CONTENT_LENGTH),
        };
    etag_ok && modified_ok && length_ok
}

/// RFC 9110 §8.6: Content-Length = 1*DIGIT, one line.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut lines = headers.get_all(CONTENT_LENGTH).iter();
    let (Some(value), None) = (lines.next(), lines.next()) else {
        return None;
    };
    let bytes = trim_ows(value.as_bytes());
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Both maps have the field, with the same trimmed lines in the same order.
fn same_raw(a: &HeaderMap, b: &HeaderMap, name: &HeaderName) -> bool {
    let lines = |h: &HeaderMap| -> Vec<Vec<u8>> {
        h.get_all(name)
            .iter()
            .map(|v| trim_ows(v.as_bytes()).to_vec())
            .collect()
    };
    let (la, lb) = (lines(a), lines(b));
    !la.is_empty() && la == lb
}

/// Does a 304 to a validation of `stored` select it? RFC 9111 §4.3.4
/// ([`not_modified_matches`]), and one case it leaves open: when every validator in the
/// request came from `stored` alone (`only_one`, and the client sent none of its own: no
/// `If-None-Match`, no `If-Modified-Since` in `client_headers`), the 304 can only answer for
/// `stored`, whatever validators it carries (origins such as Python's `http.server` send
/// none). The client, whose request was not conditional, must then get the stored response,
/// never the 304.
pub(crate) fn not_modified_selects(
    stored: &HeaderMap,
    client_headers: &HeaderMap,
    not_modified: &HeaderMap,
    only_one: bool,
) -> bool {
    if not_modified_matches(stored, not_modified) {
        return true;
    }
    if !only_one {
        return false;
    }
    let client_validated = client_headers.contains_key(IF_NONE_MATCH)
        || client_headers.contains_key(IF_MODIFIED_SINCE);
    !client_validated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_util::headers;
    use http::header::{CACHE_CONTROL, CONTENT_TYPE, DATE};
    use std::time::{Duration, UNIX_EPOCH};

    const T0: u64 = 1_431_696_861;

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn lines(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    // RFC 9111 §4.3.1: stored ETag goes into If-None-Match, Last-Modified into If-Modified-Since
    #[test]
    fn add_validators_sends_both() {
        let lm = date(T0);
        let stored = headers(&[("etag", "W/\"v1\""), ("last-modified", &lm)]);
        let mut out = HeaderMap::new();
        assert!(add_validators(&stored, &mut out));
        assert_eq!(lines(&out, "if-none-match"), ["W/\"v1\""]);
        assert_eq!(lines(&out, "if-modified-since"), [lm]);
    }

    // RFC 9111 §4.3.1: no validators, nothing sent
    #[test]
    fn add_validators_without_validators() {
        let stored = headers(&[("etag", "unquoted"), ("last-modified", "yesterday")]);
        let mut out = HeaderMap::new();
        assert!(!add_validators(&stored, &mut out));
        assert!(out.is_empty());
    }

    // RFC 9111 §4.3.2: the client's If-None-Match list is merged with the stored tag
    #[test]
    fn add_validators_merges_client_if_none_match() {
        let stored = headers(&[("etag", "\"v1\"")]);
        let mut out = headers(&[
            ("if-none-match", "\"a\", \"b,c\""),
            ("if-none-match", "W/\"d\""),
        ]);
        assert!(add_validators(&stored, &mut out));
        assert_eq!(
            lines(&out, "if-none-match"),
            ["\"a\", \"b,c\", W/\"d\", \"v1\""]
        );
    }

    // RFC 9111 §4.3.2: a client tag already matching the stored one is not duplicated
    #[test]
    fn add_validators_keeps_client_tag_already_present() {
        let stored = headers(&[("etag", "\"v1\"")]);
        let mut out = headers(&[("if-none-match", "W/\"v1\"")]);
        assert!(add_validators(&stored, &mut out));
        assert_eq!(lines(&out, "if-none-match"), ["W/\"v1\""]);
    }

    // RFC 9110 §13.1.2: a client "*" (or garbage) is left as it is
    #[test]
    fn add_validators_leaves_star_and_invalid_client_field() {
        let stored = headers(&[("etag", "\"v1\"")]);
        for v in ["*", "garbage"] {
            let mut out = headers(&[("if-none-match", v)]);
            assert!(!add_validators(&stored, &mut out), "{v}");
            assert_eq!(lines(&out, "if-none-match"), [v]);
        }
    }

    // RFC 9111 §4.3.1: If-Modified-Since only when not a subrange request; client's is kept
    #[test]
    fn add_validators_if_modified_since_rules() {
        let lm = date(T0);
        let stored = headers(&[("last-modified", &lm)]);
        let mut ranged = headers(&[("range", "bytes=0-1")]);
        assert!(!add_validators(&stored, &mut ranged));
        assert!(!ranged.contains_key(IF_MODIFIED_SINCE));

        let other = date(T0 - 100);
        let mut client = headers(&[("if-modified-since", &other)]);
        assert!(!add_validators(&stored, &mut client));
        assert_eq!(lines(&client, "if-modified-since"), [other]);

        let mut same = headers(&[("if-modified-since", &lm)]);
        assert!(add_validators(&stored, &mut same));
    }

    // RFC 9111 §4.3.1: obsolete date formats are re-sent as IMF-fixdate
    #[test]
    fn add_validators_normalizes_date() {
        let stored = headers(&[("last-modified", "Sunday, 06-Nov-94 08:49:37 GMT")]);
        let mut out = HeaderMap::new();
        assert!(add_validators(&stored, &mut out));
        assert_eq!(
            lines(&out, "if-modified-since"),
            ["Sun, 06 Nov 1994 08:49:37 GMT"]
        );
    }

    // RFC 9111 §4.3.4: a strong ETag in the 304 must equal the stored strong ETag
    #[test]
    fn not_modified_strong_etag_must_match() {
        let lm = date(T0);
        let stored = headers(&[("etag", "\"v1\""), ("last-modified", &lm)]);
        assert!(not_modified_matches(
            &stored,
            &headers(&[("etag", "\"v1\"")])
        ));
        assert!(!not_modified_matches(
            &stored,
            &headers(&[("etag", "\"v2\"")])
        ));
        // Last-Modified agreeing does not rescue a different strong ETag.
        assert!(!not_modified_matches(
            &stored,
            &headers(&[("etag", "\"v2\""), ("last-modified", &lm)])
        ));
        // A weak stored ETag is not the same strong validator.
        let weak_stored = headers(&[("etag", "W/\"v1\"")]);
        assert!(!not_modified_matches(
            &weak_stored,
            &headers(&[("etag", "\"v1\"")])
        ));
    }

    // RFC 9111 §4.3.4: weak validators must correspond
    #[test]
    fn not_modified_weak_etag_matches_weakly() {
        let stored = headers(&[("etag", "W/\"v1\"")]);
        assert!(not_modified_matches(
            &stored,
            &headers(&[("etag", "W/\"v1\"")])
        ));
        assert!(not_modified_matches(
            &headers(&[("etag", "\"v1\"")]),
            &headers(&[("etag", "W/\"v1\"")])
        ));
        assert!(!not_modified_matches(
            &stored,
            &headers(&[("etag", "W/\"v2\"")])
        ));
        assert!(!not_modified_matches(
            &HeaderMap::new(),
            &headers(&[("etag", "W/\"v1\"")])
        ));
    }

    // RFC 9111 §4.3.4: Last-Modified must equal the stored Last-Modified
    #[test]
    fn not_modified_last_modified_must_match() {
        let (lm, other) = (date(T0), date(T0 + 1));
        let stored = headers(&[("last-modified", &lm)]);
        assert!(not_modified_matches(
            &stored,
            &headers(&[("last-modified", &lm)])
        ));
        assert!(!not_modified_matches(
            &stored,
            &headers(&[("last-modified", &other)])
        ));
        assert!(!not_modified_matches(
            &HeaderMap::new(),
            &headers(&[("last-modified", &lm)])
        ));
        // Weak ETag and Last-Modified must both agree.
        let both = headers(&[("etag", "W/\"v1\""), ("last-modified", &lm)]);
        assert!(not_modified_matches(
            &both,
            &headers(&[("etag", "W/\"v1\""), ("last-modified", &lm)])
        ));
        assert!(!not_modified_matches(
            &both,
            &headers(&[("etag", "W/\"v1\""), ("last-modified", &other)])
        ));
    }

    // RFC 9111 §4.3.4: no validator in the 304 selects only a stored response without one
    #[test]
    fn not_modified_without_validators() {
        let bare_304 = headers(&[("cache-control", "max-age=60")]);
        assert!(not_modified_matches(
            &headers(&[("content-type", "text/plain")]),
            &bare_304
        ));
        assert!(!not_modified_matches(
            &headers(&[("etag", "\"v1\"")]),
            &bare_304
        ));
        let lm = date(T0);
        assert!(!not_modified_matches(
            &headers(&[("last-modified", &lm)]),
            &bare_304
        ));
    }

    // RFC 9111 §3.2: update fields replace stored ones, all lines, others kept
    #[test]
    fn freshen_replaces_fields() {
        let stored = headers(&[
            ("cache-control", "max-age=10"),
            ("cache-control", "public"),
            ("content-type", "text/plain"),
            ("x-kept", "1"),
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        let update = headers(&[
            ("cache-control", "max-age=600"),
            ("date", "Mon, 07 Nov 1994 08:49:37 GMT"),
            ("x-new", "a"),
            ("x-new", "b"),
        ]);
        let out = freshen_headers(&stored, &update);
        assert_eq!(lines(&out, "cache-control"), ["max-age=600"]);
        assert_eq!(lines(&out, "date"), ["Mon, 07 Nov 1994 08:49:37 GMT"]);
        assert_eq!(lines(&out, "x-new"), ["a", "b"]);
        assert_eq!(lines(&out, "x-kept"), ["1"]);
        assert_eq!(out.get(CONTENT_TYPE).unwrap(), "text/plain");
    }

    // RFC 9111 §3.2: Content-Length and Content-Range are never taken from the update
    #[test]
    fn freshen_keeps_content_length() {
        let stored = headers(&[("content-length", "1000")]);
        let update = headers(&[("content-length", "0"), ("content-range", "bytes */5")]);
        let out = freshen_headers(&stored, &update);
        assert_eq!(lines(&out, "content-length"), ["1000"]);
        assert!(!out.contains_key(CONTENT_RANGE));
    }

    // RFC 9111 §3.2, §3.1: hop-by-hop and proxy fields of the update are not stored
    #[test]
    fn freshen_skips_hop_by_hop_and_proxy_fields() {
        let stored = headers(&[("x-a", "stored")]);
        let update = headers(&[
            ("connection", "x-a"),
            ("x-a", "new"),
            ("transfer-encoding", "chunked"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authentication-info", "x"),
        ]);
        let out = freshen_headers(&stored, &update);
        assert_eq!(lines(&out, "x-a"), ["stored"]);
        assert_eq!(out.len(), 1, "{out:?}");
    }

    // RFC 9111 §3.1, §5.2.2.7: qualified private / no-cache fields are not stored
    #[test]
    fn freshen_skips_qualified_private_fields() {
        let stored = HeaderMap::new();
        let update = headers(&[
            ("cache-control", "private=\"x-user\", no-cache=\"x-token\""),
            ("x-user", "alice"),
            ("x-token", "t"),
            ("x-ok", "1"),
        ]);
        let out = freshen_headers(&stored, &update);
        assert!(!out.contains_key("x-user"));
        assert!(!out.contains_key("x-token"));
        assert!(out.contains_key("x-ok"));
        assert!(out.contains_key(CACHE_CONTROL));
    }

    // RFC 9111 §4.2.3: a stored Age is dropped unless the update brings one
    #[test]
    fn freshen_age_belongs_to_update() {
        let stored = headers(&[("age", "100")]);
        assert!(!freshen_headers(&stored, &headers(&[("date", &date(T0))])).contains_key(AGE));
        assert_eq!(
            lines(&freshen_headers(&stored, &headers(&[("age", "5")])), "age"),
            ["5"]
        );
        assert!(freshen_headers(&stored, &headers(&[])).get(DATE).is_none());
    }

    // RFC 9111 §4.3.5: matching validators and length freshen
    #[test]
    fn head_with_matching_validators_freshens() {
        let lm = date(T0);
        let stored = headers(&[
            ("etag", "\"v1\""),
            ("last-modified", &lm),
            ("content-length", "10"),
        ]);
        let head = headers(&[
            ("etag", "\"v1\""),
            ("last-modified", &lm),
            ("content-length", "10"),
        ]);
        assert!(head_freshens(&stored, &head));
        // Fields the HEAD response does not have are not compared.
        assert!(head_freshens(&stored, &headers(&[("etag", "\"v1\"")])));
        assert!(head_freshens(&stored, &HeaderMap::new()));
    }

    // RFC 9111 §4.3.5: any disagreement makes the stored response stale
    #[test]
    fn head_with_different_validators_or_length_is_stale() {
        let lm = date(T0);
        let stored = headers(&[
            ("etag", "\"v1\""),
            ("last-modified", &lm),
            ("content-length", "10"),
        ]);
        assert!(!head_freshens(&stored, &headers(&[("etag", "\"v2\"")])));
        assert!(!head_freshens(&stored, &headers(&[("etag", "W/\"v1\"")])));
        assert!(!head_freshens(
            &stored,
            &headers(&[("last-modified", &date(T0 + 1))])
        ));
        assert!(!head_freshens(
            &stored,
            &headers(&[("content-length", "11")])
        ));
        // A validator or length the stored response lacks cannot match.
        assert!(!head_freshens(
            &HeaderMap::new(),
            &headers(&[("etag", "\"v1\"")])
        ));
        assert!(!head_freshens(
            &HeaderMap::new(),
            &headers(&[("content-length", "10")])
        ));
    }

    // RFC 9111 §4.3.5: unparseable values compare as bytes
    #[test]
    fn head_compares_unparseable_values_as_bytes() {
        let stored = headers(&[("etag", "v1"), ("content-length", "010")]);
        assert!(head_freshens(&stored, &headers(&[("etag", " v1")])));
        assert!(!head_freshens(&stored, &headers(&[("etag", "v2")])));
        assert!(head_freshens(
            &stored,
            &headers(&[("content-length", "10")])
        ));
    }

    // RFC 9111 §4.3.4: a 304 whose validators agree selects the stored response; one with
    // another strong tag does not (when other responses were validated too).
    #[test]
    fn not_modified_with_the_same_etag_selects() {
        let stored = headers(&[("etag", "\"a\"")]);
        let client = HeaderMap::new();
        let same = headers(&[("etag", "\"a\"")]);
        let other = headers(&[("etag", "\"b\"")]);
        assert!(not_modified_selects(&stored, &client, &same, false));
        assert!(!not_modified_selects(&stored, &client, &other, false));
    }

    // RFC 9111 §4.3.4 leaves open a 304 without validators to a request whose only validators
    // came from one stored response: it selects that response, unless the client validated too.
    #[test]
    fn validatorless_not_modified_selects_the_only_validated_response() {
        let stored = headers(&[("etag", "\"a\"")]);
        let bare = HeaderMap::new();
        assert!(not_modified_selects(
            &stored,
            &HeaderMap::new(),
            &bare,
            true
        ));
        assert!(!not_modified_selects(
            &stored,
            &HeaderMap::new(),
            &bare,
            false
        ));
        let client = headers(&[("if-none-match", "\"a\"")]);
        assert!(!not_modified_selects(&stored, &client, &bare, true));
        let client = headers(&[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")]);
        assert!(!not_modified_selects(&stored, &client, &bare, true));
    }
}
