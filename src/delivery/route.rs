//! Which hosts to try for a domain (RFC 5321 §5.1), as a pure function of
//! the MX answer and a shuffle seed.
//!
//! MX hosts are tried by preference, lowest first, in random order among
//! equal preferences (§5.1: "randomize ... to spread the load"); a domain
//! without MX records is its own mail exchanger (the implicit MX, §5.1); a
//! null MX (RFC 7505) means the domain accepts no mail at all.

use super::dns::Mx;
use crate::proto::reply::Enhanced;
use crate::proto::splitmix::splitmix64;

/// At most this many MX hosts are tried per attempt (Postfix's
/// `smtp_mx_address_limit` is 5; a few more costs little).
pub const MAX_MX_HOSTS: usize = 10;

/// A host to connect to, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// The host name to resolve (A/AAAA) and connect to.
    pub host: String,
    /// The MX preference; 0 for the implicit MX.
    pub preference: u16,
    /// True when the domain had no MX and its own address is used.
    pub implicit: bool,
}

/// Why no host can be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// The domain publishes a null MX (RFC 7505 §3): it accepts no mail.
    NullMx,
}

impl RouteError {
    /// The status for the report: 5.1.10 (RFC 7505 §4.2).
    pub fn status(&self) -> Enhanced {
        match self {
            RouteError::NullMx => Enhanced(5, 1, 10),
        }
    }

    /// A sentence for the sender.
    pub fn text(&self) -> &'static str {
        match self {
            RouteError::NullMx => "The recipient's domain does not accept mail (null MX, RFC 7505)",
        }
    }
}

/// Orders the targets for `domain` given its MX records (`mx` empty means
/// the lookup succeeded with no MX records). `seed` shuffles hosts of equal
/// preference.
pub fn select(domain: &str, mx: &[Mx], seed: u64) -> Result<Vec<NextHop>, RouteError> {
    if mx.is_empty() {
        return Ok(vec![NextHop {
            host: normalise(domain),
            preference: 0,
            implicit: true,
        }]);
    }
    let is_null = |m: &Mx| normalise(&m.exchange).is_empty();
    // RFC 7505 §3: a null MX is the only MX of its domain. If one is mixed
    // with real ones (a misconfiguration), we ignore the "." and use the
    // others, as the other records show the domain does want mail.
    let mut real: Vec<&Mx> = mx.iter().filter(|m| !is_null(m)).collect();
    if real.is_empty() {
        return Err(RouteError::NullMx);
    }
    // Sort by preference, randomising among equals: sort by (preference,
    // a per-host random key).
    let mut rng = seed;
    let mut keyed: Vec<(u16, u64, String)> = Vec::with_capacity(real.len());
    real.sort_by_key(|m| m.preference);
    for m in real {
        rng = splitmix64(rng);
        let host = normalise(&m.exchange);
        if keyed.iter().any(|(_, _, h)| *h == host) {
            continue;
        }
        keyed.push((m.preference, rng, host));
    }
    keyed.sort_by_key(|(pref, key, _)| (*pref, *key));
    keyed.truncate(MAX_MX_HOSTS);
    Ok(keyed
        .into_iter()
        .map(|(preference, _, host)| NextHop {
            host,
            preference,
            implicit: false,
        })
        .collect())
}

/// Lower case without the trailing dot of a fully qualified name.
fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(list: &[(u16, &str)]) -> Vec<Mx> {
        list.iter()
            .map(|(p, h)| Mx {
                preference: *p,
                exchange: h.to_string(),
            })
            .collect()
    }

    fn hosts(t: &[NextHop]) -> Vec<&str> {
        t.iter().map(|t| t.host.as_str()).collect()
    }

    #[test]
    fn orders_by_preference() {
        let records = mx(&[(20, "b.example."), (10, "A.example"), (30, "c.example")]);
        let t = select("example", &records, 7).unwrap();
        assert_eq!(hosts(&t), vec!["a.example", "b.example", "c.example"]);
        assert_eq!(t[0].preference, 10);
        assert!(!t[0].implicit);
    }

    #[test]
    fn shuffles_equal_preferences_by_seed_only() {
        let records = mx(&[
            (5, "z.example"),
            (10, "a"),
            (10, "b"),
            (10, "c"),
            (10, "d"),
            (20, "last"),
        ]);
        let mut seen = std::collections::HashSet::new();
        for seed in 0..64 {
            let t = select("example", &records, seed).unwrap();
            assert_eq!(t[0].host, "z.example");
            assert_eq!(t[5].host, "last");
            let mut mid: Vec<_> = hosts(&t[1..5]).into_iter().map(String::from).collect();
            seen.insert(mid.clone());
            mid.sort();
            assert_eq!(mid, vec!["a", "b", "c", "d"]);
            assert_eq!(
                select("example", &records, seed).unwrap(),
                t,
                "deterministic"
            );
        }
        assert!(seen.len() > 5, "equal preferences are spread: {seen:?}");
    }

    #[test]
    fn no_mx_means_the_domain_itself() {
        let t = select("Example.ORG.", &[], 0).unwrap();
        assert_eq!(
            t,
            vec![NextHop {
                host: "example.org".into(),
                preference: 0,
                implicit: true
            }]
        );
    }

    #[test]
    fn null_mx_is_a_permanent_failure() {
        for records in [mx(&[(0, "")]), mx(&[(0, ".")])] {
            let err = select("example", &records, 0).unwrap_err();
            assert_eq!(err, RouteError::NullMx);
            assert_eq!(err.status(), Enhanced(5, 1, 10));
        }
        let mixed = select("example", &mx(&[(0, "."), (10, "mx.example")]), 0).unwrap();
        assert_eq!(hosts(&mixed), vec!["mx.example"]);
    }

    #[test]
    fn duplicates_dropped_and_list_capped() {
        let many: Vec<(u16, String)> = (0..30).map(|i| (i as u16, format!("h{i}"))).collect();
        let records: Vec<Mx> = many
            .iter()
            .map(|(p, h)| Mx {
                preference: *p,
                exchange: h.clone(),
            })
            .collect();
        assert_eq!(select("e", &records, 0).unwrap().len(), MAX_MX_HOSTS);
        let dup = select("e", &mx(&[(10, "a"), (20, "A.")]), 0).unwrap();
        assert_eq!(hosts(&dup), vec!["a"]);
    }
}
