//! Framed channels over byte streams: pipes, FIFOs, Unix stream sockets and TCP.

use std::fmt;
use std::io::IoSlice;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendAncillaryBuffer, SendFlags, SocketType};

use super::frame::{self, DEFAULT_MAX, Decoder, HEADER_LEN};
use super::{Receiver, Sender, forms, recv_error, send_error, too_large, until_receiver};
use crate::addr::{Address, Transport};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::fifo::{Fifo, FifoOptions};
use crate::net::TcpOptions;
use crate::pipe::{PipeReader, PipeWriter};
use crate::sys::{fork, sigpipe};
use crate::unix::{BindOptions, SocketFile};
use crate::wait::{Deadline, poll_now, retry, retry_blocking, set_nonblocking};

/// Where a framed sender writes.
#[derive(Debug)]
enum Sink {
    /// With `SIGPIPE`'s disposition as it was when the sender was made.
    Pipe(PipeWriter, sigpipe::Snapshot),
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Sink {
    fn pipe(writer: PipeWriter) -> Sink {
        Sink::Pipe(writer, sigpipe::Snapshot::take())
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Sink::Pipe(p, _) => p.as_fd(),
            Sink::Unix(s) => s.as_fd(),
            Sink::Tcp(s) => s.as_fd(),
        }
    }

    /// One vectored write of at least one byte, waiting for room until `deadline`.
    fn write(
        &self,
        bufs: &[IoSlice<'_>],
        deadline: Deadline,
        label: &dyn fmt::Display,
    ) -> Result<usize> {
        let fd = self.fd();
        let waits = [(fd, PollFlags::OUT)];
        match self {
            Sink::Pipe(_, sigpipe) => retry(&waits, deadline, "write", label, || {
                sigpipe.suppress(|| match single(bufs) {
                    Some(one) => rustix::io::write(fd, one),
                    None => rustix::io::writev(fd, bufs),
                })
            }),
            Sink::Unix(_) | Sink::Tcp(_) => retry(&waits, deadline, "send", label, || {
                let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
                match single(bufs) {
                    Some(one) => rustix::net::send(fd, one, flags),
                    None => {
                        rustix::net::sendmsg(fd, bufs, &mut SendAncillaryBuffer::default(), flags)
                    }
                }
            }),
        }
        .map_err(|e| match e.errno() {
            Some(libc::EPIPE | libc::ECONNRESET) => e.with_hint("the receiver closed the channel"),
            _ => e,
        })
    }
}

/// Frames up to this size (header included) are copied into one buffer before writing.
const SMALL_FRAME: usize = 512;

/// The one non-empty slice of `bufs`, if that is all it holds: a plain `write`/`send`
/// costs the kernel less than gathering.
fn single<'a>(bufs: &'a [IoSlice<'a>]) -> Option<&'a [u8]> {
    match bufs {
        [one] => Some(one),
        [one, rest @ ..] if rest.iter().all(|b| b.is_empty()) => Some(one),
        _ => None,
    }
}

/// The sending side of a framed byte stream: `pipe:`, `fifo:`, `unix:` or `tcp:`.
///
/// Each message goes out as one [`frame`](super::frame) (an 8-byte header and the
/// payload) in one vectored write where the stream has room. If a
/// [`try_send`](Sender::try_send) or [`send_timeout`](Sender::send_timeout) runs out of
/// room after part of a frame went out, the rest of it (at most one message) is kept and
/// the send returns `Ok`; the next send, or [`flush`](Sender::flush), writes it first.
/// Dropping the sender writes a kept tail, waiting for room at most its
/// [linger](StreamSender::with_linger) time (1 s by default), so a message reported sent
/// is not cut short by the drop while the receiver is reading; if the receiver does not
/// take it in that time, it sees the stream end inside that message.
///
/// On a FIFO with several senders, frames of up to `PIPE_BUF` (4096) bytes less the
/// 8-byte header are written atomically and never interleave; larger ones can, which the
/// receiver reports as [`ErrorKind::Corrupt`]. Give each FIFO one sender, or keep
/// messages small.
///
/// On a pipe or FIFO whose receiver is gone, a send is [`ErrorKind::PeerGone`] and never
/// raises `SIGPIPE`. The sender reads `SIGPIPE`'s disposition once, when it is made: if
/// the process ignores `SIGPIPE` (every Rust program does, unless it opted out), its
/// writes go straight to the kernel; otherwise each write blocks `SIGPIPE` in the calling
/// thread and consumes the one it raised. A program that sets `SIGPIPE` back to its
/// default action after making a pipe sender should make the sender again.
pub struct StreamSender {
    sink: Sink,
    label: Label,
    max: usize,
    /// The unsent tail of the last frame, from `tail_pos` on.
    tail: Vec<u8>,
    tail_pos: usize,
    /// How long dropping the sender waits to write the tail.
    linger: Duration,
}

impl StreamSender {
    /// How long dropping a sender waits, by default, to write the rest of a message.
    pub const DEFAULT_LINGER: Duration = Duration::from_secs(1);

    /// A sender that frames messages on the write end of a pipe (for instance a child's
    /// stdin, adopted with `PipeWriter::try_from`), with the default cap of 16 MiB.
    pub fn from_pipe(writer: PipeWriter) -> StreamSender {
        StreamSender::new(Sink::pipe(writer), Address::pipe().into(), DEFAULT_MAX)
    }

    /// A sender on a connected Unix stream socket. Its errors name the peer's socket
    /// file (`unix:PATH`), else its own, else an unnamed socket.
    pub fn from_unix(stream: UnixStream) -> StreamSender {
        let label = Label::socket(stream.as_fd(), Transport::Unix, Side::Peer);
        StreamSender::new(Sink::Unix(stream), label, DEFAULT_MAX)
    }

    /// A sender on a connected TCP stream. Its errors name the peer (`tcp:HOST:PORT`).
    pub fn from_tcp(stream: TcpStream) -> StreamSender {
        let label = Label::socket(stream.as_fd(), Transport::Tcp, Side::Peer);
        StreamSender::new(Sink::Tcp(stream), label, DEFAULT_MAX)
    }

    /// Sets the cap on one message (default 16 MiB); the receiver must use the same or a
    /// larger one.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] above the frame's limit, 4 GiB − 1.
    pub fn with_max_message(mut self, max: usize) -> Result<StreamSender> {
        check_max(max, &self.label)?;
        self.max = max;
        Ok(self)
    }

    /// Sets how long dropping the sender waits for room to write the rest of a message
    /// that a [`try_send`](Sender::try_send) or [`send_timeout`](Sender::send_timeout)
    /// left partly written (default [`DEFAULT_LINGER`](StreamSender::DEFAULT_LINGER),
    /// 1 s). `Duration::ZERO` writes what fits at once and gives up the rest; the
    /// receiver then sees the stream end inside that message ([`ErrorKind::PeerGone`],
    /// naming how much arrived). A linger too long to represent as a deadline
    /// (`Duration::MAX`) waits as long as it takes. Senders opened from an address
    /// ([`sender`](super::sender)) keep the default.
    pub fn with_linger(mut self, linger: Duration) -> StreamSender {
        self.linger = linger;
        self
    }

    fn new(sink: Sink, label: Label, max: usize) -> StreamSender {
        StreamSender {
            sink,
            label,
            max,
            tail: Vec::new(),
            tail_pos: 0,
            linger: StreamSender::DEFAULT_LINGER,
        }
    }

    pub(crate) fn open(addr: &Address, deadline: Deadline) -> Result<StreamSender> {
        let max = addr.options().max.unwrap_or(DEFAULT_MAX);
        check_max(max, addr)?;
        let sink = match addr.transport() {
            Transport::Pipe => {
                let fd = dup_stdio(std::io::stdout().as_fd(), "stdout", addr)?;
                match stream_kind(&fd, "stdout", addr)? {
                    Kind::Pipe => {
                        let fd = private_description(fd.as_fd(), OFlags::WRONLY).unwrap_or(fd);
                        Sink::pipe(PipeWriter::try_from(fd).map_err(|e| e.with_object(addr))?)
                    }
                    Kind::Unix => Sink::Unix(UnixStream::from(fd)),
                    Kind::Tcp => Sink::Tcp(TcpStream::from(fd)),
                }
            }
            Transport::Fifo => {
                let path = addr
                    .path()
                    .unwrap_or_else(|| unreachable!("fifo addresses have a path"));
                until_receiver(addr, deadline, |deadline| {
                    let fifo = Fifo::open(path)?;
                    let writer = match deadline {
                        Deadline::Now => fifo.try_open_writer(),
                        Deadline::Never => fifo.open_writer(),
                        Deadline::At(..) => fifo.open_writer_timeout(left(deadline)),
                    }?;
                    Ok(Sink::pipe(writer))
                })?
            }
            Transport::Unix => {
                let path = addr
                    .path()
                    .unwrap_or_else(|| unreachable!("unix addresses have a path"));
                until_receiver(addr, deadline, |deadline| {
                    crate::unix::connect_socket(path, SocketType::STREAM, deadline)
                        .map(|fd| Sink::Unix(UnixStream::from(fd)))
                })?
            }
            Transport::Tcp => {
                let nodelay = addr.options().nodelay.unwrap_or(true);
                let targets = resolve(addr)?;
                until_receiver(addr, deadline, |deadline| {
                    let budget = match deadline {
                        // Not waiting for a receiver to appear, only for one that is
                        // there to finish the handshake.
                        Deadline::Now => Duration::from_secs(1),
                        Deadline::Never => Duration::from_secs(3600),
                        Deadline::At(..) => left(deadline),
                    };
                    let mut last = None;
                    for target in &targets {
                        match TcpOptions::new().nodelay(nodelay).connect(*target, budget) {
                            Ok(s) => return Ok(Sink::Tcp(s)),
                            Err(e) => last = Some(e),
                        }
                    }
                    Err(last.unwrap_or_else(|| Error::new("connect", ErrorKind::NotFound)))
                })?
            }
            _ => unreachable!("only byte-stream addresses reach StreamSender"),
        };
        Ok(StreamSender::new(sink, addr.clone().into(), max))
    }

    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        if msg.len() > self.max {
            return Err(too_large(
                &self.label,
                msg.len(),
                self.max,
                "the channel's `max` option",
            ));
        }
        self.flush_until(deadline)
            .map_err(|e| send_error(e, &self.label, deadline))?;
        let header = frame::encode_header(msg.len())?;
        let total = HEADER_LEN + msg.len();
        // A small frame goes out from one buffer: a plain one-slice write is cheaper for
        // the kernel than gathering two slices, which shows in small-message latency.
        let mut small = [0u8; SMALL_FRAME];
        let whole = (total <= SMALL_FRAME).then(|| {
            small[..HEADER_LEN].copy_from_slice(&header);
            small[HEADER_LEN..total].copy_from_slice(msg);
            &small[..total]
        });
        let mut done = 0;
        while done < total {
            let slices = match whole {
                Some(frame) => [IoSlice::new(&frame[done..]), IoSlice::new(&[])],
                None if done < HEADER_LEN => [IoSlice::new(&header[done..]), IoSlice::new(msg)],
                None => [IoSlice::new(&msg[done - HEADER_LEN..]), IoSlice::new(&[])],
            };
            match self.sink.write(&slices, deadline, &self.label) {
                Ok(n) => done += n,
                Err(e)
                    if done > 0
                        && matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    // Part of the frame is out: the message is committed. Keep the rest.
                    self.tail.clear();
                    self.tail_pos = 0;
                    if done < HEADER_LEN {
                        self.tail.extend_from_slice(&header[done..]);
                        self.tail.extend_from_slice(msg);
                    } else {
                        self.tail.extend_from_slice(&msg[done - HEADER_LEN..]);
                    }
                    return Ok(());
                }
                Err(e) => return Err(send_error(e, &self.label, deadline)),
            }
        }
        Ok(())
    }

    fn flush_until(&mut self, deadline: Deadline) -> Result<()> {
        while self.tail_pos < self.tail.len() {
            let n = self.sink.write(
                &[IoSlice::new(&self.tail[self.tail_pos..])],
                deadline,
                &self.label,
            )?;
            self.tail_pos += n;
        }
        self.tail.clear();
        self.tail_pos = 0;
        Ok(())
    }
}

impl Sender for StreamSender {
    forms!(sender);

    fn max_message(&self) -> usize {
        self.max
    }

    fn flush(&mut self) -> Result<()> {
        self.flush_until(Deadline::Never)
            .map_err(|e| send_error(e, &self.label, Deadline::Never))
    }

    fn flush_timeout(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Deadline::after(timeout);
        self.flush_until(deadline)
            .map_err(|e| send_error(e, &self.label, deadline))
    }
}

impl Drop for StreamSender {
    fn drop(&mut self) {
        if self.tail_pos < self.tail.len() {
            let deadline = if self.linger.is_zero() {
                Deadline::Now
            } else {
                Deadline::after(self.linger)
            };
            // Nothing to report to: a receiver that did not take the rest in time sees
            // the stream end inside the message.
            let _ = self.flush_until(deadline);
        }
    }
}

impl fmt::Debug for StreamSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSender")
            .field("address", &self.label.to_string())
            .field("max", &self.max)
            .field("unsent", &(self.tail.len() - self.tail_pos))
            .finish()
    }
}

/// Where a framed receiver reads.
enum Source {
    Pipe(PipeIn),
    /// The reader is declared first, so it closes before the owner removes the FIFO.
    Fifo {
        input: PipeIn,
        fifo: Fifo,
    },
    Unix {
        listener: SocketFile<UnixListener>,
        conn: Option<UnixStream>,
    },
    Tcp {
        listener: TcpListener,
        conn: Option<TcpStream>,
        nodelay: bool,
    },
    UnixConn(UnixStream),
    TcpConn(TcpStream),
}

/// The receiving side of a framed byte stream: `pipe:`, `fifo:`, `unix:` or `tcp:`.
///
/// Reads ahead up to 64 KiB at a time, so one system call can bring several small
/// messages, and reads large messages straight into the caller's buffer. A message
/// above the cap is refused from its header, before anything is allocated, as
/// [`ErrorKind::Corrupt`]; the stream is then out of step and every later receive repeats
/// the error (for `unix:` and `tcp:`, the connection is dropped and the next receive
/// waits for a new sender). The end of the stream between messages is
/// [`ErrorKind::PeerGone`]; inside one, `PeerGone` naming how much of it arrived.
///
/// `unix:` and `tcp:` receivers accept their sender in the first receive, and the next
/// one after a sender has gone. A `fifo:` receiver sees the end of the stream when the
/// last sender closes; a later sender can open the FIFO again.
pub struct StreamReceiver {
    source: Source,
    decoder: Decoder,
    label: Label,
    bound: Option<Address>,
}

impl StreamReceiver {
    /// A receiver of framed messages from the read end of a pipe (for instance a child's
    /// stdout, adopted with `PipeReader::try_from`), with the default cap of 16 MiB.
    pub fn from_pipe(reader: PipeReader) -> StreamReceiver {
        // A description of its own (through /proc) can block in the kernel without
        // changing the mode of the one the caller handed over, which others may share.
        let input = match private_description(reader.as_fd(), OFlags::RDONLY)
            .and_then(|fd| PipeReader::try_from(fd).ok())
        {
            Some(own) => PipeIn::private(own),
            None => PipeIn::shared(reader),
        };
        StreamReceiver::new(Source::Pipe(input), Address::pipe().into(), DEFAULT_MAX)
    }

    /// A receiver on a connected Unix stream socket. Its errors name its own socket
    /// file (`unix:PATH`, the listener's for an accepted connection), else the peer's,
    /// else an unnamed socket.
    pub fn from_unix(stream: UnixStream) -> StreamReceiver {
        let label = Label::socket(stream.as_fd(), Transport::Unix, Side::Local);
        StreamReceiver::new(Source::UnixConn(stream), label, DEFAULT_MAX)
    }

    /// A receiver on a connected TCP stream. Its errors name the local address it was
    /// reached at (`tcp:HOST:PORT`).
    pub fn from_tcp(stream: TcpStream) -> StreamReceiver {
        let label = Label::socket(stream.as_fd(), Transport::Tcp, Side::Local);
        StreamReceiver::new(Source::TcpConn(stream), label, DEFAULT_MAX)
    }

    /// Sets the cap on one message (default 16 MiB).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] above the frame's limit, 4 GiB − 1.
    pub fn with_max_message(mut self, max: usize) -> Result<StreamReceiver> {
        check_max(max, &self.label)?;
        self.decoder = Decoder::new(max);
        Ok(self)
    }

    fn new(source: Source, label: Label, max: usize) -> StreamReceiver {
        StreamReceiver {
            source,
            decoder: Decoder::new(max),
            label,
            bound: None,
        }
    }

    pub(crate) fn open(addr: &Address) -> Result<StreamReceiver> {
        let max = addr.options().max.unwrap_or(DEFAULT_MAX);
        check_max(max, addr)?;
        let mode = addr.options().mode.unwrap_or(0o600);
        let mut bound = Some(addr.clone());
        let source = match addr.transport() {
            Transport::Pipe => {
                let fd = dup_stdio(std::io::stdin().as_fd(), "stdin", addr)?;
                match stream_kind(&fd, "stdin", addr)? {
                    Kind::Pipe => {
                        let input = match private_description(fd.as_fd(), OFlags::RDONLY) {
                            Some(own) => PipeIn::private(
                                PipeReader::try_from(own).map_err(|e| e.with_object(addr))?,
                            ),
                            None => PipeIn::shared(
                                PipeReader::try_from(fd).map_err(|e| e.with_object(addr))?,
                            ),
                        };
                        Source::Pipe(input)
                    }
                    Kind::Unix => Source::UnixConn(UnixStream::from(fd)),
                    Kind::Tcp => Source::TcpConn(TcpStream::from(fd)),
                }
            }
            Transport::Fifo => {
                let path = addr
                    .path()
                    .unwrap_or_else(|| unreachable!("fifo addresses have a path"));
                let fifo = FifoOptions::new()
                    .mode(mode)
                    .create(path)
                    .map_err(|e| e.with_object(addr))?;
                let reader = fifo.open_reader().map_err(|e| e.with_object(addr))?;
                Source::Fifo {
                    input: PipeIn::private(reader),
                    fifo,
                }
            }
            Transport::Unix => {
                let path = addr
                    .path()
                    .unwrap_or_else(|| unreachable!("unix addresses have a path"));
                let listener = BindOptions::new()
                    .mode(mode)
                    .listen(path)
                    .map_err(|e| e.with_object(addr))?;
                Source::Unix {
                    listener,
                    conn: None,
                }
            }
            Transport::Tcp => {
                let target = *resolve(addr)?
                    .first()
                    .unwrap_or_else(|| unreachable!("resolve returns at least one address"));
                let nodelay = addr.options().nodelay.unwrap_or(true);
                let listener = TcpOptions::new()
                    .nodelay(nodelay)
                    .bind(target)
                    .map_err(|e| e.with_object(addr))?;
                let port = listener.local_addr().op_on("getsockname", addr)?.port();
                bound = Some(addr.with_port(port));
                Source::Tcp {
                    listener,
                    conn: None,
                    nodelay,
                }
            }
            _ => unreachable!("only byte-stream addresses reach StreamReceiver"),
        };
        let label = bound.clone().unwrap_or_else(|| addr.clone());
        let mut rx = StreamReceiver::new(source, label.into(), max);
        rx.bound = bound;
        Ok(rx)
    }

    fn recv_until(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        let label = &self.label;
        let decoder = &mut self.decoder;
        let result = match &mut self.source {
            Source::Pipe(input) => {
                input.prepare(deadline, label)?;
                let fd = input.reader.as_fd();
                decoder.read_message(buf, &mut |b| {
                    crate::pipe::read_until(fd, b, deadline, label)
                })
            }
            Source::Fifo { input, fifo } => {
                input.prepare(deadline, label)?;
                let fd = input.reader.as_fd();
                let r = decoder.read_message(buf, &mut |b| {
                    crate::pipe::read_until(fd, b, deadline, label)
                });
                if ends_connection(&r) {
                    // The last writer left: the read end now reports hang-up until a new
                    // writer opens the FIFO, so every receive would fail at once. A fresh
                    // read end has seen no writer and waits for the next sender.
                    if let Ok(fresh) = fifo.open_reader() {
                        *input = PipeIn::private(fresh);
                    }
                    decoder.reset();
                }
                r
            }
            Source::UnixConn(s) => {
                let fd = s.as_fd();
                decoder.read_message(buf, &mut |b| read_socket(fd, b, deadline, label))
            }
            Source::TcpConn(s) => {
                let fd = s.as_fd();
                decoder.read_message(buf, &mut |b| read_socket(fd, b, deadline, label))
            }
            Source::Unix { listener, conn } => {
                if conn.is_none() {
                    let fd = accept(listener.as_fd(), deadline, label)
                        .map_err(|e| recv_error(e, label, deadline))?;
                    *conn = Some(UnixStream::from(fd));
                    decoder.reset();
                }
                let fd = conn
                    .as_ref()
                    .map(|c| c.as_fd())
                    .unwrap_or_else(|| unreachable!());
                let r = decoder.read_message(buf, &mut |b| read_socket(fd, b, deadline, label));
                if ends_connection(&r) {
                    *conn = None;
                }
                r
            }
            Source::Tcp {
                listener,
                conn,
                nodelay,
            } => {
                if conn.is_none() {
                    let fd = accept(listener.as_fd(), deadline, label)
                        .map_err(|e| recv_error(e, label, deadline))?;
                    let stream = TcpStream::from(fd);
                    let _ = stream.set_nodelay(*nodelay);
                    *conn = Some(stream);
                    decoder.reset();
                }
                let fd = conn
                    .as_ref()
                    .map(|c| c.as_fd())
                    .unwrap_or_else(|| unreachable!());
                let r = decoder.read_message(buf, &mut |b| read_socket(fd, b, deadline, label));
                if ends_connection(&r) {
                    *conn = None;
                }
                r
            }
        };
        result.map_err(|e| recv_error(e, &self.label, deadline))
    }
}

/// Whether a receive's outcome ends the connection it came on: the sender left, or sent
/// something that leaves the stream out of step.
fn ends_connection(r: &Result<usize>) -> bool {
    matches!(r, Err(e) if matches!(e.kind(), ErrorKind::PeerGone | ErrorKind::Corrupt))
}

impl Receiver for StreamReceiver {
    forms!(receiver);

    fn max_message(&self) -> usize {
        self.decoder.max()
    }

    fn address(&self) -> Option<Address> {
        self.bound.clone()
    }
}

impl fmt::Debug for StreamReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReceiver")
            .field("address", &self.label.to_string())
            .field("max", &self.decoder.max())
            .finish()
    }
}

/// What a stream channel's errors name: the address it was opened on, or for an adopted
/// socket, the socket's own address or its peer's, read once when it was adopted (a peer
/// that has gone can no longer be asked).
#[derive(Clone, Debug)]
enum Label {
    Address(Address),
    /// A socket no [`Address`] can name (unnamed, abstract, or unreadable).
    Socket(String),
}

/// Which end of an adopted socket its label names first.
#[derive(Clone, Copy)]
enum Side {
    Peer,
    Local,
}

impl Label {
    fn socket(fd: BorrowedFd<'_>, transport: Transport, first: Side) -> Label {
        let peer = || rustix::net::getpeername(fd).ok().flatten();
        let local = || rustix::net::getsockname(fd).ok();
        let (a, b) = match first {
            Side::Peer => (peer(), local()),
            Side::Local => (local(), peer()),
        };
        let named = |addr: &rustix::net::SocketAddrAny| -> Option<Label> {
            match transport {
                Transport::Tcp => {
                    let ip = SocketAddr::try_from(addr.clone()).ok()?;
                    Address::tcp(&ip.ip().to_string(), ip.port())
                        .ok()
                        .map(Label::Address)
                }
                _ => {
                    let unix = rustix::net::SocketAddrUnix::try_from(addr.clone()).ok()?;
                    if let Some(path) = unix.path_bytes() {
                        return Address::unix(std::ffi::OsStr::from_bytes(path))
                            .ok()
                            .map(Label::Address);
                    }
                    match unix.abstract_name() {
                        Some(name) if !name.is_empty() => Some(Label::Socket(format!(
                            "unix:@{} (abstract)",
                            String::from_utf8_lossy(name)
                        ))),
                        _ => None,
                    }
                }
            }
        };
        a.as_ref()
            .and_then(named)
            .or_else(|| b.as_ref().and_then(named))
            .unwrap_or_else(|| {
                Label::Socket(match transport {
                    Transport::Tcp => "TCP socket (address unknown)".into(),
                    _ => "unnamed unix stream socket".into(),
                })
            })
    }
}

impl From<Address> for Label {
    fn from(a: Address) -> Label {
        Label::Address(a)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Address(a) => a.fmt(f),
            Label::Socket(s) => f.write_str(s),
        }
    }
}

fn check_max(max: usize, label: &dyn fmt::Display) -> Result<()> {
    if max > frame::MAX_LEN {
        return Err(Error::new("open channel", ErrorKind::InvalidInput)
            .with_object(label)
            .with_hint(format!(
                "a framed message is at most {} bytes (its length field has 32 bits)",
                frame::MAX_LEN
            )));
    }
    Ok(())
}

/// The time left before `deadline` (which must be `At`), at least a nanosecond so a
/// callee does not read it as "do not wait".
fn left(deadline: Deadline) -> Duration {
    match deadline {
        Deadline::At(at, _) => at
            .saturating_duration_since(std::time::Instant::now())
            .max(Duration::from_nanos(1)),
        Deadline::Now => Duration::ZERO,
        Deadline::Never => Duration::MAX,
    }
}

/// What kind of byte stream a standard descriptor is.
enum Kind {
    Pipe,
    Unix,
    Tcp,
}

/// A close-on-exec duplicate of stdin or stdout: the channel owns the duplicate, and the
/// process keeps its standard descriptor.
fn dup_stdio(fd: BorrowedFd<'_>, which: &str, addr: &Address) -> Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(|e| {
        Error::from_errno("dup", e.raw_os_error())
            .with_object(addr)
            .with_hint(format!("cannot duplicate {which}; is it open?"))
    })
}

/// A pipe reopened through `/proc/self/fd`, which gives a new open file
/// description: ipcx keeps its pipes non-blocking underneath, or blocking
/// for blocking receives (see [`PipeIn`]), and on an inherited description (stdin,
/// stdout, an end the caller handed over) that flag would be shared with everything else
/// that uses it, making their reads and writes fail with `EAGAIN` or wait. `None` where
/// the reopen is impossible (no `/proc`): the caller then uses the descriptor as it is,
/// whose blocking mode is restored when the channel is dropped.
///
/// A read end is reopened only on an anonymous pipe (pipefs). A named FIFO's read end
/// reopened after its last writer left would never report the hang-up on the new
/// description (the kernel shows `POLLHUP` to a FIFO reader only for writers it has seen
/// come and go), so a receiver on it would wait for ever instead of seeing the end.
fn private_description(fd: BorrowedFd<'_>, access: OFlags) -> Option<OwnedFd> {
    use std::os::fd::AsRawFd;
    /// `PIPEFS_MAGIC` from `<linux/magic.h>`.
    const PIPEFS_MAGIC: u64 = 0x5049_5045;
    let on_pipefs = rustix::fs::fstatfs(fd)
        .is_ok_and(|st| u64::try_from(st.f_type).is_ok_and(|t| t == PIPEFS_MAGIC));
    if access == OFlags::RDONLY && !on_pipefs {
        return None;
    }
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    // O_NONBLOCK on the open itself: opening a FIFO for writing would otherwise wait for
    // a reader (stdout's reader exists, but a FIFO may have lost it meanwhile).
    rustix::fs::open(
        path.as_str(),
        access | OFlags::CLOEXEC | OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )
    .ok()
}

/// A pipe or FIFO read end, and the blocking mode it is in now.
///
/// On a description only this channel uses ([`private_description`], or a FIFO end it
/// opened), the mode follows the receive: a blocking receive runs on a blocking
/// descriptor, so it is one `read` that sleeps in the kernel rather than a failed read, a
/// `poll` and a second read (about a tenth of a pipe round trip on a virtual machine),
/// while `try_recv` and `recv_timeout` run non-blocking. The mode changes only when the
/// kind of receive does, so a run of one kind costs no `fcntl`. A shared description stays
/// non-blocking, as ipcx keeps its pipes, and waits with `poll`.
///
/// A `fork` shares the description with the child. The parent may keep switching it, so
/// a child (counted by [`fork::generation`]) that receives on its copy treats the end as
/// shared and sets `O_NONBLOCK` again before every receive: its `try_recv` and
/// `recv_timeout` never wait in `read`, and the parent, finding the flag set, only falls
/// back to `poll`.
struct PipeIn {
    reader: PipeReader,
    /// Whether the description is this channel's alone, so its mode may change.
    private: bool,
    /// Whether `O_NONBLOCK` is clear now, as far as this process set it.
    blocking: bool,
    /// [`fork::generation`] when this end was made: a different count later means this is
    /// a forked child.
    forks: u64,
}

impl PipeIn {
    fn private(reader: PipeReader) -> PipeIn {
        PipeIn {
            reader,
            private: true,
            blocking: false,
            forks: fork::generation(),
        }
    }

    fn shared(reader: PipeReader) -> PipeIn {
        PipeIn {
            reader,
            private: false,
            blocking: false,
            forks: fork::generation(),
        }
    }

    /// Puts the descriptor in the mode a receive until `deadline` reads best in.
    fn prepare(&mut self, deadline: Deadline, label: &dyn fmt::Display) -> Result<()> {
        let child = fork::generation() != self.forks;
        if child {
            self.private = false;
        }
        let want = self.private && matches!(deadline, Deadline::Never);
        if want != self.blocking || child {
            set_nonblocking(self.reader.as_fd(), !want).op_on("F_SETFL", label)?;
            self.blocking = want;
        }
        Ok(())
    }
}

fn stream_kind(fd: &OwnedFd, which: &str, addr: &Address) -> Result<Kind> {
    let st = rustix::fs::fstat(fd).op_on("fstat", addr)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Fifo => Ok(Kind::Pipe),
        FileType::Socket => {
            let ty = rustix::net::sockopt::socket_type(fd).op_on("getsockopt SO_TYPE", addr)?;
            let domain =
                rustix::net::sockopt::socket_domain(fd).op_on("getsockopt SO_DOMAIN", addr)?;
            match (ty, domain) {
                (SocketType::STREAM, AddressFamily::UNIX) => Ok(Kind::Unix),
                (SocketType::STREAM, AddressFamily::INET | AddressFamily::INET6) => Ok(Kind::Tcp),
                _ => Err(not_a_stream(which, "a socket that is not a stream", addr)),
            }
        }
        other => Err(not_a_stream(which, &format!("a {other:?}"), addr)),
    }
}

fn not_a_stream(which: &str, what: &str, addr: &Address) -> Error {
    Error::new("open channel", ErrorKind::InvalidInput)
        .with_object(addr)
        .with_hint(format!(
            "{which} is {what}, not a pipe or stream socket: `pipe:` needs the process to run \
             at one end of a pipe (`a | b`, or a parent's Stdio::piped())"
        ))
}

/// The socket addresses of a `tcp:` or `udp:` address, resolved with the system's
/// resolver (`/etc/hosts`, DNS).
pub(crate) fn resolve(addr: &Address) -> Result<Vec<SocketAddr>> {
    let (host, port) = addr
        .host_port()
        .unwrap_or_else(|| unreachable!("tcp and udp addresses have a host and port"));
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            Error::from_io("resolve", &e)
                .with_kind(ErrorKind::NotFound)
                .with_object(addr)
                .with_hint(format!("cannot resolve `{host}`: {e}"))
        })?
        .collect();
    if found.is_empty() {
        return Err(Error::new("resolve", ErrorKind::NotFound)
            .with_object(addr)
            .with_hint(format!("`{host}` resolves to no address")));
    }
    Ok(found)
}

/// Accepts one connection, waiting until `deadline`.
pub(crate) fn accept(
    fd: BorrowedFd<'_>,
    deadline: Deadline,
    label: &dyn fmt::Display,
) -> Result<OwnedFd> {
    retry(&[(fd, PollFlags::IN)], deadline, "accept", label, || {
        // The listener is blocking: only accept when poll says a connection waits, so
        // the call cannot hang (one receiver, one accepting thread).
        if poll_now(fd, PollFlags::IN).contains(PollFlags::IN) {
            crate::sock::accept_once(fd)
        } else {
            Err(Errno::AGAIN)
        }
    })
}

/// One receive from a stream socket; `Ok(0)` at end of stream.
fn read_socket(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Deadline,
    label: &dyn fmt::Display,
) -> Result<usize> {
    retry_blocking(&[(fd, PollFlags::IN)], deadline, "recv", label, |block| {
        let flags = if block {
            RecvFlags::empty()
        } else {
            RecvFlags::DONTWAIT
        };
        rustix::net::recv(fd, &mut *buf, flags).map(|(n, _)| n)
    })
    .map_err(|e| match e.errno() {
        Some(libc::ECONNRESET) => e.with_hint("the sender reset the connection"),
        _ => e,
    })
}
