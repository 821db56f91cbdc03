//! `Cache-Control` parsing (RFC 9111 §5.2).
//!
//! The parser is byte-based and total: it accepts any field value (empty, non-UTF-8, garbage,
//! huge numbers) and extracts what it can. Rules, each cited where it is applied:
//!
//! - all field lines are combined, directives are comma-separated and their names are
//!   case-insensitive (RFC 9111 §5.2);
//! - an argument is a token or a quoted-string, and both forms are accepted for every
//!   directive (RFC 9111 §5.2); whitespace around `=` is tolerated;
//! - unknown directives are ignored (RFC 9111 §5.2.3);
//! - for a directive with an argument the first occurrence wins (RFC 9111 §4.2.1);
//! - an invalid `max-age` / `s-maxage` (non-integer, negative, empty, missing) makes the
//!   response stale: `Some(Duration::ZERO)` (RFC 9111 §4.2.1);
//! - delta-seconds saturate at 2^31 (RFC 9111 §1.2.2);
//! - a malformed element (trailing garbage after the name or the argument, an unterminated
//!   quoted-string) is read in the most restrictive way: restrictive flags (`no-store`,
//!   `no-cache`, `private`, `must-revalidate`, …) still apply unqualified, arguments count as
//!   invalid, and permissive flags (`public`, `only-if-cached`) are ignored
//!   (RFC 9111 §4.2.1: "the most restrictive directive should be honored").

use super::headers::{
    is_ows, is_tchar, parse_delta_seconds, pragma_no_cache, skip_list_gap, skip_ows, trim_ows,
};
use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// A parsed `Cache-Control` field (all field lines combined), request or response side.
///
/// Build it with [`CacheControl::from_headers`] (or [`CacheControl::from_values`] for a
/// targeted field such as `CDN-Cache-Control`); it never fails. The default value is the
/// parse of an absent field: no directive at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// At least one syntactically valid directive (known or not) was seen.
    any: bool,
    /// Parsed from a targeted field (RFC 9213) by [`targeted_cache_control`].
    targeted: bool,
    no_store: bool,
    no_cache: Option<FieldList>,
    private: Option<FieldList>,
    public: bool,
    must_revalidate: bool,
    proxy_revalidate: bool,
    must_understand: bool,
    no_transform: bool,
    only_if_cached: bool,
    max_age: Option<Duration>,
    s_maxage: Option<Duration>,
    max_stale: Option<Option<Duration>>,
    min_fresh: Option<Duration>,
    stale_while_revalidate: Option<Duration>,
    stale_if_error: Option<Duration>,
}

/// The argument of `no-cache` / `private`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum FieldList {
    /// The unqualified form: applies to the whole response.
    All,
    /// The qualified form: applies to the named fields only.
    Fields(Vec<HeaderName>),
}

/// One directive's argument as found in the field value.
enum Arg<'a> {
    /// `name` alone.
    None,
    /// `name=value`, the value unquoted (escapes still in place for quoted-strings).
    Value(&'a [u8]),
    /// `name=` with garbage, an unterminated quoted-string or trailing junk.
    Malformed,
}

impl CacheControl {
    /// Parses every `Cache-Control` line of `headers`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self::from_values(headers.get_all(http::header::CACHE_CONTROL))
    }

    /// Parses the given field lines (used for targeted fields such as `CDN-Cache-Control` too).
    ///
    /// Lines are combined in order, as if joined with commas (RFC 9110 §5.3).
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Self {
        let mut cc = Self::default();
        for value in values {
            cc.parse_line(value.as_bytes());
        }
        cc
    }

    /// No directive at all was present (an absent, empty or all-garbage field).
    ///
    /// Unknown but well-formed directives count as present.
    pub fn is_empty(&self) -> bool {
        !self.any
    }

    /// `Pragma: no-cache` stands for `Cache-Control: no-cache` (RFC 9111 §5.4): `headers`, whose
    /// `Cache-Control` this is, say `Pragma: no-cache` and have no `Cache-Control` line at all.
    /// A targeted field's directives are never empty, so `Pragma` never applies beside them.
    /// `Pragma` is looked up first: most messages have none, and `Cache-Control` is then not
    /// looked up again.
    pub(crate) fn pragma_no_cache_applies(&self, headers: &HeaderMap) -> bool {
        self.is_empty() && pragma_no_cache(headers) && !headers.contains_key(CACHE_CONTROL)
    }

    /// Parsed from a targeted field such as `CDN-Cache-Control` by [`targeted_cache_control`].
    ///
    /// Such directives replace both `Cache-Control` and `Expires` (RFC 9213 §2.2): the
    /// freshness and storability rules skip `Expires` when this is true, and a targeted value
    /// is never [`is_empty`](Self::is_empty).
    pub fn is_targeted(&self) -> bool {
        self.targeted
    }

    /// `no-store` (§5.2.1.5, §5.2.2.5).
    pub fn no_store(&self) -> bool {
        self.no_store
    }

    /// `no-cache`, in any form (§5.2.1.4, §5.2.2.4).
    ///
    /// True for both the unqualified form and `no-cache="field, …"`; see
    /// [`no_cache_fields`](Self::no_cache_fields) to tell them apart.
    pub fn no_cache(&self) -> bool {
        self.no_cache.is_some()
    }

    /// The field names of a qualified `no-cache="…"` (§5.2.2.4).
    ///
    /// `None` when `no-cache` is absent or unqualified (the unqualified form wins when both
    /// appear); otherwise the union of all listed, valid field names, lowercased and
    /// deduplicated. A list without any valid field name counts as unqualified.
    pub fn no_cache_fields(&self) -> Option<&[HeaderName]> {
        match &self.no_cache {
            Some(FieldList::Fields(fields)) => Some(fields),
            _ => None,
        }
    }

    /// `private`, in any form (§5.2.2.7).
    ///
    /// True for both the unqualified form and `private="field, …"`; see
    /// [`private_fields`](Self::private_fields) to tell them apart.
    pub fn private(&self) -> bool {
        self.private.is_some()
    }

    /// The field names of a qualified `private="…"` (§5.2.2.7).
    ///
    /// Same rules as [`no_cache_fields`](Self::no_cache_fields).
    pub fn private_fields(&self) -> Option<&[HeaderName]> {
        match &self.private {
            Some(FieldList::Fields(fields)) => Some(fields),
            _ => None,
        }
    }

    /// `public` (§5.2.2.9).
    pub fn public(&self) -> bool {
        self.public
    }

    /// `must-revalidate` (§5.2.2.2).
    pub fn must_revalidate(&self) -> bool {
        self.must_revalidate
    }

    /// `proxy-revalidate` (§5.2.2.8).
    pub fn proxy_revalidate(&self) -> bool {
        self.proxy_revalidate
    }

    /// `must-understand` (§5.2.2.3).
    pub fn must_understand(&self) -> bool {
        self.must_understand
    }

    /// `no-transform` (§5.2.1.6, §5.2.2.6).
    pub fn no_transform(&self) -> bool {
        self.no_transform
    }

    /// `max-age` (§5.2.1.1, §5.2.2.1); an invalid value yields `Some(Duration::ZERO)`.
    ///
    /// The first occurrence wins; values saturate at 2^31 seconds.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// `s-maxage` (§5.2.2.10); an invalid value yields `Some(Duration::ZERO)`.
    ///
    /// The first occurrence wins; values saturate at 2^31 seconds.
    pub fn s_maxage(&self) -> Option<Duration> {
        self.s_maxage
    }

    /// `max-stale` (§5.2.1.2): `Some(None)` without a value (any staleness), `Some(Some(d))` with one.
    ///
    /// An invalid value yields `Some(Some(Duration::ZERO))`: no staleness accepted.
    pub fn max_stale(&self) -> Option<Option<Duration>> {
        self.max_stale
    }

    /// `min-fresh` (§5.2.1.3).
    ///
    /// A missing or invalid value is ignored (`None`).
    pub fn min_fresh(&self) -> Option<Duration> {
        self.min_fresh
    }

    /// `only-if-cached` (§5.2.1.7).
    pub fn only_if_cached(&self) -> bool {
        self.only_if_cached
    }

    /// `stale-while-revalidate` (RFC 5861 §3).
    ///
    /// A missing or invalid value is ignored (`None`): no stale serving.
    pub fn stale_while_revalidate(&self) -> Option<Duration> {
        self.stale_while_revalidate
    }

    /// `stale-if-error` (RFC 5861 §4).
    ///
    /// A missing or invalid value is ignored (`None`): no stale serving.
    pub fn stale_if_error(&self) -> Option<Duration> {
        self.stale_if_error
    }

    /// Parses one field line and merges its directives into `self`.
    fn parse_line(&mut self, line: &[u8]) {
        let mut rest = line;
        loop {
            rest = skip_list_gap(rest);
            if rest.is_empty() {
                return;
            }
            let (name, arg, after) = split_directive(rest);
            rest = after;
            // RFC 9111 §5.2: cache-directive = token [ "=" ( token / quoted-string ) ]
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                continue;
            }
            self.any = true;
            self.apply(name, arg);
        }
    }

    /// Records one directive. Names are case-insensitive (RFC 9111 §5.2).
    fn apply(&mut self, name: &[u8], arg: Arg<'_>) {
        // Permissive flags take no argument; anything else is read restrictively.
        let bare = matches!(arg, Arg::None);
        // Lowercased on the stack: a name longer than every known one is an extension.
        let mut buf = [0u8; 24];
        let Some(lower) = buf.get_mut(..name.len()) else {
            return;
        };
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        match &*lower {
            // RFC 9111 §5.2.1.5, §5.2.2.5
            b"no-store" => self.no_store = true,
            // RFC 9111 §5.2.1.4, §5.2.2.4: optional quoted list of field names
            b"no-cache" => merge_field_list(&mut self.no_cache, &arg),
            // RFC 9111 §5.2.2.7: optional quoted list of field names
            b"private" => merge_field_list(&mut self.private, &arg),
            // RFC 9111 §5.2.2.9: permissive, so ignored when malformed or given an argument
            b"public" => self.public |= bare,
            // RFC 9111 §5.2.2.2
            b"must-revalidate" => self.must_revalidate = true,
            // RFC 9111 §5.2.2.8
            b"proxy-revalidate" => self.proxy_revalidate = true,
            // RFC 9111 §5.2.2.3
            b"must-understand" => self.must_understand = true,
            // RFC 9111 §5.2.1.6, §5.2.2.6
            b"no-transform" => self.no_transform = true,
            // RFC 9111 §5.2.1.7: permissive for the cache, so ignored when malformed or given
            // an argument
            b"only-if-cached" => self.only_if_cached |= bare,
            // RFC 9111 §5.2.1.1, §5.2.2.1, §4.2.1: invalid freshness information is stale
            b"max-age" => first(&mut self.max_age, || delta_or_zero(&arg)),
            // RFC 9111 §5.2.2.10, §4.2.1: invalid freshness information is stale
            b"s-maxage" => first(&mut self.s_maxage, || delta_or_zero(&arg)),
            // RFC 9111 §5.2.1.2: the argument is optional; an invalid one accepts no staleness
            b"max-stale" => first(&mut self.max_stale, || match &arg {
                Arg::None => None,
                _ => Some(delta_or_zero(&arg)),
            }),
            // RFC 9111 §5.2.1.3: an invalid value is ignored (first occurrence still wins)
            b"min-fresh" => first_opt(&mut self.min_fresh, delta(&arg)),
            // RFC 5861 §3
            b"stale-while-revalidate" => first_opt(&mut self.stale_while_revalidate, delta(&arg)),
            // RFC 5861 §4
            b"stale-if-error" => first_opt(&mut self.stale_if_error, delta(&arg)),
            // RFC 9111 §5.2.3: unknown extension directives are ignored
            _ => {}
        }
    }
}

/// The directives of a targeted cache-control field (RFC 9213), such as `CDN-Cache-Control`.
///
/// Returns `Some` when `field` is present in `headers` with a valid, non-empty value: all its
/// lines, combined with `", "`, must parse as a Structured Fields Dictionary (RFC 8941 §4.2:
/// lowercase keys; values that are Integers, Decimals, Strings, Tokens, Byte Sequences,
/// Booleans or Inner Lists; parameters allowed and ignored). Any parse error, or an empty
/// dictionary, makes the field invalid: `None`, and the caller falls back to
/// `Cache-Control` and `Expires` (RFC 9213 §2.1, §2.2).
///
/// When it is `Some`, the caller uses it *instead of* the `Cache-Control` field, as the `cc`
/// of [`is_storable`](super::storable::is_storable), [`freshness_lifetime`](super::freshness::freshness_lifetime)
/// and `ResponsePolicy::new`; these then ignore `Expires` too
/// ([`CacheControl::is_targeted`]). Values map onto the `Cache-Control` directives they
/// stand for (RFC 9213 §2.1): Boolean true is the bare directive, Boolean false omits it,
/// Strings are a quoted argument. A known directive whose value has the wrong type makes
/// the whole field invalid (`None`), as a parse error does: the delta-seconds directives
/// (`max-age`, `s-maxage`, `stale-while-revalidate`, `stale-if-error`) take a non-negative
/// Integer, `no-cache` and `private` a Boolean or a String (a field list), the others a
/// Boolean; so `max-age="10000"`, `max-age=abc`, `max-age=1.5` and `no-store=5` are invalid.
/// A key that occurs more than once keeps its last value (RFC 8941 §4.2.2). Unknown
/// directives, whatever their type, are ignored but still make the field non-empty (RFC 9213
/// §3.1's `CDN-Cache-Control: none`).
pub fn targeted_cache_control(headers: &HeaderMap, field: &HeaderName) -> Option<CacheControl> {
    // RFC 8941 §4.2: field lines are combined with ", " before parsing.
    let mut lines = headers.get_all(field).iter();
    let mut combined = lines.next()?.as_bytes().to_vec();
    for value in lines {
        combined.extend_from_slice(b", ");
        combined.extend_from_slice(value.as_bytes());
    }
    // RFC 9213 §2.1: "If a targeted field in a given response is empty, or a parsing error is
    // encountered, that field MUST be ignored by the cache".
    let members = sf::parse_dictionary(&combined)?;
    if members.is_empty() {
        return None;
    }
    let mut line = Vec::new();
    for (key, value) in members {
        let arg: Option<&[u8]> = match (directive_type(key), value) {
            // Unknown directives are ignored, whatever their value.
            (None, _) => continue,
            // Boolean false: the directive is not in effect.
            (Some(SfType::Boolean | SfType::BooleanOrString), sf::Value::False) => continue,
            (Some(SfType::Boolean | SfType::BooleanOrString), sf::Value::True) => None,
            (Some(SfType::BooleanOrString), sf::Value::Quoted(raw)) => Some(raw),
            (Some(SfType::Integer), sf::Value::Number(raw))
                if raw.iter().all(u8::is_ascii_digit) =>
            {
                Some(raw)
            }
            // RFC 9213 §2.1: a value of the wrong type is a parsing error; the field is
            // ignored and Cache-Control applies.
            _ => return None,
        };
        if !line.is_empty() {
            line.extend_from_slice(b", ");
        }
        line.extend_from_slice(key);
        if let Some(arg) = arg {
            line.push(b'=');
            line.extend_from_slice(arg);
        }
    }
    let value = HeaderValue::from_bytes(&line).ok()?;
    let mut cc = CacheControl::from_values([&value]);
    // The field is valid and non-empty even when only unknown directives made it so.
    // RFC 9213 §2.2: the targeted field, valid and non-empty, replaces Cache-Control.
    cc.any = true;
    cc.targeted = true;
    Some(cc)
}

/// The Structured Field type a known response directive takes in a targeted field
/// (RFC 9213 §2.1, mapping RFC 9111 §5.2.2's argument syntax).
#[derive(Clone, Copy)]
enum SfType {
    /// delta-seconds: a non-negative Integer.
    Integer,
    /// A bare directive.
    Boolean,
    /// Bare, or with a field-name list (`no-cache`, `private`).
    BooleanOrString,
}

fn directive_type(key: &[u8]) -> Option<SfType> {
    match key {
        b"max-age" | b"s-maxage" | b"stale-while-revalidate" | b"stale-if-error" => {
            Some(SfType::Integer)
        }
        b"no-cache" | b"private" => Some(SfType::BooleanOrString),
        b"no-store" | b"public" | b"must-revalidate" | b"proxy-revalidate" | b"must-understand"
        | b"no-transform" | b"immutable" => Some(SfType::Boolean),
        _ => None,
    }
}

/// A small Structured Fields Dictionary validator (RFC 8941 §4.2), enough for RFC 9213.
mod sf {
    /// A member's value, as far as cache directives need it.
    pub(super) enum Value<'a> {
        /// Boolean true (a bare key, or `?1`).
        True,
        /// Boolean false (`?0`).
        False,
        /// An Integer or Decimal, as written.
        Number(&'a [u8]),
        /// A String, quotes and escapes included (valid as an HTTP quoted-string).
        Quoted(&'a [u8]),
        /// A Token.
        Token,
        /// A Byte Sequence or an Inner List.
        Other,
    }

    /// RFC 8941 §4.2.2: the members in order of first appearance, a repeated key keeping its
    /// last value; `None` on any parse error.
    pub(super) fn parse_dictionary(input: &[u8]) -> Option<Vec<(&[u8], Value<'_>)>> {
        let mut p = Parser { input, pos: 0 };
        // RFC 8941 §4.2: discard leading SP; an empty field is an empty dictionary.
        p.skip_sp();
        let mut members: Vec<(&[u8], Value<'_>)> = Vec::new();
        if p.at_end() {
            return Some(members);
        }
        loop {
            let key = p.key()?;
            let value = if p.eat(b'=') {
                p.item_or_inner_list()?
            } else {
                p.parameters()?;
                Value::True
            };
            match members.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => members.push((key, value)),
            }
            p.skip_ows();
            if p.at_end() {
                return Some(members);
            }
            if !p.eat(b',') {
                return None;
            }
            p.skip_ows();
            // RFC 8941 §4.2.2: a trailing comma is an error.
            if p.at_end() {
                return None;
            }
        }
    }

    struct Parser<'a> {
        input: &'a [u8],
        pos: usize,
    }

    impl<'a> Parser<'a> {
        fn at_end(&self) -> bool {
            self.pos >= self.input.len()
        }

        fn peek(&self) -> Option<u8> {
            self.input.get(self.pos).copied()
        }

        fn eat(&mut self, b: u8) -> bool {
            if self.peek() == Some(b) {
                self.pos += 1;
                true
            } else {
                false
            }
        }

        fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
            let start = self.pos;
            while self.peek().is_some_and(&f) {
                self.pos += 1;
            }
            &self.input[start..self.pos]
        }

        fn skip_sp(&mut self) {
            self.take_while(|b| b == b' ');
        }

        fn skip_ows(&mut self) {
            self.take_while(|b| b == b' ' || b == b'\t');
        }

        /// RFC 8941 §4.2.3.3: key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
        fn key(&mut self) -> Option<&'a [u8]> {
            let first = self.peek()?;
            if !(first.is_ascii_lowercase() || first == b'*') {
                return None;
            }
            Some(self.take_while(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'.' | b'*')
            }))
        }

        /// RFC 8941 §4.2.1.1
        fn item_or_inner_list(&mut self) -> Option<Value<'a>> {
            if self.eat(b'(') {
                // RFC 8941 §4.2.1.2: inner-list
                loop {
                    self.skip_sp();
                    if self.eat(b')') {
                        self.parameters()?;
                        return Some(Value::Other);
                    }
                    self.bare_item()?;
                    self.parameters()?;
                    if !matches!(self.peek(), Some(b' ' | b')')) {
                        return None;
                    }
                }
            }
            let value = self.bare_item()?;
            self.parameters()?;
            Some(value)
        }

        /// RFC 8941 §4.2.3.2: parameters are parsed and ignored.
        fn parameters(&mut self) -> Option<()> {
            while self.eat(b';') {
                self.skip_sp();
                self.key()?;
                if self.eat(b'=') {
                    self.bare_item()?;
                }
            }
            Some(())
        }

        /// RFC 8941 §4.2.3.1
        fn bare_item(&mut self) -> Option<Value<'a>> {
            match self.peek()? {
                b'-' | b'0'..=b'9' => self.number(),
                b'"' => self.string(),
                b'*' | b'A'..=b'Z' | b'a'..=b'z' => Some(self.token()),
                b':' => self.binary(),
                b'?' => self.boolean(),
                _ => None,
            }
        }

        /// RFC 8941 §4.2.4: at most 15 integer digits, or 12 before and 1 to 3 after a dot.
        fn number(&mut self) -> Option<Value<'a>> {
            let start = self.pos;
            self.eat(b'-');
            let int = self.take_while(|b| b.is_ascii_digit()).len();
            if int == 0 {
                return None;
            }
            if self.eat(b'.') {
                let frac = self.take_while(|b| b.is_ascii_digit()).len();
                if int > 12 || !(1..=3).contains(&frac) {
                    return None;
                }
            } else if int > 15 {
                return None;
            }
            Some(Value::Number(&self.input[start..self.pos]))
        }

        /// RFC 8941 §4.2.5: printable ASCII, escapes only for `"` and `\`.
        fn string(&mut self) -> Option<Value<'a>> {
            let start = self.pos;
            self.pos += 1;
            loop {
                match self.peek()? {
                    b'\\' => {
                        self.pos += 1;
                        if !matches!(self.peek()?, b'"' | b'\\') {
                            return None;
                        }
                        self.pos += 1;
                    }
                    b'"' => {
                        self.pos += 1;
                        return Some(Value::Quoted(&self.input[start..self.pos]));
                    }
                    0x20..=0x7e => self.pos += 1,
                    _ => return None,
                }
            }
        }

        /// RFC 8941 §4.2.6: ( ALPHA / "*" ) *( tchar / ":" / "/" )
        fn token(&mut self) -> Value<'a> {
            self.pos += 1;
            self.take_while(|b| super::is_tchar(b) || b == b':' || b == b'/');
            Value::Token
        }

        /// RFC 8941 §4.2.7: ":" *base64 ":"
        fn binary(&mut self) -> Option<Value<'a>> {
            self.pos += 1;
            self.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
            self.eat(b':').then_some(Value::Other)
        }

        /// RFC 8941 §4.2.8: "?" ( "0" / "1" )
        fn boolean(&mut self) -> Option<Value<'a>> {
            self.pos += 1;
            if self.eat(b'1') {
                Some(Value::True)
            } else if self.eat(b'0') {
                Some(Value::False)
            } else {
                None
            }
        }
    }
}

/// Splits the directive at the start of `input` (which starts at a non-OWS, non-comma byte)
/// into its name, its argument and the input after it (at the separating comma or the end).
fn split_directive(input: &[u8]) -> (&[u8], Arg<'_>, &[u8]) {
    let name_len = input
        .iter()
        .position(|&b| b == b'=' || b == b',' || is_ows(b))
        .unwrap_or(input.len());
    let name = &input[..name_len];
    let mut rest = skip_ows(&input[name_len..]);
    let mut arg = Arg::None;
    if let Some(after_eq) = rest.strip_prefix(b"=") {
        // Whitespace around `=` is not in the grammar but harmless to accept.
        let value_input = skip_ows(after_eq);
        if let Some(quoted) = value_input.strip_prefix(b"\"") {
            // RFC 9110 §5.6.4: quoted-string, with quoted-pair escapes; commas inside are data.
            match quoted_end(quoted) {
                Some(end) => {
                    arg = Arg::Value(&quoted[..end]);
                    rest = skip_ows(&quoted[end + 1..]);
                }
                None => return (name, Arg::Malformed, &[]),
            }
        } else {
            // RFC 9110 §5.6.2: token
            let end = value_input
                .iter()
                .position(|&b| b == b',' || is_ows(b))
                .unwrap_or(value_input.len());
            arg = if end == 0 {
                Arg::Malformed
            } else {
                Arg::Value(&value_input[..end])
            };
            rest = skip_ows(&value_input[end..]);
        }
    }
    // Anything before the next comma is junk that makes the element malformed.
    let junk = junk_len(rest);
    if junk > 0 {
        arg = Arg::Malformed;
    }
    (name, arg, &rest[junk..])
}

/// Length of the junk before the next comma, skipping quoted-strings so that a comma inside
/// one does not start a new directive; an unterminated quote runs to the end of the line.
fn junk_len(input: &[u8]) -> usize {
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b',' => return i,
            b'"' => match quoted_end(&input[i + 1..]) {
                Some(end) => i += end + 2,
                None => return input.len(),
            },
            _ => i += 1,
        }
    }
    input.len()
}

/// Index of the closing `"` of a quoted-string whose opening quote was already consumed.
fn quoted_end(input: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The content of a quoted-string with quoted-pairs resolved (RFC 9110 §5.6.4).
fn unescape(value: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !value.contains(&b'\\') {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.iter();
    while let Some(&b) = bytes.next() {
        if b == b'\\' {
            if let Some(&escaped) = bytes.next() {
                out.push(escaped);
            }
        } else {
            out.push(b);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// delta-seconds from an argument in either form (RFC 9111 §5.2: "recipients ought to accept
/// both forms"), `None` when missing or invalid.
fn delta(arg: &Arg<'_>) -> Option<Duration> {
    match arg {
        Arg::Value(value) => parse_delta_seconds(trim_ows(&unescape(value))),
        Arg::None | Arg::Malformed => None,
    }
}

/// delta-seconds, or zero when missing or invalid (RFC 9111 §4.2.1).
fn delta_or_zero(arg: &Arg<'_>) -> Duration {
    delta(arg).unwrap_or(Duration::ZERO)
}

/// RFC 9111 §4.2.1: for a directive with an argument, the first occurrence is used.
fn first<T>(slot: &mut Option<T>, value: impl FnOnce() -> T) {
    if slot.is_none() {
        *slot = Some(value());
    }
}

/// Like [`first`], for directives whose invalid occurrences are ignored altogether.
fn first_opt<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// Merges one occurrence of `no-cache` / `private` into `slot`.
///
/// RFC 9111 §4.2.1 ("the most restrictive directive should be honored"): the unqualified form
/// wins over field lists; several field lists are united. A malformed argument, or a list
/// without a single valid field name, counts as the unqualified form.
fn merge_field_list(slot: &mut Option<FieldList>, arg: &Arg<'_>) {
    let fields: Vec<HeaderName> = match arg {
        Arg::Value(value) => unescape(value)
            .split(|&b| b == b',')
            .filter_map(|name| HeaderName::from_bytes(trim_ows(name)).ok())
            .collect(),
        Arg::None | Arg::Malformed => Vec::new(),
    };
    if fields.is_empty() {
        *slot = Some(FieldList::All);
        return;
    }
    match slot {
        Some(FieldList::All) => {}
        Some(FieldList::Fields(existing)) => {
            for name in fields {
                if !existing.contains(&name) {
                    existing.push(name);
                }
            }
        }
        None => {
            let mut unique: Vec<HeaderName> = Vec::with_capacity(fields.len());
            for name in fields {
                if !unique.contains(&name) {
                    unique.push(name);
                }
            }
            *slot = Some(FieldList::Fields(unique));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::headers::MAX_DELTA_SECONDS;

    fn parse(lines: &[&str]) -> CacheControl {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|l| HeaderValue::from_str(l).unwrap())
            .collect();
        CacheControl::from_values(&values)
    }

    fn parse_bytes(lines: &[&[u8]]) -> CacheControl {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|l| HeaderValue::from_bytes(l).unwrap())
            .collect();
        CacheControl::from_values(&values)
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    // RFC 9111 §5.2: an absent field has no directives
    #[test]
    fn absent_field_is_empty() {
        let cc = CacheControl::from_headers(&HeaderMap::new());
        assert!(cc.is_empty());
        assert_eq!(cc, CacheControl::default());
        assert_eq!(cc.max_age(), None);
        assert!(!cc.no_store() && !cc.no_cache() && !cc.private() && !cc.public());
    }

    // RFC 9110 §5.6.1: empty list elements are not directives
    #[test]
    fn empty_and_comma_only_lines_are_empty() {
        assert!(parse(&[""]).is_empty());
        assert!(parse(&[" , ,, \t"]).is_empty());
    }

    // RFC 9111 §5.2.3: unknown extension directives are ignored but present
    #[test]
    fn unknown_directives_ignored() {
        let cc = parse(&["foo, bar=baz, qux=\"a, b\", max-age=5"]);
        assert!(!cc.is_empty());
        assert_eq!(cc.max_age(), secs(5));
        assert!(!cc.no_cache());
    }

    // RFC 9111 §5.2: every boolean directive is recognised
    #[test]
    fn boolean_directives_parsed() {
        let cc = parse(&[
            "no-store, no-cache, private, public, must-revalidate, proxy-revalidate, \
             must-understand, no-transform, only-if-cached",
        ]);
        assert!(cc.no_store());
        assert!(cc.no_cache());
        assert!(cc.private());
        assert!(cc.public());
        assert!(cc.must_revalidate());
        assert!(cc.proxy_revalidate());
        assert!(cc.must_understand());
        assert!(cc.no_transform());
        assert!(cc.only_if_cached());
    }

    // RFC 9111 §5.2, RFC 5861: every directive with delta-seconds is recognised
    #[test]
    fn delta_directives_parsed() {
        let cc = parse(&[
            "max-age=1, s-maxage=2, max-stale=3, min-fresh=4, stale-while-revalidate=5, \
             stale-if-error=6",
        ]);
        assert_eq!(cc.max_age(), secs(1));
        assert_eq!(cc.s_maxage(), secs(2));
        assert_eq!(cc.max_stale(), Some(secs(3)));
        assert_eq!(cc.min_fresh(), secs(4));
        assert_eq!(cc.stale_while_revalidate(), secs(5));
        assert_eq!(cc.stale_if_error(), secs(6));
    }

    // RFC 9111 §5.2: "Cache directives are case-insensitive"
    #[test]
    fn directive_names_case_insensitive() {
        let cc = parse(&["No-Store, MAX-AGE=10, Private, S-MaxAge=3"]);
        assert!(cc.no_store());
        assert!(cc.private());
        assert_eq!(cc.max_age(), secs(10));
        assert_eq!(cc.s_maxage(), secs(3));
    }

    // RFC 9110 §5.3: multiple field lines combine as one comma-separated list
    #[test]
    fn multiple_lines_combined() {
        let cc = parse(&[
            "public",
            "max-age=60",
            "",
            "no-transform , stale-if-error=9",
        ]);
        assert!(cc.public());
        assert_eq!(cc.max_age(), secs(60));
        assert!(cc.no_transform());
        assert_eq!(cc.stale_if_error(), secs(9));
    }

    // RFC 9111 §5.2: arguments may be quoted-strings; recipients accept both forms
    #[test]
    fn quoted_delta_seconds_accepted() {
        let cc = parse(&["max-age=\"60\", s-maxage=\"7\""]);
        assert_eq!(cc.max_age(), secs(60));
        assert_eq!(cc.s_maxage(), secs(7));
    }

    // RFC 9110 §5.6.4: commas inside a quoted-string do not split directives
    #[test]
    fn quoted_value_with_commas_inside() {
        let cc = parse(&["private=\"set-cookie, x-foo\", max-age=5, ext=\"a,no-store,b\""]);
        assert!(cc.private());
        assert_eq!(
            cc.private_fields(),
            Some(
                &[
                    HeaderName::from_static("set-cookie"),
                    HeaderName::from_static("x-foo")
                ][..]
            )
        );
        assert_eq!(cc.max_age(), secs(5));
        assert!(
            !cc.no_store(),
            "no-store inside a quoted extension value is data"
        );
    }

    // RFC 9110 §5.6.4: quoted-pair escapes inside quoted-strings
    #[test]
    fn quoted_pair_escapes() {
        let cc = parse(&[r#"ext="a\"b, no-store", no-cache="x-\a""#]);
        assert!(!cc.no_store());
        assert_eq!(
            cc.no_cache_fields(),
            Some(&[HeaderName::from_static("x-a")][..])
        );
    }

    // Whitespace tolerance: OWS around `=` and around list elements
    #[test]
    fn spaces_around_equals_tolerated() {
        let cc = parse(&["  max-age = 30 ,\ts-maxage=\t4\t, max-stale = \"8\" "]);
        assert_eq!(cc.max_age(), secs(30));
        assert_eq!(cc.s_maxage(), secs(4));
        assert_eq!(cc.max_stale(), Some(secs(8)));
    }

    // RFC 9111 §5.2.2.4: the unqualified no-cache form
    #[test]
    fn no_cache_unqualified() {
        let cc = parse(&["no-cache"]);
        assert!(cc.no_cache());
        assert_eq!(cc.no_cache_fields(), None);
    }

    // RFC 9111 §5.2.2.4: the qualified no-cache form, token form accepted too
    #[test]
    fn no_cache_qualified() {
        let cc = parse(&["no-cache=\"Set-Cookie,X-A\""]);
        assert!(cc.no_cache());
        assert_eq!(
            cc.no_cache_fields(),
            Some(
                &[
                    HeaderName::from_static("set-cookie"),
                    HeaderName::from_static("x-a")
                ][..]
            )
        );
        let token = parse(&["no-cache=set-cookie"]);
        assert_eq!(
            token.no_cache_fields(),
            Some(&[HeaderName::from_static("set-cookie")][..])
        );
    }

    // RFC 9111 §4.2.1: most restrictive wins: unqualified beats qualified in either order
    #[test]
    fn no_cache_unqualified_wins_over_qualified() {
        for lines in [
            &["no-cache=\"x-a\", no-cache"][..],
            &["no-cache", "no-cache=\"x-a\""][..],
        ] {
            let cc = parse(lines);
            assert!(cc.no_cache());
            assert_eq!(cc.no_cache_fields(), None, "{lines:?}");
        }
    }

    // RFC 9111 §4.2.1: several qualified lists unite (more restrictive than the first)
    #[test]
    fn private_qualified_lists_unite() {
        let cc = parse(&["private=\"x-a, x-b\"", "private=\"X-B, x-c\""]);
        assert!(cc.private());
        let names: Vec<&str> = cc
            .private_fields()
            .unwrap()
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(names, ["x-a", "x-b", "x-c"]);
    }

    // RFC 9111 §5.2.2.7: a field list with no valid name is read as unqualified private
    #[test]
    fn private_without_valid_names_is_unqualified() {
        for line in [
            "private=\"\"",
            "private=\" , \"",
            "private=\"(bad) name\"",
            "private=",
        ] {
            let cc = parse(&[line]);
            assert!(cc.private(), "{line}");
            assert_eq!(cc.private_fields(), None, "{line}");
        }
    }

    // RFC 9111 §4.2.1: duplicates of a directive with an argument: first occurrence wins
    #[test]
    fn duplicate_directive_first_wins() {
        let cc = parse(&[
            "max-age=10, max-age=20",
            "max-age=30, s-maxage=1, s-maxage=2",
        ]);
        assert_eq!(cc.max_age(), secs(10));
        assert_eq!(cc.s_maxage(), secs(1));
        let cc = parse(&[
            "stale-if-error=5",
            "stale-if-error=50, max-stale=1, max-stale",
        ]);
        assert_eq!(cc.stale_if_error(), secs(5));
        assert_eq!(cc.max_stale(), Some(secs(1)));
    }

    // RFC 9111 §4.2.1: an invalid first occurrence still wins (and means stale)
    #[test]
    fn duplicate_directive_invalid_first_is_stale() {
        let cc = parse(&["max-age=abc, max-age=60"]);
        assert_eq!(cc.max_age(), Some(Duration::ZERO));
    }

    // RFC 9111 §4.2.1: invalid max-age / s-maxage are treated as stale (zero)
    #[test]
    fn invalid_max_age_is_zero() {
        for line in [
            "max-age",
            "max-age=",
            "max-age=-1",
            "max-age=1.5",
            "max-age=abc",
            "max-age=\"\"",
            "max-age=\"-5\"",
            "max-age=10 garbage",
            "max-age=\"10",
            "max-age=+3",
        ] {
            assert_eq!(parse(&[line]).max_age(), Some(Duration::ZERO), "{line}");
            let s = line.replacen("max-age", "s-maxage", 1);
            assert_eq!(parse(&[&s]).s_maxage(), Some(Duration::ZERO), "{s}");
        }
    }

    // RFC 9111 §1.2.2: delta-seconds overflow saturates at 2^31
    #[test]
    fn overflow_saturates_at_2_pow_31() {
        let big = "max-age=99999999999999999999999999, s-maxage=2147483648, \
                   stale-if-error=18446744073709551616, max-stale=340282366920938463463374607431768211456";
        let cc = parse(&[big]);
        let max = secs(MAX_DELTA_SECONDS);
        assert_eq!(cc.max_age(), max);
        assert_eq!(cc.s_maxage(), max);
        assert_eq!(cc.stale_if_error(), max);
        assert_eq!(cc.max_stale(), Some(max));
    }

    // RFC 9111 §5.2.1.2: bare max-stale accepts any staleness
    #[test]
    fn max_stale_bare_is_unbounded() {
        assert_eq!(parse(&["max-stale"]).max_stale(), Some(None));
        assert_eq!(
            parse(&["max-stale=0"]).max_stale(),
            Some(Some(Duration::ZERO))
        );
    }

    // RFC 9111 §5.2.1.2: an invalid max-stale accepts no staleness
    #[test]
    fn max_stale_invalid_is_zero() {
        for line in ["max-stale=", "max-stale=x", "max-stale=-1", "max-stale=1 x"] {
            assert_eq!(
                parse(&[line]).max_stale(),
                Some(Some(Duration::ZERO)),
                "{line}"
            );
        }
    }

    // RFC 9111 §5.2.1.3, RFC 5861: invalid min-fresh / stale-* values are ignored
    #[test]
    fn invalid_min_fresh_and_stale_extensions_ignored() {
        let cc = parse(&["min-fresh=x, stale-while-revalidate, stale-if-error=-1"]);
        assert_eq!(cc.min_fresh(), None);
        assert_eq!(cc.stale_while_revalidate(), None);
        assert_eq!(cc.stale_if_error(), None);
        // The invalid occurrence is not replaced by a later valid one for max-age, but for
        // these "ignored" directives a later valid occurrence is used.
        assert_eq!(parse(&["min-fresh=x, min-fresh=5"]).min_fresh(), secs(5));
    }

    // RFC 9111 §4.2.1: malformed elements keep restrictive meaning, lose permissive meaning
    #[test]
    fn malformed_elements_read_restrictively() {
        let cc = parse(&["no-store junk, public junk, private=\"x-a junk, must-revalidate"]);
        assert!(cc.no_store());
        assert!(!cc.public());
        assert!(cc.private());
        assert_eq!(cc.private_fields(), None);
        // The unterminated quoted-string swallows the rest of its line.
        assert!(!cc.must_revalidate());
        // Junk is skipped quote-aware: a comma inside a quoted-string in junk is data.
        let cc = parse(&["foo x=\"a, no-store, b\", max-age=5"]);
        assert!(!cc.no_store());
        assert_eq!(cc.max_age(), secs(5));
        let cc = parse(&["only-if-cached=\"x", "must-revalidate"]);
        assert!(!cc.only_if_cached());
        assert!(
            cc.must_revalidate(),
            "an unterminated quote ends at its line"
        );
    }

    // Garbage never panics and yields nothing meaningful
    #[test]
    fn garbage_is_ignored() {
        for line in [
            "=",
            "==",
            "=5",
            "\"",
            "\"\"",
            "\"max-age=5\"",
            ",=,",
            "\\",
            "{}[]()",
            "; max-age=5",
        ] {
            let cc = parse(&[line]);
            assert_eq!(cc.max_age(), None, "{line}");
            assert!(!cc.no_store() && !cc.public(), "{line}");
        }
        // An escape at the very end of an unterminated quoted-string.
        assert_eq!(parse(&["max-age=\"\\"]).max_age(), Some(Duration::ZERO));
        assert!(parse(&["=5"]).is_empty());
        assert!(parse(&["(), \"\""]).is_empty());
    }

    // RFC 9110 §5.5: obs-text bytes: parse what we can around them
    #[test]
    fn non_utf8_bytes_tolerated() {
        let cc = parse_bytes(&[b"max-age=\xff\xfe, no-store, \xc3\x28=1, s-maxage=5"]);
        assert_eq!(cc.max_age(), Some(Duration::ZERO));
        assert!(cc.no_store());
        assert_eq!(cc.s_maxage(), secs(5));
        let cc = parse_bytes(&[b"\xff", b"public"]);
        assert!(cc.public());
        assert!(parse_bytes(&[b"\x80\x81\xfe"]).is_empty());
        let cc = parse_bytes(&[b"private=\"x-a, \xff\xfe\""]);
        assert_eq!(
            cc.private_fields(),
            Some(&[HeaderName::from_static("x-a")][..])
        );
    }

    fn targeted(lines: &[&str]) -> Option<CacheControl> {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("cdn-cache-control", HeaderValue::from_str(l).unwrap());
        }
        targeted_cache_control(&h, &HeaderName::from_static("cdn-cache-control"))
    }

    // RFC 9213 §2.1: a valid dictionary maps onto Cache-Control directives
    #[test]
    fn targeted_field_valid_dictionary() {
        let cc = targeted(&["max-age=600, must-revalidate, private=\"x-a, x-b\""]).unwrap();
        assert!(cc.is_targeted());
        assert_eq!(cc.max_age(), secs(600));
        assert!(cc.must_revalidate());
        let names: Vec<&str> = cc
            .private_fields()
            .unwrap()
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(names, ["x-a", "x-b"]);
        let cc = targeted(&["no-store", "s-maxage=5;x=1"]).unwrap();
        assert!(cc.no_store());
        assert_eq!(cc.s_maxage(), secs(5));
    }

    // RFC 9213 §2.1, RFC 8941 §3.3.6: Boolean values
    #[test]
    fn targeted_field_booleans() {
        let cc = targeted(&["no-store=?0, no-cache=?1"]).unwrap();
        assert!(!cc.no_store());
        assert!(cc.no_cache());
        assert_eq!(cc.no_cache_fields(), None);
        // All members false: still a valid, non-empty field.
        let cc = targeted(&["no-store=?0"]).unwrap();
        assert!(!cc.is_empty() && !cc.no_store());
    }

    // RFC 9213 §3.1: an unknown directive makes the field valid and non-empty
    #[test]
    fn targeted_field_unknown_directive_is_non_empty() {
        let cc = targeted(&["none"]).unwrap();
        assert!(!cc.is_empty());
        assert!(!cc.no_store());
    }

    // RFC 9213 §2.1: empty or unparseable targeted fields are ignored
    #[test]
    fn targeted_field_invalid_or_empty_is_none() {
        assert!(targeted(&[]).is_none());
        for line in [
            "",
            "   ",
            "Max-Age=60",
            "max-age=60,",
            "max-age=60 public",
            "max-age=\"60",
            "max-age==1",
            "max-age=1234567890123456",
            "max-age=1.2345",
            "private=\"\\x\"",
            "a=(1 2",
            "a=?2",
            "a=:abc",
            ", max-age=1",
            "max-age=60;",
            "1a",
        ] {
            assert!(targeted(&[line]).is_none(), "{line:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            "cdn-cache-control",
            HeaderValue::from_bytes(b"max-age=\xff").unwrap(),
        );
        assert!(
            targeted_cache_control(&h, &HeaderName::from_static("cdn-cache-control")).is_none()
        );
    }

    // RFC 8941 §4.2.2: a repeated key keeps its last value
    #[test]
    fn targeted_field_last_duplicate_wins() {
        assert_eq!(
            targeted(&["max-age=1, max-age=2"]).unwrap().max_age(),
            secs(2)
        );
        assert_eq!(
            targeted(&["max-age=1", "max-age=3"]).unwrap().max_age(),
            secs(3)
        );
    }

    // RFC 9213 §2.1: a known directive whose value has the wrong type invalidates the field
    // (cdn-cc-invalid-sh-type-wrong), so Cache-Control applies instead
    #[test]
    fn targeted_field_wrong_value_type_is_none() {
        for line in [
            "max-age=\"10000\"",
            "max-age=abc",
            "max-age=1.5",
            "max-age=-5",
            "max-age",
            "max-age=(1 2)",
            "max-age=?1",
            "s-maxage=\"5\"",
            "stale-if-error=tok",
            "no-store=5",
            "no-store=\"x\"",
            "must-revalidate=1",
            "private=:YWJj:",
            "private=x-a",
            "no-cache=1",
            "max-age=10, no-store=abc",
        ] {
            assert!(targeted(&[line]).is_none(), "{line:?}");
        }
        // Parameters do not change a value's type; unknown directives may take any type.
        assert_eq!(targeted(&["max-age=7;a=1"]).unwrap().max_age(), secs(7));
        assert_eq!(
            targeted(&["max-age=7, a=tok/en:x, b=1.5, c=:YWJj:"])
                .unwrap()
                .max_age(),
            secs(7)
        );
        let cc = targeted(&["private=\"x-a\", no-cache"]).unwrap();
        assert_eq!(
            cc.private_fields(),
            Some(&[HeaderName::from_static("x-a")][..])
        );
        assert!(cc.no_cache());
    }

    // A targeted field with a wrong type falls back to Cache-Control: no-store wins
    #[test]
    fn wrong_type_falls_back_to_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(
            "cdn-cache-control",
            HeaderValue::from_static("max-age=\"10000\""),
        );
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        let field = HeaderName::from_static("cdn-cache-control");
        let cc =
            targeted_cache_control(&h, &field).unwrap_or_else(|| CacheControl::from_headers(&h));
        assert!(cc.no_store() && !cc.is_targeted());
    }

    // Robustness: very long values do not panic or overflow
    #[test]
    fn huge_input_tolerated() {
        let long = format!("max-age={}, {}", "9".repeat(50_000), "x,".repeat(50_000));
        let cc = parse(&[&long]);
        assert_eq!(cc.max_age(), secs(MAX_DELTA_SECONDS));
    }
}
