//! `ipcx`: measure, inspect, clean up and drive Linux IPC from the command line.
//!
//! This release has `--help` and `--version`; `bench`, `ls`, `rm`, `gc`, `send`, `recv`,
//! `relay` and `advise` arrive with the library features they drive.

use clap::Parser;

/// Measure, inspect, clean up and drive Linux IPC.
///
/// Subcommands arrive with the library features they drive: `bench` (every mechanism
/// measured on this machine), `ls`/`rm`/`gc` (IPC objects and their owners), `send`/
/// `recv`/`relay` (move messages between addresses) and `advise`. The library, `ipcx`,
/// already covers pipes, FIFOs, Unix sockets and TCP/UDP.
#[derive(Parser, Debug)]
#[command(
    name = "ipcx",
    version,
    about,
    long_about,
    arg_required_else_help = true
)]
struct Cli {}

fn main() {
    let Cli {} = Cli::parse();
}
