//! The PROXY protocol header parser (`proto::proxy::parse`) on arbitrary
//! first bytes of a connection. Checked:
//! - no panic; a complete header's length is within the input and within
//!   the version's limit (107 octets for v1, `V2_MAX` for v2);
//! - the answer does not depend on what follows: a header found in the
//!   input is found the same in every longer input, and every prefix
//!   shorter than it asks for more;
//! - a version 1 line the parser accepted with an address, written again
//!   in canonical form, parses to the same client.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost::proto::proxy::{parse, ProxiedClient, ProxyStatus, V2_MAX};

fuzz_target!(|data: &[u8]| {
    let Ok(ProxyStatus::Done { client, consumed }) = parse(data) else {
        return;
    };
    assert!(consumed > 0 && consumed <= data.len());
    let v1 = data.starts_with(b"PROXY ");
    assert!(consumed <= if v1 { 107 } else { V2_MAX });
    let header = &data[..consumed];
    for n in 0..consumed {
        assert_eq!(parse(&header[..n]), Ok(ProxyStatus::NeedMore), "prefix {n}");
    }
    let mut longer = header.to_vec();
    longer.extend_from_slice(b"EHLO client\r\n");
    assert_eq!(parse(&longer), Ok(ProxyStatus::Done { client, consumed }));
    if let (true, ProxiedClient::Address(address)) = (v1, client) {
        let family = if address.is_ipv4() { "TCP4" } else { "TCP6" };
        let destination = if address.is_ipv4() {
            "127.0.0.1"
        } else {
            "::1"
        };
        let line = format!(
            "PROXY {family} {} {destination} {} 25\r\n",
            address.ip(),
            address.port()
        );
        let again = parse(line.as_bytes());
        assert_eq!(
            again,
            Ok(ProxyStatus::Done {
                client,
                consumed: line.len()
            })
        );
    }
});
