//! Channels over message sockets: Unix datagram and seqpacket, UDP.

use std::fmt;
use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;

use rustix::event::PollFlags;
use rustix::net::{RecvFlags, ReturnFlags, SendAncillaryBuffer, SendFlags, SocketType, sockopt};

use super::stream::{accept, resolve};
use super::{
    Receiver, Sender, buffer_too_small, forms, recv_error, send_error, too_large, until_receiver,
};
use crate::addr::{Address, Transport};
use crate::error::{Context, Error, ErrorKind, Result, read_sysctl};
use crate::net::UdpOptions;
use crate::sock::{Framing, peek_message};
use crate::unix::{BindOptions, Seqpacket, SeqpacketListener, SocketFile};
use crate::wait::{Deadline, retry, retry_blocking};

/// The default cap on a Unix datagram or seqpacket message: 64 KiB.
pub const DEFAULT_SOCKET_MAX: usize = 64 << 10;
/// The largest UDP payload over IPv4: 65535 less the IP and UDP headers.
pub const UDP_MAX_V4: usize = 65507;
/// The largest UDP payload over IPv6 (without jumbograms): 65535 less the UDP header.
pub const UDP_MAX_V6: usize = 65527;
/// What the kernel keeps back from a Unix socket's send buffer for one message
/// (`unix_dgram_sendmsg` refuses `len > sk_sndbuf - 32`).
const UNIX_OVERHEAD: usize = 32;
/// The first byte of every seqpacket message the channel sends: it makes an empty
/// message one byte long, so a receive of 0 bytes always means end of file.
const SEQPACKET_TAG: u8 = 0x49;

/// Raises a Unix socket's send buffer until a message of `len` bytes fits.
fn ensure_send_buffer(fd: BorrowedFd<'_>, len: usize, label: &Address) -> Result<()> {
    let need = len.saturating_add(UNIX_OVERHEAD);
    let now = sockopt::socket_send_buffer_size(fd).op_on("getsockopt SO_SNDBUF", label)?;
    if now >= need {
        return Ok(());
    }
    sockopt::set_socket_send_buffer_size(fd, need).op_on("setsockopt SO_SNDBUF", label)?;
    let got = sockopt::socket_send_buffer_size(fd).op_on("getsockopt SO_SNDBUF", label)?;
    if got < need {
        return Err(Error::new("setsockopt SO_SNDBUF", ErrorKind::LimitReached)
            .with_object(label)
            .with_hint(format!(
                "messages of {len} bytes need a send buffer of {need} bytes, but the kernel \
                 allows {got} (twice /proc/sys/net/core/wmem_max, now {}); lower the `max` \
                 option or raise the limit (`sysctl net.core.wmem_max`)",
                read_sysctl("/proc/sys/net/core/wmem_max").unwrap_or_else(|| "unknown".into())
            )));
    }
    Ok(())
}

/// The sending side of `unix-dgram:` and `udp:`: one datagram per message.
///
/// The socket is connected to the receiver's address, so a receiver that has gone is
/// reported ([`ErrorKind::PeerGone`], from `ECONNREFUSED`): at once on a Unix socket,
/// and on UDP from the next send after the ICMP error of one the kernel could not
/// deliver (so at least one datagram is lost first).
pub struct DatagramSender {
    fd: OwnedFd,
    label: Address,
    max: usize,
    limit: &'static str,
}

impl DatagramSender {
    pub(crate) fn open(addr: &Address, deadline: Deadline) -> Result<DatagramSender> {
        match addr.transport() {
            Transport::UnixDgram => {
                let max = addr.options().max.unwrap_or(DEFAULT_SOCKET_MAX);
                let path = addr
                    .path()
                    .unwrap_or_else(|| unreachable!("unix-dgram addresses have a path"));
                let fd = until_receiver(addr, deadline, |deadline| {
                    crate::unix::connect_socket(path, SocketType::DGRAM, deadline)
                })?;
                ensure_send_buffer(fd.as_fd(), max, addr)?;
                Ok(DatagramSender {
                    fd,
                    label: addr.clone(),
                    max,
                    limit: "the channel's `max` option",
                })
            }
            Transport::Udp => {
                let target = *resolve(addr)?
                    .first()
                    .unwrap_or_else(|| unreachable!("resolve returns at least one address"));
                let local: SocketAddr = if target.is_ipv4() {
                    (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let sock = UdpOptions::new()
                    .bind(local)
                    .map_err(|e| e.with_object(addr))?;
                sock.connect(target).op_on("connect", addr)?;
                let (max, limit) = if target.is_ipv4() {
                    (UDP_MAX_V4, "the largest UDP payload over IPv4")
                } else {
                    (UDP_MAX_V6, "the largest UDP payload over IPv6")
                };
                Ok(DatagramSender {
                    fd: OwnedFd::from(sock),
                    label: addr.clone(),
                    max,
                    limit,
                })
            }
            _ => unreachable!("only datagram addresses reach DatagramSender"),
        }
    }

    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        if msg.len() > self.max {
            return Err(too_large(&self.label, msg.len(), self.max, self.limit));
        }
        crate::sock::send_until(self.fd.as_fd(), msg, deadline)
            .map_err(|e| match e.errno() {
                Some(libc::ECONNREFUSED) => {
                    e.with_hint("no receiver is bound at the address any more")
                }
                _ => e,
            })
            .map_err(|e| send_error(e, &self.label, deadline))?;
        Ok(())
    }
}

impl Sender for DatagramSender {
    forms!(sender);

    fn max_message(&self) -> usize {
        self.max
    }
}

impl fmt::Debug for DatagramSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramSender")
            .field("address", &self.label.to_string())
            .field("max", &self.max)
            .finish()
    }
}

/// A bound datagram socket, and the socket file it owns.
enum Bound {
    Unix(SocketFile<UnixDatagram>),
    Udp(UdpSocket),
}

impl Bound {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Bound::Unix(s) => s.as_fd(),
            Bound::Udp(s) => s.as_fd(),
        }
    }
}

/// The receiving side of `unix-dgram:` and `udp:`: binds the address (a Unix receiver
/// creates the socket file, mode 0600 by default, and removes it on drop).
///
/// There is no connection, so a receiver cannot tell that its sender has gone: its waits
/// run until their timeout. Several senders may send to one receiver.
pub struct DatagramReceiver {
    bound: Bound,
    label: Address,
    address: Address,
    max: usize,
}

impl DatagramReceiver {
    pub(crate) fn open(addr: &Address) -> Result<DatagramReceiver> {
        match addr.transport() {
            Transport::UnixDgram => {
                let path = addr
                    .path()
                    .unwrap_or_else(|| unreachable!("unix-dgram addresses have a path"));
                let sock = BindOptions::new()
                    .mode(addr.options().mode.unwrap_or(0o600))
                    .bind_datagram(path)
                    .map_err(|e| e.with_object(addr))?;
                Ok(DatagramReceiver {
                    bound: Bound::Unix(sock),
                    label: addr.clone(),
                    address: addr.clone(),
                    max: addr.options().max.unwrap_or(DEFAULT_SOCKET_MAX),
                })
            }
            Transport::Udp => {
                let target = *resolve(addr)?
                    .first()
                    .unwrap_or_else(|| unreachable!("resolve returns at least one address"));
                let sock = UdpOptions::new()
                    .bind(target)
                    .map_err(|e| e.with_object(addr))?;
                let port = sock.local_addr().op_on("getsockname", addr)?.port();
                Ok(DatagramReceiver {
                    bound: Bound::Udp(sock),
                    label: addr.with_port(port),
                    address: addr.with_port(port),
                    max: if target.is_ipv4() {
                        UDP_MAX_V4
                    } else {
                        UDP_MAX_V6
                    },
                })
            }
            _ => unreachable!("only datagram addresses reach DatagramReceiver"),
        }
    }

    /// Receives one datagram. With a buffer of `max` bytes or more, that is one
    /// `recvmsg` (a datagram longer than the buffer is above the cap, and is discarded).
    /// With a smaller one, a peek first learns the next datagram's length, so one that
    /// does not fit stays queued in the kernel for a later receive with a larger buffer.
    fn recv_until(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        let (fd, label) = (self.bound.fd(), &self.label);
        let recv = |buf: &mut [u8], deadline| {
            crate::sock::recv_until(fd, buf, deadline, Framing::Messages)
        };
        let result = if buf.len() >= self.max {
            recv(buf, deadline)
        } else {
            loop {
                let next = match peek_message(fd, deadline, "recv", label) {
                    Ok(next) => next,
                    Err(e) => break Err(e),
                };
                // A datagram above the cap is taken and discarded (the receive reports
                // it), as the full-size path does: left queued, one stray datagram would
                // stop this receiver for every other sender behind it.
                let above_cap = next.len > self.max;
                if next.len > buf.len() && !above_cap {
                    break Err(buffer_too_small(label, next.len, buf.len()));
                }
                match recv(buf, Deadline::Now) {
                    // Taken by another holder of this socket since the peek.
                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                    Err(e) if above_cap && e.kind() == ErrorKind::MessageTooLarge => {
                        break Err(e.with_hint(format!(
                            "a {}-byte datagram is above this channel's cap of {} bytes and \
                             was discarded: give both sides the same `max` option",
                            next.len, self.max
                        )));
                    }
                    other => break other,
                }
            }
        };
        result.map_err(|e| recv_error(e, label, deadline))
    }
}

impl Receiver for DatagramReceiver {
    forms!(receiver);

    fn max_message(&self) -> usize {
        self.max
    }

    fn address(&self) -> Option<Address> {
        Some(self.address.clone())
    }
}

impl fmt::Debug for DatagramReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramReceiver")
            .field("address", &self.address.to_string())
            .field("max", &self.max)
            .finish()
    }
}

/// The sending side of `unix-seqpacket:`: one message per packet, behind a one-byte tag
/// that keeps empty messages apart from the end of the connection.
pub struct SeqpacketSender {
    sock: Seqpacket,
    label: Address,
    max: usize,
}

impl SeqpacketSender {
    pub(crate) fn open(addr: &Address, deadline: Deadline) -> Result<SeqpacketSender> {
        let max = addr.options().max.unwrap_or(DEFAULT_SOCKET_MAX);
        let path = addr
            .path()
            .unwrap_or_else(|| unreachable!("unix-seqpacket addresses have a path"));
        let fd = until_receiver(addr, deadline, |deadline| {
            crate::unix::connect_socket(path, SocketType::SEQPACKET, deadline)
        })?;
        ensure_send_buffer(fd.as_fd(), max.saturating_add(1), addr)?;
        Ok(SeqpacketSender {
            sock: Seqpacket::from_fd(fd),
            label: addr.clone(),
            max,
        })
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
        let fd = self.sock.as_fd();
        let slices = [IoSlice::new(&[SEQPACKET_TAG]), IoSlice::new(msg)];
        retry(
            &[(fd, PollFlags::OUT)],
            deadline,
            "send",
            &self.label,
            || {
                rustix::net::sendmsg(
                    fd,
                    &slices,
                    &mut SendAncillaryBuffer::default(),
                    SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
                )
            },
        )
        .map_err(|e| crate::sock::send_error(e, fd, msg.len() + 1))
        .map_err(|e| send_error(e, &self.label, deadline))?;
        Ok(())
    }
}

impl Sender for SeqpacketSender {
    forms!(sender);

    fn max_message(&self) -> usize {
        self.max
    }
}

impl fmt::Debug for SeqpacketSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeqpacketSender")
            .field("address", &self.label.to_string())
            .field("max", &self.max)
            .finish()
    }
}

/// The receiving side of `unix-seqpacket:`: listens (creating the socket file, mode
/// 0600 by default, removed on drop) and accepts its sender in the first receive, and
/// the next one after a sender has gone.
pub struct SeqpacketReceiver {
    listener: SocketFile<SeqpacketListener>,
    conn: Option<Seqpacket>,
    label: Address,
    max: usize,
}

impl SeqpacketReceiver {
    pub(crate) fn open(addr: &Address) -> Result<SeqpacketReceiver> {
        let path = addr
            .path()
            .unwrap_or_else(|| unreachable!("unix-seqpacket addresses have a path"));
        let listener = BindOptions::new()
            .mode(addr.options().mode.unwrap_or(0o600))
            .listen_seqpacket(path)
            .map_err(|e| e.with_object(addr))?;
        Ok(SeqpacketReceiver {
            listener,
            conn: None,
            label: addr.clone(),
            max: addr.options().max.unwrap_or(DEFAULT_SOCKET_MAX),
        })
    }

    /// Receives one message, accepting a sender first if there is none. With a buffer
    /// of `max` bytes or more, that is one `recvmsg`; with a smaller one, a peek first
    /// learns the next packet's length (its tag byte included), so a message that does
    /// not fit stays queued for a later receive with a larger buffer.
    fn recv_until(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize> {
        let (label, max) = (&self.label, self.max);
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let fd = accept(self.listener.as_fd(), deadline, label)
                    .map_err(|e| recv_error(e, label, deadline))?;
                self.conn.insert(Seqpacket::from_fd(fd))
            }
        };
        let fd = conn.as_fd();
        let result = if buf.len() >= max {
            recv_tagged(fd, buf, max, deadline, label)
        } else {
            loop {
                let next = match peek_message(fd, deadline, "recv", label) {
                    Ok(next) => next,
                    Err(e) => break Err(e),
                };
                // End of file, a foreign packet and one above the cap are left to the
                // receive, which reports them (and takes the latter two).
                let len = next.len.saturating_sub(1);
                if next.first == Some(SEQPACKET_TAG) && len > buf.len() && len <= max {
                    break Err(buffer_too_small(label, len, buf.len()));
                }
                match recv_tagged(fd, buf, max, Deadline::Now, label) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                    other => break other,
                }
            }
        };
        if matches!(&result, Err(e) if matches!(e.kind(), ErrorKind::PeerGone | ErrorKind::Corrupt))
        {
            self.conn = None;
        }
        result.map_err(|e| recv_error(e, label, deadline))
    }
}

/// One tagged message into `buf`, for a channel whose cap is `max`; end of file is
/// `PeerGone`. A message longer than `buf` is taken and reported as above the cap (the
/// caller peeks first when `buf` is smaller than `max`).
fn recv_tagged(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    max: usize,
    deadline: Deadline,
    label: &Address,
) -> Result<usize> {
    let mut tag = [0u8; 1];
    let len = buf.len();
    let msg = retry_blocking(&[(fd, PollFlags::IN)], deadline, "recv", label, |block| {
        let mut iov = [IoSliceMut::new(&mut tag), IoSliceMut::new(&mut *buf)];
        crate::sock::recvmsg_bare(
            fd,
            &mut iov,
            RecvFlags::TRUNC | RecvFlags::CMSG_CLOEXEC,
            block,
        )
    })?;
    if msg.bytes == 0 {
        return Err(Error::new("recv", ErrorKind::PeerGone)
            .with_object(label)
            .with_hint("the sender closed the channel (end of file)"));
    }
    if tag[0] != SEQPACKET_TAG {
        return Err(Error::new("recv", ErrorKind::Corrupt)
            .with_object(label)
            .with_hint(format!(
                "a message began with {:#04x}, not the channel's tag {SEQPACKET_TAG:#04x}: the \
                 sender is not an ipcx channel sender; the connection is dropped",
                tag[0]
            )));
    }
    if msg.flags.contains(ReturnFlags::TRUNC) || msg.bytes - 1 > len {
        let hint = if msg.bytes - 1 > max {
            format!(
                "a {}-byte message is above this channel's cap of {max} bytes and was \
                 discarded: give both sides the same `max` option",
                msg.bytes - 1
            )
        } else {
            format!(
                "a {}-byte message did not fit the {len}-byte buffer and was discarded \
                 (another holder of the socket took the one this receive had looked at)",
                msg.bytes - 1
            )
        };
        return Err(Error::new("recv", ErrorKind::MessageTooLarge)
            .with_object(label)
            .with_hint(hint));
    }
    Ok(msg.bytes - 1)
}

impl Receiver for SeqpacketReceiver {
    forms!(receiver);

    fn max_message(&self) -> usize {
        self.max
    }

    fn address(&self) -> Option<Address> {
        Some(self.label.clone())
    }
}

impl fmt::Debug for SeqpacketReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeqpacketReceiver")
            .field("address", &self.label.to_string())
            .field("max", &self.max)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}
