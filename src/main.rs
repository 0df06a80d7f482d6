//! The `deepcluster` command.
//!
//! Exit codes: 0 on success, 1 when a run fails (for example a non-finite loss), 2 for invalid
//! input (options, files, checkpoints), 130 when interrupted by Ctrl-C.

mod cli;

fn main() {
    std::process::exit(cli::run());
}
