//! `wgd`: a userspace WireGuard daemon. This file only parses the command line, dispatches to
//! [`cli`] and turns the outcome into an exit status; the subcommands live under `src/cli/`.

// The panic rule, as in the library (src/lib.rs): the CLI reads configuration files, keys on
// stdin and UAPI replies.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented
)]

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // `--help` and `--version` print to stdout and succeed. Every other parse error is a
            // usage error; like `wg`, which exits 1 on any failure including usage, we exit 1
            // (clap's own default would be 2).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `wg` prints "wg: <message>"; we print "wgd: <message>" with the same text. Written
            // with `writeln!` rather than `eprintln!`, which would panic if stderr is unwritable.
            let _ = writeln!(std::io::stderr(), "wgd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
