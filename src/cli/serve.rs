//! `outpost serve [OPTIONS]`: parse the options, lock the data directory
//! (one server per directory), prepare it (first start), run the server
//! until a signal stops it.

use std::io::Write;

use super::first_start;
use super::lock::DataDirLock;
use super::privileges::RunAs;
use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::config::{self, Config, ServeArgs};
use crate::queue::Spool;
use crate::runtime::metrics_endpoint::MetricsEndpoint;
use crate::runtime::{self, Listeners, Server, ServerError, ServerHandle};

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
    let run_as = match RunAs::from_config(&config) {
        Ok(run_as) => run_as,
        Err(e) => {
            log::error!("cannot start: {e}");
            eprintln!("outpost: {e}");
            return EXIT_USAGE;
        }
    };
    // Bound before anything is created: a port in use stops a first start
    // before it writes a users file whose password nobody would see.
    let started = bind(&config)
        .map_err(|e| e.to_string())
        .and_then(|(listeners, metrics)| {
            if let Some(advice) = first_start::unshown_password(&config) {
                log::warn!("{advice}");
            }
            let first = first_start::prepare(&config).map_err(|e| e.to_string())?;
            match start(config, listeners, metrics, run_as.as_ref()) {
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

/// Reads the certificate, switches to `run_as` (the data directory given
/// to it first), then starts the server: whatever needs root is done
/// before the switch, and no thread runs before it.
fn start(
    config: Config,
    listeners: Listeners,
    metrics: Option<MetricsEndpoint>,
    run_as: Option<&RunAs>,
) -> Result<ServerHandle, String> {
    let certificate = runtime::load_certificate(&config).map_err(|e| e.to_string())?;
    if let Some(run_as) = run_as {
        let group_access = config.delivery.maildir_group_access;
        run_as
            .own_data_dir(&config.data_dir, group_access)
            .and_then(|_| run_as.switch())
            .map_err(|e| e.to_string())?;
        log::info!("running as {}", run_as.describe());
    }
    let data_dir = config.data_dir.clone();
    let hostname = config.hostname.clone();
    let handle =
        Server::start_with_signals(config, listeners, certificate).map_err(|e| e.to_string())?;
    if let Some(metrics) = metrics {
        let spool = Spool::attach(&data_dir, &hostname).map_err(|e| e.to_string())?;
        metrics.serve(spool).map_err(|e| e.to_string())?;
    }
    Ok(handle)
}

/// Binds the mail listeners and the metrics listener: all that needs the
/// ports, before anything is created.
fn bind(config: &Config) -> Result<(Listeners, Option<MetricsEndpoint>), ServerError> {
    let listeners = Listeners::bind(config)?;
    let metrics = config.metrics.map(MetricsEndpoint::bind).transpose()?;
    Ok((listeners, metrics))
}
