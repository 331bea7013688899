//! `ipcx`: measure, inspect, clean up and drive Linux IPC from the command line.

// Raw FFI is allowed in one module only (`bench::direct`, the libc baselines the bench
// compares ipcx against); everything else goes through ipcx and rustix.
#![deny(unsafe_code)]

mod advise;
mod bench;
mod exit;
mod inventory;
mod mailbox;
mod msg;
mod ops;
mod record;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Measure, inspect, clean up and drive Linux IPC.
///
/// `ipcx bench` measures every mechanism between two processes on this machine, beside
/// the machine's own floor. `ipcx ls` lists every IPC object on the machine with its
/// owner and whether its creator is gone; `ipcx rm` removes one, `ipcx gc` the caller's
/// stale ones. `ipcx send`, `recv` and `relay` move whole messages between any two
/// channel addresses (pipes, FIFOs, sockets, TCP/UDP, message queues, shared memory,
/// rings, mailboxes); `ipcx mailbox serve` serves this host's mailboxes over TCP.
/// `ipcx advise` recommends a transport for a use, ranked by this machine's measurements.
/// `ipcx completions` prints a shell completion script.
#[derive(Parser, Debug)]
#[command(
    name = "ipcx",
    version,
    about,
    long_about,
    arg_required_else_help = true,
    after_long_help = exit::HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Bench(bench::BenchArgs),
    Send(msg::SendArgs),
    Recv(msg::RecvArgs),
    Relay(msg::RelayArgs),
    Mailbox(mailbox::MailboxArgs),
    Ls(ops::LsArgs),
    Rm(ops::RmArgs),
    Gc(ops::GcArgs),
    Advise(advise::AdviseArgs),
    Completions(CompletionsArgs),
    /// The peer process of `ipcx bench` (started by it; not for direct use).
    #[command(hide = true)]
    BenchChild {
        /// The peer's instructions, as JSON.
        spec: String,
    },
    /// A producer of `ipcx bench --soak` (started by it; not for direct use).
    #[command(hide = true)]
    SoakChild {
        /// The producer's instructions, as JSON.
        spec: String,
    },
}

/// Prints a shell completion script to standard output.
///
/// bash:  ipcx completions bash > ~/.local/share/bash-completion/completions/ipcx
/// zsh:   ipcx completions zsh > "${fpath[1]}/_ipcx"
/// fish:  ipcx completions fish > ~/.config/fish/completions/ipcx.fish
#[derive(clap::Args, Debug)]
struct CompletionsArgs {
    /// The shell to complete for.
    shell: clap_complete::Shell,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Bench(args) => bench::run(args),
        Command::BenchChild { spec } => bench::child::main(&spec),
        Command::SoakChild { spec } => bench::soak::producer_main(&spec),
        Command::Send(args) => exit::finish(msg::send(args)),
        Command::Recv(args) => exit::finish(msg::recv(args)),
        Command::Relay(args) => exit::finish(msg::relay(args)),
        Command::Mailbox(args) => exit::finish(mailbox::run(args)),
        Command::Ls(args) => exit::finish(ops::ls(args)),
        Command::Rm(args) => exit::finish(ops::rm(args)),
        Command::Gc(args) => exit::finish(ops::gc(args)),
        Command::Advise(args) => exit::finish(advise::advise(args)),
        Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut visible(), "ipcx", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

/// The command line without its hidden subcommands (clap_complete would offer them).
fn visible() -> clap::Command {
    let full = Cli::command();
    full.get_subcommands().filter(|s| !s.is_hide_set()).fold(
        clap::Command::new("ipcx")
            .version(env!("CARGO_PKG_VERSION"))
            .about(full.get_about().cloned().unwrap_or_default())
            .args(full.get_arguments().filter(|a| !a.is_hide_set()).cloned()),
        |c, s| c.subcommand(s.clone()),
    )
}
