//! The `outpost` binary: a thin wrapper over the library.

fn main() {
    std::process::exit(outpost::runtime::main_with_args(std::env::args().collect()));
}
