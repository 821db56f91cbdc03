//! The parsers of flag values, and the types they give.

use std::net::IpAddr;

use http::uri::{Authority, Scheme, Uri};

/// Clap value parser for `--purge`: anything but an empty string.
pub(crate) fn parse_non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(s.to_owned())
}

/// Clap value parser for `--purge-tag`: one tag, without the separators of `Surrogate-Key`
/// (space) and `Cache-Tag` (comma).
pub(crate) fn parse_tag(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains([' ', '\t', ',']) {
        return Err(format!("`{s}` is not one tag (no spaces or commas)"));
    }
    Ok(s.to_owned())
}

/// A validated origin: scheme, authority and a base path without a trailing slash.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    /// `http` or `https`.
    pub(crate) scheme: Scheme,
    /// Host and optional port; also the `Host` header sent to the origin.
    pub(crate) authority: Authority,
    /// Base path prepended to every request path; empty or starting with `/`, never ending in `/`.
    pub(crate) base_path: String,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

/// Clap value parser for `--origin`: an absolute http/https URL with a host, no user info,
/// query or fragment.
pub(crate) fn parse_origin(s: &str) -> Result<Origin, String> {
    if s.contains('#') {
        return Err("the origin must not have a fragment".into());
    }
    let uri: Uri = s
        .parse()
        .map_err(|e| format!("not a URL ({e}); expected e.g. http://127.0.0.1:8000"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") if crate::tls::HAS_TLS => Scheme::HTTPS,
        Some("https") => return Err(crate::tls::NO_TLS.to_owned()),
        Some(other) => return Err(format!("unsupported scheme `{other}`; use http or https")),
        None => return Err("not an absolute URL; expected e.g. http://127.0.0.1:8000".into()),
    };
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .cloned()
        .ok_or("the origin URL has no host")?;
    if authority.as_str().contains('@') {
        return Err("the origin URL must not contain user info".into());
    }
    if uri.query().is_some() {
        return Err("the origin URL must not have a query".into());
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok(Origin {
        scheme,
        authority,
        base_path,
    })
}

/// Clap value parser for byte sizes: a plain integer or one with a K, M, G or T suffix
/// (powers of 1024; `KiB`, `MB` and the like are accepted too).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size in bytes (e.g. 1048576, 512K, 256M, 1G)"))?;
    let shift = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("unknown size suffix in `{s}`; use K, M, G or T")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// The smallest `--max-header-bytes`: hyper's minimum read buffer (8 KiB).
pub(crate) const MIN_HEADER_BYTES: u64 = 8 * 1024;

/// Clap value parser for `--max-header-bytes`: a size (see [`parse_size`]) of at least
/// [`MIN_HEADER_BYTES`].
pub(crate) fn parse_header_limit(s: &str) -> Result<usize, String> {
    let bytes = parse_size(s)?;
    if bytes < MIN_HEADER_BYTES {
        return Err(format!("`{s}` is too small; the minimum is 8K"));
    }
    usize::try_from(bytes).map_err(|_| format!("`{s}` is too large"))
}

/// An IP network (`--trusted-proxy`): an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IpNet {
    /// The network's address.
    addr: IpAddr,
    /// How many leading bits must match.
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not an IP address or CIDR range (e.g. 10.0.0.0/8)");
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_networks_parse_and_match() {
        let net: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.1".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        let one: IpNet = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("example.com".parse::<IpNet>().is_err());
    }
}
