//! The `outpost` command line: a table of subcommands, each a row with its
//! entry point (`serve`, `passwd`, `users`, `queue`, `stats`, `bench`, `sendmail`, `check`,
//! `dns`; a new one is one more row), and the overview `outpost --help` prints.
//! Called under the name `sendmail` or `mailq`, the binary is that command.
//!
//! The top of the crate: may import every module, and is the only one that
//! imports `check` and `loadgen` (their command lines are `check` and
//! `bench` here).

pub mod bench;
mod check;
mod check_config;
mod dns;
pub mod first_start;
pub mod lock;
mod passwd;
mod privileges;
pub mod queue;
mod sendmail;
mod serve;
mod stats;
mod users;

use crate::config;

/// One subcommand: name, argument synopsis, help line, entry point
/// (arguments after the subcommand's name; returns the exit code).
struct Subcommand {
    name: &'static str,
    synopsis: &'static str,
    help: &'static str,
    run: fn(&[String]) -> i32,
}

const COMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "serve",
        synopsis: "[OPTIONS]",
        help: "run the mail server (`outpost serve --help` lists the options)",
        run: serve::run,
    },
    Subcommand {
        name: "passwd",
        synopsis: "[ADDRESS]",
        help: "read a password (twice, unechoed, on a terminal) and print `ADDRESS:hash`",
        run: passwd::run,
    },
    Subcommand {
        name: "users",
        synopsis: "add|passwd|delete|list",
        help: "edit the users file; a running server reloads it (`outpost users --help`)",
        run: users::run,
    },
    Subcommand {
        name: "queue",
        synopsis: "list|show|flush|delete",
        help: "inspect and manage the queue (safe while the server runs; `--data-dir DIR`)",
        run: queue::run,
    },
    Subcommand {
        name: "stats",
        synopsis: "[--config FILE]",
        help: "print a running server's counters (its --metrics address) in the Prometheus format",
        run: stats::run,
    },
    Subcommand {
        name: "bench",
        synopsis: "[OPTIONS]",
        help: "load generator: N sessions x M messages against a loopback server (`outpost bench --help`)",
        run: bench::run,
    },
    Subcommand {
        name: "sendmail",
        synopsis: "[-t] [-i] [-f FROM] [RCPT...]",
        help: "submit a message from standard input to the running server (also as `sendmail`; `mailq` lists the queue)",
        run: sendmail::run,
    },
    Subcommand {
        name: "check",
        synopsis: "[HOST:PORT...]",
        help: "diagnose mail ports, certificates, MX records, blocked port 25 (`outpost check --help`)",
        run: check::run,
    },
    Subcommand {
        name: "dns",
        synopsis: "DOMAIN [OPTIONS]",
        help: "print the DNS records to publish (MX, SPF, DKIM, DMARC, ...); creates missing DKIM keys",
        run: dns::run,
    },
];

/// Exit code for a usage error.
const EXIT_USAGE: i32 = 2;
/// Exit code for a failure at run time.
const EXIT_FAILURE: i32 = 1;

/// Runs the command line `args` (including the program name); returns the
/// process exit code.
pub fn main_with_args(args: Vec<String>) -> i32 {
    // Called as `sendmail` or `mailq` (a symlink): that interface.
    let program = args
        .first()
        .map(|arg0| arg0.rsplit('/').next().unwrap_or(arg0));
    match program {
        Some("sendmail") => return sendmail::run(args.get(1..).unwrap_or(&[])),
        Some("mailq") => return sendmail::run_mailq(args.get(1..).unwrap_or(&[])),
        _ => {}
    }
    let rest = args.get(2..).unwrap_or(&[]);
    match args.get(1).map(String::as_str) {
        Some("-h" | "--help" | "help") => {
            print!("{}", overview());
            0
        }
        Some("-V" | "--version") => {
            println!("outpost {}", env!("CARGO_PKG_VERSION"));
            0
        }
        None => {
            eprint!("{}", overview());
            EXIT_USAGE
        }
        Some(name) => match COMMANDS.iter().find(|c| c.name == name) {
            Some(command) => (command.run)(rest),
            None => {
                eprintln!("outpost: unknown command {name:?}\n");
                eprint!("{}", overview());
                EXIT_USAGE
            }
        },
    }
}

fn overview() -> String {
    let mut text = String::from("Outpost, a small SMTP mail server.\n\nUsage:\n");
    for command in COMMANDS {
        let head = format!("outpost {} {}", command.name, command.synopsis);
        text.push_str(&format!("  {head:<32} {}\n", command.help));
    }
    text.push_str(&format!(
        "  {:<32} {}\n",
        "outpost -V, --version", "print the version"
    ));
    text.push_str(&format!(
        "  {:<32} {}\n\n",
        "outpost --help", "show this help"
    ));
    text.push_str(&config::options_help());
    text
}

/// Sends log lines to standard error, at `info` unless `RUST_LOG` says
/// otherwise.
fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    // A logger may already be installed when embedded; keep that one.
    let _ = env_logger::Builder::from_env(env).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_and_help() {
        let run = |list: &[&str]| main_with_args(list.iter().map(|s| s.to_string()).collect());
        assert_eq!(run(&["outpost"]), EXIT_USAGE);
        assert_eq!(run(&["outpost", "frobnicate"]), EXIT_USAGE);
        assert_eq!(run(&["outpost", "--help"]), 0);
        assert_eq!(run(&["outpost", "--version"]), 0);
        assert_eq!(run(&["outpost", "-V"]), 0);
        assert_eq!(run(&["outpost", "serve", "--help"]), 0);
        assert_eq!(run(&["outpost", "serve", "--smtp", "nonsense"]), EXIT_USAGE);
        assert_eq!(run(&["outpost", "passwd", "a@b", "extra"]), EXIT_USAGE);
        assert_eq!(run(&["outpost", "check", "--help"]), 0);
        assert_eq!(run(&["outpost", "check"]), EXIT_USAGE);
        assert_eq!(run(&["outpost", "dns", "--help"]), 0);
        assert_eq!(run(&["outpost", "dns"]), EXIT_USAGE);
    }
}
