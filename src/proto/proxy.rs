//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, versions 1
//! and 2): what a load balancer in front of the server sends before the
//! client's first byte, so the server knows the client's real address.
//! Pure: bytes in, the header or an error out.
//!
//! Version 1 is one text line, at most 107 octets with its CRLF:
//! `PROXY TCP4 192.0.2.7 198.51.100.1 51234 25\r\n` (or `TCP6`, or
//! `UNKNOWN` with anything after it). Version 2 is binary: a 12-octet
//! signature, a version/command octet, a family/protocol octet, a 16-bit
//! length, then the addresses and optional TLVs (skipped). A `LOCAL`
//! command (a health check) or an unknown family carries no client: the
//! connection's own address stands.

// Address types only (`core::net` has no sockets).
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The version 1 line starts with this.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest version 1 line, CRLF included.
const V1_MAX: usize = 107;
/// The longest version 2 header accepted (signature, fixed part, addresses
/// and TLVs); HAProxy's own TLVs fit well within it.
pub const V2_MAX: usize = 16 + 1024;

/// Who the client is, as the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxiedClient {
    /// The client's address and port.
    Address(SocketAddr),
    /// No client: a health check (`LOCAL`), `UNKNOWN`, or a family other
    /// than TCP over IPv4 or IPv6.
    Unknown,
}

/// The result of looking at the first bytes of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyStatus {
    /// A header has begun but is not complete: read more.
    NeedMore,
    /// A complete header of `consumed` octets.
    Done {
        /// Who the client is.
        client: ProxiedClient,
        /// The header's length; the SMTP (or TLS) bytes follow it.
        consumed: usize,
    },
}

/// Why the bytes are not a valid PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// Neither version's start.
    NotProxy,
    /// A version 1 line that is malformed (what is wrong).
    BadV1(&'static str),
    /// A version 2 header that is malformed (what is wrong).
    BadV2(&'static str),
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::NotProxy => write!(f, "no PROXY protocol header"),
            ProxyError::BadV1(why) => write!(f, "bad PROXY v1 header: {why}"),
            ProxyError::BadV2(why) => write!(f, "bad PROXY v2 header: {why}"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Parses the header at the start of `input` (the connection's first
/// bytes so far).
pub fn parse(input: &[u8]) -> Result<ProxyStatus, ProxyError> {
    let starts = |prefix: &[u8]| {
        let n = input.len().min(prefix.len());
        input[..n] == prefix[..n]
    };
    if starts(V2_SIGNATURE) {
        if input.len() < 16 {
            return Ok(ProxyStatus::NeedMore);
        }
        return parse_v2(input);
    }
    if starts(V1_PREFIX) {
        if input.len() < V1_PREFIX.len() {
            return Ok(ProxyStatus::NeedMore);
        }
        return parse_v1(input);
    }
    Err(ProxyError::NotProxy)
}

fn parse_v1(input: &[u8]) -> Result<ProxyStatus, ProxyError> {
    let Some(end) = memchr::memchr(b'\n', &input[..input.len().min(V1_MAX)]) else {
        return if input.len() >= V1_MAX {
            Err(ProxyError::BadV1("longer than 107 octets"))
        } else {
            Ok(ProxyStatus::NeedMore)
        };
    };
    let line = input[..end]
        .strip_suffix(b"\r")
        .ok_or(ProxyError::BadV1("no CR before the LF"))?;
    let line = std::str::from_utf8(line).map_err(|_| ProxyError::BadV1("not ASCII"))?;
    let mut words = line.split(' ');
    let _proxy = words.next();
    let client = match words.next() {
        Some("UNKNOWN") => ProxiedClient::Unknown,
        Some(family @ ("TCP4" | "TCP6")) => {
            let fields: Vec<&str> = words.collect();
            let [source, destination, source_port, destination_port] = fields[..] else {
                return Err(ProxyError::BadV1("not four address fields"));
            };
            let ip: IpAddr = source
                .parse()
                .map_err(|_| ProxyError::BadV1("bad source address"))?;
            let _: IpAddr = destination
                .parse()
                .map_err(|_| ProxyError::BadV1("bad destination address"))?;
            if ip.is_ipv4() != (family == "TCP4") {
                return Err(ProxyError::BadV1("address of the wrong family"));
            }
            let port = v1_port(source_port)?;
            v1_port(destination_port)?;
            ProxiedClient::Address(SocketAddr::new(ip, port))
        }
        _ => return Err(ProxyError::BadV1("unknown protocol")),
    };
    Ok(ProxyStatus::Done {
        client,
        consumed: end + 1,
    })
}

/// A port in a version 1 line: decimal, no sign, no leading zero.
fn v1_port(text: &str) -> Result<u16, ProxyError> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    text.parse()
        .ok()
        .filter(|_| canonical)
        .ok_or(ProxyError::BadV1("bad port"))
}

fn parse_v2(input: &[u8]) -> Result<ProxyStatus, ProxyError> {
    let version_command = input[12];
    if version_command >> 4 != 2 {
        return Err(ProxyError::BadV2("not version 2"));
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyError::BadV2("unknown command")),
    };
    let family = input[13];
    let length = usize::from(u16::from_be_bytes([input[14], input[15]]));
    let total = 16 + length;
    if total > V2_MAX {
        return Err(ProxyError::BadV2("longer than this server accepts"));
    }
    if input.len() < total {
        return Ok(ProxyStatus::NeedMore);
    }
    let body = &input[16..total];
    let client = match family {
        // TCP over IPv4: source, destination, source port, destination port.
        0x11 => {
            let addresses = body
                .get(..12)
                .ok_or(ProxyError::BadV2("IPv4 addresses cut short"))?;
            let ip = Ipv4Addr::new(addresses[0], addresses[1], addresses[2], addresses[3]);
            let port = u16::from_be_bytes([addresses[8], addresses[9]]);
            ProxiedClient::Address(SocketAddr::new(IpAddr::V4(ip), port))
        }
        // TCP over IPv6.
        0x21 => {
            let addresses = body
                .get(..36)
                .ok_or(ProxyError::BadV2("IPv6 addresses cut short"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addresses[..16]);
            let port = u16::from_be_bytes([addresses[32], addresses[33]]);
            ProxiedClient::Address(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        _ => ProxiedClient::Unknown,
    };
    Ok(ProxyStatus::Done {
        client: if local {
            ProxiedClient::Unknown
        } else {
            client
        },
        consumed: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(client: ProxiedClient, consumed: usize) -> Result<ProxyStatus, ProxyError> {
        Ok(ProxyStatus::Done { client, consumed })
    }

    fn address(text: &str) -> ProxiedClient {
        ProxiedClient::Address(text.parse().unwrap())
    }

    #[test]
    fn version_1_lines() {
        let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 51234 25\r\nEHLO x\r\n";
        assert_eq!(parse(line), done(address("192.0.2.7:51234"), 44));
        let v6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 587\r\n";
        assert_eq!(parse(v6), done(address("[2001:db8::7]:4000"), v6.len()));
        let unknown = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
        assert_eq!(parse(unknown), done(ProxiedClient::Unknown, unknown.len()));
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            done(ProxiedClient::Unknown, 15)
        );
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 51234\r\n"[..],
            b"PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 051234 25\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n",
            b"PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n",
            b"PROXY TCP4  192.0.2.7 198.51.100.1 1 2\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ProxyError::BadV1(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 100], b"\r\n"].concat();
        assert_eq!(
            parse(&long),
            Err(ProxyError::BadV1("longer than 107 octets"))
        );
    }

    /// A version 2 header: `command`, `family`, then `body`.
    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.extend([0x20 | command, family]);
        header.extend((body.len() as u16).to_be_bytes());
        header.extend(body);
        header
    }

    #[test]
    fn version_2_headers() {
        let v4 = [192, 0, 2, 7, 198, 51, 100, 1, 0xc8, 0x22, 0, 25];
        let header = v2(1, 0x11, &v4);
        assert_eq!(parse(&header), done(address("192.0.2.7:51234"), 28));
        let mut with_tlv = v4.to_vec();
        with_tlv.extend([0x04, 0, 3, 1, 2, 3]);
        let header = v2(1, 0x11, &with_tlv);
        assert_eq!(
            parse(&header),
            done(address("192.0.2.7:51234"), header.len())
        );
        let mut v6 = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        v6.extend("2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend([0x0f, 0xa0, 0x02, 0x4b]);
        assert_eq!(
            parse(&v2(1, 0x21, &v6)),
            done(address("[2001:db8::7]:4000"), 52)
        );
        assert_eq!(
            parse(&v2(0, 0x11, &v4)),
            done(ProxiedClient::Unknown, 28),
            "LOCAL"
        );
        assert_eq!(parse(&v2(1, 0x00, &[])), done(ProxiedClient::Unknown, 16));
        assert!(matches!(
            parse(&v2(1, 0x11, &v4[..8])),
            Err(ProxyError::BadV2(_))
        ));
        assert!(matches!(
            parse(&v2(2, 0x11, &v4)),
            Err(ProxyError::BadV2(_))
        ));
        let mut old = v2(1, 0x11, &v4);
        old[12] = 0x11;
        assert!(matches!(parse(&old), Err(ProxyError::BadV2(_))));
        assert!(matches!(
            parse(&v2(1, 0x11, &[0; V2_MAX])),
            Err(ProxyError::BadV2(_))
        ));
    }

    #[test]
    fn every_prefix_asks_for_more_and_smtp_is_no_header() {
        let v1 = b"PROXY TCP4 192.0.2.7 198.51.100.1 51234 25\r\n".to_vec();
        let v2 = v2(1, 0x11, &[192, 0, 2, 7, 198, 51, 100, 1, 0xc8, 0x22, 0, 25]);
        for header in [v1, v2] {
            for n in 0..header.len() {
                assert_eq!(parse(&header[..n]), Ok(ProxyStatus::NeedMore), "{n}");
            }
        }
        assert_eq!(parse(b"EHLO client\r\n"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"\x16\x03\x01"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"\r\n\r\nX"), Err(ProxyError::NotProxy));
    }
}
