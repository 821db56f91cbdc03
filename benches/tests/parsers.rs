//! Property tests for the header parsers and the pure policy functions of `policy`.
//!
//! Every property feeds arbitrary or grammar-biased field values (including non-UTF-8 bytes,
//! huge numbers and unbalanced quotes) into the public entry points and checks that nothing
//! panics, plus a few invariants that hold for any input.
//!
//! Values that `HeaderValue::from_bytes` rejects (control characters) are skipped, never
//! rejected as test cases, so the arbitrary-bytes strategies stay cheap.

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use proptest::collection::vec;
use proptest::prelude::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower_cache_layer::__private::{
    CacheControl, ContentRange, EntityTag, EntityTagList, FreshnessSource, MAX_DELTA_SECONDS,
    NotStorable, Precondition, RangeDecision, Vary, add_validators, combine_parts, content_range,
    evaluate_preconditions, evaluate_range, evaluate_range_in_part, freshen_headers,
    freshness_lifetime, head_freshens, initial_age, invalidation_uris, is_safe_method, is_storable,
    not_modified_headers, not_modified_matches, parse_delta_seconds, parse_etag_list,
    parse_http_date, response_policy, strong_match, targeted_cache_control, weak_match,
};
use tower_cache_layer::policy::{
    CacheOptions, Reuse, VaryKey, may_serve_stale_if_error, remove_hop_by_hop, reuse,
};

const CASES: u32 = 512;
const MAX_DELTA: Duration = Duration::from_secs(MAX_DELTA_SECONDS);

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Fragments of the grammars the parsers read: directive names, separators, quotes, numbers
/// (including ones that overflow `u32` / `u64`), dates, entity-tags, range specs, URI pieces
/// and non-UTF-8 bytes.
const TOKENS: &[&[u8]] = &[
    b"max-age",
    b"Max-Age",
    b"s-maxage",
    b"max-stale",
    b"min-fresh",
    b"stale-while-revalidate",
    b"stale-if-error",
    b"no-cache",
    b"no-store",
    b"private",
    b"public",
    b"must-revalidate",
    b"proxy-revalidate",
    b"must-understand",
    b"no-transform",
    b"only-if-cached",
    b"set-cookie",
    b"x-a",
    b"close",
    b"keep-alive",
    b"te",
    b"upgrade",
    b"accept-encoding",
    b"=",
    b"\"",
    b"\\",
    b",",
    b", ",
    b";",
    b" ",
    b"\t",
    b"*",
    b"W/",
    b"w/",
    b"bytes=",
    b"bytes",
    b"Bytes=",
    b"items=",
    b"-",
    b"+",
    b".",
    b"0",
    b"1",
    b"5",
    b"60",
    b"007",
    b"2147483647",
    b"2147483648",
    b"4294967296",
    b"18446744073709551615",
    b"18446744073709551616",
    b"99999999999999999999999999999999",
    b"1.5",
    b"?0",
    b"?1",
    b":YWJj:",
    b"(",
    b")",
    b"\"abc\"",
    b"W/\"abc\"",
    b"\"a,b\"",
    b"Sun, 06 Nov 1994 08:49:37 GMT",
    b"Sunday, 06-Nov-94 08:49:37 GMT",
    b"Sun Nov  6 08:49:37 1994",
    b"Thu, 01 Jan 1970 00:00:00 GMT",
    b"Fri, 31 Dec 9999 23:59:59 GMT",
    b"Wed, 21 Oct 2015 07:28:00 GMT",
    b"GMT",
    b"http://example.com",
    b"https://example.com:443",
    b"HTTP://EXAMPLE.COM:80",
    b"http://other.example",
    b"//example.com",
    b"//",
    b"/",
    b"..",
    b"./",
    b"?q=1",
    b"#frag",
    b":",
    b":8080",
    b"@",
    b"[::1]",
    b"%",
    b"%zz",
    b"\x80",
    b"\xff",
    b"\xfe\xff",
    b"\xc3\xa9",
    b"\x7f",
    b"\x00",
    b"\r\n",
];

/// Arbitrary bytes; most long ones are not valid field values and get skipped.
fn raw_bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..200)
}

/// Arbitrary bytes that are always a valid field value (VCHAR, SP, HTAB, obs-text): controls
/// are mapped onto printable bytes.
fn field_bytes() -> impl Strategy<Value = Vec<u8>> {
    raw_bytes().prop_map(|mut bytes| {
        for b in &mut bytes {
            if (*b < 0x20 && *b != b'\t') || *b == 0x7f {
                *b ^= 0x40;
            }
        }
        bytes
    })
}

/// Sequences of grammar fragments, with the odd arbitrary byte.
fn grammar_bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            6 => prop::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
            1 => any::<u8>().prop_map(|b| vec![b]),
            1 => any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        ],
        0..16,
    )
    .prop_map(|parts| parts.concat())
}

/// Bytes for one field line: arbitrary, field-valid or grammar fragments.
fn value_bytes() -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![
        1 => raw_bytes(),
        2 => field_bytes(),
        5 => grammar_bytes(),
    ]
}

/// Shorter values, for the fields around the ones a property targets (keeps debug runs fast).
fn short_value_bytes() -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![
        1 => vec(any::<u8>(), 0..32),
        1 => vec(0x20u8..=0xff, 0..32),
        4 => vec(prop::sample::select(TOKENS), 0..6).prop_map(|parts| parts.concat()),
    ]
}

/// 1–3 field lines (mostly one: several lines make most single-valued fields invalid), with
/// the ones `HeaderValue` rejects dropped.
fn lines_of(
    bytes: impl Strategy<Value = Vec<u8>> + Clone,
) -> impl Strategy<Value = Vec<HeaderValue>> {
    prop_oneof![3 => vec(bytes.clone(), 1..=1), 1 => vec(bytes, 2..=3)].prop_map(|lines| {
        lines
            .iter()
            .filter_map(|b| HeaderValue::from_bytes(b).ok())
            .collect()
    })
}

/// Joins parts with separators picked from `seps`.
fn joined(
    parts: impl Strategy<Value = Vec<Vec<u8>>>,
    seps: &'static [&'static [u8]],
) -> impl Strategy<Value = Vec<u8>> {
    (parts, vec(prop::sample::select(seps), 16)).prop_map(|(parts, seps)| {
        let mut out = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(seps[i % seps.len()]);
            }
            out.extend_from_slice(part);
        }
        out
    })
}

fn bytes_of(s: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> + Clone {
    prop::sample::select(s).prop_map(<[u8]>::to_vec)
}

/// Usually `common`, sometimes one of `odd`.
fn mostly(
    common: &'static [u8],
    odd: &'static [&'static [u8]],
) -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![4 => Just(common.to_vec()), 1 => bytes_of(odd)]
}

/// delta-seconds and the ways they go wrong.
fn number() -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![
        3 => (0u64..4000).prop_map(|n| n.to_string().into_bytes()),
        2 => any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        2 => bytes_of(&[
            b"2147483647", b"2147483648", b"18446744073709551615", b"18446744073709551616",
            b"99999999999999999999999999999999", b"-1", b"+1", b"1.5", b"", b" 1", b"007", b"1e3",
            b"0x10", b"\xd9\xa1",
        ]),
    ]
}

const DIRECTIVES: &[&[u8]] = &[
    b"max-age",
    b"s-maxage",
    b"max-stale",
    b"min-fresh",
    b"stale-while-revalidate",
    b"stale-if-error",
    b"no-cache",
    b"no-store",
    b"private",
    b"public",
    b"must-revalidate",
    b"proxy-revalidate",
    b"must-understand",
    b"no-transform",
    b"only-if-cached",
    b"MAX-AGE",
    b"No-Cache",
    b"x-ext",
    b"max age",
    b"",
];

/// `Cache-Control` (and targeted-field) lines: directives with token, quoted, field-list or
/// broken arguments.
fn cache_control_bytes() -> impl Strategy<Value = Vec<u8>> {
    let arg = prop_oneof![
        4 => number(),
        2 => number().prop_map(|n| [&b"\""[..], &n, b"\""].concat()),
        2 => bytes_of(&[
            b"\"set-cookie\"", b"\"x-a, X-B\"", b"\"\"", b"\", ,\"", b"\"bad name, x-a\"",
            b"x-a", b"\"unterminated", b"\"a\\\"b\"", b"\"\\x\"", b"(1 2)", b"?0", b"?1",
            b":YWJj:", b"\xff", b"tok/en", b"1;x=1", b"\"60\" junk",
        ]),
    ];
    let directive = (
        bytes_of(DIRECTIVES),
        prop::option::of((bytes_of(&[b"=", b" = ", b"==", b"= "]), arg)),
    )
        .prop_map(|(name, arg)| match arg {
            None => name,
            Some((eq, arg)) => [name, eq, arg].concat(),
        });
    joined(
        vec(directive, 0..5),
        &[b", ", b",", b" , ", b",,", b";", b" "],
    )
}

/// HTTP-dates, valid (around 2014, or anywhere in 1970..=9999) and slightly broken.
fn date_bytes() -> impl Strategy<Value = Vec<u8>> {
    let secs = prop_oneof![
        3 => 1_399_000_000u64..1_401_000_000,
        1 => 0u64..=253_402_300_799,
    ];
    (secs, 0u8..8).prop_map(|(secs, variant)| {
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
        match variant {
            0 => date.replace("GMT", "UTC"),
            1 => format!(" {date}\t"),
            2 => date[..date.len() - 4].to_owned(),
            3 => format!("{date}, {date}"),
            _ => date,
        }
        .into_bytes()
    })
}

/// One entity-tag, usually valid, with opaque-tags from a small pool so that tags match.
fn etag_member() -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![
        1 => bytes_of(&[b"*", b"abc", b"W/", b"w/\"a\"", b"\"", b"W/\"a"]),
        12 => (
            any::<bool>(),
            mostly(b"a", &[b"b", b"a,b", b"", b" ", b"\xff", b"\x7f", b"\\", b"abc"]),
        )
            .prop_map(|(weak, opaque)| {
                [if weak { &b"W/\""[..] } else { b"\"" }, &opaque, b"\""].concat()
            }),
    ]
}

/// `If-Match` / `If-None-Match` lists.
fn etag_list_bytes() -> impl Strategy<Value = Vec<u8>> {
    joined(
        vec(etag_member(), 0..4),
        &[b", ", b", ", b", ", b",", b",", b" ,, ", b"\t,", b";"],
    )
}

/// `Range` values.
fn range_bytes() -> impl Strategy<Value = Vec<u8>> {
    let pos = prop_oneof![
        4 => (0u64..3000).prop_map(|n| n.to_string().into_bytes()),
        1 => number(),
        1 => Just(Vec::new()),
    ];
    let free = (pos.clone(), mostly(b"-", &[b" - ", b"", b"--"]), pos)
        .prop_map(|(a, dash, b)| [a, dash, b].concat());
    let spec = prop_oneof![
        // first-last, in order.
        3 => (0u64..3000, 0u64..3000)
            .prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b)).into_bytes()),
        // first- and -suffix.
        1 => (0u64..3000).prop_map(|a| format!("{a}-").into_bytes()),
        1 => (0u64..3000).prop_map(|a| format!("-{a}").into_bytes()),
        2 => free,
    ];
    let specs = prop_oneof![4 => vec(spec.clone(), 1..=1), 1 => vec(spec, 0..4)];
    (
        mostly(
            b"bytes",
            &[b"Bytes", b"BYTES", b"items", b"", b"by tes", b"\xff"],
        ),
        mostly(b"=", &[b" =", b"= ", b""]),
        joined(specs, &[b",", b", ", b" ,, "]),
    )
        .prop_map(|(unit, eq, specs)| [unit, eq, specs].concat())
}

/// `Location` / `Content-Location` references.
fn uri_ref_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        bytes_of(&[
            b"", b"", b"http:", b"https:", b"HTTP:", b"ftp:", b"1http:", b"mailto:",
        ]),
        bytes_of(&[
            b"",
            b"",
            b"//example.com",
            b"//EXAMPLE.com:80",
            b"//example.com:443",
            b"//example.com:8080",
            b"//other.example",
            b"//",
            b"//[::1]",
            b"//user@example.com",
            b"//example.com:99999",
        ]),
        vec(
            bytes_of(&[
                b"/",
                b"a",
                b"..",
                b".",
                b"b",
                b"%2e%2e",
                b"",
                b" ",
                b"\xc3\xa9",
            ]),
            0..6,
        ),
        bytes_of(&[b"", b"?q", b"?", b"#f", b"?a#b"]),
    )
        .prop_map(|(scheme, authority, path, tail)| {
            [scheme, authority, path.concat(), tail].concat()
        })
}

/// Comma lists of field names (`Connection`, `Vary`).
fn name_list_bytes() -> impl Strategy<Value = Vec<u8>> {
    let member = prop_oneof![
        4 => prop::sample::select(NAMES).prop_map(|n| n.as_bytes().to_vec()),
        1 => bytes_of(&[b"*", b"Close", b"X-A", b"bad name", b"\xff", b"", b"(x)"]),
    ];
    joined(vec(member, 0..4), &[b", ", b",", b" ,, ", b"\t,"])
}

/// Values for `name`: the field's own grammar most of the time, anything otherwise.
fn value_for(name: &str) -> BoxedStrategy<Vec<u8>> {
    let specific: BoxedStrategy<Vec<u8>> = match name {
        "cache-control" | "cdn-cache-control" | "pragma" => cache_control_bytes().boxed(),
        "date" | "expires" | "last-modified" | "if-modified-since" | "if-unmodified-since" => {
            date_bytes().boxed()
        }
        "etag" => prop_oneof![4 => etag_member(), 1 => etag_list_bytes()].boxed(),
        "if-match" | "if-none-match" => etag_list_bytes().boxed(),
        "if-range" => prop_oneof![etag_member(), date_bytes()].boxed(),
        "age" | "content-length" => joined(vec(number(), 1..3), &[b", ", b","]).boxed(),
        "range" => range_bytes().boxed(),
        "location" | "content-location" => uri_ref_bytes().boxed(),
        "connection" | "vary" => name_list_bytes().boxed(),
        _ => return short_value_bytes().boxed(),
    };
    prop_oneof![5 => specific, 1 => value_bytes()].boxed()
}

/// 1–3 lines of `name`, from [`value_for`].
fn field_lines(name: &'static str) -> impl Strategy<Value = Vec<HeaderValue>> {
    lines_of(value_for(name))
}

/// Field names the policy reads, plus a few it does not and some arbitrary ones.
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
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-authentication-info",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-range",
    "content-encoding",
    "content-md5",
    "content-type",
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
    "x-b",
];

/// A field name with 1–3 lines of values, mostly in its own grammar.
fn header_field() -> impl Strategy<Value = (HeaderName, Vec<HeaderValue>)> {
    prop_oneof![
        8 => prop::sample::select(NAMES).prop_flat_map(|name| {
            field_lines(name).prop_map(move |lines| (HeaderName::from_static(name), lines))
        }),
        1 => (arbitrary_name(), lines_of(short_value_bytes())),
    ]
}

fn arbitrary_name() -> impl Strategy<Value = HeaderName> {
    "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}"
        .prop_map(|s| HeaderName::from_bytes(s.as_bytes()).expect("tchars are a valid name"))
}

/// A header map of up to 5 fields, each with 1–3 lines.
fn header_map() -> impl Strategy<Value = HeaderMap> {
    vec(header_field(), 0..5).prop_map(|fields| {
        let mut map = HeaderMap::new();
        for (name, lines) in fields {
            for line in lines {
                map.append(name.clone(), line);
            }
        }
        map
    })
}

/// A header map with only `name`, 1–3 lines in its grammar.
fn one_field(name: &'static str) -> impl Strategy<Value = HeaderMap> {
    field_lines(name).prop_map(move |lines| {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(name, line);
        }
        map
    })
}

/// `UNIX_EPOCH + secs` (or before it), saturating to a far-future instant when unrepresentable.
fn time() -> impl Strategy<Value = SystemTime> {
    let far_future = UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2);
    prop_oneof![
        1 => Just(UNIX_EPOCH),
        1 => Just(far_future),
        // 9999-12-31, the last HTTP-date.
        1 => Just(UNIX_EPOCH + Duration::from_secs(253_402_300_799)),
        1 => (0u64..4_000_000_000).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        // Around the dates `date_bytes` generates.
        8 => (1_399_000_000u64..1_401_000_000).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        1 => any::<u64>().prop_map(move |s| {
            UNIX_EPOCH
                .checked_add(Duration::from_secs(s))
                .unwrap_or(far_future)
        }),
        1 => (0u64..1_000_000_000).prop_map(move |s| {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(s))
                .unwrap_or(UNIX_EPOCH)
        }),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..100_000).prop_map(Duration::from_secs),
        any::<u64>().prop_map(Duration::from_secs),
    ]
}

fn options() -> impl Strategy<Value = CacheOptions> {
    (
        prop_oneof![
            Just(0.1),
            Just(0.0),
            Just(-1.0),
            Just(1.0),
            Just(1e300),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            any::<f64>(),
        ],
        duration(),
        prop::option::of(duration()),
        any::<bool>(),
    )
        .prop_map(|(fraction, max, default_ttl, cookie)| {
            let mut options = CacheOptions::default();
            options.heuristic_fraction = fraction;
            options.max_heuristic_lifetime = max;
            options.default_ttl = default_ttl;
            options.store_set_cookie = cookie;
            options
        })
}

/// Mostly 200, the status the cache stores and answers from.
fn status_mostly_ok() -> impl Strategy<Value = StatusCode> {
    prop_oneof![2 => Just(StatusCode::OK), 3 => status()]
}

fn status() -> impl Strategy<Value = StatusCode> {
    prop_oneof![
        prop::sample::select(
            &[
                100u16, 200, 203, 204, 206, 300, 301, 304, 308, 404, 410, 500
            ][..]
        ),
        100u16..=999,
    ]
    .prop_map(|code| StatusCode::from_u16(code).unwrap())
}

/// Mostly GET, the method the cache answers.
fn method() -> impl Strategy<Value = Method> {
    prop_oneof![3 => Just(Method::GET), 2 => any_method()]
}

fn any_method() -> impl Strategy<Value = Method> {
    prop::sample::select(
        &[
            "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO",
        ][..],
    )
    .prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap())
}

fn request_uri() -> impl Strategy<Value = Uri> {
    prop::sample::select(
        &[
            "http://example.com/a/b/c?q=1",
            "https://Example.COM:443/x/",
            "http://example.com:8080/",
            "/relative/only",
        ][..],
    )
    .prop_map(Uri::from_static)
}

/// A [`header_map`] plus, each with probability 1/2, 1–3 lines of each of `names`.
fn headers_with(names: &'static [&'static str]) -> impl Strategy<Value = HeaderMap> {
    let fields: Vec<_> = names
        .iter()
        .map(|&name| prop::option::of(field_lines(name).prop_map(move |l| (name, l))))
        .collect();
    (header_map(), fields).prop_map(|(mut map, fields)| {
        for (name, lines) in fields.into_iter().flatten() {
            for line in lines {
                map.append(name, line);
            }
        }
        map
    })
}

/// Response headers biased towards the freshness and validator fields.
fn response_headers() -> impl Strategy<Value = HeaderMap> {
    headers_with(&[
        "cache-control",
        "age",
        "date",
        "expires",
        "last-modified",
        "etag",
    ])
}

/// Request headers biased towards the conditional and cache fields.
fn request_headers() -> impl Strategy<Value = HeaderMap> {
    headers_with(&[
        "cache-control",
        "if-none-match",
        "if-modified-since",
        "range",
    ])
}

// ---------------------------------------------------------------------------------------------
// Invariant helpers
// ---------------------------------------------------------------------------------------------

fn check_cache_control(cc: &CacheControl) -> Result<(), TestCaseError> {
    // Every accessor, and the 2^31 saturation of every delta-seconds.
    let _ = (
        cc.is_empty(),
        cc.is_targeted(),
        cc.no_store(),
        cc.public(),
        cc.must_revalidate(),
        cc.proxy_revalidate(),
        cc.must_understand(),
        cc.no_transform(),
        cc.only_if_cached(),
    );
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
        prop_assert!(d <= MAX_DELTA, "{d:?} > 2^31 s in {cc:?}");
    }
    if let Some(fields) = cc.no_cache_fields() {
        prop_assert!(cc.no_cache());
        prop_assert!(!fields.is_empty());
    }
    if let Some(fields) = cc.private_fields() {
        prop_assert!(cc.private());
        prop_assert!(!fields.is_empty());
    }
    Ok(())
}

/// The origin of an absolute URI, as RFC 9110 §4.3.1 defines it.
fn origin(uri: &Uri) -> Option<(String, String, Option<u16>)> {
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri.port_u16().or(match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    });
    Some((scheme, host, port))
}

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

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn delta_seconds_total_and_saturating(bytes in prop_oneof![raw_bytes(), grammar_bytes(), "[0-9]{0,40}".prop_map(String::into_bytes)]) {
        let parsed = parse_delta_seconds(&bytes);
        let digits = !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit);
        prop_assert_eq!(parsed.is_some(), digits);
        if let Some(d) = parsed {
            prop_assert!(d <= MAX_DELTA);
            if let Ok(n) = std::str::from_utf8(&bytes).unwrap().parse::<u64>() {
                prop_assert_eq!(d.as_secs(), n.min(MAX_DELTA_SECONDS));
            }
        }
    }

    #[test]
    fn http_date_total_and_round_trips(bytes in prop_oneof![date_bytes(), value_bytes()], t in time()) {
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            if let Some(date) = parse_http_date(&value) {
                prop_assert!(date >= UNIX_EPOCH);
                let formatted = HeaderValue::from_str(&httpdate::fmt_http_date(date)).unwrap();
                prop_assert_eq!(parse_http_date(&formatted), Some(date));
            }
        }
        // Formatting a representable date always parses back.
        if let Ok(since) = t.duration_since(UNIX_EPOCH) {
            if since.as_secs() <= 253_402_300_799 {
                let whole = UNIX_EPOCH + Duration::from_secs(since.as_secs());
                let formatted = HeaderValue::from_str(&httpdate::fmt_http_date(whole)).unwrap();
                prop_assert_eq!(parse_http_date(&formatted), Some(whole));
            }
        }
    }

    #[test]
    fn cache_control_total(cc_lines in field_lines("cache-control"), other in header_map()) {
        let mut map = other;
        map.remove(header::CACHE_CONTROL);
        for line in &cc_lines {
            map.append(header::CACHE_CONTROL, line.clone());
        }
        let cc = CacheControl::from_headers(&map);
        check_cache_control(&cc)?;
        prop_assert!(!cc.is_targeted());
        prop_assert_eq!(&cc, &CacheControl::from_values(&cc_lines));
        if cc_lines.iter().all(|l| l.as_bytes().iter().all(|&b| b == b',' || b == b' ' || b == b'\t')) {
            prop_assert!(cc.is_empty());
        }
        // The same lines as a targeted field (RFC 9213).
        let name = HeaderName::from_static("cdn-cache-control");
        let mut targeted = HeaderMap::new();
        for line in &cc_lines {
            targeted.append(name.clone(), line.clone());
        }
        if let Some(tcc) = targeted_cache_control(&targeted, &name) {
            check_cache_control(&tcc)?;
            prop_assert!(tcc.is_targeted());
            prop_assert!(!tcc.is_empty());
        }
        prop_assert!(targeted_cache_control(&HeaderMap::new(), &name).is_none());
        prop_assert!(CacheControl::from_headers(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn hop_by_hop_removed(map in header_map(), conn in one_field("connection")) {
        let mut headers = map.clone();
        for line in conn.get_all(header::CONNECTION) {
            headers.append(header::CONNECTION, line.clone());
        }
        let before = headers.clone();
        remove_hop_by_hop(&mut headers);
        for name in HOP_BY_HOP {
            prop_assert!(!headers.contains_key(*name), "{name} left in {headers:?}");
        }
        // Fields named by Connection are gone; every other field is untouched.
        let named: Vec<HeaderName> = before
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .filter_map(|m| {
                let m = m.trim_ascii();
                HeaderName::from_bytes(m).ok()
            })
            .collect();
        for name in &named {
            prop_assert!(!headers.contains_key(name), "{name} left in {headers:?}");
        }
        for name in before.keys() {
            if HOP_BY_HOP.contains(&name.as_str()) || named.contains(name) {
                continue;
            }
            let a: Vec<_> = before.get_all(name).iter().collect();
            let b: Vec<_> = headers.get_all(name).iter().collect();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn vary_and_vary_key(vary in one_field("vary"), req_a in header_map(), req_b in header_map()) {
        let parsed = Vary::from_headers(&vary);
        match &parsed {
            Vary::None | Vary::Star => prop_assert!(parsed.fields().is_empty()),
            Vary::Fields(fields) => {
                prop_assert!(!fields.is_empty());
                for (i, f) in fields.iter().enumerate() {
                    prop_assert!(!fields[i + 1..].contains(f), "duplicate {f}");
                }
            }
        }
        // Vary on arbitrary names too, including the request's own fields.
        let mut fields = parsed.fields().to_vec();
        fields.extend(req_a.keys().cloned());
        let key = VaryKey::capture(&fields, &req_a);
        prop_assert!(key.matches(&req_a));
        let names: Vec<&HeaderName> = key.fields().collect();
        prop_assert!(names.windows(2).all(|w| w[0].as_str() < w[1].as_str()));
        for name in &names {
            prop_assert_eq!(key.value(name).unwrap().is_some(), req_a.contains_key(*name));
        }
        prop_assert_eq!(key.is_empty(), fields.is_empty());
        prop_assert_eq!(key.matches(&req_b), key == VaryKey::capture(&fields, &req_b));
        prop_assert!(VaryKey::default().matches(&req_b));
    }

    #[test]
    fn entity_tags(a in prop_oneof![etag_member(), value_bytes()], b in prop_oneof![etag_member(), value_bytes()], list in field_lines("if-none-match")) {
        for bytes in [&a, &b] {
            if let Some(tag) = EntityTag::parse(bytes) {
                let opaque = tag.opaque();
                prop_assert!(opaque.len() >= 2 && opaque[0] == b'"' && opaque[opaque.len() - 1] == b'"');
                let written = tag.to_header_value();
                prop_assert_eq!(EntityTag::parse(written.as_bytes()), Some(tag));
                prop_assert!(weak_match(&tag, &tag));
                prop_assert_eq!(strong_match(&tag, &tag), !tag.is_weak());
            }
        }
        if let (Some(x), Some(y)) = (EntityTag::parse(&a), EntityTag::parse(&b)) {
            prop_assert_eq!(weak_match(&x, &y), weak_match(&y, &x));
            prop_assert_eq!(strong_match(&x, &y), strong_match(&y, &x));
            prop_assert!(!strong_match(&x, &y) || weak_match(&x, &y));
        }
        prop_assert!(parse_etag_list(std::iter::empty()).is_none());
        match parse_etag_list(&list) {
            Some(EntityTagList::Tags(tags)) => {
                for tag in tags {
                    let written = tag.to_header_value();
                    prop_assert_eq!(EntityTag::parse(written.as_bytes()), Some(tag));
                }
            }
            Some(EntityTagList::Any) => {
                prop_assert!(list.iter().any(|l| l.as_bytes().contains(&b'*')));
            }
            None => {}
        }
    }

    #[test]
    fn preconditions(
        method in method(),
        req in request_headers(),
        status in status_mostly_ok(),
        stored in response_headers(),
    ) {
        let decision = evaluate_preconditions(&method, &req, status, &stored);
        prop_assert_ne!(decision, Precondition::Failed);
        let conditional = ["if-match", "if-none-match", "if-modified-since", "if-unmodified-since"]
            .iter()
            .any(|n| req.contains_key(*n));
        if !conditional {
            prop_assert_eq!(decision, Precondition::None);
        } else if method != Method::GET && method != Method::HEAD {
            prop_assert_eq!(decision, Precondition::Forward);
        }
        let nm = not_modified_headers(&stored);
        for name in nm.keys() {
            prop_assert!(
                ["cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified"]
                    .contains(&name.as_str()),
                "{name} in a 304"
            );
            let a: Vec<_> = stored.get_all(name).iter().collect();
            let b: Vec<_> = nm.get_all(name).iter().collect();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn revalidation(stored in response_headers(), outgoing in request_headers(), update in response_headers()) {
        let mut out = outgoing.clone();
        let carries = add_validators(&stored, &mut out);
        if carries {
            prop_assert!(out.contains_key(header::IF_NONE_MATCH) || out.contains_key(header::IF_MODIFIED_SINCE));
        }
        // Only If-None-Match / If-Modified-Since may change.
        for name in outgoing.keys().chain(out.keys()) {
            if name == header::IF_NONE_MATCH || name == header::IF_MODIFIED_SINCE {
                continue;
            }
            let a: Vec<_> = outgoing.get_all(name).iter().collect();
            let b: Vec<_> = out.get_all(name).iter().collect();
            prop_assert_eq!(a, b);
        }

        let _ = not_modified_matches(&stored, &update);
        prop_assert!(not_modified_matches(&stored, &stored));
        let _ = head_freshens(&stored, &update);
        prop_assert!(head_freshens(&stored, &stored));

        let fresh = freshen_headers(&stored, &update);
        // What describes the stored bytes is kept.
        for name in [header::CONTENT_LENGTH, header::ETAG, header::CONTENT_ENCODING] {
            let a: Vec<_> = stored.get_all(&name).iter().collect();
            let b: Vec<_> = fresh.get_all(&name).iter().collect();
            prop_assert_eq!(a, b);
        }
        // The update's hop-by-hop fields are not merged in.
        for name in HOP_BY_HOP {
            let a: Vec<_> = stored.get_all(*name).iter().collect();
            let b: Vec<_> = fresh.get_all(*name).iter().collect();
            prop_assert_eq!(a, b, "{}", name);
        }
    }

    #[test]
    fn ranges(
        method in prop_oneof![4 => Just(Method::GET), 1 => any_method()],
        range in one_field("range"),
        extra in header_map(),
        if_range in prop::option::weighted(0.25, field_lines("if-range")),
        status in prop_oneof![4 => Just(StatusCode::OK), 1 => status()],
        stored in response_headers(),
        len in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(u64::MAX - 1), 0u64..2000, any::<u64>()],
    ) {
        let mut req = extra;
        req.remove(header::RANGE);
        req.remove(header::IF_RANGE);
        for line in range.get_all(header::RANGE) {
            req.append(header::RANGE, line.clone());
        }
        for line in if_range.into_iter().flatten() {
            req.append(header::IF_RANGE, line);
        }
        let decision = evaluate_range(&method, &req, status, &stored, len);
        if let RangeDecision::Partial { start, end } = decision {
            prop_assert!(start <= end && end < len, "{start}-{end}/{len}");
            prop_assert_eq!(&method, &Method::GET);
            prop_assert_eq!(status, StatusCode::OK);
        }
        if len == 0 {
            let partial = matches!(decision, RangeDecision::Partial { .. });
            prop_assert!(!partial);
        }
        if method != Method::GET || status != StatusCode::OK {
            prop_assert_eq!(decision, RangeDecision::Full);
        }
    }

    #[test]
    fn partial_ranges(
        range in one_field("range"),
        first in 0u64..40,
        len in 1u64..40,
        extra in 0u64..40,
        other in 0u64..40,
    ) {
        let complete = first + len + extra;
        let last = first + len - 1;
        let mut stored = HeaderMap::new();
        let value = HeaderValue::from_str(&content_range(first, last, complete)).unwrap();
        stored.insert(header::CONTENT_RANGE, value);
        let part = ContentRange::from_headers(&stored);
        prop_assert_eq!(part, Some(ContentRange { first, last, complete }));
        // A stored part answers only ranges it holds.
        if let RangeDecision::Partial { start, end } =
            evaluate_range_in_part(&Method::GET, &range, &stored)
        {
            prop_assert!(first <= start && start <= end && end <= last);
        }
        prop_assert_ne!(
            evaluate_range_in_part(&Method::GET, &HeaderMap::new(), &stored),
            RangeDecision::Full
        );
        // Combining: the union of touching ranges, or nothing.
        let mut new = HeaderMap::new();
        let (a, b) = (other.min(complete - 1), (other + len).min(complete - 1));
        new.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&content_range(a, b, complete)).unwrap(),
        );
        new.insert(header::ETAG, HeaderValue::from_static("\"t\""));
        stored.insert(header::ETAG, HeaderValue::from_static("\"t\""));
        match combine_parts(&stored, &new) {
            Some(merged) => {
                prop_assert_eq!(merged.first, first.min(a));
                prop_assert_eq!(merged.last, last.max(b));
                prop_assert!(a <= last + 1 && first <= b + 1);
            }
            None => prop_assert!(a > last + 1 || first > b + 1),
        }
    }

    #[test]
    fn content_range_round_trips(a in any::<u64>(), b in any::<u64>(), len in any::<u64>()) {
        let s = content_range(a, b, len);
        let rest = s.strip_prefix("bytes ").unwrap();
        let (range, total) = rest.split_once('/').unwrap();
        let (first, last) = range.split_once('-').unwrap();
        prop_assert_eq!(first.parse::<u64>().unwrap(), a);
        prop_assert_eq!(last.parse::<u64>().unwrap(), b);
        prop_assert_eq!(total.parse::<u64>().unwrap(), len);
        prop_assert!(HeaderValue::from_str(&s).is_ok());
    }

    #[test]
    fn invalidation(
        method in any_method(),
        status in status_mostly_ok(),
        uri in request_uri(),
        location in prop::option::of(prop_oneof![3 => uri_ref_bytes(), 1 => value_bytes()]),
        content_location in prop::option::of(prop_oneof![3 => uri_ref_bytes(), 1 => value_bytes()]),
        extra in header_map(),
    ) {
        let mut headers = extra;
        for (name, bytes) in [(header::LOCATION, location), (header::CONTENT_LOCATION, content_location)] {
            if let Some(value) = bytes.and_then(|b| HeaderValue::from_bytes(&b).ok()) {
                headers.insert(name, value);
            }
        }
        let uris = invalidation_uris(&method, status, &uri, &headers);
        if is_safe_method(&method) || !(status.is_success() || status.is_redirection()) {
            prop_assert!(uris.is_empty());
        } else {
            prop_assert!(!uris.is_empty() && uris.len() <= 3);
            prop_assert_eq!(&uris[0], &uri);
            for (i, u) in uris.iter().enumerate() {
                prop_assert!(!uris[i + 1..].contains(u), "duplicate {u}");
                if i > 0 {
                    prop_assert!(origin(&uri).is_some());
                    prop_assert_eq!(origin(u), origin(&uri), "{}", u);
                }
            }
        }
    }

    #[test]
    fn freshness_and_reuse(
        status in status_mostly_ok(),
        headers in response_headers(),
        req in request_headers(),
        req_cc in one_field("cache-control"),
        options in options(),
        request_time in time(),
        response_time in time(),
        now in time(),
        // Offsets from request_time: most responses arrive soon after and are used soon after.
        relative in prop::option::of((0u64..100, 0u64..200_000)),
        targeted in prop::option::weighted(0.3, field_lines("cdn-cache-control")),
    ) {
        let (response_time, now) = match relative {
            Some((delay, used)) => {
                let response_time = request_time.checked_add(Duration::from_secs(delay)).unwrap_or(response_time);
                (response_time, response_time.checked_add(Duration::from_secs(used)).unwrap_or(now))
            }
            None => (response_time, now),
        };
        let name = HeaderName::from_static("cdn-cache-control");
        let mut headers = headers;
        let targeted = match targeted {
            Some(lines) => {
                for line in lines {
                    headers.append(name.clone(), line);
                }
                true
            }
            None => false,
        };
        let cc = if targeted {
            targeted_cache_control(&headers, &name).unwrap_or_else(|| CacheControl::from_headers(&headers))
        } else {
            CacheControl::from_headers(&headers)
        };
        let fresh = freshness_lifetime(status, &headers, &cc, &options, response_time);
        if let Some(f) = fresh {
            match f.source {
                FreshnessSource::SMaxAge | FreshnessSource::MaxAge => prop_assert!(f.lifetime <= MAX_DELTA),
                FreshnessSource::Heuristic => prop_assert!(f.lifetime <= options.max_heuristic_lifetime),
                FreshnessSource::DefaultTtl => prop_assert_eq!(Some(f.lifetime), options.default_ttl),
                FreshnessSource::Expires => {}
            }
        }
        let age0 = initial_age(&headers, request_time, response_time);
        prop_assert!(age0 >= response_time.duration_since(request_time).unwrap_or(Duration::ZERO));

        let policy = response_policy(status, &headers, &cc, &options, request_time, response_time);
        prop_assert_eq!(policy.freshness_lifetime(), fresh.map_or(Duration::ZERO, |f| f.lifetime));
        prop_assert_eq!(policy.initial_age(), age0);
        let ttl = policy.ttl(now);
        prop_assert!(ttl <= policy.freshness_lifetime());
        prop_assert!(policy.age(now) >= policy.initial_age());
        prop_assert_eq!(policy.is_fresh(now), !ttl.is_zero());
        if policy.is_fresh(now) {
            prop_assert!(policy.staleness(now).is_zero());
        }

        let mut req = req;
        req.remove(header::CACHE_CONTROL);
        for line in req_cc.get_all(header::CACHE_CONTROL) {
            req.append(header::CACHE_CONTROL, line.clone());
        }
        let decision = reuse(&policy, &req, now);
        if policy.no_cache() || CacheControl::from_headers(&req).no_cache() {
            prop_assert_eq!(decision, Reuse::Revalidate);
        }
        if decision == Reuse::Fresh {
            prop_assert!(policy.is_fresh(now));
        }
        if policy.is_fresh(now) && !policy.no_cache() {
            prop_assert_eq!(reuse(&policy, &HeaderMap::new(), now), Reuse::Fresh);
        }
        let stale_ok = may_serve_stale_if_error(&policy, &req, now);
        if policy.must_revalidate() || policy.no_cache() {
            prop_assert!(!stale_ok);
        }
    }

    #[test]
    fn storable(
        method in method(),
        req in request_headers(),
        status in status_mostly_ok(),
        headers in response_headers(),
        options in options(),
        response_time in time(),
    ) {
        let cc = CacheControl::from_headers(&headers);
        let result = is_storable(&method, &req, status, &headers, &cc, &options, response_time);
        if method != Method::GET {
            prop_assert_eq!(result, Err(NotStorable::Method));
        }
        if let Err(reason) = result {
            prop_assert!(!reason.as_str().is_empty());
            prop_assert_eq!(reason.to_string(), reason.as_str());
        }
        if result.is_ok() {
            prop_assert!(!CacheControl::from_headers(&req).no_store());
            prop_assert!(Vary::from_headers(&headers) != Vary::Star);
        }
        let name = HeaderName::from_static("cdn-cache-control");
        if let Some(tcc) = targeted_cache_control(&headers, &name) {
            let _ = is_storable(&method, &req, status, &headers, &tcc, &options, response_time);
        }
    }
}
