//! The query of `POST /purge`, and the percent-encoding `--purge` sends it with.

/// What `POST /purge` is asked to purge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PurgeTarget {
    /// `url=`: a path, resolved against what the proxy keys by, or an absolute URL.
    Url(String),
    /// `tag=`: a `Surrogate-Key` or `Cache-Tag` tag.
    Tag(String),
}

/// A parsed `POST /purge` query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PurgeQuery {
    /// What to purge.
    pub(crate) target: PurgeTarget,
    /// `soft=1`: mark stale instead of removing.
    pub(crate) soft: bool,
}

impl PurgeQuery {
    /// The query string (without `?`) that asks for this purge.
    pub(crate) fn to_query(&self) -> String {
        let (name, value) = match &self.target {
            PurgeTarget::Url(url) => ("url", url),
            PurgeTarget::Tag(tag) => ("tag", tag),
        };
        let mut query = format!("{name}={}", encode(value));
        if self.soft {
            query.push_str("&soft=1");
        }
        query
    }
}

/// Parses the query of `POST /purge`: exactly one of `url=` and `tag=`, not empty, and
/// optionally `soft=` (`1`, `true`, `0`, `false`); values percent-encoded
/// (`application/x-www-form-urlencoded`, so `+` is a space).
///
/// # Errors
///
/// A one-line reason, for a `400`.
pub(crate) fn parse_purge_query(query: Option<&str>) -> Result<PurgeQuery, String> {
    let mut target = None;
    let mut soft = None;
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name =
            decode(name).ok_or("bad request: a parameter is not valid percent-encoded UTF-8")?;
        let value = decode(value).ok_or_else(|| {
            format!(
                "bad request: `{}` is not valid percent-encoded UTF-8",
                shown(&name)
            )
        })?;
        match name.as_str() {
            "url" | "tag" => {
                if target.is_some() {
                    return Err("bad request: give one `url` or one `tag`, not more".into());
                }
                if value.is_empty() {
                    return Err(format!("bad request: `{name}` is empty"));
                }
                target = Some(if name == "url" {
                    PurgeTarget::Url(value)
                } else {
                    PurgeTarget::Tag(value)
                });
            }
            "soft" => {
                if soft.is_some() {
                    return Err("bad request: `soft` is given twice".into());
                }
                soft = Some(match value.as_str() {
                    "1" | "true" | "" => true,
                    "0" | "false" => false,
                    _ => return Err("bad request: `soft` must be 1 or 0".into()),
                });
            }
            _ => {
                return Err(format!(
                    "bad request: unknown parameter `{}` (use url, tag and soft)",
                    shown(&name)
                ));
            }
        }
    }
    let target = target.ok_or("bad request: give ?url=<path or URL> or ?tag=<tag>")?;
    if let PurgeTarget::Tag(tag) = &target {
        if tag.contains([' ', '\t', ',']) {
            return Err("bad request: a tag has no spaces or commas".into());
        }
    }
    Ok(PurgeQuery {
        target,
        soft: soft.unwrap_or(false),
    })
}

/// A parameter name from the network as an error message may show it: without control
/// characters (the message is one line), at most 40 characters.
fn shown(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(40).collect()
}

/// Percent-decodes `text` (`+` is a space); `None` for a bad escape or non-UTF-8 bytes.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes `text` for a query value: everything but unreserved characters
/// (RFC 3986 §2.3) and `/`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<PurgeQuery, String> {
        parse_purge_query(Some(query))
    }

    #[test]
    fn url_tag_and_soft() {
        assert_eq!(
            parse("url=%2Fa%3Fb%3D1").unwrap(),
            PurgeQuery {
                target: PurgeTarget::Url("/a?b=1".into()),
                soft: false
            }
        );
        assert_eq!(
            parse("tag=product-1&soft=1").unwrap(),
            PurgeQuery {
                target: PurgeTarget::Tag("product-1".into()),
                soft: true
            }
        );
        assert!(!parse("soft=0&url=/x").unwrap().soft);
        assert!(parse("url=/x&soft").unwrap().soft);
    }

    #[test]
    fn bad_queries_have_one_line_reasons() {
        for bad in [
            "",
            "soft=1",
            "url=",
            "tag=",
            "url=/a&tag=b",
            "url=/a&url=/b",
            "url=/a&soft=maybe",
            "url=/a&soft=1&soft=1",
            "nope=1",
            "url=%zz",
            "url=%",
            "url=%ff",
            "url=%+1",
            "tag=a+b",
            "tag=a%2Cb",
        ] {
            let reason = parse(bad).unwrap_err();
            assert!(reason.starts_with("bad request: "), "{bad:?}: {reason}");
            assert_eq!(reason.lines().count(), 1, "{bad:?}: {reason}");
        }
        assert!(parse_purge_query(None).is_err());
        assert_eq!(parse("x%0A%0Dy=1").unwrap_err().lines().count(), 1);
        assert_eq!(parse("x%0A%0Dy=%ff").unwrap_err().lines().count(), 1);
    }

    #[test]
    fn encoding_round_trips() {
        for target in [
            PurgeTarget::Url("https://example.com/a b?c=d&e=%41+".into()),
            PurgeTarget::Tag("ünïcode/tag".into()),
        ] {
            for soft in [false, true] {
                let query = PurgeQuery {
                    target: target.clone(),
                    soft,
                };
                assert_eq!(parse(&query.to_query()).unwrap(), query);
            }
        }
    }
}
