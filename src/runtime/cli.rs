//! The `outpost` command line: a table of subcommands (`serve`, `passwd`, `check`;
//! more are added as one row each) and the first-start message.

use std::io::{BufRead, IsTerminal, Write};

use super::{role_name, Server, ServerHandle};
use crate::config::{self, Parsed};
use crate::proto::session::Role;

/// One subcommand: name, argument synopsis, help line, entry point
/// (arguments after the subcommand's name; returns the exit code).
struct Command {
    name: &'static str,
    synopsis: &'static str,
    help: &'static str,
    run: fn(&[String]) -> i32,
}

const COMMANDS: &[Command] = &[
    Command {
        name: "serve",
        synopsis: "[OPTIONS]",
        help: "run the mail server (`outpost serve --help` lists the options)",
        run: serve,
    },
    Command {
        name: "passwd",
        synopsis: "[ADDRESS]",
        help: "read a password on stdin and print `ADDRESS:hash` for the users file",
        run: passwd,
    },
    Command {
        name: "queue",
        synopsis: "list|show|flush|delete",
        help: "inspect and manage the queue (safe while the server runs; `--data-dir DIR`)",
        run: crate::delivery::queue_cli::run,
    },
    Command {
        name: "bench",
        synopsis: "[OPTIONS]",
        help: "load generator: N sessions x M messages against a loopback server (`outpost bench --help`)",
        run: crate::loadgen::run,
    },
    Command {
        name: "check",
        synopsis: "[HOST:PORT...]",
        help: "diagnose mail ports, certificates, MX records, blocked port 25 (`outpost check --help`)",
        run: crate::check::run,
    },
];

/// Exit code for a usage error.
const EXIT_USAGE: i32 = 2;
/// Exit code for a failure at run time.
const EXIT_FAILURE: i32 = 1;

/// Runs the command line `args` (including the program name); returns the
/// process exit code.
pub fn main_with_args(args: Vec<String>) -> i32 {
    let rest = args.get(2..).unwrap_or(&[]);
    match args.get(1).map(String::as_str) {
        Some("-h" | "--help" | "help") => {
            print!("{}", overview());
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
        "  {:<32} {}\n\n",
        "outpost --help", "show this help"
    ));
    text.push_str(&config::options_help());
    text
}

fn serve(args: &[String]) -> i32 {
    let config = match config::parse_args(args) {
        Ok(Parsed::Run(config)) => *config,
        Ok(Parsed::Help) => {
            print!("{}", config::usage());
            return 0;
        }
        Err(e) => {
            eprintln!("outpost: {e}");
            return EXIT_USAGE;
        }
    };
    init_logging();
    let handle = match Server::start_with_signals(config) {
        Ok(handle) => handle,
        Err(e) => {
            log::error!("cannot start: {e}");
            eprintln!("outpost: {e}");
            return EXIT_FAILURE;
        }
    };
    if handle.first_start().is_some() {
        print!("{}", first_start_message(&handle));
        let _ = std::io::stdout().flush();
    }
    handle.wait();
    0
}

fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    // A logger may already be installed when embedded; keep that one.
    let _ = env_logger::Builder::from_env(env).try_init();
}

/// How to log in with the user created on the first start, shown once.
fn first_start_message(handle: &ServerHandle) -> String {
    let Some(first) = handle.first_start() else {
        return String::new();
    };
    let mut text = format!(
        "\nFirst start: created the user {user} in {file}.\n\
         \x20 User name: {user}\n\
         \x20 Password:  {password}   (shown only this once)\n",
        user = first.user,
        password = first.password,
        file = first.users_file.display(),
    );
    let ports = [
        (
            handle.submission_addrs(),
            Role::Submission,
            "STARTTLS, login required",
        ),
        (
            handle.submissions_addrs(),
            Role::Submissions,
            "SSL/TLS, login required",
        ),
        (
            handle.smtp_addrs(),
            Role::Smtp,
            "mail from other servers; STARTTLS offered",
        ),
    ];
    for (addresses, role, how) in ports {
        for address in addresses {
            text.push_str(&format!("  {:<12} {address}  ({how})\n", role_name(role)));
        }
    }
    text.push_str(&format!(
        "  The certificate is self-signed: mail clients will ask you to trust it.\n\
         \x20 Add users with: outpost passwd user@domain >> {file}\n\
         \x20 then send this server SIGHUP (kill -HUP {pid}) to load them.\n\n",
        file = first.users_file.display(),
        pid = std::process::id(),
    ));
    text
}

fn passwd(args: &[String]) -> i32 {
    if args.len() > 1 || args.first().is_some_and(|a| a.starts_with('-')) {
        eprintln!("usage: outpost passwd [ADDRESS]   (the password is read from stdin)");
        return EXIT_USAGE;
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (will be shown as you type): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    if let Err(e) = stdin.lock().read_line(&mut line) {
        eprintln!("outpost: cannot read the password: {e}");
        return EXIT_FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("outpost: empty password");
        return EXIT_FAILURE;
    }
    match args.first() {
        Some(address) => println!("{}", crate::directory::users_file_line(address, password)),
        None => println!("{}", crate::auth::hash_password(password)),
    }
    0
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
        assert_eq!(run(&["outpost", "serve", "--help"]), 0);
        assert_eq!(run(&["outpost", "serve", "--smtp", "nonsense"]), EXIT_USAGE);
        assert_eq!(run(&["outpost", "passwd", "a@b", "extra"]), EXIT_USAGE);
        assert_eq!(run(&["outpost", "check", "--help"]), 0);
        assert_eq!(run(&["outpost", "check"]), EXIT_USAGE);
    }
}
