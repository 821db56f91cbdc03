//! Feeds arbitrary field values to every header parser and pure policy function.
//!
//! Input layout: 16 control bytes (method, status, range length, times, options), then
//! field lines separated by `\n`. The first byte of a line picks the field name (low bits)
//! and the map it goes to (high bit: request or response); the rest is the value. Lines that
//! are not valid field values are skipped.
#![no_main]

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower_cache_layer::__private::{
    CacheControl, EntityTag, EntityTagList, MAX_DELTA_SECONDS, NotStorable, Precondition,
    RangeDecision, Vary, add_validators, content_range, evaluate_preconditions, evaluate_range,
    freshen_headers, freshness_lifetime, head_freshens, initial_age, invalidation_uris,
    is_storable, not_modified_headers, not_modified_matches, parse_delta_seconds, parse_etag_list,
    parse_http_date, response_policy, strong_match, targeted_cache_control, weak_match,
};
use tower_cache_layer::policy::{
    CacheOptions, VaryKey, may_serve_stale_if_error, remove_hop_by_hop, reuse,
};

const MAX_DELTA: Duration = Duration::from_secs(MAX_DELTA_SECONDS);

const NAMES: &[&str] = &[
    "cache-control",
    "cdn-cache-control",
    "pragma",
    "age",
    "date",
    "expires",
    "last-modified",
    "etag",
    "vary",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "location",
    "content-location",
    "set-cookie",
    "authorization",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "range",
    "accept-encoding",
    "x-a",
];

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

const METHODS: &[Method] = &[
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
];

const STATUSES: &[u16] = &[200, 203, 204, 206, 300, 301, 304, 404, 410, 500, 599, 100];

fn time(byte: u8, seed: u64) -> SystemTime {
    match byte % 5 {
        0 => UNIX_EPOCH,
        1 => UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2),
        2 => UNIX_EPOCH + Duration::from_secs(253_402_300_799),
        3 => UNIX_EPOCH + Duration::from_secs(1_400_000_000 + seed % 100_000),
        _ => UNIX_EPOCH
            .checked_add(Duration::from_secs(seed))
            .unwrap_or(UNIX_EPOCH),
    }
}

fn check_cc(cc: &CacheControl) {
    for d in [
        cc.max_age(),
        cc.s_maxage(),
        cc.min_fresh(),
        cc.stale_while_revalidate(),
        cc.stale_if_error(),
        cc.max_stale().flatten(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(d <= MAX_DELTA);
    }
    let _ = (
        cc.is_empty(),
        cc.no_store(),
        cc.public(),
        cc.must_revalidate(),
        cc.proxy_revalidate(),
        cc.must_understand(),
        cc.no_transform(),
        cc.only_if_cached(),
    );
    if let Some(fields) = cc.no_cache_fields() {
        assert!(cc.no_cache() && !fields.is_empty());
    }
    if let Some(fields) = cc.private_fields() {
        assert!(cc.private() && !fields.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let (ctl, rest) = data.split_at(data.len().min(16));
    let mut c = [0u8; 16];
    c[..ctl.len()].copy_from_slice(ctl);
    let seed = u64::from_le_bytes(c[8..16].try_into().unwrap());

    let method = &METHODS[usize::from(c[0]) % METHODS.len()];
    let status = StatusCode::from_u16(STATUSES[usize::from(c[1]) % STATUSES.len()]).unwrap();
    let len = match c[2] % 4 {
        0 => 0,
        1 => u64::MAX,
        2 => u64::from(c[3]),
        _ => seed,
    };
    let request_time = time(c[4], seed);
    let response_time = time(c[5], seed.rotate_left(17));
    let now = time(c[6], seed.rotate_left(33));
    let mut options = CacheOptions::default();
    options.heuristic_fraction =
        [0.1, 0.0, -1.0, f64::NAN, f64::INFINITY, 1e300][usize::from(c[7]) % 6];
    options.max_heuristic_lifetime = if c[7] & 0x80 != 0 {
        Duration::MAX
    } else {
        Duration::from_secs(86_400)
    };
    options.default_ttl = (c[7] & 0x40 != 0).then(|| Duration::from_secs(seed));
    options.store_set_cookie = c[7] & 0x20 != 0;

    // Field lines, and the raw values for the byte-level parsers.
    let mut req = HeaderMap::new();
    let mut resp = HeaderMap::new();
    let mut raw: Vec<&[u8]> = Vec::new();
    for line in rest.split(|&b| b == b'\n').take(12) {
        let Some((&sel, value)) = line.split_first() else {
            continue;
        };
        raw.push(value);
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        let name = HeaderName::from_static(NAMES[usize::from(sel & 0x7f) % NAMES.len()]);
        if sel & 0x80 != 0 {
            req.append(name, value);
        } else {
            resp.append(name, value);
        }
    }

    // Byte-level parsers.
    for bytes in &raw {
        if let Some(d) = parse_delta_seconds(bytes) {
            assert!(d <= MAX_DELTA);
        }
        if let Some(tag) = EntityTag::parse(bytes) {
            assert_eq!(
                EntityTag::parse(tag.to_header_value().as_bytes()),
                Some(tag)
            );
            assert!(weak_match(&tag, &tag));
            assert_eq!(strong_match(&tag, &tag), !tag.is_weak());
        }
        if let Ok(value) = HeaderValue::from_bytes(bytes) {
            if let Some(date) = parse_http_date(&value) {
                let again = HeaderValue::from_str(&httpdate::fmt_http_date(date)).unwrap();
                assert_eq!(parse_http_date(&again), Some(date));
            }
        }
    }

    // Cache-Control, both sides, and as a targeted field.
    let resp_cc = CacheControl::from_headers(&resp);
    let req_cc = CacheControl::from_headers(&req);
    check_cc(&resp_cc);
    check_cc(&req_cc);
    let cdn = HeaderName::from_static("cdn-cache-control");
    let targeted = targeted_cache_control(&resp, &cdn);
    if let Some(cc) = &targeted {
        assert!(cc.is_targeted() && !cc.is_empty());
        check_cc(cc);
    }

    // Hop-by-hop removal.
    let mut stripped = resp.clone();
    remove_hop_by_hop(&mut stripped);
    for name in HOP_BY_HOP {
        assert!(!stripped.contains_key(*name));
    }

    // Vary.
    let vary = Vary::from_headers(&resp);
    let key = VaryKey::capture(vary.fields(), &req);
    assert!(key.matches(&req));
    let _ = key.matches(&resp);

    // Conditional requests.
    let _ = parse_etag_list(req.get_all(header::IF_NONE_MATCH));
    if let Some(EntityTagList::Tags(tags)) = parse_etag_list(req.get_all(header::IF_MATCH)) {
        for tag in tags {
            assert_eq!(
                EntityTag::parse(tag.to_header_value().as_bytes()),
                Some(tag)
            );
        }
    }
    assert_ne!(
        evaluate_preconditions(method, &req, status, &resp),
        Precondition::Failed
    );
    let _ = not_modified_headers(&resp);

    // Revalidation.
    let mut outgoing = req.clone();
    let _ = add_validators(&resp, &mut outgoing);
    assert!(not_modified_matches(&resp, &resp));
    let _ = not_modified_matches(&resp, &req);
    assert!(head_freshens(&resp, &resp));
    let _ = head_freshens(&resp, &req);
    let _ = freshen_headers(&resp, &req);

    // Ranges.
    if let RangeDecision::Partial { start, end } =
        evaluate_range(&Method::GET, &req, StatusCode::OK, &resp, len)
    {
        assert!(start <= end && end < len);
        assert_eq!(
            content_range(start, end, len),
            format!("bytes {start}-{end}/{len}")
        );
    }
    let _ = evaluate_range(method, &req, status, &resp, len);

    // Invalidation.
    let uri = Uri::from_static("http://example.com/a/b/c?q=1");
    let uris = invalidation_uris(&Method::POST, StatusCode::OK, &uri, &resp);
    assert!(!uris.is_empty() && uris.len() <= 3 && uris[0] == uri);
    let _ = invalidation_uris(method, status, &uri, &resp);

    // Freshness, reuse, storability.
    for cc in [Some(&resp_cc), targeted.as_ref()].into_iter().flatten() {
        let _ = freshness_lifetime(status, &resp, cc, &options, response_time);
        let _ = initial_age(&resp, request_time, response_time);
        let policy = response_policy(status, &resp, cc, &options, request_time, response_time);
        assert!(policy.ttl(now) <= policy.freshness_lifetime());
        let _ = (policy.age(now), policy.is_fresh(now), policy.staleness(now));
        let _ = reuse(&policy, &req, now);
        let stale = may_serve_stale_if_error(&policy, &req, now);
        assert!(!(stale && (policy.must_revalidate() || policy.no_cache())));
        let storable = is_storable(method, &req, status, &resp, cc, &options, response_time);
        if *method != Method::GET {
            assert_eq!(storable, Err(NotStorable::Method));
        }
    }
});
