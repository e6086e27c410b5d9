//! Where webhooks may be delivered (SSRF safety). By default only `https` URLs on port 443 to
//! public addresses; `http`, other ports and loopback/private/link-local targets only when the
//! deployment allows insecure targets (`SIMVAULT_WEBHOOK_ALLOW_INSECURE=true`, for tests and labs). The address
//! rule is applied to every address a host name resolves to, at delivery time as well as at
//! registration, so DNS rebinding cannot get around it. Pure: resolution is the caller's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Checks a webhook URL's form: scheme, host, no credentials, and (for an IP literal) the
/// address rule. Host names are checked again once resolved.
pub fn check_url(text: &str, allow_insecure: bool) -> Result<url::Url, &'static str> {
    if text.len() > MAX_URL_LEN {
        return Err("the URL is longer than 2048 characters");
    }
    let url = url::Url::parse(text).map_err(|_| "not a valid absolute URL")?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => return Err("webhooks are delivered over https only"),
        _ => return Err("the URL must be https"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not carry credentials");
    }
    // Another port is how a public name reaches an internal service (an admin console, a
    // database) sharing the receiver's address.
    if !allow_insecure && url.port().is_some_and(|p| p != 443) {
        return Err("webhooks are delivered to port 443 only");
    }
    match url.host() {
        None => Err("the URL has no host"),
        Some(url::Host::Ipv4(ip)) if !address_allowed(IpAddr::V4(ip), allow_insecure) => {
            Err("the URL points at a private, loopback or reserved address")
        }
        Some(url::Host::Ipv6(ip)) if !address_allowed(IpAddr::V6(ip), allow_insecure) => {
            Err("the URL points at a private, loopback or reserved address")
        }
        Some(url::Host::Domain(d)) if !allow_insecure && is_local_name(d) => {
            Err("the URL points at a local host name")
        }
        Some(_) => Ok(url),
    }
}

fn is_local_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost"
        || h.ends_with(".localhost")
        || h.ends_with(".local")
        || h.ends_with(".internal")
}

/// Whether a (resolved) address may receive webhooks.
pub fn address_allowed(ip: IpAddr, allow_insecure: bool) -> bool {
    allow_insecure || is_public(ip)
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: cloud metadata services live here
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || s[..6] == [0; 6] // IPv4-compatible `::a.b.c.d` (deprecated; some stacks route it)
                || s[0] == 0x2002 // 6to4: tunnels to the IPv4 address inside, whichever it is
                || (s[0] == 0x2001 && s[1] == 0) // Teredo: likewise, behind a relay
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // NAT64 local use (RFC 8215)
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated, still routed inside some sites)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0)) // discard
        }
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or NAT64 (`64:ff9b::/96`)
/// address, which reaches that IPv4 host.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    (s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0]).then(|| {
        let [.., a, b] = s;
        Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_to_public_hosts_by_default() {
        assert!(check_url("https://hooks.example.com/simvault", false).is_ok());
        assert!(check_url("https://93.184.216.34:443/x", false).is_ok());
        for bad in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://localhost/",
            "https://metadata.google.internal/",
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(check_url(&long, false).is_err());
    }

    #[test]
    fn tunnelled_and_deprecated_ipv6_forms_are_refused() {
        for (form, url) in [
            ("IPv4-compatible", "https://[::127.0.0.1]/"),
            (
                "IPv4-compatible, public inside",
                "https://[::93.184.216.34]/",
            ),
            ("6to4", "https://[2002:7f00:1::1]/"),
            ("6to4, public inside", "https://[2002:5db8:d822::1]/"),
            ("Teredo", "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/"),
            ("NAT64 local use", "https://[64:ff9b:1::a00:1]/"),
            ("site local", "https://[fec0::1]/"),
            ("site local, upper end", "https://[feff::1]/"),
        ] {
            assert!(check_url(url, false).is_err(), "{form}: {url}");
            let ip: IpAddr = url
                .trim_start_matches("https://[")
                .trim_end_matches("]/")
                .parse()
                .unwrap();
            assert!(!address_allowed(ip, false), "{form} resolved: {ip}");
            assert!(address_allowed(ip, true), "{form} in a lab: {ip}");
        }
        // Neighbours of the refused ranges stay usable.
        for ok in ["2001:4860::8888", "2003::1", "64:ff9b:2::1", "fe00::1"] {
            let ip: IpAddr = ok.parse().unwrap();
            assert!(address_allowed(ip, false), "{ok}");
        }
    }

    #[test]
    fn ports_other_than_443_only_when_insecure_targets_are_allowed() {
        for url in [
            "https://hooks.example.com:8443/x",
            "https://hooks.example.com:22/",
            "https://93.184.216.34:6379/",
            "https://hooks.example.com:80/",
        ] {
            assert!(check_url(url, false).is_err(), "{url}");
            assert!(check_url(url, true).is_ok(), "{url}");
        }
        assert!(check_url("https://hooks.example.com:443/x", false).is_ok());
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
    }

    #[test]
    fn insecure_targets_only_when_allowed() {
        for lab in [
            "http://127.0.0.1:9000/hook",
            "https://localhost/",
            "http://10.0.0.5/",
        ] {
            assert!(check_url(lab, false).is_err(), "{lab}");
            assert!(check_url(lab, true).is_ok(), "{lab}");
        }
        assert!(
            check_url("https://u:p@127.0.0.1/", true).is_err(),
            "never credentials"
        );
    }

    #[test]
    fn resolved_addresses_are_checked_the_same_way() {
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let rebound: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(address_allowed(public, false));
        assert!(!address_allowed(rebound, false));
        assert!(address_allowed(rebound, true));
        assert!(address_allowed("2606:2800:220:1::".parse().unwrap(), false));
        assert!(!address_allowed("::".parse().unwrap(), false));
    }
}
