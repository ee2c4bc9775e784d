//! `outpost passwd [ADDRESS]`: read a password on stdin and print its hash,
//! or the whole `ADDRESS:hash` line for the users file.

use std::io::{BufRead, IsTerminal, Write};

use super::{EXIT_FAILURE, EXIT_USAGE};

/// Runs `outpost passwd` with the arguments after `passwd`; returns the
/// exit code.
pub fn run(args: &[String]) -> i32 {
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
