//! `outpost passwd [ADDRESS]`: read a password and print its hash, or the
//! whole `ADDRESS:hash` line for the users file. On a terminal the
//! password is read without echo and asked twice; otherwise it is the
//! first line of standard input. [`read_new_password`] is shared with
//! `outpost users`.

use std::io::{BufRead, IsTerminal};

use super::{EXIT_FAILURE, EXIT_USAGE};

/// Runs `outpost passwd` with the arguments after `passwd`; returns the
/// exit code.
pub fn run(args: &[String]) -> i32 {
    if args.len() > 1 || args.first().is_some_and(|a| a.starts_with('-')) {
        eprintln!(
            "usage: outpost passwd [ADDRESS]   (asked twice on a terminal, else read from stdin)"
        );
        return EXIT_USAGE;
    }
    let password = match read_new_password() {
        Ok(password) => password,
        Err(e) => {
            eprintln!("outpost: {e}");
            return EXIT_FAILURE;
        }
    };
    match args.first() {
        Some(address) => println!("{}", crate::directory::users_file_line(address, &password)),
        None => println!("{}", crate::auth::hash_password(&password)),
    }
    0
}

/// A new password: typed twice without echo on a terminal, or the first
/// line of standard input. An error (in words) for an empty password, two
/// that differ, or a read that failed.
pub fn read_new_password() -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("New password: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let again = rpassword::prompt_password("Repeat it: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != again {
            return Err("the two passwords differ; nothing changed".to_string());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err("empty password".to_string());
    }
    Ok(password)
}
