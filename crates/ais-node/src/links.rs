//! Links users name for the nodes to fetch (the downloader): only
//! `http`/`https` without credentials, and only addresses the operator
//! allows. By default a public address only (never loopback, private,
//! link-local — cloud metadata services —, carrier-grade NAT, unique-local,
//! multicast or unspecified ones); `AIS_DOWNLOAD_ALLOW` (comma-separated
//! host names or IPs, `*` for any) opens more. Checked syntactically where
//! a request arrives and against the resolved addresses where it is fetched.

use crate::error::{ApiError, ApiResult};
use std::net::{IpAddr, SocketAddr};

/// Whether `ip` is an address every user may make the nodes connect to.
fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            !(v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_multicast()
                || v.is_broadcast()
                || v.is_documentation()
                || v.octets()[0] == 0
                // Carrier-grade NAT (100.64/10), IETF protocol assignments
                // (192.0.0/24), benchmarking (198.18/15), reserved (240/4).
                || (v.octets()[0] == 100 && (v.octets()[1] & 0xc0) == 64)
                || (v.octets()[0..3] == [192, 0, 0])
                || (v.octets()[0] == 198 && (v.octets()[1] & 0xfe) == 18)
                || v.octets()[0] >= 240)
        }
        IpAddr::V6(v) => {
            if let Some(v4) = v.to_ipv4_mapped() {
                return public(IpAddr::V4(v4));
            }
            let seg = v.segments();
            let o = v.octets();
            let v4_at =
                |i: usize| IpAddr::V4(std::net::Ipv4Addr::new(o[i], o[i + 1], o[i + 2], o[i + 3]));
            // Forms that carry an IPv4 address (and reach it): NAT64
            // (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16), Teredo
            // (2001::/32, its client address inverted), IPv4-compatible
            // (::a.b.c.d): judged by that address.
            if seg[0] == 0x64 && seg[1] == 0xff9b {
                return public(v4_at(12));
            }
            if seg[0] == 0x2002 {
                return public(v4_at(2));
            }
            if seg[0] == 0x2001 && seg[1] == 0 {
                let inv = IpAddr::V4(std::net::Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]));
                return public(inv) && public(v4_at(4));
            }
            if seg[..6].iter().all(|s| *s == 0) {
                return public(v4_at(12));
            }
            !(v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] & 0xffc0) == 0xfec0)
        }
    }
}

/// The operator's extra allowances (`AIS_DOWNLOAD_ALLOW`).
fn allowed_extra() -> Vec<String> {
    std::env::var("AIS_DOWNLOAD_ALLOW")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A URL a user may have the nodes fetch: http(s), with a host. Checked
/// syntactically here (the proxy, at the request) and against the
/// addresses it resolves to where it is fetched ([`resolve`]).
pub fn check_url(u: &str) -> ApiResult<reqwest::Url> {
    let url = reqwest::Url::parse(u)
        .map_err(|e| ApiError::bad_request(format!("download: invalid URL \"{u}\": {e}")))?;
    match url.scheme() {
        "http" | "https" => {}
        _ => {
            return Err(ApiError::bad_request(format!(
                "download: \"{u}\": only http and https links are downloaded"
            )))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!(
            "download: \"{u}\" has no host"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::bad_request(format!(
            "download: \"{u}\": credentials in URLs are not accepted"
        )));
    }
    Ok(url)
}

/// Resolves the URL's host once; every address must be allowed (public,
/// or named by the operator); answers the one to connect to.
pub async fn resolve(url: &reqwest::Url) -> ApiResult<SocketAddr> {
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or(80);
    let host_bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host_bare.as_str(), port))
        .await
        .map_err(|e| ApiError::bad_request(format!("download: cannot resolve {host}: {e}")))?
        .collect();
    let extra = allowed_extra();
    let any = extra.iter().any(|e| e == "*");
    let named = extra.contains(&host_bare);
    let first = addrs
        .first()
        .copied()
        .ok_or_else(|| ApiError::bad_request(format!("download: {host} has no address")))?;
    for a in &addrs {
        let ip_named = extra
            .iter()
            .any(|e| e.parse::<IpAddr>().ok() == Some(a.ip()));
        if !(any || named || ip_named || public(a.ip())) {
            return Err(ApiError::Forbidden(format!(
                "download: {host} resolves to {}, an address this cluster does not download from \
                 (loopback, private or link-local; the operator may allow it with AIS_DOWNLOAD_ALLOW)",
                a.ip()
            )));
        }
    }
    Ok(first)
}

/// Most links one download job takes.
pub const MAX_LINKS: usize = 1_000_000;

/// The last element of a URL's path (the object name a link gets).
pub fn base_name(u: &str) -> ApiResult<String> {
    let url = check_url(u)?;
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "download: \"{u}\" ends with no file name; name the object"
            ))
        })?;
    crate::http::pct_decode(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_by_default() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!public(a.parse().unwrap()), "{a}");
        }
        for a in [
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "::127.0.0.1",
            "fec0::1",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.8",
        ] {
            assert!(!public(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "64:ff9b::808:808"] {
            assert!(public(a.parse().unwrap()), "{a}");
        }
        assert!(check_url("file:///etc/passwd").is_err());
        assert!(check_url("https://example.com/x").is_ok());
        assert!(check_url("ftp://example.com/x").is_err());
        assert!(check_url("http://user:pw@example.com/x").is_err());
        assert_eq!(base_name("http://h/a/b%20c.tar?x=1").unwrap(), "b c.tar");
        assert!(base_name("http://h/a/").is_err());
    }
}
