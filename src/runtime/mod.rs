//! runtime (pending).

/// Runs the command line `args` (including the program name); returns the
/// process exit code.
pub fn main_with_args(args: Vec<String>) -> i32 {
    let _ = args;
    2
}
