//! The `outpost` binary: a thin wrapper over the library.

fn main() {
    std::process::exit(outpost::cli::main_with_args(std::env::args().collect()));
}
