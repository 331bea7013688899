//! The rows of the bench, and how the bench's side of each is set up: the objects it
//! creates, the peer process it starts and what it hands that peer.

use std::fmt;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use ipcx::addr::Address;
use ipcx::channel::{self, StreamReceiver, StreamSender};
use ipcx::eventfd::EventFd;
use ipcx::pipe::{PipeReader, PipeWriter};
use serde::{Deserialize, Serialize};

use super::Fallible;
use super::direct::{FdPort, MqPort};
use super::measure::Plan;
use super::port::{ChannelPort, EventfdPort, Port};
use super::session::{Object, REGISTRY, free_sysv_key};
use super::shm::{self, CachelinePort, FLOOR_SIZE, FutexPort, RingLayout, RingPort};

/// How long the bench waits for its peer to set up its side.
pub const SETUP_WAIT: Duration = Duration::from_secs(10);

/// A row of the bench: a mechanism measured between two processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RowId {
    /// The ring channel, busy-polling both ways.
    RingBusy,
    /// The ring channel, adaptive waiting (spin, yield, then futex).
    Ring,
    /// The ring channel, futex waits at once.
    RingBlocking,
    ShmAtomic,
    ShmSem,
    Pipe,
    Fifo,
    Unix,
    UnixDgram,
    UnixSeqpacket,
    Mq,
    SysvMq,
    Tcp,
    Udp,
    /// Request/reply between two mailboxes.
    Mailbox,
    /// Request/reply through the mailbox TCP server on loopback.
    MailboxTcp,
    Eventfd,
    PipeLibc,
    UnixLibc,
    MqLibc,
    /// The busy floor: a cache line bounced between the two CPUs.
    Cacheline,
    /// The blocking floor: futex wake-ups.
    Futex,
}

/// How a row's side waits for the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Spins on shared memory: compared with the cache-line floor.
    Busy,
    /// Sleeps in the kernel: compared with the futex floor.
    Blocking,
}

impl RowId {
    /// The rows `--only` can name, in the order they run.
    pub const SELECTABLE: [RowId; 20] = [
        RowId::RingBusy,
        RowId::Ring,
        RowId::RingBlocking,
        RowId::ShmAtomic,
        RowId::ShmSem,
        RowId::Pipe,
        RowId::Fifo,
        RowId::Unix,
        RowId::UnixDgram,
        RowId::UnixSeqpacket,
        RowId::Mq,
        RowId::SysvMq,
        RowId::Tcp,
        RowId::Udp,
        RowId::Mailbox,
        RowId::MailboxTcp,
        RowId::Eventfd,
        RowId::PipeLibc,
        RowId::UnixLibc,
        RowId::MqLibc,
    ];

    /// The row's name, as `--only` takes it.
    pub fn name(self) -> &'static str {
        match self {
            RowId::RingBusy => "ring-busy",
            RowId::Ring => "ring",
            RowId::RingBlocking => "ring-blocking",
            RowId::ShmAtomic => "shm-atomic",
            RowId::ShmSem => "shm-sem",
            RowId::Pipe => "pipe",
            RowId::Fifo => "fifo",
            RowId::Unix => "unix",
            RowId::UnixDgram => "unix-dgram",
            RowId::UnixSeqpacket => "unix-seqpacket",
            RowId::Mq => "mq",
            RowId::SysvMq => "sysv-mq",
            RowId::Tcp => "tcp",
            RowId::Udp => "udp",
            RowId::Mailbox => "mailbox",
            RowId::MailboxTcp => "mailbox-tcp",
            RowId::Eventfd => "eventfd",
            RowId::PipeLibc => "pipe-libc",
            RowId::UnixLibc => "unix-libc",
            RowId::MqLibc => "mq-libc",
            RowId::Cacheline => "cache-line",
            RowId::Futex => "futex",
        }
    }

    /// What the row measures, in a few words.
    pub fn what(self) -> &'static str {
        match self {
            RowId::RingBusy => "the ring channel, busy polling (`ring:` with wait=busy)",
            RowId::Ring => "the ring channel, adaptive: spin, yield, then futex (`ring:`)",
            RowId::RingBlocking => "the ring channel, futex waits (`ring:` with wait=blocking)",
            RowId::ShmAtomic => "shared memory, atomics, busy polling (memfd slot rings)",
            RowId::ShmSem => "shared memory + semaphores (`shm:` channel)",
            RowId::Pipe => "anonymous pipes, framed (`pipe:` channel)",
            RowId::Fifo => "FIFOs, framed (`fifo:` channel)",
            RowId::Unix => "Unix stream socket, framed (`unix:` channel)",
            RowId::UnixDgram => "Unix datagram socket (`unix-dgram:` channel)",
            RowId::UnixSeqpacket => "Unix seqpacket socket (`unix-seqpacket:` channel)",
            RowId::Mq => "POSIX message queues (`mq:` channel)",
            RowId::SysvMq => "System V message queues (`sysv-mq:` channel)",
            RowId::Tcp => "TCP over loopback, framed (`tcp:` channel)",
            RowId::Udp => "UDP over loopback (`udp:` channel)",
            RowId::Mailbox => "mailbox request/reply (Mailbox::request, Envelope::reply)",
            RowId::MailboxTcp => {
                "mailbox request/reply over TCP loopback through the mailbox server (`name@host:port`)"
            }
            RowId::Eventfd => "two eventfds, no payload (ipcx::eventfd)",
            RowId::PipeLibc => "pipes with libc read/write: the baseline of `pipe`",
            RowId::UnixLibc => {
                "Unix stream, one connection each way, with libc send/recv: the baseline of `unix`"
            }
            RowId::MqLibc => "POSIX mq with libc mq_send/mq_receive: the baseline of `mq`",
            RowId::Cacheline => "floor: one cache line bounced between the CPUs",
            RowId::Futex => "floor: futex wake ping-pong",
        }
    }

    /// How the row waits, which decides the floor it is compared with.
    pub fn wait(self) -> Wait {
        match self {
            RowId::ShmAtomic | RowId::Cacheline | RowId::RingBusy | RowId::Ring => Wait::Busy,
            _ => Wait::Blocking,
        }
    }

    /// The ipcx row a libc baseline is the baseline of.
    pub fn baseline_of(self) -> Option<RowId> {
        match self {
            RowId::PipeLibc => Some(RowId::Pipe),
            RowId::UnixLibc => Some(RowId::Unix),
            RowId::MqLibc => Some(RowId::Mq),
            _ => None,
        }
    }
}

impl fmt::Display for RowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RowId {
    type Err = String;

    fn from_str(s: &str) -> Result<RowId, String> {
        RowId::SELECTABLE
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = RowId::SELECTABLE.iter().map(|r| r.name()).collect();
                format!("unknown row `{s}`; the rows are: {}", names.join(", "))
            })
    }
}

/// What the peer process is told: which row, where, and how.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerSpec {
    pub row: RowId,
    /// The bench's pid: the peer exits if its parent is already gone.
    pub parent: u32,
    /// The CPU to pin to.
    pub cpu: Option<usize>,
    /// Busy waits yield (both processes share one CPU).
    pub single_cpu: bool,
    /// The largest message the peer will receive.
    pub largest: usize,
    pub link: PeerLink,
}

/// The peer's side of a link.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerLink {
    /// Receive on `recv` (creating it), send to `send`, and print `ready ADDRESS` (the
    /// resolved `recv` address) on stdout.
    Channel { recv: String, send: String },
    /// Framed channel on stdin (receive) and stdout (send).
    Pipe,
    /// The slot rings in the memfd on stdin.
    Ring { max_out: usize, max_back: usize },
    /// The cache-line floor in the memfd on stdin.
    Cacheline,
    /// The futex floor in the memfd on stdin.
    Futex,
    /// An eventfd to read on stdin, one to write on stdout.
    Eventfd,
    /// Messages of `size` bytes, libc read on stdin and write on stdout.
    LibcPipe { size: usize },
    /// Messages of `size` bytes, libc send/recv on a connection to `path`.
    LibcUnix { path: PathBuf, size: usize },
    /// Messages of `size` bytes: libc mq_receive on `recv`, mq_send to `send`.
    LibcMq {
        recv: String,
        send: String,
        size: usize,
    },
    /// Bind the mailbox `name` in the runtime directory (and with `tcp`, serve it on a
    /// loopback port), print `ready TARGET`, and answer requests.
    Mailbox { name: String, tcp: bool },
}

/// Where the row's peer runs and what it creates.
pub struct Setup<'a> {
    pub plan: &'a Plan,
    pub dir: &'a Path,
    /// The bench's CPU and the peer's.
    pub cpus: Option<(usize, usize)>,
    pub single_cpu: bool,
}

impl Setup<'_> {
    fn spec(&self, row: RowId, link: PeerLink) -> PeerSpec {
        PeerSpec {
            row,
            parent: std::process::id(),
            cpu: self.cpus.map(|(_, peer)| peer),
            single_cpu: self.single_cpu,
            largest: self.plan.largest(),
            link,
        }
    }

    /// A path in the run's directory, written as the target of an address: `%`, `?`,
    /// control characters and bytes that are not UTF-8 as `%XX` escapes (the address
    /// grammar's), so any `TMPDIR` works.
    fn path(&self, row: RowId, side: &str) -> String {
        let path = self.dir.join(format!("{}-{side}", row.name()));
        escape_path(path.as_os_str().as_bytes())
    }

    /// The same path, unescaped, for the libc baseline's `bind`.
    fn raw_path(&self, row: RowId, side: &str) -> PathBuf {
        self.dir.join(format!("{}-{side}", row.name()))
    }

    fn posix_name(row: RowId, side: &str) -> String {
        format!("/ipcx-bench-{}-{}-{side}", std::process::id(), row.name())
    }
}

/// Escapes a path for an address target (see [`ipcx::addr`]).
pub fn escape_path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b == b'%' || b == b'?' || b.is_ascii_control() || !b.is_ascii() {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Starts the peer with `spec`, its stdin and stdout as given and its stderr captured,
/// in a process group of its own (a Ctrl-C reaches the bench, which stops the peer and
/// cleans up). Returns the ends of its stdin and stdout that were piped.
fn spawn(
    spec: &PeerSpec,
    stdin: Stdio,
    stdout: Stdio,
) -> Fallible<(Option<OwnedFd>, Option<OwnedFd>)> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program to start the peer: {e}"))?;
    let mut child = Command::new(&exe)
        .arg("bench-child")
        .arg(serde_json::to_string(spec)?)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the peer {}: {e}", exe.display()))?;
    let stdin = child.stdin.take().map(OwnedFd::from);
    let stdout = child.stdout.take().map(OwnedFd::from);
    REGISTRY.add_peer(child)?;
    Ok((stdin, stdout))
}

/// Reads the peer's `ready ADDRESS` line from its stdout.
fn read_ready(stdout: OwnedFd) -> Fallible<Address> {
    Ok(read_ready_line(stdout)?.parse()?)
}

/// Reads the peer's `ready WHERE` line from its stdout: what follows `ready `.
fn read_ready_line(stdout: OwnedFd) -> Fallible<String> {
    let reader = PipeReader::try_from(stdout)?;
    let deadline = Instant::now() + SETUP_WAIT;
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    while !line.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = reader
            .read_timeout(&mut buf, left)
            .map_err(|e| format!("waiting for the peer to set up: {e}"))?;
        if n == 0 {
            return Err("the peer exited before it was ready".into());
        }
        line.extend_from_slice(&buf[..n]);
        if line.len() > 4096 {
            return Err("the peer's ready line is longer than 4096 bytes".into());
        }
    }
    let text = String::from_utf8_lossy(&line);
    let addr = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("ready "))
        .ok_or_else(|| format!("the peer said {text:?} instead of `ready ADDRESS`"))?;
    Ok(addr.to_string())
}

/// A memfd for a link, and a copy of its descriptor to be the peer's stdin.
fn memfd(row: RowId, size: usize) -> Fallible<(ipcx::shm::Region, Stdio)> {
    let (region, fd) = shm::create(&format!("ipcx-bench-{}", row.name()), size)?;
    Ok((region, Stdio::from(fd)))
}

/// Sets up the bench's side of `row`, starting its peer: the port to drive.
pub fn connect(row: RowId, setup: &Setup<'_>) -> Fallible<Box<dyn Port>> {
    let plan = setup.plan;
    match row {
        RowId::RingBusy | RowId::Ring | RowId::RingBlocking => {
            let wait = match row {
                RowId::RingBusy => "busy",
                RowId::Ring => "adaptive",
                _ => "blocking",
            };
            let a = Setup::posix_name(row, "a");
            let b = Setup::posix_name(row, "b");
            REGISTRY.track(Object::Shm(a.clone()));
            REGISTRY.track(Object::Shm(b.clone()));
            // Room for two of the largest messages each way, so one can be copied in
            // while the other is copied out, and at least 64 KiB, so that a sender
            // reads the receiver's counter only every few hundred small messages.
            let room = |max: usize| (2 * (max.max(1) + 16)).next_power_of_two().max(64 << 10);
            let a = format!("ring:{a}?capacity={}&wait={wait}", room(plan.largest()));
            let b = format!("ring:{b}?capacity={}&wait={wait}", room(plan.ping));
            channel_link(row, setup, &a, &b, false)
        }
        RowId::ShmSem => {
            let a = Setup::posix_name(row, "a");
            let b = Setup::posix_name(row, "b");
            REGISTRY.track(Object::Shm(a.clone()));
            REGISTRY.track(Object::Shm(b.clone()));
            // Eight slots each way, as the shm-atomic rings have.
            let a = format!("shm:{a}?capacity=8&max={}", plan.largest().max(1));
            let b = format!("shm:{b}?capacity=8&max={}", plan.ping.max(1));
            channel_link(row, setup, &a, &b, false)
        }
        RowId::Fifo | RowId::Unix | RowId::UnixDgram | RowId::UnixSeqpacket => {
            let scheme = match row {
                RowId::Fifo => "fifo",
                RowId::Unix => "unix",
                RowId::UnixDgram => "unix-dgram",
                _ => "unix-seqpacket",
            };
            let a = format!("{scheme}:{}", setup.path(row, "a"));
            let b = format!("{scheme}:{}", setup.path(row, "b"));
            channel_link(row, setup, &a, &b, false)
        }
        RowId::Mq => {
            let a = Setup::posix_name(row, "a");
            let b = Setup::posix_name(row, "b");
            REGISTRY.track(Object::Mq(a.clone()));
            REGISTRY.track(Object::Mq(b.clone()));
            channel_link(row, setup, &format!("mq:{a}"), &format!("mq:{b}"), false)
        }
        RowId::SysvMq => {
            let a = free_sysv_key(1)?;
            let b = free_sysv_key(2)?;
            if a == b {
                return Err("two free System V keys were the same; run again".into());
            }
            REGISTRY.track(Object::SysvMq(a));
            REGISTRY.track(Object::SysvMq(b));
            let a = format!("sysv-mq:{:#x}", a.raw());
            let b = format!("sysv-mq:{:#x}", b.raw());
            channel_link(row, setup, &a, &b, false)
        }
        RowId::Tcp => channel_link(row, setup, "tcp:127.0.0.1:0", "tcp:127.0.0.1:0", false),
        RowId::Udp => channel_link(row, setup, "udp:127.0.0.1:0", "udp:127.0.0.1:0", true),
        RowId::Mailbox | RowId::MailboxTcp => {
            let name = format!("ipcx-bench-{}-{}", std::process::id(), row.name());
            let link = PeerLink::Mailbox {
                name: name.clone(),
                tcp: row == RowId::MailboxTcp,
            };
            let (_, stdout) = spawn(&setup.spec(row, link), Stdio::null(), Stdio::piped())?;
            let stdout = stdout.ok_or("the peer's stdout was not piped")?;
            let target = read_ready_line(stdout)?;
            Ok(Box::new(super::mailbox::ClientPort::connect(
                &target,
                &format!("{name}-bench"),
                SETUP_WAIT,
            )?))
        }
        RowId::Pipe => {
            let spec = setup.spec(row, PeerLink::Pipe);
            let (to_peer, from_peer) = spawn(&spec, Stdio::piped(), Stdio::piped())?;
            let (to_peer, from_peer) = both(to_peer, from_peer)?;
            let tx = StreamSender::from_pipe(PipeWriter::try_from(to_peer)?);
            let rx = StreamReceiver::from_pipe(PipeReader::try_from(from_peer)?);
            Ok(Box::new(ChannelPort::new(
                Box::new(tx),
                Box::new(rx),
                false,
            )))
        }
        RowId::ShmAtomic => {
            let layout = RingLayout {
                max_out: plan.largest().max(1),
                max_back: plan.ping.max(1),
            };
            let (region, stdin) = memfd(row, layout.size())?;
            let link = PeerLink::Ring {
                max_out: layout.max_out,
                max_back: layout.max_back,
            };
            spawn(&setup.spec(row, link), stdin, Stdio::null())?;
            Ok(Box::new(RingPort::bench_side(region, layout)))
        }
        RowId::Cacheline | RowId::Futex => {
            let (region, stdin) = memfd(row, FLOOR_SIZE)?;
            let link = if row == RowId::Cacheline {
                PeerLink::Cacheline
            } else {
                PeerLink::Futex
            };
            spawn(&setup.spec(row, link), stdin, Stdio::null())?;
            Ok(if row == RowId::Cacheline {
                Box::new(CachelinePort::new(region))
            } else {
                Box::new(FutexPort::new(region))
            })
        }
        RowId::Eventfd => {
            let to_peer = EventFd::new(0)?;
            let from_peer = EventFd::new(0)?;
            let (stdin, stdout) = (
                Stdio::from(to_peer.try_clone()?),
                Stdio::from(from_peer.try_clone()?),
            );
            spawn(&setup.spec(row, PeerLink::Eventfd), stdin, stdout)?;
            Ok(Box::new(EventfdPort::new(to_peer, from_peer)))
        }
        RowId::PipeLibc => {
            let link = PeerLink::LibcPipe { size: plan.ping };
            let (to_peer, from_peer) =
                spawn(&setup.spec(row, link), Stdio::piped(), Stdio::piped())?;
            let (to_peer, from_peer) = both(to_peer, from_peer)?;
            Ok(Box::new(FdPort::pipe(from_peer, to_peer, plan.ping)))
        }
        RowId::UnixLibc => {
            let path = setup.raw_path(row, "sock");
            let shown = path.display();
            let listener = UnixListener::bind(&path).map_err(|e| format!("bind {shown}: {e}"))?;
            let link = PeerLink::LibcUnix {
                path: path.clone(),
                size: plan.ping,
            };
            spawn(&setup.spec(row, link), Stdio::null(), Stdio::null())?;
            // The peer connects twice, in order: the first connection carries pings to
            // it, the second its replies (a listener accepts in connection order).
            let accept = || {
                listener
                    .accept()
                    .map(|(conn, _)| OwnedFd::from(conn))
                    .map_err(|e| format!("accept on {shown}: {e}"))
            };
            let (to_peer, from_peer) = (accept()?, accept()?);
            drop(listener);
            let _ = std::fs::remove_file(&path);
            Ok(Box::new(FdPort::sockets(from_peer, to_peer, plan.ping)))
        }
        RowId::MqLibc => {
            let a = Setup::posix_name(row, "a");
            let b = Setup::posix_name(row, "b");
            REGISTRY.track(Object::Mq(a.clone()));
            REGISTRY.track(Object::Mq(b.clone()));
            let port = MqPort::create(&a, &b, plan.ping)?;
            let link = PeerLink::LibcMq {
                recv: a,
                send: b,
                size: plan.ping,
            };
            spawn(&setup.spec(row, link), Stdio::null(), Stdio::null())?;
            Ok(Box::new(port))
        }
    }
}

fn both(a: Option<OwnedFd>, b: Option<OwnedFd>) -> Fallible<(OwnedFd, OwnedFd)> {
    match (a, b) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err("the peer's stdin or stdout was not piped".into()),
    }
}

/// A link over the channel layer: the bench receives on `b` (created before the peer
/// starts), the peer on `a` (created by the peer, which says where it ended up).
fn channel_link(
    row: RowId,
    setup: &Setup<'_>,
    a: &str,
    b: &str,
    lossy: bool,
) -> Fallible<Box<dyn Port>> {
    let b: Address = b.parse()?;
    let rx = channel::receiver(&b)?;
    let reach = rx.address().unwrap_or(b);
    let link = PeerLink::Channel {
        recv: a.to_string(),
        send: reach.to_string(),
    };
    let (_, stdout) = spawn(&setup.spec(row, link), Stdio::null(), Stdio::piped())?;
    let stdout = stdout.ok_or("the peer's stdout was not piped")?;
    let a = read_ready(stdout)?;
    let tx = channel::sender_timeout(&a, SETUP_WAIT)?;
    Ok(Box::new(ChannelPort::new(tx, rx, lossy)))
}

/// Writes the peer's `ready` line: where its receiver ended up.
pub fn say_ready(addr: &Address) -> Fallible<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {addr}")?;
    out.flush()?;
    Ok(())
}

/// A copy of one of this process's standard descriptors.
pub fn dup_stdio(fd: impl AsFd, what: &str) -> Fallible<OwnedFd> {
    fd.as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("dup {what}: {e}").into())
}

#[cfg(test)]
mod tests {
    use super::escape_path;

    #[test]
    fn paths_are_escaped_as_addresses_want() {
        assert_eq!(escape_path(b"/tmp/a b/x-a"), "/tmp/a b/x-a");
        assert_eq!(escape_path(b"/tmp/100%/why?/x"), "/tmp/100%25/why%3F/x");
        assert_eq!(escape_path(b"/tmp/\xff\n"), "/tmp/%FF%0A");
        let addr: ipcx::addr::Address = format!("unix:{}", escape_path(b"/tmp/100%/why?/x"))
            .parse()
            .unwrap();
        assert_eq!(
            addr.path().unwrap(),
            std::path::Path::new("/tmp/100%/why?/x")
        );
    }
}
