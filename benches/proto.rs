//! Throughput of the protocol core, in bytes/s, each next
//! to two references over the same bytes in the same run: counting `\n`
//! with memchr (a scan) and a plain copy into a reused Vec. Only the ratios
//! between them mean anything on a shared machine.
//!
//! Run: `cargo bench --bench proto` (a few minutes on 2 cores);
//! one group: `cargo bench --bench proto -- unstuff/text`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

use common::{Kind, CHUNK};
use outpost::proto::command;
use outpost::proto::line::{LineSplitter, LineStatus, MAX_COMMAND_LINE};

/// The body sizes measured: 1 KiB, 64 KiB, 10 MiB (before stuffing).
pub const SIZES: [(&str, usize); 3] = [
    ("1KiB", 1024),
    ("64KiB", 64 * 1024),
    ("10MiB", 10 * 1024 * 1024),
];

/// Adds the two references over `input`: memchr for `\n` and a plain copy,
/// both in `CHUNK`-sized pieces like the code they stand next to.
fn references(group: &mut BenchmarkGroup<'_, WallTime>, input: &[u8]) {
    group.bench_function("memchr_lf", |b| {
        b.iter(|| {
            let mut lines = 0;
            for chunk in black_box(input).chunks(CHUNK) {
                lines += memchr::memchr_iter(b'\n', chunk).count();
            }
            lines
        })
    });
    let mut out = Vec::with_capacity(input.len());
    group.bench_function("copy", |b| {
        b.iter(|| {
            out.clear();
            for chunk in black_box(input).chunks(CHUNK) {
                out.extend_from_slice(chunk);
            }
            out.len()
        })
    });
}

/// `LineSplitter` over a buffer of pipelined command lines.
fn line_splitting(c: &mut Criterion) {
    let input = common::commands(64 * 1024);
    let mut group = c.benchmark_group("lines");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("split", |b| {
        b.iter(|| {
            let mut splitter = LineSplitter::new(MAX_COMMAND_LINE);
            let mut rest = black_box(&input[..]);
            let mut lines = 0;
            while let LineStatus::Line { line, consumed } = splitter.next(rest) {
                lines += line.len();
                rest = &rest[consumed..];
            }
            lines
        })
    });
    references(&mut group, &input);
    group.finish();
}

/// `command::parse` over a realistic mix of command lines.
fn command_parsing(c: &mut Criterion) {
    let input = common::commands(64 * 1024);
    let lines: Vec<&[u8]> = input
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .collect();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("parse", |b| {
        b.iter(|| {
            let mut known = 0;
            for line in black_box(&lines) {
                if !matches!(command::parse(line), Ok(command::Command::Unknown)) {
                    known += 1;
                }
            }
            known
        })
    });
    references(&mut group, &input);
    group.finish();
}

/// `Unstuffer::feed` with end-of-data search over realistic bodies.
fn unstuffing(c: &mut Criterion) {
    for kind in Kind::ALL {
        let mut group = c.benchmark_group(format!("unstuff/{}", kind.name()));
        for (size_name, size) in SIZES {
            let wire = common::wire(kind, size);
            group.throughput(Throughput::Bytes(wire.len() as u64));
            let mut out = Vec::with_capacity(wire.len());
            group.bench_function(format!("unstuff/{size_name}"), |b| {
                b.iter(|| common::unstuff(black_box(&wire), &mut out))
            });
            group.bench_function(format!("memchr_lf/{size_name}"), |b| {
                b.iter(|| {
                    let mut lines = 0;
                    for chunk in black_box(&wire[..]).chunks(CHUNK) {
                        lines += memchr::memchr_iter(b'\n', chunk).count();
                    }
                    lines
                })
            });
            group.bench_function(format!("copy/{size_name}"), |b| {
                b.iter(|| {
                    out.clear();
                    for chunk in black_box(&wire[..]).chunks(CHUNK) {
                        out.extend_from_slice(chunk);
                    }
                    out.len()
                })
            });
        }
        group.finish();
    }
}

/// A whole in-memory session on the Smtp role from a trusted client.
fn session(c: &mut Criterion) {
    let input = common::conversation();
    let config = common::session_config();
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Bytes(input.len() as u64));
    let mut out = Vec::new();
    group.bench_function("ehlo_to_quit_100KiB", |b| {
        b.iter(|| common::run_session(&config, black_box(&input), &mut out))
    });
    references(&mut group, &input);
    group.finish();
}

/// Short runs: the default `cargo bench` must finish in minutes on a small,
/// shared machine; ratios within one run are what is reported.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = line_splitting, command_parsing, unstuffing, session
}
criterion_main!(benches);
