//! `outpost serve [OPTIONS]`: parse the options, lock the data directory
//! (one server per directory), prepare it (first start), run the server
//! until a signal stops it.

use std::io::Write;

use super::first_start;
use super::lock::DataDirLock;
use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::config::{self, ServeArgs};
use crate::runtime::{Listeners, Server};

/// Runs `outpost serve` with the arguments after `serve`; returns the exit
/// code (0 after a graceful stop).
pub fn run(args: &[String]) -> i32 {
    let config = match config::parse_args(args) {
        Ok(ServeArgs::Run(config)) => *config,
        Ok(ServeArgs::Help) => {
            print!("{}", config::usage());
            return 0;
        }
        Ok(ServeArgs::Check(config, settings)) => {
            return super::check_config::run(&config, &settings, &mut std::io::stdout().lock());
        }
        Err(e) => {
            eprintln!("outpost: {e}");
            return EXIT_USAGE;
        }
    };
    super::init_logging();
    for warning in config::warnings(&config) {
        log::warn!("{warning}");
    }
    // Before anything in the data directory is touched: a second server
    // would otherwise clean up the first one's messages in flight.
    let _lock = match DataDirLock::acquire(&config.data_dir) {
        Ok(lock) => lock,
        Err(e) => {
            log::error!("cannot start: {e}");
            eprintln!("outpost: {e}");
            return EXIT_FAILURE;
        }
    };
    // Bound before anything is created: a port in use stops a first start
    // before it writes a users file whose password nobody would see.
    let started = Listeners::bind(&config).and_then(|listeners| {
        if let Some(advice) = first_start::unshown_password(&config) {
            log::warn!("{advice}");
        }
        let first = first_start::prepare(&config)?;
        match Server::start_with_signals(config, listeners) {
            Ok(handle) => Ok((first, handle)),
            Err(e) => {
                if let Some(first) = &first {
                    first_start::undo(first);
                }
                Err(e)
            }
        }
    });
    let (first, handle) = match started {
        Ok(started) => started,
        Err(e) => {
            log::error!("cannot start: {e}");
            eprintln!("outpost: {e}");
            return EXIT_FAILURE;
        }
    };
    if let Some(first) = &first {
        print!("{}", first_start::message(first, &handle));
        if std::io::stdout().flush().is_ok() {
            first_start::shown(first);
        }
    }
    handle.wait();
    0
}
