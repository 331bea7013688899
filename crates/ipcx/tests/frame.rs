//! Property tests of the frame decoder: every stream of frames decodes back to its
//! messages however it is cut into reads, and arbitrary bytes never panic it, never make
//! it allocate beyond its bound, and never yield a message longer than the cap
//! (reliability items 7, 8 and 13).
#![allow(clippy::unwrap_used)]

use ipcx::ErrorKind;
use ipcx::channel::frame::{Decoder, HEADER_LEN, encode_header};
use proptest::prelude::*;

/// Counts what this test binary allocates, per thread, while a thread asks it to: the
/// proof that a decoder refuses a length before allocating for it, rather than the
/// decoder's own account of its buffers.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        static ON: Cell<bool> = const { Cell::new(false) };
        static TOTAL: Cell<usize> = const { Cell::new(0) };
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    /// Notes an allocation of `size` bytes if this thread is measuring. The thread
    /// locals are `const`-initialised `Cell`s without destructors, so reading them never
    /// allocates (which would recurse) and works during thread teardown.
    fn note(size: usize) {
        let on = ON.try_with(Cell::get).unwrap_or(false);
        if on {
            let _ = TOTAL.try_with(|t| t.set(t.get().saturating_add(size)));
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    }

    // SAFETY:
    // - every method passes its arguments unchanged to `System`, which upholds the
    //   `GlobalAlloc` contract; counting touches only thread-local `Cell`s and never
    //   allocates or unwinds.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: the caller's guarantees for `alloc` (non-zero size) hold unchanged.
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: as for `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with
            // `layout`, and `new_size` is valid: the caller's guarantees, unchanged.
            unsafe { System.realloc(ptr, layout, new_size) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` was allocated by `System` (through this allocator) with
            // `layout`, as the caller guarantees.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    /// What this thread allocated while `f` ran: `(result, total bytes, largest single
    /// allocation)`.
    pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
        TOTAL.set(0);
        LARGEST.set(0);
        ON.set(true);
        let out = f();
        ON.set(false);
        (out, TOTAL.get(), LARGEST.get())
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// A source that hands out `data` in reads of the sizes in `cuts` (cycled), sometimes
/// failing with a timeout in between, then reports the end of the stream.
fn source(
    data: Vec<u8>,
    cuts: Vec<usize>,
    stalls: bool,
) -> impl FnMut(&mut [u8]) -> ipcx::Result<usize> {
    let mut pos = 0;
    let mut i = 0;
    move |buf: &mut [u8]| {
        i += 1;
        if stalls && i % 3 == 0 {
            return Err(ipcx::Error::new("read", ErrorKind::TimedOut));
        }
        let want = cuts[i % cuts.len()].max(1);
        let n = want.min(buf.len()).min(data.len() - pos);
        buf[..n].copy_from_slice(&data[pos..pos + n]);
        pos += n;
        Ok(n)
    }
}

fn encode(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&encode_header(m.len()).unwrap());
        out.extend_from_slice(m);
    }
    out
}

/// Messages from empty to larger than the direct-read threshold and the read-ahead.
fn messages() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let small = prop::collection::vec(any::<u8>(), 0..64);
    let large = (0usize..100_000).prop_map(|n| (0..n).map(|i| (i % 251) as u8).collect());
    prop::collection::vec(prop_oneof![4 => small, 1 => large], 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn frames_round_trip_over_any_split(
        msgs in messages(),
        cuts in prop::collection::vec(1usize..70_000, 1..8),
        stalls in any::<bool>(),
    ) {
        let stream = encode(&msgs);
        let mut read = source(stream, cuts, stalls);
        let mut d = Decoder::new(100_000);
        for (i, want) in msgs.iter().enumerate() {
            let n = loop {
                // A fresh buffer each call: nothing may depend on its identity.
                let mut out = vec![0u8; 100_000];
                match d.read_message(&mut out, &mut read) {
                    Ok(n) => {
                        prop_assert_eq!(&out[..n], &want[..], "message {}", i);
                        break n;
                    }
                    Err(e) => prop_assert_eq!(e.kind(), ErrorKind::TimedOut, "{}", e),
                }
            };
            prop_assert_eq!(n, want.len());
        }
        // Then the clean end of the stream.
        let end = loop {
            match d.read_message(&mut [0u8; 16], &mut read) {
                Err(e) if e.kind() == ErrorKind::TimedOut => continue,
                other => break other,
            }
        };
        prop_assert_eq!(end.unwrap_err().kind(), ErrorKind::PeerGone);
        prop_assert!(d.at_boundary());
    }

    #[test]
    fn garbage_never_panics_or_over_allocates(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        framed_prefix in any::<bool>(),
        cuts in prop::collection::vec(1usize..600, 1..5),
        max in 0usize..2048,
    ) {
        // Half the cases start with a valid header, so the payload path sees garbage too.
        let mut data = Vec::new();
        if framed_prefix {
            data.extend_from_slice(&encode_header(bytes.len() / 2).unwrap());
        }
        data.extend_from_slice(&bytes);
        let mut read = source(data, cuts, false);
        let mut d = Decoder::new(max);
        let bound = max + HEADER_LEN + 64 * 1024;
        for _ in 0..64 {
            let mut out = vec![0u8; 1024];
            match d.read_message(&mut out, &mut read) {
                Ok(n) => prop_assert!(n <= max && n <= out.len()),
                Err(e) => {
                    prop_assert!(
                        matches!(
                            e.kind(),
                            ErrorKind::Corrupt | ErrorKind::PeerGone | ErrorKind::MessageTooLarge
                        ),
                        "{}", e
                    );
                    if e.kind() == ErrorKind::PeerGone {
                        break;
                    }
                }
            }
            prop_assert!(d.allocated() <= bound, "{} > {}", d.allocated(), bound);
        }
    }

    #[test]
    fn lengths_above_the_cap_are_refused_from_the_header(len in 1usize..=u32::MAX as usize, max in 0usize..1_000_000) {
        prop_assume!(len > max);
        let mut read = source(encode_header(len).unwrap().to_vec(), vec![HEADER_LEN], false);
        let mut d = Decoder::new(max);
        let before = d.allocated();
        let (err, _, largest) =
            counting::measure(|| d.read_message(&mut [0u8; 8], &mut read).unwrap_err());
        // Nothing the size of the declared length (error text aside), by the allocator.
        prop_assert!(largest < 4096, "one allocation of {} bytes", largest);
        prop_assert_eq!(err.kind(), ErrorKind::Corrupt);
        let expected = format!("{len}-byte message, above this channel's cap of {max} bytes");
        prop_assert!(err.to_string().contains(&expected), "{}", err);
        prop_assert_eq!(d.allocated(), before);
    }
}

#[test]
fn headers_above_the_frame_limit_cannot_be_encoded() {
    let err = encode_header(u32::MAX as usize + 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge);
    assert!(encode_header(u32::MAX as usize).is_ok());
}

/// Reliability 7: a header that declares 4 GiB − 1 bytes makes the decoder allocate
/// nothing of that size, whether the length is above its cap (refused as Corrupt) or
/// within it but above the caller's buffer (MessageTooLarge, the message left pending).
/// Measured by the allocator itself, not by the decoder's own account.
#[test]
fn a_four_gib_length_allocates_nothing_near_that_size() {
    let len = u32::MAX as usize;
    let header = encode_header(len).unwrap();
    // Little next to the declared length: error messages and the like.
    let small = 64 << 10;

    // Above the cap.
    let mut d = Decoder::new(1 << 20);
    let mut read = source(header.to_vec(), vec![HEADER_LEN], false);
    let mut out = [0u8; 64];
    let (result, total, largest) =
        counting::measure(|| d.read_message(&mut out, &mut read).map_err(|e| e.kind()));
    assert_eq!(result, Err(ErrorKind::Corrupt));
    assert!(total < small, "{total} bytes allocated in all");
    assert!(largest < small, "one allocation of {largest} bytes");

    // Within a cap of 4 GiB − 1, which the decoder itself does not allocate up front.
    let (mut d, total, largest) = counting::measure(|| Decoder::new(len));
    assert!(
        total <= small + HEADER_LEN,
        "Decoder::new allocated {total} bytes"
    );
    assert!(largest <= small + HEADER_LEN, "{largest}");
    let mut read = source(header.to_vec(), vec![HEADER_LEN], false);
    for _ in 0..2 {
        let (result, total, largest) =
            counting::measure(|| d.read_message(&mut out, &mut read).map_err(|e| e.kind()));
        assert_eq!(result, Err(ErrorKind::MessageTooLarge));
        assert!(total < small, "{total} bytes allocated in all");
        assert!(largest < small, "one allocation of {largest} bytes");
    }
}

/// Found by the `frame` fuzz target: a large message that arrives in many pieces with an
/// interruption between each (a receiver polling with `try_recv`, or a timeout loop)
/// used to be moved out of the decoder into the caller's buffer and back on every call,
/// which costs time quadratic in the message's size. Now the bytes kept between calls
/// stay where they are, so what the decoder allocates (and copies) while receiving is a
/// small multiple of the message, measured by the allocator. Before the fix this was
/// about 128 MiB for the 1 MiB message below.
#[test]
fn an_interrupted_large_message_costs_linear_work() {
    let len = 1 << 20;
    let msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut stream = encode_header(len).unwrap().to_vec();
    stream.extend_from_slice(&msg);
    let mut pos = 0;
    let mut calls = 0u32;
    let mut read = |buf: &mut [u8]| {
        calls += 1;
        if calls.is_multiple_of(2) {
            return Err(ipcx::Error::new("read", ErrorKind::WouldBlock));
        }
        let n = 4096.min(buf.len()).min(stream.len() - pos);
        buf[..n].copy_from_slice(&stream[pos..pos + n]);
        pos += n;
        Ok(n)
    };
    let mut d = Decoder::new(len);
    let mut out = vec![0u8; len];
    let (n, total, largest) = counting::measure(|| {
        let mut interruptions = 0;
        loop {
            match d.read_message(&mut out, &mut read) {
                Ok(n) => break (n, interruptions),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
                    interruptions += 1;
                }
            }
        }
    });
    let (n, interruptions) = n;
    assert_eq!(n, len);
    assert!(out == msg, "the message changed on the way");
    assert!(interruptions > 200, "only {interruptions} interruptions");
    assert!(
        total < 4 * len,
        "{total} bytes allocated to receive a {len}-byte message"
    );
    assert!(largest <= len, "one allocation of {largest} bytes");
    assert!(d.allocated() <= (64 << 10) + len);
}
