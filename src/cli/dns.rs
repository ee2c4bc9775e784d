//! `outpost dns DOMAIN [OPTIONS]`: the DNS records to publish for mail
//! from and to DOMAIN, in zone-file syntax, each after a one-line `;`
//! comment: MX, SPF, the DKIM key records, DMARC, TLS-RPT, the RFC 6186
//! submission SRV records, and the PTR to ask the hosting provider for.
//!
//! It takes the options of `outpost serve` (`--config`, `--data-dir`,
//! `--hostname`, `--relay-host`, `--dkim-…`), so it describes the server
//! that those options run, and creates DOMAIN's DKIM keys when they are
//! missing, so the records can be published before the first start.

use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::config::{self, Config, ServeArgs, OPTIONS};
use crate::delivery::config::HostPort;
use crate::dkim::key::txt_data;
use crate::dkim::store::{now_secs, KeyStore};
use crate::dkim::DomainKey;

/// The time to live of every record printed, in seconds.
const TTL: u32 = 3600;

/// Runs `outpost dns` with the arguments after `dns`; returns the exit
/// code.
pub fn run(args: &[String]) -> i32 {
    let (domain, rest) = match split_domain(args) {
        Ok(split) => split,
        Err(Some(e)) => {
            eprintln!("outpost dns: {e}\n\n{}", usage());
            return EXIT_USAGE;
        }
        Err(None) => {
            print!("{}", usage());
            return 0;
        }
    };
    let config = match config::parse_args(&rest) {
        // `--check-config` means nothing here: the records are printed.
        Ok(ServeArgs::Run(config) | ServeArgs::Check(config, _)) => *config,
        Ok(ServeArgs::Help) => {
            print!("{}", usage());
            return 0;
        }
        Err(e) => {
            eprintln!("outpost dns: {e}");
            return EXIT_USAGE;
        }
    };
    super::init_logging();
    let signed = config
        .effective_local_domains()
        .iter()
        .chain(&config.dkim.domains)
        .any(|d| d.eq_ignore_ascii_case(&domain));
    if !signed {
        eprintln!(
            "outpost dns: warning: {domain} is neither a local domain nor in --dkim-domains: \
             the server does not sign its mail"
        );
    }
    match keys(&config, &domain) {
        Ok((keys, selector)) => {
            print!("{}", records(&config, &domain, &keys, &selector));
            0
        }
        Err(e) => {
            eprintln!("outpost dns: {e}");
            EXIT_FAILURE
        }
    }
}

fn usage() -> String {
    format!(
        "Usage: outpost dns DOMAIN [OPTIONS]\n\n\
         Prints the DNS records to publish for DOMAIN (zone-file lines, each after a `;` comment):\n\
         MX, SPF, DKIM, DMARC, TLS-RPT, the submission SRV records, and the PTR to ask for.\n\
         Creates DOMAIN's DKIM keys in DATA-DIR/dkim/DOMAIN/ if they are missing, so the\n\
         records can be published before the first start. Check them once published with\n\
         `outpost check --dns DOMAIN`.\n\n\
         Takes the options of `outpost serve` (give the same --config or --data-dir):\n\n{}",
        config::options_help()
    )
}

/// The domain (the one argument that is neither an option nor an option's
/// value) and the other arguments; `Err(None)` for `--help`.
fn split_domain(args: &[String]) -> Result<(String, Vec<String>), Option<String>> {
    let mut domain = None;
    let mut rest = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "-h" || arg == "--help" {
            return Err(None);
        }
        if let Some(name) = arg.strip_prefix("--") {
            rest.push(arg.clone());
            let takes_value = name == "config"
                || OPTIONS
                    .iter()
                    .any(|spec| spec.name == name && !spec.hint.is_empty());
            if takes_value && !name.contains('=') {
                rest.extend(iter.next().cloned());
            }
        } else if domain.is_none() {
            domain = Some(arg.trim_end_matches('.').to_ascii_lowercase());
        } else {
            return Err(Some(format!("unexpected argument {arg:?}")));
        }
    }
    match domain {
        Some(d) if !d.is_empty() => Ok((d, rest)),
        _ => Err(Some("give the DOMAIN to publish records for".to_string())),
    }
}

/// DOMAIN's keys (created if missing) and the selector that signs now.
fn keys(
    config: &Config,
    domain: &str,
) -> Result<(Vec<DomainKey>, String), crate::dkim::StoreError> {
    let store = KeyStore::new(&config.data_dir);
    let selector = store.selector(domain, config.dkim.selector.as_deref(), now_secs());
    for &algorithm in &config.dkim.algorithms {
        if let Some(path) = store.create_if_missing(domain, &selector, algorithm)? {
            eprintln!("outpost dns: created the DKIM key {}", path.display());
        }
    }
    Ok((store.all_keys(domain)?, selector))
}

/// Every record for `domain`, with its comment.
fn records(config: &Config, domain: &str, keys: &[DomainKey], selector: &str) -> String {
    let host = config.hostname.trim_end_matches('.').to_ascii_lowercase();
    let mut out = String::new();
    let mut record = |comment: &str, name: &str, kind: &str, data: &str| {
        out.push_str(&format!("; {comment}\n{name} {TTL} IN {kind} {data}\n"));
    };
    record(
        &format!("mail for {domain} goes to this server; {host} needs A/AAAA records with its public addresses"),
        &format!("{domain}."),
        "MX",
        &format!("10 {host}."),
    );
    match &config.delivery.relay_host {
        None => record(
            "SPF: only the hosts of the MX record send mail for the domain",
            &format!("{domain}."),
            "TXT",
            &txt_data("v=spf1 mx -all"),
        ),
        Some(relay) => record(
            &spf_relay_comment(relay),
            &format!("{domain}."),
            "TXT",
            &txt_data("v=spf1 mx ~all"),
        ),
    }
    for key in keys {
        let now = if key.selector == selector
            || key.selector == format!("{selector}{}", crate::dkim::store::ED25519_SUFFIX)
        {
            "signs now"
        } else {
            "an older or other key: keep it published while mail it signed may still be checked"
        };
        record(
            &format!(
                "DKIM key {} ({}), {now}",
                key.selector,
                key.key.algorithm().signature_name()
            ),
            &key.record_name(),
            "TXT",
            &txt_data(&key.key.dns_record()),
        );
    }
    record(
        "DMARC: p=none only asks for reports; after a few weeks of reports showing your mail passing, move to p=quarantine, then p=reject",
        &format!("_dmarc.{domain}."),
        "TXT",
        &txt_data(&format!("v=DMARC1; p=none; rua=mailto:postmaster@{domain}")),
    );
    record(
        "TLS-RPT (RFC 8460): senders report failed TLS connections to this domain's MX",
        &format!("_smtp._tls.{domain}."),
        "TXT",
        &txt_data(&format!("v=TLSRPTv1; rua=mailto:postmaster@{domain}")),
    );
    record(
        "mail clients find the submission port, STARTTLS (RFC 6186)",
        &format!("_submission._tcp.{domain}."),
        "SRV",
        &format!("0 1 587 {host}."),
    );
    record(
        "mail clients find the submissions port, implicit TLS (RFC 8314)",
        &format!("_submissions._tcp.{domain}."),
        "SRV",
        &format!("0 1 465 {host}."),
    );
    out.push_str(&format!(
        "; PTR: ask your hosting provider to set the reverse DNS (PTR) of this server's public \
         IPv4 and IPv6 addresses to {host}.\n"
    ));
    out
}

fn spf_relay_comment(relay: &HostPort) -> String {
    format!(
        "SPF: mail leaves through {}: add the include: your provider documents before ~all \
         (e.g. include:spf.provider.example), then make ~all -all",
        relay.host
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_domain_is_the_argument_that_is_not_an_option_value() {
        let (domain, rest) = split_domain(&strings(&[
            "--data-dir",
            "/srv/mail",
            "Example.COM.",
            "--auth-equals-line",
            "--hostname=mx.example.com",
        ]))
        .unwrap();
        assert_eq!(domain, "example.com");
        assert_eq!(
            rest,
            [
                "--data-dir",
                "/srv/mail",
                "--auth-equals-line",
                "--hostname=mx.example.com"
            ]
        );
        assert!(matches!(split_domain(&strings(&["--help"])), Err(None)));
        assert!(matches!(split_domain(&strings(&[])), Err(Some(_))));
        assert!(matches!(
            split_domain(&strings(&["a.test", "b.test"])),
            Err(Some(_))
        ));
        assert!(matches!(
            split_domain(&strings(&["--config", "a.test"])),
            Err(Some(_))
        ));
    }

    #[test]
    fn a_smarthost_softens_spf_until_its_include_is_added() {
        let mut config = Config {
            hostname: "mx.example.com".into(),
            ..Config::default()
        };
        let direct = records(&config, "example.com", &[], "s");
        assert!(
            direct.contains("example.com. 3600 IN TXT \"v=spf1 mx -all\"\n"),
            "{direct}"
        );
        assert!(direct.contains("example.com. 3600 IN MX 10 mx.example.com.\n"));
        assert!(
            direct.contains("_submission._tcp.example.com. 3600 IN SRV 0 1 587 mx.example.com.\n")
        );
        config.delivery.relay_host = Some(HostPort {
            host: "smtp.provider.example".into(),
            port: 587,
        });
        let relayed = records(&config, "example.com", &[], "s");
        assert!(
            relayed.contains("mail leaves through smtp.provider.example"),
            "{relayed}"
        );
        assert!(relayed.contains("IN TXT \"v=spf1 mx ~all\"\n"));
        for line in relayed.lines() {
            assert!(
                line.starts_with("; ") || line.contains(". 3600 IN "),
                "{line}"
            );
        }
    }
}
