//! `ipcx mailbox serve` and `ipcx mailbox request`: mailboxes across machines.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use ipcx::mailbox::{self, MailboxOptions, RemoteMailbox, TcpServeOptions};

use crate::exit::{self, Failure};
use crate::msg::parse_duration;

/// Mailboxes: serve this host's mailboxes over TCP, or send a request to one.
#[derive(Args, Debug)]
pub struct MailboxArgs {
    #[command(subcommand)]
    pub command: MailboxCommand,
}

#[derive(Subcommand, Debug)]
pub enum MailboxCommand {
    Serve(ServeArgs),
    Request(RequestArgs),
}

/// Serves this host's mailboxes to TCP peers.
///
/// Listens on --tcp ADDR. A peer connects, names one mailbox of the private runtime
/// directory (or --dir), and sends requests and one-way messages; each is forwarded to
/// that mailbox, and each reply goes back. Clients write the address
/// `mailbox:NAME@HOST:PORT` (ipcx send, Mailbox::request). Local mailboxes are reachable
/// over TCP only while this runs. There is no authentication or encryption: listen on
/// loopback or a trusted network. Prints `serving HOST:PORT` on standard output once
/// listening, and stops on SIGINT, SIGTERM or SIGHUP.
#[derive(Args, Debug)]
#[command(after_long_help = serve_after_help())]
pub struct ServeArgs {
    /// Where to listen, HOST:PORT (port 0: the system picks one, printed).
    #[arg(long, value_name = "ADDR")]
    pub tcp: String,
    /// Serve the mailboxes of DIR instead of the private runtime directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The most connections served at once; one more is closed at once.
    #[arg(long, value_name = "N", default_value_t = mailbox::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// The largest payload taken from a peer, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = mailbox::DEFAULT_MAX_PAYLOAD)]
    pub max_payload: usize,
    /// The bound on payload bytes held for all connections at once.
    #[arg(long, value_name = "BYTES", default_value_t = mailbox::DEFAULT_MAX_QUEUED_BYTES)]
    pub max_queued_bytes: usize,
    /// How long a connection may stay silent between messages.
    #[arg(long, value_name = "T", value_parser = parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,
    /// How long a peer's read or write may stall (and the hello may take).
    #[arg(long, value_name = "T", value_parser = parse_duration, default_value = "10s")]
    pub io_timeout: Duration,
    /// How long a forwarded message may wait for the local mailbox to take or answer it.
    #[arg(long, value_name = "T", value_parser = parse_duration, default_value = "30s")]
    pub forward_timeout: Duration,
}

/// Sends one request to a mailbox and prints the reply.
///
/// TARGET is a mailbox name of the private runtime directory, or NAME@HOST:PORT for a
/// mailbox served by `ipcx mailbox serve --tcp`. A local request is sent from an
/// ephemeral mailbox of this command's own (`req-PID-N`).
#[derive(Args, Debug)]
#[command(after_long_help = exit::HELP)]
pub struct RequestArgs {
    /// The mailbox: NAME or NAME@HOST:PORT.
    pub target: String,
    /// The request's payload.
    pub msg: String,
    /// Wait at most this long for the reply.
    #[arg(long, short = 't', value_name = "T", value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
}

fn serve_after_help() -> String {
    format!(
        "EXAMPLES:\n  ipcx mailbox serve --tcp 0.0.0.0:7300\n  \
         ipcx send mailbox:jobs@server:7300 hello          (on another host)\n  \
         ipcx mailbox request jobs@server:7300 status\n\n\
         WIRE FORMAT:\n  A 'IPMT' hello naming the mailbox, the server's answer, then IPMB v1\n  \
         messages (24-byte header, payload inline); see the ipcx::mailbox docs.\n\n{}",
        exit::HELP
    )
}

pub fn run(args: MailboxArgs) -> Result<(), Failure> {
    match args.command {
        MailboxCommand::Serve(a) => serve(a),
        MailboxCommand::Request(a) => request(a),
    }
}

fn serve(args: ServeArgs) -> Result<(), Failure> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).ok();
    let mut opts = TcpServeOptions::new()
        .max_connections(args.max_connections)
        .max_payload(args.max_payload)
        .max_queued_bytes(args.max_queued_bytes)
        .idle_timeout(args.idle_timeout)
        .io_timeout(args.io_timeout)
        .forward_timeout(args.forward_timeout);
    if let Some(dir) = &args.dir {
        opts = opts.dir(dir);
    }
    let server = Arc::new(opts.bind(args.tcp.as_str())?);
    let local = server.local_addr()?;
    if let Some(mut signals) = signals {
        let server = server.clone();
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                server.shutdown();
            }
        });
    }
    let mut out = std::io::stdout().lock();
    // A reader that went away does not stop the server.
    let _ = writeln!(out, "serving {local}");
    let _ = out.flush();
    drop(out);
    eprintln!(
        "ipcx: serving the mailboxes of {} on tcp {local}, as mailbox {}",
        server.mailbox().dir().display(),
        server.mailbox().name()
    );
    server.run()?;
    Ok(())
}

fn request(args: RequestArgs) -> Result<(), Failure> {
    let reply = if args.target.contains('@') {
        RemoteMailbox::connect_timeout(&args.target, args.timeout)?
            .request(args.msg.as_bytes(), args.timeout)?
    } else {
        mailbox::check_name(&args.target)?;
        let own = bind_own()?;
        own.request(&args.target, args.msg.as_bytes(), args.timeout)?
    };
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(&reply)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::new(exit::FAILED, format!("write stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// An ephemeral mailbox to send a local request from.
fn bind_own() -> Result<ipcx::mailbox::Mailbox, Failure> {
    let pid = std::process::id();
    for n in 0..64 {
        match MailboxOptions::new().bind(&format!("req-{pid}-{n}")) {
            Err(e) if e.kind() == ipcx::ErrorKind::AlreadyExists => continue,
            other => return Ok(other?),
        }
    }
    Err(Failure::new(
        exit::FAILED,
        "no free name for this command's own mailbox",
    ))
}
