//! Drives a `CacheLayer` (a 64 KiB memory store, default options) with a sequence of requests, each
//! answered, if the cache forwards it, by an origin response the input also gives: methods,
//! targets, header fields, statuses and bodies are all the fuzzer's. Requests and responses
//! that `http` cannot represent are skipped, as hyper would reject them.
//!
//! Input: exchanges separated by a NUL byte, at most 12. An exchange is
//!
//! ```text
//! GET /path            request line: a method and a path or absolute URI
//! range: bytes=0-3     request fields, one a line
//! --                   the origin's response from here
//! 200                  its status
//! cache-control: max-age=60
//!                      an empty line, then the body
//! body bytes
//! ```
//!
//! Checks, besides never panicking (nor hanging):
//! - every answer says `X-Cache: HIT` or `MISS`, every hit has an `Age`, and a hit to HEAD
//!   has no body;
//! - a `200` hit to a GET carries the body of a `200` response the origin sent for that key
//!   (for the same cache key), one that was storable as far as a plain reading of its fields
//!   tells: not `no-store` (without `must-understand`), not unqualified `private`, not to a request with `Authorization`
//!   unless `public`, `s-maxage` or `must-revalidate` allowed it, and no `Set-Cookie` unless
//!   its `Cache-Control` names the field; a `206` hit to a GET with a `Content-Range`, the
//!   slice it names of such a body of the length it names. Keys the origin ever sent a `206`
//!   for are left out: a completed part joins two of its responses.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use tower::{ServiceExt, service_fn};
use tower_cache_layer::{CacheKey, CacheLayer};

/// The origin's response for the exchange being played, and what it has sent so far.
#[derive(Default)]
struct Origin {
    next: Option<(StatusCode, HeaderMap, Bytes)>,
    /// Per cache key: the bodies of `200` responses that may be stored, and whether the
    /// origin ever sent a `206`.
    sent: HashMap<String, (HashSet<Bytes>, bool)>,
}

impl Origin {
    /// Answers a forwarded request: the exchange's response the first time, a plain fresh
    /// one after that (a revalidation, the rest of a part).
    fn answer(&mut self, req: &Request<Full<Bytes>>) -> Response<Full<Bytes>> {
        let (status, headers, body) = self.next.take().unwrap_or_else(|| {
            let mut headers = HeaderMap::new();
            headers.insert("cache-control", HeaderValue::from_static("max-age=60"));
            (StatusCode::OK, headers, Bytes::from_static(b"again"))
        });
        if let Some(key) = CacheKey::from_parts(req.uri(), req.headers()) {
            let (bodies, partial) = self.sent.entry(key.to_string()).or_default();
            *partial |= status == StatusCode::PARTIAL_CONTENT;
            if status == StatusCode::OK && may_be_stored(req.headers(), &headers) {
                bodies.insert(body.clone());
            }
        }
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

/// The directives of `headers`' `Cache-Control` lines: lowercased names, and whether each has
/// an argument (`=`, a token or a quoted string, skipped as a whole).
fn directives(headers: &HeaderMap) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    for line in headers.get_all("cache-control") {
        let mut name = String::new();
        let (mut in_value, mut quoted) = (false, false);
        for &b in line.as_bytes() {
            match b {
                b'"' if in_value => quoted = !quoted,
                _ if quoted => {}
                b',' => {
                    found.push((std::mem::take(&mut name), in_value));
                    in_value = false;
                }
                b'=' => in_value = true,
                _ if !in_value && !b.is_ascii_whitespace() => {
                    name.push(b.to_ascii_lowercase() as char);
                }
                _ => {}
            }
        }
        found.push((name, in_value));
    }
    found
}

/// Whether a plain reading of its fields lets a shared cache store a response (`resp`) to a
/// request (`req`); `true` whenever in doubt.
fn may_be_stored(req: &HeaderMap, resp: &HeaderMap) -> bool {
    let found = directives(resp);
    let has = |d: &str| found.iter().any(|(n, _)| n == d);
    // Only the bare form, and only when no form with an argument stands beside it (a
    // qualified `private="x"`, or the token form `private=x`, is storable without the field).
    let only_bare = |d: &str| {
        found.iter().any(|(n, arg)| n == d && !arg) && !found.iter().any(|(n, arg)| n == d && *arg)
    };
    // RFC 9111 §5.2.2.3: `must-understand` may override `no-store`.
    if (only_bare("no-store") && !has("must-understand")) || only_bare("private") {
        return false;
    }
    if req.contains_key("authorization")
        && !(has("public") || has("s-maxage") || has("must-revalidate"))
    {
        return false;
    }
    let names_set_cookie = resp.get_all("cache-control").iter().any(|line| {
        line.as_bytes()
            .to_ascii_lowercase()
            .windows(10)
            .any(|w| w == b"set-cookie")
    });
    !resp.contains_key("set-cookie") || names_set_cookie
}

/// `Content-Range: bytes FIRST-LAST/LENGTH`, as numbers.
fn content_range(headers: &HeaderMap) -> Option<(usize, usize, usize)> {
    let value = headers.get("content-range")?.to_str().ok()?;
    let (range, len) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, len.parse().ok()?))
}

/// An exchange read from the input: the request, and the origin's response to it.
struct Exchange {
    request: Request<Full<Bytes>>,
    response: (StatusCode, HeaderMap, Bytes),
}

/// Reads `name: value` lines into a map, skipping those `http` rejects.
fn fields<'a>(lines: impl Iterator<Item = &'a [u8]>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(&line[..colon]);
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (name, value) {
            map.append(name, value);
        }
    }
    map
}

/// The exchange `input` writes (see the module's docs); `None` when it is not one.
fn exchange(input: &[u8]) -> Option<Exchange> {
    let split = input.windows(4).position(|w| w == b"\n--\n")?;
    let (req, rest) = (&input[..split], &input[split + 4..]);
    let mut req_lines = req.split(|&b| b == b'\n');
    let line = req_lines.next()?;
    let space = line.iter().position(|&b| b == b' ')?;
    let method = Method::from_bytes(&line[..space]).ok()?;
    let target = std::str::from_utf8(&line[space + 1..]).ok()?;
    let uri = if target.starts_with('/') {
        format!("http://example.test{target}")
    } else {
        target.to_owned()
    };
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .ok()?;
    *request.headers_mut() = fields(req_lines);

    let end = rest
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(rest.len());
    let head = &rest[..end];
    let body = rest.get(end + 2..).unwrap_or_default();
    let mut resp_lines = head.split(|&b| b == b'\n');
    let status = std::str::from_utf8(resp_lines.next()?).ok()?;
    let status = StatusCode::from_bytes(status.trim().as_bytes()).ok()?;
    let headers = fields(resp_lines);
    Some(Exchange {
        request,
        response: (status, headers, Bytes::copy_from_slice(body)),
    })
}

fuzz_target!(|data: &[u8]| {
    let exchanges: Vec<Exchange> = data
        .split(|&b| b == 0)
        .take(12)
        .filter_map(exchange)
        .collect();
    if exchanges.is_empty() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let origin = Arc::new(Mutex::new(Origin::default()));
        let inner = {
            let origin = Arc::clone(&origin);
            service_fn(move |req: Request<Full<Bytes>>| {
                let response = origin.lock().unwrap().answer(&req);
                async move { Ok::<_, Infallible>(response) }
            })
        };
        // A small store: a few dozen entries, made quickly for every input.
        let layer = CacheLayer::builder().max_capacity(64 * 1024).build();
        let cache = tower::ServiceBuilder::new().layer(layer).service(inner);
        for Exchange { request, response } in exchanges {
            origin.lock().unwrap().next = Some(response);
            let is_get = request.method() == Method::GET;
            let is_head = request.method() == Method::HEAD;
            let key = CacheKey::from_parts(request.uri(), request.headers());
            let answer = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                cache.clone().oneshot(request),
            )
            .await
            .expect("answered within 5 s")
            .unwrap();
            let (parts, body) = answer.into_parts();
            let body = tokio::time::timeout(std::time::Duration::from_secs(5), body.collect())
                .await
                .expect("body within 5 s");
            let Ok(body) = body.map(|collected| collected.to_bytes());
            let x_cache = parts.headers.get("x-cache").map(HeaderValue::as_bytes);
            assert!(
                matches!(x_cache, Some(b"HIT" | b"MISS")),
                "X-Cache: {x_cache:?}"
            );
            if x_cache != Some(b"HIT") {
                continue;
            }
            assert!(parts.headers.contains_key("age"), "a hit without Age");
            if is_head {
                assert!(body.is_empty(), "a hit to HEAD with a body: {body:?}");
            }
            let Some(key) = key.filter(|_| is_get) else {
                continue;
            };
            let origin = origin.lock().unwrap();
            let bodies = match origin.sent.get(&key.to_string()) {
                Some((_, true)) => continue,
                Some((bodies, false)) => bodies,
                None => panic!("a hit for {key}, which never reached the origin"),
            };
            match parts.status {
                StatusCode::OK => assert!(
                    bodies.contains(&body),
                    "a hit for {key} served {body:?}, not a storable 200 body the origin sent \
                     for it ({bodies:?})"
                ),
                // A single part: a slice of such a body, where `Content-Range` says.
                StatusCode::PARTIAL_CONTENT => {
                    let Some((first, last, len)) = content_range(&parts.headers) else {
                        continue;
                    };
                    assert!(
                        bodies.iter().any(|whole| whole.len() == len
                            && whole.get(first..=last) == Some(&body[..])),
                        "a part {first}-{last}/{len} of {key} served {body:?}, not a slice of a \
                         storable 200 body the origin sent for it ({bodies:?})"
                    );
                }
                _ => {}
            }
        }
    });
});
