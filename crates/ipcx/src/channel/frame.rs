//! Message framing for byte streams (pipes, FIFOs, Unix stream sockets, TCP).
//!
//! A byte stream has no message boundaries, so the channel layer puts an 8-byte header in
//! front of every message:
//!
//! ```text
//! offset 0   'I' 'X'     magic (0x49 0x58)
//! offset 2   1           version
//! offset 3   0           flags (none defined; any set bit is refused)
//! offset 4   len         payload length, u32 little-endian
//! offset 8   payload     len bytes
//! ```
//!
//! The magic and version cost four bytes per message and buy a check on every frame: a
//! stream that gets out of step (two writers interleaving on one FIFO, a program that is
//! not an ipcx sender, a peer of another protocol version) is reported as
//! [`ErrorKind::Corrupt`] at the first bad header instead of being read as a random
//! length. The length field is 32 bits, so a frame carries at most 4 GiB − 1 bytes; each
//! channel also has a configured cap (16 MiB by default).
//!
//! The [`Decoder`] is incremental and never trusts the length field: a length above the
//! cap is rejected as soon as the header is complete, **before anything is allocated**
//! (reliability items 7 and 8), and a stream that ends inside a frame is reported as
//! [`ErrorKind::PeerGone`] naming how much of the message arrived. After a corrupt
//! header the decoder is poisoned: every later call repeats the error, since nothing
//! after it can be trusted to start a frame.
//!
//! ```
//! use ipcx::channel::frame::{Decoder, encode_header};
//!
//! let mut stream = Vec::new();
//! for msg in [&b"hello"[..], b"", b"world"] {
//!     stream.extend_from_slice(&encode_header(msg.len())?);
//!     stream.extend_from_slice(msg);
//! }
//! // The decoder pulls bytes from any source, here two bytes at a time.
//! let mut decoder = Decoder::new(1024);
//! let mut chunks = stream.chunks(2);
//! let mut read = |buf: &mut [u8]| {
//!     let chunk = chunks.next().unwrap_or_default();
//!     buf[..chunk.len()].copy_from_slice(chunk);
//!     Ok(chunk.len())
//! };
//! let mut out = [0u8; 16];
//! let n = decoder.read_message(&mut out, &mut read)?;
//! assert_eq!(&out[..n], b"hello");
//! assert_eq!(decoder.read_message(&mut out, &mut read)?, 0);
//! let n = decoder.read_message(&mut out, &mut read)?;
//! assert_eq!(&out[..n], b"world");
//! // The source ran dry at a frame boundary: the sender is gone.
//! let end = decoder.read_message(&mut out, &mut read).unwrap_err();
//! assert_eq!(end.kind(), ipcx::ErrorKind::PeerGone);
//! # Ok::<(), ipcx::Error>(())
//! ```

use crate::error::{Error, ErrorKind, Result};

/// Bytes of the header in front of every message.
pub const HEADER_LEN: usize = 8;
/// The header's first two bytes: `b"IX"`.
pub const MAGIC: [u8; 2] = *b"IX";
/// The frame format's version.
pub const VERSION: u8 = 1;
/// The default cap on one message's length: 16 MiB.
pub const DEFAULT_MAX: usize = 16 << 20;
/// The largest length the 32-bit field can carry.
pub const MAX_LEN: usize = u32::MAX as usize;

/// Bytes the decoder reads ahead: one read can bring many small frames.
const READ_AHEAD: usize = 64 << 10;
/// Payload still missing, from which the decoder reads straight into the caller's
/// buffer instead of through its own (saving a copy of large messages).
const DIRECT_MIN: usize = 16 << 10;

/// The header for a message of `len` bytes.
///
/// # Errors
/// [`ErrorKind::MessageTooLarge`] above [`MAX_LEN`].
pub fn encode_header(len: usize) -> Result<[u8; HEADER_LEN]> {
    let Ok(len32) = u32::try_from(len) else {
        return Err(
            Error::new("encode frame", ErrorKind::MessageTooLarge).with_hint(format!(
                "a {len}-byte message is more than a frame carries ({MAX_LEN} bytes)"
            )),
        );
    };
    let l = len32.to_le_bytes();
    Ok([MAGIC[0], MAGIC[1], VERSION, 0, l[0], l[1], l[2], l[3]])
}

/// Checks a received header and returns the payload length it announces.
///
/// # Errors
/// [`ErrorKind::Corrupt`] for a wrong magic, an unknown version, unknown flags, or a
/// length above `max` (named, with the cap).
pub fn decode_header(header: &[u8; HEADER_LEN], max: usize) -> Result<usize> {
    let corrupt =
        |hint: String| Err(Error::new("decode frame", ErrorKind::Corrupt).with_hint(hint));
    if header[..2] != MAGIC {
        return corrupt(format!(
            "the stream is not ipcx-framed or is out of step: a frame starts with \"IX\", \
             this one with {:02x} {:02x} (two writers on one FIFO, or a sender that is not \
             ipcx); close the stream",
            header[0], header[1]
        ));
    }
    if header[2] != VERSION {
        return corrupt(format!(
            "frame version {} is not supported (this side speaks version {VERSION}); \
             upgrade the older side",
            header[2]
        ));
    }
    if header[3] != 0 {
        return corrupt(format!(
            "frame flags {:#04x} are not defined in version {VERSION}",
            header[3]
        ));
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > max {
        return corrupt(format!(
            "the peer announced a {len}-byte message, above this channel's cap of {max} bytes; \
             refused before allocating (give both sides the same `max` option)"
        ));
    }
    Ok(len)
}

/// Where the decoder is in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for (the rest of) a header.
    Header,
    /// The header announced `len` payload bytes; `got` have arrived and sit in
    /// `partial` between calls.
    Payload { len: usize, got: usize },
}

/// An incremental frame decoder with a bounded read-ahead buffer.
///
/// Memory: a read-ahead buffer of at most 64 KiB (smaller for small caps), plus, only
/// for a message whose receipt was interrupted (a call that returned before it was
/// complete), the part of it that has arrived, in a buffer grown by doubling up to the
/// message's length. Never more than the cap plus the read-ahead, and never more than
/// twice the bytes that actually arrived.
#[derive(Debug)]
pub struct Decoder {
    max: usize,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    state: State,
    partial: Vec<u8>,
    poisoned: Option<Error>,
}

impl Decoder {
    /// A decoder that accepts messages of at most `max` bytes.
    pub fn new(max: usize) -> Decoder {
        let ahead = max.saturating_add(HEADER_LEN).clamp(HEADER_LEN, READ_AHEAD);
        Decoder {
            max,
            buf: vec![0; ahead],
            start: 0,
            end: 0,
            state: State::Header,
            partial: Vec::new(),
            poisoned: None,
        }
    }

    /// The cap on one message's length.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes of memory the decoder holds: its read-ahead buffer and any partly received
    /// message.
    pub fn allocated(&self) -> usize {
        self.buf.capacity() + self.partial.capacity()
    }

    /// Whether the decoder is between frames (nothing of a next message has arrived).
    pub fn at_boundary(&self) -> bool {
        self.state == State::Header && self.start == self.end
    }

    /// Forgets everything buffered: for a new connection on the same receiver.
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        self.state = State::Header;
        self.partial = Vec::new();
        self.poisoned = None;
    }

    /// Decodes the next message into `out`, pulling bytes with `read` as needed, and
    /// returns its length.
    ///
    /// `read` fills the start of the buffer it is given and returns how many bytes it
    /// wrote; 0 means the stream ended. An error from `read` (a timeout, say) is returned
    /// as it is, and whatever arrived is kept for the next call: no byte is lost and the
    /// stream stays in step.
    ///
    /// # Errors
    /// - [`ErrorKind::MessageTooLarge`] if the message is longer than `out`; the message
    ///   stays pending and the next call with a large enough buffer returns it;
    /// - [`ErrorKind::Corrupt`] for a bad header (see [`decode_header`]); the decoder is
    ///   then poisoned;
    /// - [`ErrorKind::PeerGone`] when the stream ends: between messages, or inside one
    ///   (the hint then says how much of it arrived; it is lost).
    pub fn read_message(
        &mut self,
        out: &mut [u8],
        read: &mut dyn FnMut(&mut [u8]) -> Result<usize>,
    ) -> Result<usize> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        // Whether this call receives the current message straight into `out` (nothing of
        // it was kept from an earlier call); on an early return, what arrived of it goes
        // into `partial`.
        let mut in_out = false;
        loop {
            match self.state {
                State::Header => {
                    if self.end - self.start >= HEADER_LEN {
                        let mut header = [0u8; HEADER_LEN];
                        header.copy_from_slice(&self.buf[self.start..self.start + HEADER_LEN]);
                        match decode_header(&header, self.max) {
                            Ok(len) => {
                                self.start += HEADER_LEN;
                                self.state = State::Payload { len, got: 0 };
                            }
                            Err(e) => {
                                self.poisoned = Some(e.clone());
                                return Err(e);
                            }
                        }
                        continue;
                    }
                    match self.fill(read) {
                        Ok(0) => return Err(self.ended(0, 0)),
                        Ok(_) => {}
                        Err(e) => return Err(e),
                    }
                }
                State::Payload { len, mut got } => {
                    if len > out.len() {
                        return Err(Error::new("recv", ErrorKind::MessageTooLarge).with_hint(
                            format!(
                                "the next message is {len} bytes but the buffer has {} bytes; \
                                 it stays pending: receive again with a buffer of at least \
                                 {len} bytes",
                                out.len()
                            ),
                        ));
                    }
                    if got > 0 && !in_out {
                        // An earlier call was interrupted inside this message, which it
                        // left in `partial`: collect the rest there too and copy it out
                        // once, so that each interruption costs nothing. (Moving it into
                        // `out` and back on every call would make a message that arrives
                        // in many interrupted pieces, say polled with `try_recv`, cost
                        // time quadratic in its size.)
                        let take = (self.end - self.start).min(len - got);
                        reserve_capped(&mut self.partial, take, len);
                        self.partial
                            .extend_from_slice(&self.buf[self.start..self.start + take]);
                        self.start += take;
                        got += take;
                        self.state = State::Payload { len, got };
                        if got == len {
                            out[..len].copy_from_slice(&self.partial);
                            self.partial = Vec::new();
                            self.state = State::Header;
                            return Ok(len);
                        }
                        match self.fill(read) {
                            Ok(0) => return Err(self.ended(len, got)),
                            Ok(_) => continue,
                            Err(e) => return Err(e),
                        }
                    }
                    // Nothing of this message is kept from an earlier call: it goes
                    // straight into `out`, and into `partial` only if this call ends
                    // before it is complete.
                    in_out = true;
                    let take = (self.end - self.start).min(len - got);
                    out[got..got + take].copy_from_slice(&self.buf[self.start..self.start + take]);
                    self.start += take;
                    got += take;
                    self.state = State::Payload { len, got };
                    if got == len {
                        self.state = State::Header;
                        return Ok(len);
                    }
                    if len - got >= DIRECT_MIN {
                        // The read-ahead buffer is empty here (it was drained above), so
                        // the rest of the payload can go straight into `out`.
                        match read(&mut out[got..len]) {
                            Ok(0) => return Err(self.ended(len, got)),
                            Ok(n) if n <= len - got => {
                                self.state = State::Payload { len, got: got + n };
                            }
                            Ok(n) => return Err(self.lied(n, len - got)),
                            Err(e) => {
                                self.partial.extend_from_slice(&out[..got]);
                                return Err(e);
                            }
                        }
                    } else {
                        match self.fill(read) {
                            Ok(0) => return Err(self.ended(len, got)),
                            Ok(_) => {}
                            Err(e) => {
                                self.partial.extend_from_slice(&out[..got]);
                                return Err(e);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Reads into the free tail of the read-ahead buffer, moving what is buffered to its
    /// front first.
    fn fill(&mut self, read: &mut dyn FnMut(&mut [u8]) -> Result<usize>) -> Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = read(&mut self.buf[self.end..])?;
        let room = self.buf.len() - self.end;
        if n > room {
            return Err(self.lied(n, room));
        }
        self.end += n;
        Ok(n)
    }

    /// A source that reported more bytes than the buffer it was given: nothing read
    /// from it can be trusted any more.
    fn lied(&mut self, n: usize, room: usize) -> Error {
        let e = Error::new("read", ErrorKind::Corrupt).with_hint(format!(
            "the source reported {n} bytes read into a {room}-byte buffer"
        ));
        self.poisoned = Some(e.clone());
        e
    }

    /// The error for a stream that ended: cleanly between frames, or inside one.
    fn ended(&mut self, len: usize, got: usize) -> Error {
        let buffered = self.end - self.start;
        let e = match self.state {
            State::Header if buffered == 0 => {
                return Error::new("recv", ErrorKind::PeerGone)
                    .with_hint("the sender closed the channel (end of stream)");
            }
            State::Header => Error::new("recv", ErrorKind::PeerGone).with_hint(format!(
                "the stream ended {buffered} bytes into a {HEADER_LEN}-byte frame header: the \
                 sender went away in the middle of a message, which is lost"
            )),
            State::Payload { .. } => Error::new("recv", ErrorKind::PeerGone).with_hint(format!(
                "the stream ended {got} bytes into a {len}-byte message: the sender went away \
                 in the middle of it, and it is lost"
            )),
        };
        self.reset();
        e
    }
}

/// Makes room in `partial` for `more` bytes of a message of `len`: growing by doubling
/// (so that collecting a message piece by piece costs time linear in its size) but never
/// past `len` (so that it holds no more than the message).
fn reserve_capped(partial: &mut Vec<u8>, more: usize, len: usize) {
    let need = partial.len() + more;
    if need > partial.capacity() {
        let target = partial
            .capacity()
            .saturating_mul(2)
            .clamp(need, len.max(need));
        partial.reserve_exact(target - partial.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(msgs: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for m in msgs {
            v.extend_from_slice(&encode_header(m.len()).unwrap());
            v.extend_from_slice(m);
        }
        v
    }

    /// A source that hands out `data` in pieces of `step` bytes, then WouldBlock once
    /// per `stall` pieces, then end of stream.
    fn source(data: Vec<u8>, step: usize) -> impl FnMut(&mut [u8]) -> Result<usize> {
        let mut pos = 0;
        move |buf: &mut [u8]| {
            let n = step.min(buf.len()).min(data.len() - pos);
            buf[..n].copy_from_slice(&data[pos..pos + n]);
            pos += n;
            Ok(n)
        }
    }

    #[test]
    fn large_messages_are_read_directly_and_survive_interruptions() {
        let big = vec![7u8; 100_000];
        let data = frames(&[&big, b"tail"]);
        let mut pos = 0;
        let mut calls = 0;
        let mut read = |buf: &mut [u8]| {
            calls += 1;
            if calls % 3 == 0 {
                return Err(Error::new("read", ErrorKind::TimedOut));
            }
            let n = 5000.min(buf.len()).min(data.len() - pos);
            buf[..n].copy_from_slice(&data[pos..pos + n]);
            pos += n;
            Ok(n)
        };
        let mut d = Decoder::new(1 << 20);
        let mut out = vec![0u8; 200_000];
        let n = loop {
            // A different buffer each time: partial payloads must be kept inside.
            let mut fresh = vec![0u8; 200_000];
            match d.read_message(&mut fresh, &mut read) {
                Ok(n) => {
                    out = fresh;
                    break n;
                }
                Err(e) => assert_eq!(e.kind(), ErrorKind::TimedOut),
            }
        };
        assert_eq!(n, big.len());
        assert!(out[..n].iter().all(|&b| b == 7));
        let n = loop {
            match d.read_message(&mut out, &mut read) {
                Ok(n) => break n,
                Err(e) => assert_eq!(e.kind(), ErrorKind::TimedOut),
            }
        };
        assert_eq!(&out[..n], b"tail");
    }

    #[test]
    fn oversized_lengths_are_refused_before_allocating() {
        let mut header = encode_header(1 << 30).unwrap().to_vec();
        header.extend_from_slice(&[0; 16]);
        let mut d = Decoder::new(4096);
        let before = d.allocated();
        let mut read = source(header, 3);
        let err = d.read_message(&mut [0u8; 64], &mut read).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(
            err.to_string()
                .contains("1073741824-byte message, above this channel's cap of 4096"),
            "{err}"
        );
        assert_eq!(d.allocated(), before);
        // Poisoned: the same error again, nothing read.
        assert_eq!(d.read_message(&mut [0u8; 64], &mut read).unwrap_err(), err);
    }

    #[test]
    fn too_small_buffers_leave_the_message_pending() {
        let mut d = Decoder::new(1024);
        let mut read = source(frames(&[b"0123456789", b"x"]), 64);
        let err = d.read_message(&mut [0u8; 4], &mut read).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MessageTooLarge);
        assert!(
            err.to_string()
                .contains("10 bytes but the buffer has 4 bytes"),
            "{err}"
        );
        let mut out = [0u8; 10];
        assert_eq!(d.read_message(&mut out, &mut read).unwrap(), 10);
        assert_eq!(&out, b"0123456789");
        assert_eq!(d.read_message(&mut out, &mut read).unwrap(), 1);
    }

    #[test]
    fn truncated_frames_say_how_much_arrived() {
        let mut data = frames(&[b"0123456789"]);
        data.truncate(HEADER_LEN + 4);
        let mut d = Decoder::new(1024);
        let err = d
            .read_message(&mut [0u8; 64], &mut source(data, 64))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PeerGone);
        assert!(
            err.to_string().contains("4 bytes into a 10-byte message"),
            "{err}"
        );

        let mut d = Decoder::new(1024);
        let err = d
            .read_message(&mut [0u8; 64], &mut source(b"IX\x01".to_vec(), 64))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("3 bytes into a 8-byte frame header"),
            "{err}"
        );
    }

    #[test]
    fn bad_headers_are_corrupt() {
        for (header, says) in [
            (*b"XX\x01\x00\x00\x00\x00\x00", "not ipcx-framed"),
            (*b"IX\x02\x00\x00\x00\x00\x00", "version 2"),
            (*b"IX\x01\x80\x00\x00\x00\x00", "flags 0x80"),
        ] {
            let err = decode_header(&header, 100).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupt);
            assert!(err.to_string().contains(says), "{err}");
        }
        assert_eq!(
            decode_header(&encode_header(100).unwrap(), 100).unwrap(),
            100
        );
    }
}
