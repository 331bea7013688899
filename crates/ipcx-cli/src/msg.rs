//! `ipcx send`, `ipcx recv` and `ipcx relay`: whole messages between channel addresses.

use std::io::{self, BufRead, Read, Write};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Args, ValueEnum};
use ipcx::ErrorKind;
use ipcx::addr::{Address, Transport};
use ipcx::channel::{self, Receiver, Sender};
use signal_hook::iterator::Signals;

use crate::exit::{self, Failure};

const ADDRESSES: &str = "\
ADDRESSES:
  pipe:                      stdin (recv) or stdout (send), framed
  fifo:/path                 a FIFO, framed
  unix:/path                 a Unix stream socket, framed
  unix-dgram:/path           a Unix datagram socket
  unix-seqpacket:/path       a Unix seqpacket socket (1-byte tag in front of each message)
  tcp:host:port              TCP, framed (port 0: recv prints the port it got on stderr)
  udp:host:port              UDP
  mq:/name                   a POSIX message queue (?prio=N for the sender)
  sysv-mq:KEY                a System V message queue (?type=N)
  shm:/name                  POSIX shared memory slots guarded by semaphores
  ring:/name                 the shared-memory ring (one sender, one receiver for its
                             life; ?capacity=BYTES&wait=busy|adaptive|blocking)
  mailbox:name               a mailbox in the private runtime directory (a request is
                             answered with an empty reply once received)
  mailbox:name@host:port     a mailbox served over TCP by `ipcx mailbox serve` (send only)
Options follow a `?`, joined by `&`: mq:/jobs?capacity=10&msgsize=8192.
The receiving side (recv, and relay's FROM) creates the object and removes it when it
exits; the sending side opens or connects, and waits until the receiver exists.
Framed transports put an 8-byte header in front of every message: 'I' 'X', version 1,
flags 0, then the payload length as a u32 little-endian.";

/// Sends messages to a channel address.
///
/// Each MSG argument is one message. With no MSG, or MSG `-`, standard input is read:
/// all of it as one message, or one message per line with --lines. The address's
/// receiver must exist or appear: send waits for it (at most --timeout).
#[derive(Args, Debug)]
#[command(after_long_help = send_after_help())]
pub struct SendArgs {
    /// Where to send (see ADDRESSES below).
    pub addr: String,
    /// The messages, one per argument; `-` reads standard input.
    pub msgs: Vec<String>,
    /// Standard input holds one message per line (the newline is not sent).
    #[arg(long)]
    pub lines: bool,
    /// The POSIX queue priority to send with (mq: only), 0 to 32767.
    #[arg(long, value_name = "N")]
    pub prio: Option<u32>,
    /// The System V message type to send with (sysv-mq: only), 1 or more.
    #[arg(long = "type", value_name = "N")]
    pub mtype: Option<i64>,
    /// Wait at most this long for the receiver to appear, and for room for each message
    /// (e.g. 500ms, 2s, 1m; a bare number is seconds). Without it, waits as long as it
    /// takes.
    #[arg(long, short = 't', value_name = "T", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// Receives messages from a channel address and prints them.
///
/// Creates the address's object (FIFO, socket, queue, shared memory), prints each
/// message as it arrives, and removes the object when it exits (also on SIGINT, SIGTERM
/// and SIGHUP). Without --count it stops when the first sender goes away (end of
/// stream); datagram and queue transports cannot tell that, so give them --count or
/// --timeout.
#[derive(Args, Debug)]
#[command(after_long_help = recv_after_help())]
pub struct RecvArgs {
    /// Where to receive (see ADDRESSES below).
    pub addr: String,
    /// Stop after N messages (exit 0). Until then, when a sender goes away the next one
    /// is awaited (fifo:, unix:, unix-seqpacket:, tcp:); on pipe: and shm:, which take
    /// one sender only, fewer than N messages is an error (exit 1).
    #[arg(long, short = 'c', value_name = "N")]
    pub count: Option<u64>,
    /// Wait at most this long for each message (e.g. 500ms, 2s, 1m; a bare number is
    /// seconds). When it runs out the command exits with status 3.
    #[arg(long, short = 't', value_name = "T", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// How to print each message.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Raw)]
    pub format: Format,
    /// With --format raw, print messages back to back without a newline after each.
    #[arg(long, short = 'n')]
    pub no_newline: bool,
    /// Drain a queue that another program created (mq: and sysv-mq: only) instead of
    /// creating one: it is opened for reading and never removed. Messages come in the
    /// queue's own order (highest POSIX priority first); --format json adds each
    /// message's "prio" or "type".
    #[arg(long)]
    pub existing: bool,
}

/// Receives from one address and sends every message on to another.
///
/// Creates FROM's object (as recv does), then opens TO (as send does, waiting for its
/// receiver) and forwards whole messages until FROM's sender goes away or --count
/// messages have passed. In the spirit of socat, for messages instead of bytes.
#[derive(Args, Debug)]
#[command(after_long_help = relay_after_help())]
pub struct RelayArgs {
    /// Where to receive (created, as by recv).
    pub from: String,
    /// Where to send (opened, as by send).
    pub to: String,
    /// Stop after N messages.
    #[arg(long, short = 'c', value_name = "N")]
    pub count: Option<u64>,
    /// Wait at most this long for TO's receiver, for each message from FROM and for room
    /// in TO.
    #[arg(long, short = 't', value_name = "T", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// How `recv` prints a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The bytes as they are, each message followed by a newline (unless -n).
    Raw,
    /// Lowercase hex, one message per line (an empty message is an empty line).
    Hex,
    /// One JSON object per line: {"len":N,"data":"<base64>"} (RFC 4648 base64).
    Json,
}

fn send_after_help() -> String {
    format!(
        "EXAMPLES:\n  ipcx recv mq:/jobs --count 2 &\n  ipcx send mq:/jobs hello world        \
         two messages\n  printf 'a\\nb\\n' | ipcx send --lines unix:/tmp/s.sock\n  \
         ipcx send --prio 9 mq:/jobs urgent\n\n{ADDRESSES}\n\n{}",
        exit::HELP
    )
}

fn recv_after_help() -> String {
    format!(
        "OUTPUT:\n  raw   the message bytes, then a newline (-n: nothing)\n  hex   lowercase hex, \
         one line per message\n  json  {{\"len\":5,\"data\":\"aGVsbG8=\"}}, one line per message \
         (data in base64)\n\nEXAMPLES:\n  ipcx recv unix:/tmp/s.sock --count 1 --format json\n  \
         ipcx send pipe: hello | ipcx recv pipe:\n  ipcx recv udp:127.0.0.1:7001 --timeout 2s \
         --format hex\n\n{ADDRESSES}\n\n{}",
        exit::HELP
    )
}

fn relay_after_help() -> String {
    format!(
        "EXAMPLES:\n  ipcx relay unix:/tmp/in.sock mq:/jobs      socket clients feed a queue\n  \
         ipcx relay tcp:0.0.0.0:7000 unix-seqpacket:/run/app.seq\n\n{ADDRESSES}\n\n{}",
        exit::HELP
    )
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write e.g. 500ms, 2s, 1m or 1.5"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit `{unit}` in `{s}`: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("`{s}`: {e}"))
}

fn parse_addr(s: &str) -> Result<Address, Failure> {
    s.parse::<Address>()
        .map_err(|e| Failure::usage(e.to_string()))
}

fn open_sender(
    addr: &Address,
    timeout: Option<Duration>,
) -> Result<Box<dyn Sender + Send>, Failure> {
    Ok(match timeout {
        Some(t) => channel::sender_timeout(addr, t)?,
        None => channel::sender(addr)?,
    })
}

fn send_one(tx: &mut dyn Sender, msg: &[u8], timeout: Option<Duration>) -> ipcx::Result<()> {
    match timeout {
        Some(t) => tx.send_timeout(msg, t),
        None => tx.send(msg),
    }
}

fn flush(tx: &mut dyn Sender, timeout: Option<Duration>) -> ipcx::Result<()> {
    match timeout {
        Some(t) => tx.flush_timeout(t),
        None => tx.flush(),
    }
}

fn recv_one(
    rx: &mut dyn Receiver,
    buf: &mut [u8],
    timeout: Option<Duration>,
) -> ipcx::Result<usize> {
    match timeout {
        Some(t) => rx.recv_timeout(buf, t),
        None => rx.recv(buf),
    }
}

/// On SIGINT, SIGTERM or SIGHUP, removes the object the receiver created at `addr` and
/// exits with 128 + the signal's number, as a shell reports a death by that signal: a
/// Ctrl-C'd `ipcx recv` leaves nothing behind. (SIGKILL cannot be caught: `ipcx gc`
/// finds what it leaves.)
///
/// `signals` is registered before the object is created, so that a signal arriving in
/// between waits for this handler instead of killing the process with the object left.
fn remove_on_signal(
    signals: Option<Signals>,
    addr: &Address,
    record: Option<crate::record::Record>,
) {
    let Some(mut signals) = signals else {
        return; // Without the handler the default action (death) applies.
    };
    let addr = addr.clone();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            // Best effort: the object may be gone already, which is what is wanted.
            let _ = match addr.transport() {
                Transport::Fifo
                | Transport::Unix
                | Transport::UnixDgram
                | Transport::UnixSeqpacket => addr.path().map_or(Ok(()), |p| {
                    std::fs::remove_file(p).map_err(|e| ipcx::Error::from_io("unlink", &e))
                }),
                Transport::Mq => addr.name().map_or(Ok(()), |n| {
                    ipcx::mq::posix::MessageQueue::unlink(n.as_str())
                }),
                Transport::SysvMq => addr
                    .key()
                    .map_or(Ok(()), ipcx::mq::sysv::SysvMq::remove_key),
                // A ring is a POSIX shared memory object too.
                Transport::Shm | Transport::Ring => addr
                    .name()
                    .map_or(Ok(()), |n| ipcx::shm::posix::Shm::unlink(n.as_str())),
                Transport::Mailbox => addr.mailbox().map_or(Ok(()), |name| {
                    // The socket file first, then its lock, as the mailbox itself does.
                    let path = ipcx::runtime::runtime_dir().join(name);
                    let _ = std::fs::remove_file(&path);
                    std::fs::remove_file(ipcx::unix::lock_path(&path))
                        .map_err(|e| ipcx::Error::from_io("unlink", &e))
                }),
                _ => Ok(()),
            };
            if let Some(r) = &record {
                crate::record::forget(r);
            }
            std::process::exit(128 + sig);
        }
    });
}

/// The signals that end a receiver, caught from before it creates its object.
fn catch_signals() -> Option<Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    Signals::new([SIGINT, SIGTERM, SIGHUP]).ok()
}

/// Removes the creation record when the receiver (and so its object) goes.
struct Forget(Option<crate::record::Record>);

impl Drop for Forget {
    fn drop(&mut self) {
        if let Some(r) = &self.0 {
            crate::record::forget(r);
        }
    }
}

/// Tells the user where a receiver on an ephemeral port (`tcp:…:0`) can be reached.
fn announce(rx: &dyn Receiver, asked: &Address) {
    if let Some(actual) = rx.address()
        && &actual != asked
    {
        eprintln!("ipcx: receiving on {actual}");
    }
}

pub fn send(args: SendArgs) -> Result<(), Failure> {
    let mut addr = parse_addr(&args.addr)?;
    if let Some(prio) = args.prio {
        if addr.transport() != Transport::Mq {
            return Err(Failure::usage("--prio applies to mq: addresses only"));
        }
        addr = addr
            .with_option("prio", &prio.to_string())
            .map_err(|e| Failure::usage(e.to_string()))?;
    }
    if let Some(mtype) = args.mtype {
        if addr.transport() != Transport::SysvMq {
            return Err(Failure::usage("--type applies to sysv-mq: addresses only"));
        }
        addr = addr
            .with_option("type", &mtype.to_string())
            .map_err(|e| Failure::usage(e.to_string()))?;
    }
    let from_stdin = args.msgs.is_empty() || args.msgs.iter().any(|m| m == "-");
    if args.lines && !from_stdin {
        return Err(Failure::usage(
            "--lines reads standard input: give `-` or no MSG",
        ));
    }
    let mut tx = open_sender(&addr, args.timeout)?;
    let timeout = args.timeout;
    let stdin_failure = |e: io::Error| Failure::new(exit::FAILED, format!("read stdin: {e}"));
    let msgs = if args.msgs.is_empty() {
        vec!["-".to_string()]
    } else {
        args.msgs
    };
    for msg in &msgs {
        if msg != "-" {
            send_one(&mut *tx, msg.as_bytes(), timeout)?;
        } else if args.lines {
            let mut stdin = io::stdin().lock();
            let mut line = Vec::new();
            loop {
                line.clear();
                if stdin.read_until(b'\n', &mut line).map_err(stdin_failure)? == 0 {
                    break;
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                send_one(&mut *tx, &line, timeout)?;
            }
        } else {
            let mut all = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut all)
                .map_err(stdin_failure)?;
            send_one(&mut *tx, &all, timeout)?;
        }
    }
    flush(&mut *tx, timeout)?;
    Ok(())
}

/// Writes one message in `format`; a closed stdout (`| head -1`) ends the command quietly.
fn print(
    out: &mut impl Write,
    msg: &[u8],
    tag: Option<(&str, i64)>,
    format: Format,
    newline: bool,
) -> io::Result<()> {
    match format {
        Format::Raw => {
            out.write_all(msg)?;
            if newline {
                out.write_all(b"\n")?;
            }
        }
        Format::Hex => {
            let mut line = String::with_capacity(msg.len() * 2 + 1);
            for b in msg {
                line.push_str(&format!("{b:02x}"));
            }
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        Format::Json => {
            // Base64 needs no JSON escaping; written by hand to keep "len" first.
            let data = BASE64.encode(msg);
            write!(out, "{{\"len\":{},\"data\":\"{data}\"", msg.len())?;
            if let Some((key, value)) = tag {
                write!(out, ",\"{key}\":{value}")?;
            }
            out.write_all(b"}\n")?;
        }
    }
    out.flush()
}

pub fn recv(args: RecvArgs) -> Result<(), Failure> {
    let addr = parse_addr(&args.addr)?;
    let mut next: Next = if args.existing {
        existing_queue(&addr, args.timeout)?
    } else {
        let signals = catch_signals();
        let mut rx = channel::receiver(&addr)?;
        let record = crate::record::record_receiver(&addr);
        remove_on_signal(signals, &addr, record.clone());
        announce(&*rx, &addr);
        let max = rx.max_message();
        let timeout = args.timeout;
        let forget = Forget(record);
        Box::new(move |buf: &mut Vec<u8>| {
            let _ = &forget;
            buf.resize(max, 0);
            recv_one(&mut *rx, buf, timeout).map(|n| (n, None))
        })
    };
    let reconnects = takes_new_senders(addr.transport()) && !args.existing;
    let mut buf = Vec::new();
    let mut out = io::stdout().lock();
    let mut got = 0u64;
    while args.count.is_none_or(|n| got < n) {
        let (n, tag) = match next(&mut buf) {
            Ok(r) => r,
            // With --count, the next receive waits for the next sender where one can come.
            Err(e) if e.kind() == ErrorKind::PeerGone && args.count.is_some() && reconnects => {
                continue;
            }
            Err(e) if e.kind() == ErrorKind::PeerGone => return end_of_stream(&e, got, args.count),
            Err(e) => return Err(e.into()),
        };
        got += 1;
        match print(&mut out, &buf[..n], tag, args.format, !args.no_newline) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Failure::new(exit::FAILED, format!("write stdout: {e}"))),
        }
    }
    Ok(())
}

type Next = Box<dyn FnMut(&mut Vec<u8>) -> ipcx::Result<(usize, Option<(&'static str, i64)>)>>;

/// Reads from a queue that exists already, without creating or removing it.
fn existing_queue(addr: &Address, timeout: Option<Duration>) -> Result<Next, Failure> {
    use ipcx::mq::Access;
    use ipcx::mq::posix::MessageQueue;
    use ipcx::mq::sysv::{SysvMq, TypeFilter};
    match (addr.transport(), addr.name(), addr.key()) {
        (Transport::Mq, Some(name), _) => {
            let q = MessageQueue::options()
                .access(Access::ReceiveOnly)
                .open(name.as_str())?;
            let max = q.max_msg_size();
            Ok(Box::new(move |buf: &mut Vec<u8>| {
                buf.resize(max, 0);
                let (n, prio) = match timeout {
                    Some(t) => q.recv_timeout(buf, t)?,
                    None => q.recv(buf)?,
                };
                Ok((n, Some(("prio", i64::from(prio)))))
            }))
        }
        (Transport::SysvMq, _, Some(key)) => {
            let q = SysvMq::options().access(Access::ReceiveOnly).open(key)?;
            let filter = addr
                .options()
                .mtype
                .map_or(TypeFilter::Any, TypeFilter::Exact);
            let max = ipcx_msgmax();
            Ok(Box::new(move |buf: &mut Vec<u8>| {
                buf.resize(max, 0);
                let (mtype, n) = match timeout {
                    Some(t) => q.recv_timeout(filter, buf, t)?,
                    None => q.recv(filter, buf)?,
                };
                Ok((n, Some(("type", mtype))))
            }))
        }
        _ => Err(Failure::usage(
            "--existing reads queues another program created: give an mq: or sysv-mq: address",
        )),
    }
}

/// The largest System V message (`/proc/sys/kernel/msgmax`), 8 KiB if unreadable.
fn ipcx_msgmax() -> usize {
    std::fs::read_to_string("/proc/sys/kernel/msgmax")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(8192)
}

/// Whether a receiver whose sender went away can take another (a pipe's stdin cannot,
/// and a `shm:` channel has one sender for its whole life).
fn takes_new_senders(t: Transport) -> bool {
    matches!(
        t,
        Transport::Fifo | Transport::Unix | Transport::UnixSeqpacket | Transport::Tcp
    )
}

/// The sender went away: the normal end without --count, an error before N messages.
fn end_of_stream(e: &ipcx::Error, got: u64, count: Option<u64>) -> Result<(), Failure> {
    match count {
        None => Ok(()),
        Some(n) => Err(Failure::new(
            exit::FAILED,
            format!("{e} (after {got} of the {n} messages asked for with --count)"),
        )),
    }
}

pub fn relay(args: RelayArgs) -> Result<(), Failure> {
    let from = parse_addr(&args.from)?;
    let to = parse_addr(&args.to)?;
    let signals = catch_signals();
    let mut rx = channel::receiver(&from)?;
    let record = crate::record::record_receiver(&from);
    remove_on_signal(signals, &from, record.clone());
    let _forget = Forget(record);
    announce(&*rx, &from);
    let mut tx = open_sender(&to, args.timeout)?;
    if tx.max_message() < rx.max_message() {
        eprintln!(
            "ipcx: note: {to} carries at most {} bytes, {from} up to {}: a larger message \
             stops the relay",
            tx.max_message(),
            rx.max_message()
        );
    }
    let mut buf = vec![0u8; rx.max_message()];
    let mut passed = 0u64;
    while args.count.is_none_or(|n| passed < n) {
        let n = match recv_one(&mut *rx, &mut buf, args.timeout) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::PeerGone => {
                flush(&mut *tx, args.timeout)?;
                return end_of_stream(&e, passed, args.count);
            }
            Err(e) => return Err(e.into()),
        };
        send_one(&mut *tx, &buf[..n], args.timeout)?;
        passed += 1;
    }
    flush(&mut *tx, args.timeout)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }
}
