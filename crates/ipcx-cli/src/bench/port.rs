//! One side of a two-way link between the bench and its peer, and the little protocol
//! they speak over it.
//!
//! Every row, floor and libc baseline is a [`Port`] on each side: the bench drives it
//! (ping-pong, then one-way batches), the peer answers with [`serve`]. The first byte of
//! every message says what the peer should do with it; ports that carry no bytes
//! (eventfd, futex, a cache line) carry just that byte's meaning.

use std::time::Duration;

use ipcx::channel::{Receiver, Sender};
use ipcx::eventfd::EventFd;

use super::Fallible;

/// Echo this message back (a latency round trip).
pub const PING: u8 = b'p';
/// Take this message and say nothing (one-way throughput).
pub const DATA: u8 = b'd';
/// Take this message and answer with a one-byte [`ACK`]: the end of a throughput batch.
pub const ACK: u8 = b'a';
/// Stop: the peer closes its side and exits.
pub const QUIT: u8 = b'q';

/// What a link's messages can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carries {
    /// Any number of bytes up to `max`: latency and throughput tests.
    Bytes {
        /// The transport's limit.
        max: usize,
    },
    /// Messages of exactly `size` bytes, the ping's (the libc baselines, which do not
    /// frame), up to the transport's `max`: latency only.
    Fixed {
        /// The size of every message.
        size: usize,
        /// The transport's limit.
        max: usize,
    },
    /// Only the operation, no payload (eventfd, futex, a cache line): latency only.
    Signal,
}

impl Carries {
    /// The length of a ping (and of its echo) of `ping` bytes on this link.
    pub fn ping_len(self, ping: usize) -> usize {
        match self {
            Carries::Bytes { .. } => ping,
            Carries::Fixed { size, .. } => size,
            Carries::Signal => 1,
        }
    }
}

/// One side of a link: what it sends reaches the other side's `recv`.
pub trait Port: Send {
    /// Sends one message (at least one byte: the operation).
    fn send(&mut self, msg: &[u8]) -> Fallible<()>;

    /// Receives one message into `buf`, waiting as long as it takes; returns its length.
    fn recv(&mut self, buf: &mut [u8]) -> Fallible<usize>;

    /// Receives the answer to a batch. Lossy transports wait at most `timeout` so that a
    /// lost datagram is an error, not a hang; the others wait as long as [`Port::recv`].
    fn recv_ack(&mut self, buf: &mut [u8], timeout: Duration) -> Fallible<usize> {
        let _ = timeout;
        self.recv(buf)
    }

    /// What the messages this side sends can be.
    fn carries(&self) -> Carries;

    /// How large a receive buffer must be for every message the peer may send, up to
    /// `largest` bytes of payload.
    fn recv_buffer(&self, largest: usize) -> usize;

    /// The most messages to send before waiting for an answer: a lossy transport must
    /// not overrun its receiver.
    fn max_batch(&self) -> usize {
        4096
    }
}

/// The peer's side of every test: answers pings, counts nothing, acknowledges batches,
/// and returns on [`QUIT`].
pub fn serve(port: &mut dyn Port, buf: &mut [u8]) -> Fallible<()> {
    loop {
        let n = port.recv(buf)?;
        match buf[..n].first() {
            Some(&PING) => port.send(&buf[..n])?,
            Some(&DATA) => {}
            Some(&ACK) => port.send(&[ACK])?,
            Some(&QUIT) => return Ok(()),
            Some(other) => {
                return Err(format!("protocol error: unknown operation byte {other:#04x}").into());
            }
            None => return Err("protocol error: an empty message".into()),
        }
    }
}

/// A link over the ipcx channel layer: any [`Sender`] and [`Receiver`].
pub struct ChannelPort {
    tx: Box<dyn Sender + Send>,
    rx: Box<dyn Receiver + Send>,
    /// Datagrams that the kernel may drop (UDP): bounded batches and answer waits.
    lossy: bool,
}

impl ChannelPort {
    /// A port sending on `tx` and receiving on `rx`.
    pub fn new(tx: Box<dyn Sender + Send>, rx: Box<dyn Receiver + Send>, lossy: bool) -> Self {
        ChannelPort { tx, rx, lossy }
    }
}

impl Port for ChannelPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        Ok(self.tx.send(msg)?)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Fallible<usize> {
        Ok(self.rx.recv(buf)?)
    }

    fn recv_ack(&mut self, buf: &mut [u8], timeout: Duration) -> Fallible<usize> {
        if !self.lossy {
            return self.recv(buf);
        }
        self.rx.recv_timeout(buf, timeout).map_err(|e| {
            format!("{e} (a datagram of the batch or its answer was lost: UDP does not retransmit)")
                .into()
        })
    }

    fn carries(&self) -> Carries {
        Carries::Bytes {
            max: self.tx.max_message(),
        }
    }

    fn recv_buffer(&self, largest: usize) -> usize {
        // A buffer below the receiver's maximum costs message transports a second step
        // (sockets peek at the next message's length first; queues receive through a
        // buffer of their own and copy), so give them their maximum; byte streams (whose
        // maximum is 16 MiB) only need the largest message.
        let max = self.rx.max_message();
        if max <= 4 << 20 { max } else { largest.max(1) }
    }

    fn max_batch(&self) -> usize {
        // Small enough that a batch of the largest UDP datagrams fits the default socket
        // receive buffer (`net.core.rmem_default`, 208 KiB) with room to spare.
        if self.lossy { 32 } else { 4096 }
    }
}

/// A link of two eventfds: a write of 1 is a ping, a write of 2 is quit. No payload.
pub struct EventfdPort {
    to_peer: EventFd,
    from_peer: EventFd,
}

impl EventfdPort {
    /// A port writing `to_peer` and reading `from_peer`.
    pub fn new(to_peer: EventFd, from_peer: EventFd) -> Self {
        EventfdPort { to_peer, from_peer }
    }
}

impl Port for EventfdPort {
    fn send(&mut self, msg: &[u8]) -> Fallible<()> {
        let n = match msg.first() {
            Some(&QUIT) => 2,
            _ => 1,
        };
        Ok(self.to_peer.write(n)?)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Fallible<usize> {
        buf[0] = match self.from_peer.read()? {
            1 => PING,
            _ => QUIT,
        };
        Ok(1)
    }

    fn carries(&self) -> Carries {
        Carries::Signal
    }

    fn recv_buffer(&self, _largest: usize) -> usize {
        1
    }
}
