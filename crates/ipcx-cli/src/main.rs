//! `ipcx`: measure, inspect, clean up and drive Linux IPC from the command line.
//!
//! This release has `--help` and `--version`; `bench`, `ls`, `rm`, `gc`, `send`, `recv`,
//! `relay` and `advise` arrive with the library features they drive.

use clap::Parser;

/// Measure, inspect, clean up and drive Linux IPC.
///
/// The subcommands (bench, ls, rm, gc, send, recv, relay, advise) arrive with the
/// library features they drive; see the README for the roadmap.
#[derive(Parser, Debug)]
#[command(name = "ipcx", version, about, long_about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!(
        "ipcx {}: no subcommands yet; run `ipcx --help`",
        env!("CARGO_PKG_VERSION")
    );
}
