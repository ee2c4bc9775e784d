//! A fixed amount of work for instruction counting under callgrind
//! (`benches/RESULTS.md` has the commands): instruction counts do not
//! depend on a noisy shared machine the way times do.
//!
//! `unstuff_profile text|base64|dots` unstuffs one 10 MiB body,
//! `commands` splits and parses 1 MiB of command lines, `session` runs one
//! EHLO-to-QUIT conversation with a 100 KiB message. Without an argument
//! (as under `cargo bench`) it runs all of them once and prints the sizes.

mod common;

use std::hint::black_box;

use common::Kind;
use outpost::proto::command;
use outpost::proto::line::{LineSplitter, LineStatus, MAX_COMMAND_LINE};

/// Unstuffs a 10 MiB body of `kind`; returns the wire size.
fn unstuff(kind: Kind) -> usize {
    let wire = common::wire(kind, 10 * 1024 * 1024);
    let mut out = Vec::with_capacity(wire.len());
    black_box(common::unstuff(black_box(&wire), &mut out));
    wire.len()
}

/// Splits and parses 1 MiB of command lines; returns their size.
fn commands() -> usize {
    let input = common::commands(1024 * 1024);
    let mut splitter = LineSplitter::new(MAX_COMMAND_LINE);
    let mut rest = black_box(&input[..]);
    while let LineStatus::Line { line, consumed } = splitter.next(rest) {
        let _ = black_box(command::parse(line));
        rest = &rest[consumed..];
    }
    input.len()
}

/// One conversation; returns its size.
fn session() -> usize {
    let input = common::conversation();
    let mut out = Vec::new();
    black_box(common::run_session(
        &common::session_config(),
        black_box(&input),
        &mut out,
    ));
    input.len()
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let mut ran = false;
    for kind in Kind::ALL {
        if which == kind.name() {
            println!("{} {} bytes", kind.name(), unstuff(kind));
            ran = true;
        }
    }
    match which.as_str() {
        "commands" => println!("commands {} bytes", commands()),
        "session" => println!("session {} bytes", session()),
        _ if ran => {}
        _ => {
            for kind in Kind::ALL {
                println!("{} {} bytes", kind.name(), unstuff(kind));
            }
            println!("commands {} bytes", commands());
            println!("session {} bytes", session());
        }
    }
}
