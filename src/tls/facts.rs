//! What a certificate says about itself: the names it is valid for and when
//! it expires, read from the leaf with x509-parser for the server's
//! start-up summary and its warnings (expired, expiring, host name not
//! covered).
//!
//! May import: x509-parser and std.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::extensions::GeneralName;

/// The names and expiry of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// The DNS names and IP addresses of its subjectAltName extension, or
    /// the subject's common name when it has none.
    pub names: Vec<String>,
    /// The end of its validity (notAfter).
    pub not_after: SystemTime,
    /// notAfter as a date, `YYYY-MM-DD` (UTC).
    pub expiry_date: String,
}

impl CertificateFacts {
    /// Reads a DER certificate; `None` if it does not parse.
    pub fn from_der(der: &[u8]) -> Option<CertificateFacts> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => names.push(dns.to_string()),
                    GeneralName::IPAddress(bytes) => names.extend(ip_text(bytes)),
                    _ => {}
                }
            }
        }
        if names.is_empty() {
            let common_name = cert.subject().iter_common_name().next();
            names.extend(
                common_name
                    .and_then(|cn| cn.as_str().ok())
                    .map(str::to_string),
            );
        }
        let not_after = cert.validity().not_after;
        let seconds = u64::try_from(not_after.timestamp()).unwrap_or(0);
        Some(CertificateFacts {
            names,
            not_after: UNIX_EPOCH + Duration::from_secs(seconds),
            expiry_date: not_after.to_datetime().date().to_string(),
        })
    }

    /// Is `host` one of the names (without regard to case), or covered by
    /// a wildcard name `*.domain` (one label, RFC 6125 §6.4.3)?
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|name| {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => name == host,
            }
        })
    }

    /// The time left before it expires at `now`; `None` once expired.
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.not_after.duration_since(now).ok()
    }
}

/// An IPv4 or IPv6 address from its 4 or 16 octets.
fn ip_text(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(std::net::Ipv4Addr::from(v4).to_string());
    }
    let v6 = <[u8; 16]>::try_from(bytes).ok()?;
    Some(std::net::Ipv6Addr::from(v6).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts_of(names: &[&str]) -> CertificateFacts {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names).unwrap();
        CertificateFacts::from_der(certified.cert.der()).unwrap()
    }

    #[test]
    fn names_and_expiry_of_a_generated_certificate() {
        let facts = facts_of(&["mx.example", "127.0.0.1", "*.example.org"]);
        assert_eq!(facts.names, ["mx.example", "127.0.0.1", "*.example.org"]);
        // rcgen's default validity ends in 4096.
        assert_eq!(facts.expiry_date, "4096-01-01");
        assert!(facts.remaining(SystemTime::now()).is_some());
        assert!(facts
            .remaining(facts.not_after + Duration::from_secs(1))
            .is_none());
        for (host, want) in [
            ("mx.example", true),
            ("MX.Example.", true),
            ("other.example", false),
            ("a.example.org", true),
            ("example.org", false),
            ("a.b.example.org", false),
        ] {
            assert_eq!(facts.covers(host), want, "{host}");
        }
        assert_eq!(CertificateFacts::from_der(b"not a certificate"), None);
    }
}
