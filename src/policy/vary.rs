//! Secondary keys from `Vary` (RFC 9111 §4.1).

use super::headers::{is_ows, list_members};
use http::header::{ACCEPT_LANGUAGE, VARY};
use http::{HeaderMap, HeaderName};

/// A response's `Vary` field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vary {
    /// No `Vary` (or one without a valid member): the response matches any request.
    None,
    /// `Vary: *` (a member of any line): never matches (RFC 9111 §4.1).
    Star,
    /// The named request fields, lowercased, deduplicated, in order of first appearance.
    Fields(Vec<HeaderName>),
}

impl Vary {
    /// Parses all `Vary` lines of a response.
    ///
    /// Lines are combined, split on commas and trimmed; names are case-insensitive (and
    /// lowercased), invalid names are ignored, duplicates removed. Any `*` member makes the
    /// whole field [`Vary::Star`].
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut fields: Vec<HeaderName> = Vec::new();
        // RFC 9110 §12.5.5: Vary = #( "*" / field-name ); RFC 9110 §5.3: lines combine.
        for member in headers
            .get_all(VARY)
            .iter()
            .flat_map(|value| list_members(value.as_bytes()))
        {
            // RFC 9111 §4.1: "A stored response with a Vary header field value containing a
            // member "*" always fails to match."
            if member == b"*" {
                return Vary::Star;
            }
            // RFC 9110 §5.1: field names are case-insensitive; invalid ones cannot match a
            // request field, so they are ignored.
            if let Ok(name) = HeaderName::from_bytes(member) {
                if !fields.contains(&name) {
                    fields.push(name);
                }
            }
        }
        if fields.is_empty() {
            Vary::None
        } else {
            Vary::Fields(fields)
        }
    }

    /// The fields to capture with [`VaryKey::capture`]: empty for [`Vary::None`] and
    /// [`Vary::Star`] (a `*` response is not stored, see
    /// [`NotStorable::VaryStar`](super::storable::NotStorable::VaryStar)).
    pub fn fields(&self) -> &[HeaderName] {
        match self {
            Vary::Fields(fields) => fields,
            Vary::None | Vary::Star => &[],
        }
    }
}

/// The request's values of the fields a stored response varies on, normalised.
///
/// Fields are kept sorted by name and deduplicated, so the order in which they were listed
/// does not matter. A value is `None` when the request did not have the field; otherwise all
/// its field lines are combined into one normalised value (see [`VaryKey::capture`]).
/// The default (empty) key matches every request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct VaryKey {
    entries: Vec<(HeaderName, Option<Vec<u8>>)>,
}

impl VaryKey {
    /// Captures the request's values for `fields`.
    ///
    /// RFC 9111 §4.1: values are compared after "normalizing both header field values in a way
    /// that is known to have identical semantics": all field lines of a name are combined
    /// with `", "` (RFC 9110 §5.3), empty list members are dropped (RFC 9110 §5.6.1), and
    /// whitespace outside quoted-strings is collapsed: none around commas, single spaces
    /// elsewhere, none at either end. Quoted-strings and letter case are kept as they are,
    /// except in `Accept-Language`, whose language ranges and parameter names are
    /// case-insensitive (RFC 9110 §12.5.4, §5.6.6; RFC 4647 §2): it is compared in lower
    /// case.
    pub fn capture(fields: &[HeaderName], req_headers: &HeaderMap) -> Self {
        let mut names: Vec<&HeaderName> = fields.iter().collect();
        names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        let entries = names
            .into_iter()
            .map(|name| (name.clone(), normalized_value(name, req_headers)))
            .collect();
        Self { entries }
    }

    /// A key from captured values, as [`fields`](Self::fields) and [`value`](Self::value)
    /// return them: for stores that rebuild a persisted key.
    ///
    /// `None` stands for a field the request did not have. Values are taken as already
    /// normalised; the fields are sorted, and of a name given twice the first is kept.
    ///
    /// ```
    /// use http::HeaderMap;
    /// use http::header::ACCEPT_ENCODING;
    /// use tower_cache_layer::policy::VaryKey;
    ///
    /// let key = VaryKey::from_values([(ACCEPT_ENCODING, Some(b"gzip".to_vec()))]);
    /// let mut request = HeaderMap::new();
    /// request.insert(ACCEPT_ENCODING, "gzip".parse()?);
    /// assert!(key.matches(&request));
    /// assert!(!key.matches(&HeaderMap::new()));
    ///
    /// // What a store saves, and how it restores it.
    /// let saved: Vec<_> = key
    ///     .fields()
    ///     .map(|name| (name.clone(), key.value(name).flatten().map(<[u8]>::to_vec)))
    ///     .collect();
    /// assert_eq!(VaryKey::from_values(saved), key);
    /// # Ok::<(), http::header::InvalidHeaderValue>(())
    /// ```
    pub fn from_values(values: impl IntoIterator<Item = (HeaderName, Option<Vec<u8>>)>) -> Self {
        let mut entries: Vec<(HeaderName, Option<Vec<u8>>)> = values.into_iter().collect();
        // Stable: of equal names the first given stays first and survives `dedup_by`.
        entries.sort_by(|(a, _), (b, _)| a.as_str().cmp(b.as_str()));
        entries.dedup_by(|later, earlier| later.0 == earlier.0);
        Self { entries }
    }

    /// Does `req_headers` select the same variant?
    ///
    /// Each captured field's normalised value must be equal; a field absent from both matches,
    /// absent from only one does not (RFC 9111 §4.1).
    pub fn matches(&self, req_headers: &HeaderMap) -> bool {
        self.entries
            .iter()
            .all(|(name, value)| normalized_value(name, req_headers) == *value)
    }

    /// Does `req_headers` have the captured values of each of `fields`? A field this key did
    /// not capture does not match (the response was not stored by it).
    pub(crate) fn matches_on(&self, fields: &[HeaderName], req_headers: &HeaderMap) -> bool {
        fields.iter().all(|field| match self.value(field) {
            Some(value) => normalized_value(field, req_headers).as_deref() == value,
            None => false,
        })
    }

    /// The captured field names, sorted and deduplicated.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = &HeaderName> + '_ {
        self.entries.iter().map(|(name, _)| name)
    }

    /// The captured (normalised) value of `name`: `None` when `name` was not captured,
    /// `Some(None)` when the request did not have it.
    pub fn value(&self, name: &HeaderName) -> Option<Option<&[u8]>> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }

    /// No field captured: the key matches every request.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The normalised combined value of `name` in `headers`, `None` when absent.
fn normalized_value(name: &HeaderName, headers: &HeaderMap) -> Option<Vec<u8>> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    let mut out = Vec::new();
    for line in lines {
        normalize_into(line.as_bytes(), &mut out);
    }
    // RFC 9111 §4.1: "identical semantics": these values are case-insensitive.
    if *name == ACCEPT_LANGUAGE {
        out.make_ascii_lowercase();
    }
    Some(out)
}

/// Appends the list members of `line` to `out` as `a, b, c` (RFC 9110 §5.3, §5.6.1),
/// collapsing whitespace outside quoted-strings (RFC 9110 §5.6.3, §5.6.4).
fn normalize_into(line: &[u8], out: &mut Vec<u8>) {
    let mut member: Vec<u8> = Vec::new();
    let mut pending_space = false;
    let mut in_quotes = false;
    let mut escaped = false;
    let flush = |member: &mut Vec<u8>, out: &mut Vec<u8>| {
        if !member.is_empty() {
            if !out.is_empty() {
                out.extend_from_slice(b", ");
            }
            out.append(member);
        }
    };
    for &b in line {
        if in_quotes {
            member.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
            continue;
        }
        if is_ows(b) {
            pending_space = !member.is_empty();
            continue;
        }
        if b == b',' {
            flush(&mut member, out);
            pending_space = false;
            continue;
        }
        if pending_space {
            member.push(b' ');
            pending_space = false;
        }
        if b == b'"' {
            in_quotes = true;
        }
        member.push(b);
    }
    flush(&mut member, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_util::headers;
    use http::HeaderValue;

    fn names(list: &[&'static str]) -> Vec<HeaderName> {
        list.iter().map(|n| HeaderName::from_static(n)).collect()
    }

    fn key(fields: &[&'static str], req: &[(&str, &str)]) -> VaryKey {
        VaryKey::capture(&names(fields), &headers(req))
    }

    // RFC 9110 §12.5.5: no Vary field
    #[test]
    fn vary_absent_is_none() {
        assert_eq!(Vary::from_headers(&HeaderMap::new()), Vary::None);
        assert_eq!(Vary::from_headers(&headers(&[("vary", "")])), Vary::None);
        assert_eq!(Vary::from_headers(&headers(&[("vary", " , ")])), Vary::None);
    }

    // RFC 9110 §12.5.5, §5.3: lines combine; names lowercased, trimmed, deduplicated
    #[test]
    fn vary_lines_combined_and_deduplicated() {
        let v = Vary::from_headers(&headers(&[
            ("vary", "Accept-Encoding ,\tAccept-Language"),
            ("vary", "accept-encoding, X-Foo"),
        ]));
        assert_eq!(
            v,
            Vary::Fields(names(&["accept-encoding", "accept-language", "x-foo"]))
        );
        assert_eq!(v.fields().len(), 3);
    }

    // RFC 9111 §4.1: any "*" member makes the response never match
    #[test]
    fn vary_star_anywhere() {
        assert_eq!(Vary::from_headers(&headers(&[("vary", "*")])), Vary::Star);
        assert_eq!(
            Vary::from_headers(&headers(&[("vary", "accept"), ("vary", "x-a, * ")])),
            Vary::Star
        );
        assert!(Vary::Star.fields().is_empty());
    }

    // RFC 9110 §5.1: invalid field names are ignored
    #[test]
    fn vary_invalid_names_ignored() {
        let mut h = HeaderMap::new();
        h.append(
            VARY,
            HeaderValue::from_bytes(b"bad name, \xff, (x), accept").unwrap(),
        );
        assert_eq!(Vary::from_headers(&h), Vary::Fields(names(&["accept"])));
        let mut h = HeaderMap::new();
        h.append(VARY, HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert_eq!(Vary::from_headers(&h), Vary::None);
    }

    // RFC 9111 §4.1: the default key matches every request
    #[test]
    fn empty_key_matches_everything() {
        let k = VaryKey::default();
        assert!(k.is_empty());
        assert!(k.matches(&HeaderMap::new()));
        assert!(k.matches(&headers(&[("accept", "x")])));
        assert_eq!(VaryKey::capture(&[], &headers(&[("accept", "x")])), k);
    }

    // RFC 9111 §4.1: same values match, different values do not
    #[test]
    fn same_value_matches_different_does_not() {
        let k = key(&["accept-encoding"], &[("accept-encoding", "gzip")]);
        assert!(k.matches(&headers(&[("accept-encoding", "gzip"), ("x-other", "1")])));
        assert!(!k.matches(&headers(&[("accept-encoding", "br")])));
        assert!(!k.matches(&headers(&[("accept-encoding", "GZIP")])));
    }

    // RFC 9111 §4.1: absent in both matches; absent in one only does not
    #[test]
    fn absent_fields() {
        let absent = key(&["accept-language"], &[]);
        assert!(absent.matches(&HeaderMap::new()));
        assert!(!absent.matches(&headers(&[("accept-language", "en")])));
        let present = key(&["accept-language"], &[("accept-language", "en")]);
        assert!(!present.matches(&HeaderMap::new()));
        // An empty value is present, not absent.
        let empty = key(&["accept-language"], &[("accept-language", "")]);
        assert!(!empty.matches(&HeaderMap::new()));
        assert!(empty.matches(&headers(&[("accept-language", "  ")])));
    }

    // RFC 9111 §4.1, RFC 9110 §12.5.4: language ranges are case-insensitive
    // (vary-normalise-lang-case); other fields keep their case
    #[test]
    fn accept_language_case_normalised() {
        let k = key(&["accept-language"], &[("accept-language", "en, de")]);
        assert!(k.matches(&headers(&[("accept-language", "eN, De")])));
        assert!(k.matches(&headers(&[("accept-language", "EN,DE")])));
        assert!(!k.matches(&headers(&[("accept-language", "de, en")])));
        let k = key(&["x-foo"], &[("x-foo", "a")]);
        assert!(!k.matches(&headers(&[("x-foo", "A")])));
    }

    // RFC 9111 §4.1: whitespace around commas and runs of whitespace are normalised
    #[test]
    fn whitespace_normalised() {
        let k = key(&["accept-encoding"], &[("accept-encoding", "gzip,br")]);
        assert!(k.matches(&headers(&[("accept-encoding", " gzip ,\t br ")])));
        assert!(k.matches(&headers(&[("accept-encoding", "gzip,,br,")])));
        let k = key(&["accept"], &[("accept", "text/html;  q=0.9")]);
        assert!(k.matches(&headers(&[("accept", "text/html;\tq=0.9")])));
        assert!(!k.matches(&headers(&[("accept", "text/html;q=0.9")])));
    }

    // RFC 9111 §4.1, RFC 9110 §5.3: multiple field lines combine
    #[test]
    fn multiple_lines_combined() {
        let k = key(&["accept-encoding"], &[("accept-encoding", "gzip, br")]);
        assert!(k.matches(&headers(&[
            ("accept-encoding", "gzip"),
            ("accept-encoding", "br")
        ])));
        assert!(!k.matches(&headers(&[
            ("accept-encoding", "br"),
            ("accept-encoding", "gzip")
        ])));
        assert_eq!(
            k.value(&HeaderName::from_static("accept-encoding")),
            Some(Some(&b"gzip, br"[..]))
        );
    }

    // RFC 9110 §5.6.4: whitespace and commas inside quoted-strings are significant
    #[test]
    fn quoted_strings_preserved() {
        let k = key(&["x-q"], &[("x-q", "a=\"x,  y\"")]);
        assert!(k.matches(&headers(&[("x-q", "a=\"x,  y\"")])));
        assert!(!k.matches(&headers(&[("x-q", "a=\"x, y\"")])));
        assert!(!k.matches(&headers(&[("x-q", "a=\"x,y\"")])));
        let k = key(&["x-q"], &[("x-q", r#""a\"  b""#)]);
        assert!(!k.matches(&headers(&[("x-q", r#""a\" b""#)])));
    }

    // RFC 9111 §4.1: several fields, order of listing does not matter
    #[test]
    fn field_order_insensitive() {
        let req = [("accept", "a"), ("accept-language", "en")];
        let k1 = key(&["accept", "accept-language"], &req);
        let k2 = key(&["accept-language", "accept", "accept"], &req);
        assert_eq!(k1, k2);
        let names: Vec<&str> = k1.fields().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept", "accept-language"]);
        assert!(k1.matches(&headers(&req)));
        assert!(!k1.matches(&headers(&[("accept", "a"), ("accept-language", "fr")])));
    }

    // Robustness: non-UTF-8 values are compared byte for byte
    #[test]
    fn non_utf8_values() {
        let mut h = HeaderMap::new();
        h.insert("x-b", HeaderValue::from_bytes(b"\xff \xfe").unwrap());
        let k = VaryKey::capture(&names(&["x-b"]), &h);
        assert!(k.matches(&h));
        let mut other = HeaderMap::new();
        other.insert("x-b", HeaderValue::from_bytes(b"\xff  \xfe").unwrap());
        assert!(k.matches(&other));
        other.insert("x-b", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert!(!k.matches(&other));
    }

    // VaryKey is usable as a hash-map key
    #[test]
    fn key_is_hashable() {
        use std::collections::HashSet;
        let mut set = HashSet::new();
        set.insert(key(&["accept"], &[("accept", "a")]));
        set.insert(key(&["accept"], &[("accept", " a ")]));
        set.insert(key(&["accept"], &[("accept", "b")]));
        assert_eq!(set.len(), 2);
    }

    /// A key rebuilt from its captured values equals the captured key, whatever the order
    /// the store gives them in; of a name given twice the first wins (RFC 9111 §4.1).
    #[test]
    fn from_values_rebuilds_a_captured_key() {
        let captured = key(
            &["accept-language", "accept"],
            &[("accept-language", "EN, fr")],
        );
        let rebuilt = VaryKey::from_values([
            (
                HeaderName::from_static("accept-language"),
                Some(b"en, fr".to_vec()),
            ),
            (HeaderName::from_static("accept"), None),
            (HeaderName::from_static("accept"), Some(b"x".to_vec())),
        ]);
        assert_eq!(rebuilt, captured);
        assert!(rebuilt.matches(&headers(&[("accept-language", "en,  FR")])));
        assert!(!rebuilt.matches(&headers(&[("accept", "x"), ("accept-language", "en,fr")])));
    }
}
