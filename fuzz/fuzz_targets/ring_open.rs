//! A real ring (a sealed memfd, mapped) whose header, counters and records the fuzzer
//! overwrites, as a peer sharing the memory could, before and while the other side
//! opens it and receives.
//!
//! The script: messages the creator's sender sends, bytes written over the object
//! (through the descriptor, at any offset inside it) before the opener attaches, then
//! more bytes written between the receiver's receives. Properties:
//!
//! - opening returns a ring or `Corrupt` / `TimedOut` (magic not yet written) /
//!   `AlreadyExists` (a state word says the side was taken), never a panic;
//! - `try_send` and `try_recv` return at once (no hang), with `Ok`, `WouldBlock`,
//!   `Corrupt`, `PeerGone` or `MessageTooLarge`; a received message is never longer than
//!   the ring's largest message or the buffer (reliability items 8 and 9);
//! - when the script wrote nothing that changed a byte, the receiver gets exactly the
//!   messages sent, in order.
#![no_main]

use std::os::fd::AsFd;

use ipcx::ErrorKind;
use ipcx::ring::{RingOptions, Wait};
use libfuzzer_sys::fuzz_target;

/// Bytes before the data area (the header and the counters' cache lines).
const DATA_OFFSET: u64 = 512;
const CAPACITY: u64 = 256;

/// Writes `bytes` at `offset` of the object, returning whether any byte changed.
fn overwrite(fd: impl AsFd, offset: u64, bytes: &[u8]) -> bool {
    let size = DATA_OFFSET + CAPACITY;
    let offset = offset % size;
    let bytes = &bytes[..bytes.len().min((size - offset) as usize)];
    let mut old = vec![0u8; bytes.len()];
    let n = rustix::io::pread(&fd, &mut old, offset).expect("pread of the ring's memfd");
    assert_eq!(n, old.len());
    let n = rustix::io::pwrite(&fd, bytes, offset).expect("pwrite inside the ring's memfd");
    assert_eq!(n, bytes.len());
    old != bytes
}

fn ok_kind(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::WouldBlock
            | ErrorKind::Corrupt
            | ErrorKind::PeerGone
            | ErrorKind::MessageTooLarge
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, mut rest)) = data.split_first() else {
        return;
    };
    let opts = RingOptions::new()
        .capacity(CAPACITY as usize)
        .wait(Wait::Blocking)
        .open_wait(std::time::Duration::ZERO);
    let ring = opts.anonymous().expect("an anonymous ring");
    let fd = ring.as_fd().try_clone_to_owned().expect("dup");
    let mut tx = ring.sender().expect("the creator's sender");
    let mut changed = false;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (a, b) = rest.split_at_checked(n)?;
        rest = b;
        Some(a)
    };

    // Patches before the opener attaches: the header as a peer (or garbage) left it.
    for _ in 0..config % 4 {
        let Some(p) = take(3) else { break };
        let len = usize::from(p[1] % 16) + 1;
        let offset = u64::from(p[0]) * if p[2] & 1 == 0 { 1 } else { 4 };
        let Some(bytes) = take(len) else { break };
        changed |= overwrite(&fd, offset, bytes);
    }
    let opened = match opts.from_fd(fd.try_clone().expect("dup")) {
        Ok(r) => r,
        Err(e) => {
            assert!(changed, "an untouched ring failed to open: {e}");
            // A flags word patched to 1 makes it a multi-producer ring, which a
            // single-producer opener refuses by name.
            let mpsc = e.kind() == ErrorKind::InvalidInput
                && e.to_string().contains("multi-producer ring");
            assert!(
                mpsc || matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::TimedOut),
                "open: {e}"
            );
            return;
        }
    };
    let mut rx = match opened.receiver() {
        Ok(rx) => rx,
        Err(e) => {
            assert!(changed, "an untouched ring refused its receiver: {e}");
            assert!(
                matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::Corrupt),
                "receiver: {e}"
            );
            return;
        }
    };
    assert!(rx.max_message() <= rx.capacity());

    // Then a script: 0 send, 1 receive, 2 overwrite.
    let mut sent = std::collections::VecDeque::new();
    let mut seq = 0u8;
    let mut buf = [0u8; CAPACITY as usize];
    let mut small = [0u8; 8];
    let mut ops = 0;
    while let Some(op) = take(1) {
        ops += 1;
        if ops > 256 {
            break;
        }
        match op[0] % 3 {
            0 => {
                let len = usize::from(op[0] >> 2) * 4;
                let msg: Vec<u8> = (0..len).map(|i| seq.wrapping_add(i as u8)).collect();
                match tx.try_send(&msg) {
                    Ok(()) => {
                        sent.push_back(msg);
                        seq = seq.wrapping_add(1);
                    }
                    Err(e) => {
                        assert!(ok_kind(e.kind()), "try_send: {e}");
                        assert!(
                            changed
                                || matches!(
                                    e.kind(),
                                    ErrorKind::WouldBlock | ErrorKind::MessageTooLarge
                                ),
                            "try_send on an untouched ring: {e}"
                        );
                    }
                }
            }
            1 => {
                let into: &mut [u8] = if op[0] & 0x80 != 0 {
                    &mut small
                } else {
                    &mut buf
                };
                let cap = into.len();
                match rx.try_recv(into) {
                    Ok(n) => {
                        assert!(n <= cap && n <= rx.max_message());
                        if !changed {
                            let want = sent.pop_front().expect("a message nobody sent");
                            assert_eq!(&into[..n], &want[..]);
                        }
                    }
                    Err(e) => {
                        assert!(ok_kind(e.kind()), "try_recv: {e}");
                        if !changed {
                            match e.kind() {
                                ErrorKind::WouldBlock => assert!(sent.is_empty(), "{e}"),
                                ErrorKind::MessageTooLarge => {
                                    assert!(sent.front().is_some_and(|m| m.len() > cap), "{e}")
                                }
                                _ => panic!("try_recv on an untouched ring: {e}"),
                            }
                        }
                    }
                }
            }
            _ => {
                let Some(p) = take(2) else { break };
                let len = usize::from(p[1] % 16) + 1;
                let offset = u64::from(p[0]) * 4 + if op[0] & 0x80 != 0 { DATA_OFFSET } else { 0 };
                let Some(bytes) = take(len) else { break };
                changed |= overwrite(&fd, offset, bytes);
            }
        }
    }
});
