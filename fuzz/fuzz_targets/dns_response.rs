//! DNS reply parsing (`delivery::dns::parse_response`) for MX, A and AAAA
//! queries, on arbitrary packets (raw mode) and on valid replies built with
//! simple-dns from the input and then mutated (built mode: CNAME chains,
//! records for other names and types, then a few bytes changed).
//!
//! Checked: no panic, and the result agrees with the packet:
//! - `Truncated` only with the TC bit; errors for a wrong id or a packet
//!   that is not a reply; NXDOMAIN only for RCODE 3;
//! - records only from a reply to our id with exactly our question
//!   (name, case-insensitively, and type) and RCODE 0;
//! - every record returned is an answer of the asked type whose owner is
//!   the asked name or reachable from it through CNAMEs in the answer
//!   section (checked with simple-dns and a reference closure here);
//! - a built reply that was not mutated parses, and every record of the
//!   asked type owned by the asked name itself is returned.
//!
//! Input: 1 mode byte (query type, raw or built, mutation count), then the
//! packet (raw) or the record recipe and mutations (built).
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use outpost::delivery::dns::{parse_response, DnsError, QueryType, Record, Response};
use simple_dns::rdata::{RData, A, AAAA, CNAME, MX, TXT};
use simple_dns::{Name, Packet, Question, ResourceRecord, CLASS, QCLASS, QTYPE, RCODE, TYPE};

#[path = "common/mod.rs"]
mod common;

const ID: u16 = 0x4f2a;
const QNAME: &str = "example.com";
/// Owners and targets of the built records.
const NAMES: [&str; 6] = [
    "example.com",
    "EXAMPLE.com",
    "alias.example.com",
    "mx1.example.com",
    "other.example",
    "a.b.c.example.com",
];

fn type_of(q: QueryType) -> TYPE {
    match q {
        QueryType::Mx => TYPE::MX,
        QueryType::A => TYPE::A,
        QueryType::Aaaa => TYPE::AAAA,
        QueryType::Txt => TYPE::TXT,
        QueryType::Ptr => TYPE::PTR,
    }
}

fn bare(name: &Name<'_>) -> String {
    name.to_string().trim_end_matches('.').to_ascii_lowercase()
}

/// A reply built from the recipe bytes: each pair of bytes one record.
fn build(qtype: QueryType, recipe: &[u8]) -> Vec<u8> {
    let mut p = Packet::new_reply(ID);
    let qname_index = recipe.first().copied().unwrap_or(0);
    let qname = if qname_index & 0x80 != 0 {
        NAMES[usize::from(qname_index) % NAMES.len()]
    } else {
        QNAME
    };
    p.questions.push(Question::new(
        Name::new_unchecked(qname),
        QTYPE::TYPE(type_of(qtype)),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    if qname_index & 0x40 != 0 {
        *p.rcode_mut() = RCODE::NameError;
    }
    for pair in recipe.get(1..).unwrap_or(&[]).chunks(2).take(40) {
        let (a, b) = (pair[0], pair.get(1).copied().unwrap_or(0));
        let owner = Name::new_unchecked(NAMES[usize::from(a) % NAMES.len()]);
        let target = Name::new_unchecked(NAMES[usize::from(b) % NAMES.len()]);
        let rdata = match a >> 4 & 7 {
            0 | 1 => RData::CNAME(CNAME(target)),
            2 => RData::MX(MX {
                preference: u16::from(b),
                exchange: target,
            }),
            3 => RData::A(A {
                address: u32::from(Ipv4Addr::new(192, 0, 2, b)),
            }),
            4 => RData::AAAA(AAAA {
                address: u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(b))),
            }),
            5 => RData::TXT(TXT::new()),
            _ => RData::MX(MX {
                preference: 0,
                exchange: Name::new_unchecked("."),
            }),
        };
        let record = ResourceRecord::new(owner, CLASS::IN, 300, rdata);
        if a & 0x80 != 0 {
            p.additional_records.push(record);
        } else {
            p.answers.push(record);
        }
    }
    p.build_bytes_vec().unwrap_or_default()
}

fn check(bytes: &[u8], qtype: QueryType, result: &Result<Response, DnsError>) {
    let header_ok =
        bytes.len() >= 12 && u16::from_be_bytes([bytes[0], bytes[1]]) == ID && bytes[2] & 0x80 != 0;
    match result {
        Ok(Response::Truncated) => assert!(header_ok && bytes[2] & 0x02 != 0),
        Err(DnsError::NxDomain) => assert!(header_ok && bytes[3] & 0x0f == 3),
        Err(DnsError::ServerFailure(rcode)) => {
            assert!(header_ok && *rcode != 0 && *rcode != 3 && bytes[3] & 0x0f == *rcode)
        }
        Err(DnsError::Malformed(_)) => {}
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(Response::Records(records)) => {
            assert!(header_ok && bytes[2] & 0x02 == 0 && bytes[3] & 0x0f == 0);
            let packet = Packet::parse(bytes).expect("accepted but simple-dns cannot parse it");
            assert_eq!(
                packet.questions.len(),
                1,
                "records for a reply to several questions"
            );
            let q = &packet.questions[0];
            assert_eq!(q.qtype, QTYPE::TYPE(type_of(qtype)));
            assert_eq!(bare(&q.qname), QNAME);
            // Every name reachable from ours through answer CNAMEs.
            let mut names = vec![QNAME.to_string()];
            loop {
                let before = names.len();
                for rr in &packet.answers {
                    if let RData::CNAME(CNAME(target)) = &rr.rdata {
                        let t = bare(target);
                        if names.contains(&bare(&rr.name)) && !names.contains(&t) {
                            names.push(t);
                        }
                    }
                }
                if names.len() == before {
                    break;
                }
            }
            for record in records {
                let found = packet.answers.iter().any(|rr| {
                    names.contains(&bare(&rr.name))
                        && match (&rr.rdata, record) {
                            (RData::MX(mx), Record::Mx(got)) => {
                                mx.preference == got.preference
                                    && bare(&mx.exchange) == got.exchange
                            }
                            (RData::A(a), Record::A(got)) => Ipv4Addr::from(a.address) == *got,
                            (RData::AAAA(a), Record::Aaaa(got)) => {
                                Ipv6Addr::from(a.address) == *got
                            }
                            _ => false,
                        }
                });
                assert!(found, "{record:?} is not an answer for {names:?}");
            }
            // Records of our name itself are never lost.
            let direct = packet
                .answers
                .iter()
                .filter(|rr| bare(&rr.name) == QNAME)
                .filter(|rr| {
                    matches!(
                        (&rr.rdata, qtype),
                        (RData::MX(_), QueryType::Mx)
                            | (RData::A(_), QueryType::A)
                            | (RData::AAAA(_), QueryType::Aaaa)
                    )
                })
                .count();
            assert!(records.len() >= direct, "direct answers dropped");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mode = common::byte(&mut data);
    let qtype = match mode % 3 {
        0 => QueryType::Mx,
        1 => QueryType::A,
        _ => QueryType::Aaaa,
    };
    // Half the time the question is asked with other case and a root dot.
    let asked = if mode & 0x08 != 0 {
        "Example.COM."
    } else {
        QNAME
    };
    if mode & 0x04 == 0 {
        let result = parse_response(data, ID, asked, qtype);
        check(data, qtype, &result);
        return;
    }
    // Built mode: recipe, then `mutations` (position, xor) pairs at the end.
    let mutations = usize::from(mode >> 4);
    let split = data.len().saturating_sub(mutations * 3);
    let (recipe, tail) = data.split_at(split);
    let mut bytes = build(qtype, recipe);
    let pristine = bytes.clone();
    for m in tail.chunks(3) {
        if bytes.is_empty() {
            break;
        }
        let at = usize::from(u16::from_le_bytes([m[0], *m.get(1).unwrap_or(&0)])) % bytes.len();
        bytes[at] ^= m.get(2).copied().unwrap_or(1);
    }
    let result = parse_response(&bytes, ID, asked, qtype);
    check(&bytes, qtype, &result);
    let question_is_ours = recipe.first().is_none_or(|b| {
        b & 0x80 == 0 || NAMES[usize::from(*b) % NAMES.len()].eq_ignore_ascii_case(QNAME)
    });
    let nxdomain = recipe.first().is_some_and(|b| b & 0x40 != 0);
    if bytes == pristine && !pristine.is_empty() && question_is_ours {
        match (nxdomain, &result) {
            (true, Err(DnsError::NxDomain)) | (false, Ok(Response::Records(_))) => {}
            _ => panic!("a valid reply was refused: {result:?}"),
        }
    }
});
