//! `outpost queue …` (pending).

/// Runs `outpost queue ARGS`; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let _ = args;
    2
}
