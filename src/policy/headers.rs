//! Header helpers shared by the policy: HTTP-dates, delta-seconds, hop-by-hop fields.
//!
//! Everything here works on raw bytes and never panics: field values may be empty, non-UTF-8,
//! absurdly long or plain garbage.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};
use std::cell::Cell;
use std::time::{Duration, SystemTime};

/// The largest delta-seconds value the policy represents: 2^31 seconds (RFC 9111 §1.2.2).
pub const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// Parses an HTTP-date in any of the three formats of RFC 9110 §5.6.7.
///
/// Accepts the preferred IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) and the obsolete
/// RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`)
/// formats; surrounding whitespace is ignored. Returns `None` for anything else, including
/// non-ASCII bytes and dates before 1970.
///
/// Day names, month names and `GMT` are matched case-insensitively (RFC 9111 §4.2: "a cache
/// recipient SHOULD match the date formats case-insensitively"), and the day name must be
/// one but need not be the right one for the date: the date is what counts (as in Squid
/// and Traffic Server), so `THU, 18 AUG 2050 02:01:18 gmt` and `Thu Aug  8 02:01:18 2050`
/// (a Monday) both parse.
///
/// Two-digit RFC 850 years map to 1970..=2069. RFC 9110 §5.6.7 asks for "more than 50 years in
/// the future" to be read as the past, which needs a clock; the policy has none, and that
/// format has been obsolete for decades.
pub fn parse_http_date(value: &HeaderValue) -> Option<SystemTime> {
    // The preferred format, as servers send it, read from the bytes as they are: it checks
    // each of its 29 bytes, so it needs no other check.
    if let Ok(fixed) = <&[u8; IMF_FIXDATE_LEN]>::try_from(value.as_bytes()) {
        if let Some(time) = LAST_IMF_FIXDATE.with(|last| last.get().recall(fixed)) {
            return Some(time);
        }
        if let Some(time) = imf_fixdate(fixed).and_then(|date| date.to_system_time()) {
            LAST_IMF_FIXDATE.with(|last| last.set(LastDate(Some((*fixed, time)))));
            return Some(time);
        }
    }
    // RFC 9110 §5.6.7: HTTP-date is ASCII; `to_str` rejects obs-text.
    let s = value.to_str().ok()?.trim_matches([' ', '\t']).as_bytes();
    let date = imf_fixdate(s)
        .or_else(|| rfc850_date(s))
        .or_else(|| asctime_date(s))?;
    date.to_system_time()
}

/// The length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
const IMF_FIXDATE_LEN: usize = 29;

thread_local! {
    /// The IMF-fixdate this thread parsed last, and its time: an origin's responses carry the
    /// same `Date` all through a second, so a miss's `Date` is read with one comparison of 29
    /// bytes instead of parsed again (about 300 instructions).
    static LAST_IMF_FIXDATE: Cell<LastDate> = const { Cell::new(LastDate(None)) };
}

/// An IMF-fixdate, byte for byte, and the time it parsed to.
#[derive(Clone, Copy)]
struct LastDate(Option<([u8; IMF_FIXDATE_LEN], SystemTime)>);

impl LastDate {
    /// The time of `date` when it is this one, byte for byte.
    fn recall(self, date: &[u8; IMF_FIXDATE_LEN]) -> Option<SystemTime> {
        self.0
            .filter(|(bytes, _)| bytes == date)
            .map(|(_, time)| time)
    }
}

/// A calendar date and time of day, not yet checked.
struct DateTime {
    year: u64,
    month: u64,
    day: u64,
    hour: u64,
    min: u64,
    sec: u64,
}

impl DateTime {
    fn to_system_time(&self) -> Option<SystemTime> {
        let leap = self.year % 4 == 0 && (self.year % 100 != 0 || self.year % 400 == 0);
        let days_in_month = match self.month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if !(1970..=9999).contains(&self.year)
            || !(1..=days_in_month).contains(&self.day)
            || self.hour > 23
            || self.min > 59
            || self.sec > 60
        {
            return None;
        }
        // Days since 1970-01-01 (the civil-from-days inverse, for years >= 1970).
        let (y, m) = if self.month <= 2 {
            (self.year - 1, self.month + 9)
        } else {
            (self.year, self.month - 3)
        };
        let era = y / 400;
        let yoe = y % 400;
        let doy = (153 * m + 2) / 5 + self.day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = (era * 146_097 + doe).checked_sub(719_468)?;
        let secs = days * 86_400 + self.hour * 3600 + self.min * 60 + self.sec;
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }
}

const DAY_NAMES: [&[u8]; 7] = [
    b"monday",
    b"tuesday",
    b"wednesday",
    b"thursday",
    b"friday",
    b"saturday",
    b"sunday",
];
const MONTHS: [[u8; 3]; 12] = [
    *b"jan", *b"feb", *b"mar", *b"apr", *b"may", *b"jun", *b"jul", *b"aug", *b"sep", *b"oct",
    *b"nov", *b"dec",
];

/// A three-letter day name, any case.
fn is_day_name(s: &[u8]) -> bool {
    lowercase3(s).is_some_and(|lower| DAY_NAMES.iter().any(|day| day[..3] == lower))
}

/// Three bytes, ASCII letters lowercased (others unchanged).
fn lowercase3(s: &[u8]) -> Option<[u8; 3]> {
    let &[a, b, c] = s else { return None };
    Some([a, b, c].map(|byte| byte.to_ascii_lowercase()))
}

/// A full day name, any case (RFC 850 dates).
fn is_long_day_name(s: &[u8]) -> bool {
    DAY_NAMES.iter().any(|d| d.eq_ignore_ascii_case(s))
}

/// A three-letter month name, any case: 1..=12.
fn month(s: &[u8]) -> Option<u64> {
    let lower = lowercase3(s)?;
    MONTHS
        .iter()
        .position(|m| *m == lower)
        .map(|i| i as u64 + 1)
}

/// Exactly `n` ASCII digits.
fn digits(s: &[u8], n: usize) -> Option<u64> {
    if s.len() != n || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |acc, &b| acc * 10 + u64::from(b - b'0')))
}

/// `HH:MM:SS`
fn time_of_day(s: &[u8]) -> Option<(u64, u64, u64)> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    Some((
        digits(&s[..2], 2)?,
        digits(&s[3..5], 2)?,
        digits(&s[6..], 2)?,
    ))
}

/// IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`
fn imf_fixdate(s: &[u8]) -> Option<DateTime> {
    // Every part has a fixed length, so in 29 bytes each sits at a fixed place:
    // `Sun, 06 Nov 1994 08:49:37 GMT`.
    if s.len() != IMF_FIXDATE_LEN
        || s[3] != b','
        || [4, 7, 11, 16, 25].iter().any(|&i| s[i] != b' ')
    {
        return None;
    }
    if !is_day_name(&s[..3]) || !s[26..].eq_ignore_ascii_case(b"GMT") {
        return None;
    }
    let (hour, min, sec) = time_of_day(&s[17..25])?;
    Some(DateTime {
        year: digits(&s[12..16], 4)?,
        month: month(&s[8..11])?,
        day: digits(&s[5..7], 2)?,
        hour,
        min,
        sec,
    })
}

/// RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`
fn rfc850_date(s: &[u8]) -> Option<DateTime> {
    let comma = s.iter().position(|&b| b == b',')?;
    if !is_long_day_name(&s[..comma]) {
        return None;
    }
    let rest = s[comma + 1..].strip_prefix(b" ")?;
    let parts: Vec<&[u8]> = rest.split(|&b| b == b' ').collect();
    if parts.len() != 3 || !parts[2].eq_ignore_ascii_case(b"GMT") {
        return None;
    }
    let date: Vec<&[u8]> = parts[0].split(|&b| b == b'-').collect();
    if date.len() != 3 {
        return None;
    }
    let yy = digits(date[2], 2)?;
    let (hour, min, sec) = time_of_day(parts[1])?;
    Some(DateTime {
        year: if yy < 70 { 2000 + yy } else { 1900 + yy },
        month: month(date[1])?,
        day: digits(date[0], 2)?,
        hour,
        min,
        sec,
    })
}

/// asctime: `Sun Nov  6 08:49:37 1994` (a one-digit day is padded with a space)
fn asctime_date(s: &[u8]) -> Option<DateTime> {
    if s.len() != 24 || s[3] != b' ' || s[7] != b' ' || s[10] != b' ' || s[19] != b' ' {
        return None;
    }
    if !is_day_name(&s[..3]) {
        return None;
    }
    let day = match s[8] {
        b' ' => digits(&s[9..10], 1)?,
        _ => digits(&s[8..10], 2)?,
    };
    let (hour, min, sec) = time_of_day(&s[11..19])?;
    Some(DateTime {
        year: digits(&s[20..], 4)?,
        month: month(&s[4..7])?,
        day,
        hour,
        min,
        sec,
    })
}

/// Parses delta-seconds (RFC 9111 §1.2.2), saturating at 2^31 seconds.
///
/// Only a non-empty run of ASCII digits is accepted (no sign, no whitespace, no fraction);
/// anything else is `None`. Values that do not fit saturate to [`MAX_DELTA_SECONDS`]
/// (RFC 9111 §1.2.2: "the cache MUST consider the value to be 2147483648 (2^31)").
pub fn parse_delta_seconds(value: &[u8]) -> Option<Duration> {
    // RFC 9111 §1.2.2: delta-seconds = 1*DIGIT
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let secs = value.iter().fold(0u64, |acc, &b| {
        acc.saturating_mul(10)
            .saturating_add(u64::from(b - b'0'))
            .min(MAX_DELTA_SECONDS)
    });
    Some(Duration::from_secs(secs))
}

/// Removes hop-by-hop fields (RFC 9110 §7.6.1): `Connection`, the fields it names,
/// `Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`,
/// `Trailer`, `Transfer-Encoding`, `Upgrade`.
///
/// Names listed in `Connection` are matched case-insensitively; list members that are not
/// valid field names are skipped.
///
/// The cache applies it to every response it stores; a proxy applies it to what it forwards
/// in either direction.
///
/// ```
/// use http::HeaderMap;
/// use tower_cache_layer::policy::remove_hop_by_hop;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("connection", "close, X-Trace".parse()?);
/// headers.insert("x-trace", "1".parse()?);
/// headers.insert("keep-alive", "timeout=5".parse()?);
/// headers.insert("cache-control", "max-age=60".parse()?);
/// remove_hop_by_hop(&mut headers);
/// assert_eq!(headers.len(), 1);
/// assert!(headers.contains_key("cache-control"));
/// # Ok::<(), http::header::InvalidHeaderValue>(())
/// ```
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them: one pass over the names instead of a removal (a
    // hash and a probe) for each.
    if !has_hop_by_hop(headers) {
        return;
    }
    // RFC 9110 §7.6.1: "Intermediaries MUST parse a received Connection header field before a
    // message is forwarded and, for each connection-option in this field, remove any header or
    // trailer field(s) from the message with the same name as the connection-option".
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| list_members(value.as_bytes()))
        .filter_map(|member| HeaderName::from_bytes(member).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The fields an intermediary always removes: RFC 9110 §7.6.1 (Connection, Proxy-Connection,
/// Keep-Alive, TE, Transfer-Encoding, Upgrade), §11.7.1 / §11.7.2 (Proxy-Authenticate,
/// Proxy-Authorization, consumed by the proxy they address), §6.6.2 (Trailer).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Does `headers` have any field [`remove_hop_by_hop`] would remove?
pub(crate) fn has_hop_by_hop(headers: &HeaderMap) -> bool {
    // Every field it removes is one of these, or named by `Connection`, which is one.
    headers.keys().any(is_hop_by_hop)
}

/// Is `name` one of [`HOP_BY_HOP`]? Names of another length are told apart without comparing
/// text (a test checks that this agrees with the list).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    let name = name.as_str();
    match name.len() {
        2 => name == "te",
        7 => name == "trailer" || name == "upgrade",
        10 => name == "connection" || name == "keep-alive",
        16 => name == "proxy-connection",
        17 => name == "transfer-encoding",
        18 => name == "proxy-authenticate",
        19 => name == "proxy-authorization",
        _ => false,
    }
}

/// `Pragma: no-cache` on any line (RFC 9111 §5.4). Callers decide whether it applies (only
/// without a `Cache-Control` field).
pub(crate) fn pragma_no_cache(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::PRAGMA)
        .iter()
        .flat_map(|value| list_members(value.as_bytes()))
        .any(|member| member.eq_ignore_ascii_case(b"no-cache"))
}

/// Is `b` optional whitespace (RFC 9110 §5.6.3: `OWS = *( SP / HTAB )`)?
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `value` without leading and trailing OWS (RFC 9110 §5.6.3).
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| !is_ows(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// The non-empty, OWS-trimmed members of a comma-separated list (RFC 9110 §5.6.1: empty list
/// elements are ignored). Not quote-aware: only for lists of tokens.
pub(crate) fn list_members(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|member| !member.is_empty())
}

/// `input` without its leading optional whitespace (RFC 9110 §5.6.3).
pub(crate) fn skip_ows(input: &[u8]) -> &[u8] {
    let n = input
        .iter()
        .position(|&b| !is_ows(b))
        .unwrap_or(input.len());
    &input[n..]
}

/// `input` from the start of its next list member: empty list elements and the OWS around
/// them are skipped (RFC 9110 §5.6.1).
pub(crate) fn skip_list_gap(input: &[u8]) -> &[u8] {
    let n = input
        .iter()
        .position(|&b| b != b',' && !is_ows(b))
        .unwrap_or(input.len());
    &input[n..]
}

/// Is `b` a `tchar` (RFC 9110 §5.6.2)?
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The decimal digits of `n`, written at the end of `buf`.
pub(crate) fn decimal_digits(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut rest = n;
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            return &buf[start..];
        }
    }
}

/// Does `headers` say `Content-Length: n`, in one field line and no other?
pub(crate) fn says_length(headers: &HeaderMap, n: u64) -> bool {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let mut buf = [0; 20];
    values
        .next()
        .is_some_and(|value| value.as_bytes() == decimal_digits(n, &mut buf))
        && values.next().is_none()
}

/// A field value of the number `n` (`Age`, `Content-Length`). Below [`SMALL_NUMBERS`]'s
/// 10,000 (every `Age` under 2 h 46 min, most hits') it is a slice of that static text and
/// allocates nothing; above, one allocation of its exact size (`HeaderValue::from(u64)` makes
/// two).
pub(crate) fn decimal_value(n: u64) -> HeaderValue {
    if let Some(digits) = small_number(n) {
        if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from_static(digits)) {
            return value;
        }
    }
    let mut buf = [0; 20];
    let digits = Bytes::copy_from_slice(decimal_digits(n, &mut buf));
    HeaderValue::from_maybe_shared(digits).unwrap_or_else(|_| HeaderValue::from(n))
}

/// The numbers 0 to 9,999 in decimal, one after another ("0123456789101112..."), made at
/// compile time: 10 of one digit, 90 of two, 900 of three and 9,000 of four.
static SMALL_NUMBERS: [u8; SMALL_NUMBERS_LEN] = small_numbers();

const SMALL_NUMBERS_LEN: usize = 10 + 90 * 2 + 900 * 3 + 9_000 * 4;

const fn small_numbers() -> [u8; SMALL_NUMBERS_LEN] {
    let mut text = [0; SMALL_NUMBERS_LEN];
    let (mut n, mut at) = (0, 0);
    while n < 10_000 {
        let width = match n {
            0..=9 => 1,
            10..=99 => 2,
            100..=999 => 3,
            _ => 4,
        };
        let (mut rest, mut i) = (n, width);
        while i > 0 {
            i -= 1;
            text[at + i] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        at += width;
        n += 1;
    }
    text
}

/// `n`'s digits in [`SMALL_NUMBERS`], when it is below 10,000.
fn small_number(n: u64) -> Option<&'static [u8]> {
    let n = usize::try_from(n).ok()?;
    let (start, width) = match n {
        0..=9 => (n, 1),
        10..=99 => (10 + (n - 10) * 2, 2),
        100..=999 => (190 + (n - 100) * 3, 3),
        1_000..=9_999 => (2_890 + (n - 1_000) * 4, 4),
        _ => return None,
    };
    SMALL_NUMBERS.get(start..start + width)
}

/// A field value made of `text`, in one allocation of its exact size (a `String` turned into a
/// value directly keeps its spare capacity and takes a second allocation).
pub(crate) fn exact_value(text: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(Bytes::from(text.into_bytes().into_boxed_slice())).ok()
}

/// The fields the cache may add to a stored header map or to a hit's copy of it (`Age`,
/// `X-Cache` and `Cache-Status` on an answer; `Content-Length` and `Age` on a stored one):
/// the room [`compacted`] leaves in a map's index table, so that adding them does not grow it.
pub(crate) const ADDED_FIELDS: usize = 3;

/// The most field names a stored response, or a request the cache looks up, may have.
/// `http`'s maps hold at most 24,576 names and panic past that; the cache adds fields to a
/// hit (its status fields, `Content-Range` and `Content-Length` to a part) and to a forwarded
/// request (validators, `Range` and `If-Range`), so what it keeps or looks up stays well
/// below. Larger responses are forwarded unstored; larger requests go forward as they are.
/// (hyper accepts 100 fields by default; Varnish stores no more than 64.)
pub(crate) const MAX_NAMES: usize = 16_384;

/// Has `headers` no more names than the cache handles ([`MAX_NAMES`])?
pub(crate) fn within_name_limit(headers: &HeaderMap) -> bool {
    headers.keys_len() <= MAX_NAMES
}

/// `headers` rebuilt to hold no more than it must: every value copied into one buffer (one
/// allocation, shared by reference count when hits clone the map, instead of one per value),
/// an index table with room for [`ADDED_FIELDS`] more fields, and a field list as long as the
/// fields (what the store's weigher counts). Values that were slices of a larger buffer
/// (hyper's read buffer) no longer keep it alive.
pub(crate) fn compacted(headers: &HeaderMap) -> HeaderMap {
    // The index holds names: room for the added ones beside those there.
    let needed = headers.keys_len() + ADDED_FIELDS;
    // A clone's field list is as long as the fields, and its index table as large as the
    // original's: kept when that has room for the added fields, and is no larger than
    // `reserve` or `with_capacity` make for them (at most twice as many).
    let mut owned = if (needed..=2 * needed).contains(&headers.capacity()) {
        headers.clone()
    } else if let Ok(mut roomy) = HeaderMap::try_with_capacity(needed) {
        // `with_capacity` makes the field list as long as the index table allows (12 places
        // for 4 fields with 3 spare: 1.2 KiB); its clone keeps the table and not the places.
        for (name, value) in headers {
            roomy.append(name.clone(), value.clone());
        }
        roomy.clone()
    } else {
        // Within `ADDED_FIELDS` of the most names a map can hold: no room to leave.
        headers.clone()
    };
    let total = owned.values().map(HeaderValue::len).sum();
    let mut buffer = BytesMut::with_capacity(total);
    for value in owned.values() {
        buffer.extend_from_slice(value.as_bytes());
    }
    let buffer = buffer.freeze();
    // Each value pointed at its bytes in the buffer, in the same order.
    let mut at = 0;
    for value in owned.values_mut() {
        let end = at + value.len();
        if let Ok(mut copy) = HeaderValue::from_maybe_shared(buffer.slice(at..end)) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
        at = end;
    }
    owned
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn is_hop_by_hop_is_the_list() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in ["tx", "trailers", "connections", "host", "x-upgrade", "age"] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn says_length_only_of_one_equal_field_line() {
        let mut headers = HeaderMap::new();
        assert!(!says_length(&headers, 0));
        headers.insert("content-length", HeaderValue::from_static("1024"));
        assert!(says_length(&headers, 1024));
        assert!(!says_length(&headers, 102));
        assert!(!says_length(&headers, 10240));
        headers.append("content-length", HeaderValue::from_static("1024"));
        assert!(!says_length(&headers, 1024));
    }

    #[test]
    fn decimal_values_are_the_numbers_digits() {
        for n in [0, 7, 10, 99, 3600, u64::MAX] {
            assert_eq!(decimal_value(n), HeaderValue::from(n));
        }
        // Every number the static table holds, and those either side of its bounds.
        for n in (0..10_001).chain([99_999, 100_000]) {
            assert_eq!(decimal_value(n), HeaderValue::from(n), "{n}");
        }
        assert_eq!(small_number(10_000), None);
        assert_eq!(
            exact_value("cache; hit".to_owned()),
            Some(HeaderValue::from_static("cache; hit"))
        );
        assert_eq!(exact_value("bad\nvalue".to_owned()), None);
    }

    #[test]
    fn compacted_keeps_every_field_in_order_in_one_buffer() {
        let mut headers = HeaderMap::new();
        headers.append("x-two", HeaderValue::from_static("a"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.append("x-two", HeaderValue::from_static("b"));
        let mut secret = HeaderValue::from_static("s3cret");
        secret.set_sensitive(true);
        headers.insert("x-secret", secret);
        let compact = compacted(&headers);
        assert_eq!(compact, headers);
        let two: Vec<_> = compact.get_all("x-two").iter().collect();
        assert_eq!(two, ["a", "b"]);
        assert!(compact["x-secret"].is_sensitive());
        assert!(compact.capacity() >= headers.keys_len() + 3);
        // Every value points into one buffer.
        let starts: Vec<usize> = compact
            .values()
            .map(|v| v.as_bytes().as_ptr() as usize)
            .collect();
        let (first, last) = (starts.iter().min().unwrap(), starts.iter().max().unwrap());
        assert!(last - first < 32, "values not in one buffer");
    }

    // A map with room for the added fields is copied as it is (its index table kept), one
    // with too much room or too little gets a table of its own.
    #[test]
    fn compacted_keeps_an_index_with_room_and_makes_one_otherwise() {
        let mut headers = HeaderMap::new();
        for (name, value) in [("content-type", "text/plain"), ("x-a", "1"), ("x-b", "2")] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers.reserve(ADDED_FIELDS);
        let compact = compacted(&headers);
        assert_eq!(compact, headers);
        assert_eq!(compact.capacity(), headers.capacity());
        let mut roomy = headers.clone();
        roomy.reserve(200);
        let compact = compacted(&roomy);
        assert_eq!(compact, headers);
        assert!(compact.capacity() >= 6 && compact.capacity() < 20);
    }

    // A map of as many names as `http` allows (24,576: three quarters of its largest index
    // table) is copied without the room, rather than failing to make one (`with_capacity`
    // would panic).
    #[test]
    fn compacted_copies_a_map_at_the_size_limit() {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_static("v");
        for n in 0.. {
            let name = HeaderName::try_from(format!("x-{n}")).unwrap();
            if headers.try_insert(name, value.clone()).is_err() {
                break;
            }
        }
        assert_eq!(headers.len(), 24_576);
        let compact = compacted(&headers);
        assert_eq!(compact.len(), headers.len());
        assert_eq!(compact, headers);
    }

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    // 1994-11-06T08:49:37Z, the example date of RFC 9110 §5.6.7.
    fn rfc_example() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    // RFC 9110 §5.6.7: IMF-fixdate
    #[test]
    fn http_date_imf_fixdate() {
        assert_eq!(
            parse_http_date(&hv("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(rfc_example())
        );
    }

    // The date parsed last is recalled only for the same bytes: each date parses to its own
    // time however they alternate, and an invalid one after a valid one is still invalid.
    #[test]
    fn http_date_recalled_only_for_the_same_bytes() {
        let later = rfc_example() + Duration::from_secs(1);
        for _ in 0..2 {
            assert_eq!(
                parse_http_date(&hv("Sun, 06 Nov 1994 08:49:37 GMT")),
                Some(rfc_example())
            );
            assert_eq!(
                parse_http_date(&hv("Sun, 06 Nov 1994 08:49:37 GMT")),
                Some(rfc_example())
            );
            assert_eq!(
                parse_http_date(&hv("Sun, 06 Nov 1994 08:49:38 GMT")),
                Some(later)
            );
            assert_eq!(
                parse_http_date(&hv("SUN, 06 NOV 1994 08:49:38 gmt")),
                Some(later)
            );
            assert_eq!(parse_http_date(&hv("Sun, 31 Nov 1994 08:49:38 GMT")), None);
        }
    }

    // RFC 9110 §5.6.7: HTTP-date is ASCII; the preferred format is read from the raw bytes,
    // so a byte of obs-text in any of its places must still fail it.
    #[test]
    fn http_date_with_obs_text_is_none() {
        let good = *b"Sun, 06 Nov 1994 08:49:37 GMT";
        for at in 0..good.len() {
            let mut bad = good;
            bad[at] = 0xE9;
            let value = HeaderValue::from_bytes(&bad).unwrap();
            assert_eq!(parse_http_date(&value), None, "byte {at}");
        }
        assert_eq!(
            parse_http_date(&hv(" sun, 06 nov 1994 08:49:37 gmt ")),
            Some(rfc_example())
        );
    }

    // RFC 9110 §5.6.7: obsolete RFC 850 format
    #[test]
    fn http_date_rfc850() {
        assert_eq!(
            parse_http_date(&hv("Sunday, 06-Nov-94 08:49:37 GMT")),
            Some(rfc_example())
        );
    }

    // RFC 9110 §5.6.7: obsolete asctime format
    #[test]
    fn http_date_asctime() {
        assert_eq!(
            parse_http_date(&hv("Sun Nov  6 08:49:37 1994")),
            Some(rfc_example())
        );
    }

    // RFC 9110 §5.6.7: surrounding whitespace is not part of the date
    #[test]
    fn http_date_surrounding_whitespace_is_ignored() {
        assert_eq!(
            parse_http_date(&hv("  Sun, 06 Nov 1994 08:49:37 GMT ")),
            Some(rfc_example())
        );
    }

    // RFC 9111 §4.2: date formats are matched case-insensitively
    // (freshness-expires-wrong-case-*)
    #[test]
    fn http_date_any_case() {
        for s in [
            "SUN, 06 NOV 1994 08:49:37 GMT",
            "sun, 06 nov 1994 08:49:37 gmt",
            "Sun, 06 Nov 1994 08:49:37 gMT",
            "SUNDAY, 06-nov-94 08:49:37 Gmt",
            "sun NOV  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(&hv(s)), Some(rfc_example()), "{s:?}");
        }
    }

    // The day name must be a day name, but need not match the date
    // (freshness-expires-ansi-c: 8 Aug 2050 is a Monday)
    #[test]
    fn http_date_wrong_weekday_is_accepted() {
        for s in [
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Friday, 06-Nov-94 08:49:37 GMT",
            "Thu Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(&hv(s)), Some(rfc_example()), "{s:?}");
        }
        assert_eq!(
            parse_http_date(&hv("Thu Aug  8 02:01:18 2050")),
            Some(UNIX_EPOCH + Duration::from_secs(2_543_536_878))
        );
        for s in [
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
            "Sunday, 06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(&hv(s)), None, "{s:?}");
        }
        assert!(parse_http_date(&hv("Thu, 29 Feb 2024 00:00:00 GMT")).is_some());
    }

    // RFC 9111 §5.3: invalid dates (e.g. "0") are not dates
    #[test]
    fn http_date_garbage_is_none() {
        for s in [
            "",
            "0",
            "-1",
            "tomorrow",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT, extra",
            "Wednesday, 1",
            "Sun Nov 6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(&hv(s)), None, "{s:?}");
        }
        let non_utf8 = HeaderValue::from_bytes(b"Sun, 06 Nov 1994 08:49:37 GM\xff").unwrap();
        assert_eq!(parse_http_date(&non_utf8), None);
    }

    // RFC 9111 §1.2.2: delta-seconds = 1*DIGIT
    #[test]
    fn delta_seconds_digits() {
        assert_eq!(parse_delta_seconds(b"0"), Some(Duration::ZERO));
        assert_eq!(parse_delta_seconds(b"60"), Some(Duration::from_secs(60)));
        assert_eq!(parse_delta_seconds(b"007"), Some(Duration::from_secs(7)));
    }

    // RFC 9111 §1.2.2: anything but digits is not delta-seconds
    #[test]
    fn delta_seconds_rejects_non_digits() {
        for v in [
            &b""[..],
            b" 1",
            b"1 ",
            b"-1",
            b"+1",
            b"1.5",
            b"1e3",
            b"0x10",
            b"abc",
            b"\xff",
            "\u{0661}".as_bytes(),
        ] {
            assert_eq!(parse_delta_seconds(v), None, "{v:?}");
        }
    }

    // RFC 9111 §1.2.2: values beyond 2^31 saturate to 2^31
    #[test]
    fn delta_seconds_saturate_at_2_pow_31() {
        let max = Some(Duration::from_secs(MAX_DELTA_SECONDS));
        assert_eq!(
            parse_delta_seconds(b"2147483647"),
            Some(Duration::from_secs(2_147_483_647))
        );
        assert_eq!(parse_delta_seconds(b"2147483648"), max);
        assert_eq!(parse_delta_seconds(b"2147483649"), max);
        assert_eq!(
            parse_delta_seconds(b"99999999999999999999999999999999999999"),
            max
        );
        assert_eq!(parse_delta_seconds("9".repeat(100_000).as_bytes()), max);
    }

    // RFC 9110 §7.6.1: the fixed hop-by-hop fields are removed, others kept
    #[test]
    fn hop_by_hop_fixed_fields_removed() {
        let mut h = HeaderMap::new();
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ] {
            h.append(HeaderName::from_static(name), hv("x"));
        }
        h.insert(header::CACHE_CONTROL, hv("max-age=60"));
        h.insert(header::CONTENT_TYPE, hv("text/plain"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2, "{h:?}");
        assert!(h.contains_key(header::CACHE_CONTROL));
        assert!(h.contains_key(header::CONTENT_TYPE));
    }

    // RFC 9110 §7.6.1: fields named by Connection are removed, case-insensitively, on every line
    #[test]
    fn hop_by_hop_connection_named_fields_removed() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, hv("close, X-Foo ,,\tx-bar"));
        h.append(header::CONNECTION, hv("X-Baz"));
        h.insert("x-foo", hv("1"));
        h.append("x-bar", hv("2"));
        h.append("x-bar", hv("3"));
        h.insert("x-baz", hv("4"));
        h.insert("x-keep", hv("5"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h.get("x-keep").unwrap(), "5");
    }

    // RFC 9110 §7.6.1: invalid connection-options are skipped without panicking
    #[test]
    fn hop_by_hop_invalid_connection_options_skipped() {
        let mut h = HeaderMap::new();
        h.append(
            header::CONNECTION,
            HeaderValue::from_bytes(b"bad name, \xff\xfe, (x), x-gone").unwrap(),
        );
        h.insert("x-gone", hv("1"));
        h.insert("x-stay", hv("1"));
        remove_hop_by_hop(&mut h);
        assert!(!h.contains_key("x-gone"));
        assert!(h.contains_key("x-stay"));
        assert!(!h.contains_key(header::CONNECTION));
    }

    // RFC 9111 §5.4: Pragma no-cache, case-insensitive, among other list members
    #[test]
    fn pragma_no_cache_detected() {
        let mut h = HeaderMap::new();
        assert!(!pragma_no_cache(&h));
        h.append(header::PRAGMA, hv("foo"));
        assert!(!pragma_no_cache(&h));
        h.append(header::PRAGMA, hv("bar, No-Cache"));
        assert!(pragma_no_cache(&h));
    }

    #[test]
    fn trim_ows_handles_edges() {
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b" a b\t"), b"a b");
    }
}
