//! Surrogate keys: the tags a response carries so that it can be purged by tag.
//!
//! No RFC defines them; two fields are in common use, and the cache reads both:
//!
//! - `Surrogate-Key`, space-separated (Fastly; Varnish's xkey vmod reads the same field);
//! - `Cache-Tag`, comma-separated (Cloudflare, Akamai).
//!
//! A tag matches exactly, case-sensitively, as Fastly matches surrogate keys. Field values
//! that are not visible ASCII text are ignored.

use http::HeaderMap;
use http::header::HeaderName;

/// `Surrogate-Key`: space-separated tags.
pub(crate) const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

/// `Cache-Tag`: comma-separated tags.
pub(crate) const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// Every tag in `headers`' `Surrogate-Key` and `Cache-Tag` fields, in field order, duplicates
/// included.
pub(crate) fn tags(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let surrogate = headers
        .get_all(SURROGATE_KEY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split([' ', '\t']));
    let cache_tag = headers
        .get_all(CACHE_TAG)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim_matches([' ', '\t']));
    surrogate.chain(cache_tag).filter(|tag| !tag.is_empty())
}

/// Whether `headers` carry the tag `tag` (exactly, case-sensitively). An empty tag, or one
/// with a separator in it, is carried by no response.
pub(crate) fn has_tag(headers: &HeaderMap, tag: &str) -> bool {
    is_valid_tag(tag) && tags(headers).any(|carried| carried == tag)
}

/// Whether `tag` could be carried by a response: not empty, and without the separators of
/// either field (space, tab, comma).
pub(crate) fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty() && !tag.contains([' ', '\t', ','])
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn surrogate_key_is_space_separated() {
        let h = headers(&[("surrogate-key", "  product-1  all\tcategory/shoes ")]);
        assert_eq!(
            tags(&h).collect::<Vec<_>>(),
            ["product-1", "all", "category/shoes"]
        );
        // A comma is part of a surrogate key, not a separator.
        let h = headers(&[("surrogate-key", "a,b")]);
        assert_eq!(tags(&h).collect::<Vec<_>>(), ["a,b"]);
    }

    #[test]
    fn cache_tag_is_comma_separated() {
        let h = headers(&[("cache-tag", "product-1, all ,,  two words")]);
        assert_eq!(
            tags(&h).collect::<Vec<_>>(),
            ["product-1", "all", "two words"]
        );
    }

    #[test]
    fn every_line_of_both_fields_counts() {
        let h = headers(&[
            ("surrogate-key", "a"),
            ("cache-tag", "b"),
            ("surrogate-key", "c"),
            ("cache-tag", "d, e"),
        ]);
        let mut found: Vec<_> = tags(&h).collect();
        found.sort_unstable();
        assert_eq!(found, ["a", "b", "c", "d", "e"]);
        assert!(tags(&HeaderMap::new()).next().is_none());
    }

    #[test]
    fn matching_is_exact_and_case_sensitive() {
        let h = headers(&[("surrogate-key", "Product-1 all"), ("cache-tag", "x")]);
        assert!(has_tag(&h, "Product-1"));
        assert!(has_tag(&h, "all"));
        assert!(has_tag(&h, "x"));
        assert!(!has_tag(&h, "product-1"));
        assert!(!has_tag(&h, "Product"));
        assert!(!has_tag(&h, "Product-1 all"));
        assert!(!has_tag(&h, ""));
    }

    #[test]
    fn values_that_are_not_text_are_ignored() {
        let mut h = HeaderMap::new();
        h.insert(
            SURROGATE_KEY,
            HeaderValue::from_bytes(b"caf\xe9 ok").unwrap(),
        );
        h.insert(CACHE_TAG, HeaderValue::from_static("fine"));
        assert_eq!(tags(&h).collect::<Vec<_>>(), ["fine"]);
    }

    #[test]
    fn valid_tags() {
        assert!(is_valid_tag("product-1"));
        assert!(!is_valid_tag(""));
        assert!(!is_valid_tag("a b"));
        assert!(!is_valid_tag("a,b"));
        assert!(!is_valid_tag("a\tb"));
    }
}
