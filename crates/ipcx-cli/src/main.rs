//! `ipcx`: measure, inspect, clean up and drive Linux IPC from the command line.
//!
//! This release has `bench`; `ls`, `rm`, `gc`, `send`, `recv`, `relay` and `advise`
//! arrive with the library features they drive.

// Raw FFI is allowed in one module only (`bench::direct`, the libc baselines the bench
// compares ipcx against); everything else goes through ipcx and rustix.
#![deny(unsafe_code)]

mod bench;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Measure, inspect, clean up and drive Linux IPC.
///
/// `ipcx bench` measures every mechanism between two processes on this machine, beside
/// the machine's own floor. More subcommands arrive with the library features they
/// drive: `ls`/`rm`/`gc` (IPC objects and their owners), `send`/`recv`/`relay` (move
/// messages between addresses) and `advise`.
#[derive(Parser, Debug)]
#[command(
    name = "ipcx",
    version,
    about,
    long_about,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Bench(bench::BenchArgs),
    /// The peer process of `ipcx bench` (started by it; not for direct use).
    #[command(hide = true)]
    BenchChild {
        /// The peer's instructions, as JSON.
        spec: String,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Bench(args) => bench::run(args),
        Command::BenchChild { spec } => bench::child::main(&spec),
    }
}
