//! The byte-stream frame decoder (`ipcx::channel::frame::Decoder`), checked against a
//! reference decoder written from the format's specification.
//!
//! The input is a stream (arbitrary bytes, or frames the fuzzer describes compactly so
//! that messages above the decoder's 16 KiB direct-read threshold occur, with bytes
//! overwritten anywhere), the decoder's cap, the receive buffer's size, and a pattern of
//! read sizes with interruptions (`TimedOut` from the source). Properties:
//!
//! - the decoder returns exactly the messages the reference finds, in order, however the
//!   stream is cut into reads and however often a read fails (nothing lost, nothing
//!   duplicated, no byte changed);
//! - it then ends as the reference does: `Corrupt` for a bad header (and stays poisoned),
//!   `PeerGone` for a stream that ends, cleanly or inside a frame;
//! - a message longer than the buffer is `MessageTooLarge` and stays pending;
//! - no message exceeds the cap, and the decoder never holds more than its read-ahead
//!   buffer plus one message (reliability item 7: no allocation from a length field).
#![no_main]

use ipcx::ErrorKind;
use ipcx::channel::frame::{Decoder, HEADER_LEN, MAGIC, VERSION, encode_header};
use libfuzzer_sys::fuzz_target;

/// The decoder's read-ahead bound (64 KiB, `READ_AHEAD` in frame.rs).
const READ_AHEAD: usize = 64 << 10;

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// A header the format refuses.
    Corrupt,
    /// The stream ended (between frames or inside one).
    PeerGone,
}

/// The format, read straight from its specification: magic, version, zero flags, a
/// little-endian length no larger than `max`, then that many bytes. Returns the messages,
/// how the stream ends, and the length of the message it ends inside, if any.
fn reference(stream: &[u8], max: usize) -> (Vec<&[u8]>, End, Option<usize>) {
    let mut messages = Vec::new();
    let mut rest = stream;
    loop {
        if rest.len() < HEADER_LEN {
            return (messages, End::PeerGone, None);
        }
        let (header, body) = rest.split_at(HEADER_LEN);
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if header[..2] != MAGIC || header[2] != VERSION || header[3] != 0 || len > max {
            return (messages, End::Corrupt, None);
        }
        if body.len() < len {
            return (messages, End::PeerGone, Some(len));
        }
        messages.push(&body[..len]);
        rest = &body[len..];
    }
}

/// Builds a stream from compact frame descriptions: each 4-byte group is a length
/// (`u16`, times 4 if the flag byte's top bit is set) and a fill byte; then overwrites bytes at fuzzer-chosen offsets.
fn described(spec: &[u8]) -> Vec<u8> {
    let (frames, patches) = spec.split_at(spec.len() / 2);
    let mut stream = Vec::new();
    for f in frames.chunks_exact(4) {
        let scale = if f[3] & 0x80 != 0 { 4 } else { 1 };
        let len = usize::from(u16::from_le_bytes([f[0], f[1]])) * scale;
        let Ok(header) = encode_header(len) else {
            return stream;
        };
        stream.extend_from_slice(&header);
        stream.extend((0..len).map(|i| f[2].wrapping_add(i as u8)));
        if stream.len() > 256 << 10 {
            break;
        }
    }
    if !stream.is_empty() {
        for p in patches.chunks_exact(4) {
            let at = u32::from_le_bytes([p[0], p[1], p[2], 0]) as usize % stream.len();
            stream[at] = p[3];
        }
    }
    stream
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (config, rest) = data.split_at(8);
    let max = match config[0] % 4 {
        0 => usize::from(config[1]),
        1 => usize::from(u16::from_le_bytes([config[1], config[2]])),
        2 => 1 << 20,
        _ => ipcx::channel::frame::DEFAULT_MAX,
    };
    // The receive buffer: the cap (up to 256 KiB, so that a run stays fast; larger
    // messages take the MessageTooLarge path), or a small size.
    let out_len = if config[3] & 1 == 0 {
        max.min(256 << 10)
    } else {
        usize::from(config[4]) * 97
    };
    let pattern_len = usize::from(config[5] % 16) + 1;
    if rest.len() < pattern_len {
        return;
    }
    let (pattern, body) = rest.split_at(pattern_len);
    let stream = if config[6] & 1 == 0 {
        body.to_vec()
    } else {
        described(body)
    };
    let (expected, end, cut) = reference(&stream, max);

    // The source: read sizes from the pattern, 0 meaning "interrupted" (TimedOut), with
    // at most one interruption in a row so the decoder always makes progress.
    let mut pos = 0;
    let mut step = 0;
    let mut interrupted = false;
    let mut read = |buf: &mut [u8]| -> ipcx::Result<usize> {
        let p = pattern[step % pattern.len()];
        step += 1;
        if p == 0 && !interrupted {
            interrupted = true;
            return Err(ipcx::Error::new("read", ErrorKind::TimedOut));
        }
        interrupted = false;
        let scale = match (config[6] & 1, config[7] & 1) {
            (0, 0) => 1,
            (0, _) => 257,
            // Described streams run to 256 KiB: larger reads keep a run short.
            (_, 0) => 64,
            _ => 1024,
        };
        let want = usize::from(p.max(1)) * scale;
        let n = want.min(buf.len()).min(stream.len() - pos);
        buf[..n].copy_from_slice(&stream[pos..pos + n]);
        pos += n;
        Ok(n)
    };

    let mut decoder = Decoder::new(max);
    let mut out = vec![0u8; out_len];
    let mut big = Vec::new();
    let mut got = 0;
    let last = loop {
        assert!(
            decoder.allocated() <= READ_AHEAD + max.max(8),
            "decoder holds {} bytes with a cap of {max}",
            decoder.allocated()
        );
        match decoder.read_message(&mut out, &mut read) {
            Ok(n) => {
                let want = expected
                    .get(got)
                    .expect("decoder returned a message the reference did not find");
                assert!(n <= max);
                assert_eq!(&out[..n], *want, "message {got} differs");
                got += 1;
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => {}
            Err(e) if e.kind() == ErrorKind::MessageTooLarge => {
                // Pending, not lost: the next receive with room returns it (or, for a
                // message the stream ends inside, the end of the stream).
                let need = match expected.get(got) {
                    Some(want) => {
                        assert!(want.len() > out.len(), "{e}");
                        want.len()
                    }
                    None => {
                        cut.expect("MessageTooLarge for a message the stream does not announce")
                    }
                };
                big.resize(need, 0);
                let result = loop {
                    match decoder.read_message(&mut big, &mut read) {
                        Err(e) if e.kind() == ErrorKind::TimedOut => {}
                        other => break other,
                    }
                };
                match result {
                    Ok(n) => {
                        let want = expected
                            .get(got)
                            .expect("a message the reference did not find");
                        assert_eq!(&big[..n], *want, "pending message {got} differs");
                        got += 1;
                    }
                    Err(e) => break e,
                }
            }
            Err(e) => break e,
        }
    };
    assert_eq!(got, expected.len(), "decoder stopped early with {last}");
    match end {
        End::Corrupt => {
            assert_eq!(last.kind(), ErrorKind::Corrupt, "{last}");
            // Poisoned: the same error again, nothing more read.
            let again = decoder.read_message(&mut out, &mut read).unwrap_err();
            assert_eq!(again, last);
        }
        End::PeerGone => assert_eq!(last.kind(), ErrorKind::PeerGone, "{last}"),
    }
});
