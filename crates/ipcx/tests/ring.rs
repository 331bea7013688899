//! The shared-memory ring across real processes: order and integrity, backpressure,
//! peers killed mid-message or holding loans, hostile writers, and cleanup.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::fd::AsFd;
use std::process::{Child, Stdio};
use std::time::Duration;

use ipcx::ErrorKind;
use ipcx::addr::Address;
use ipcx::channel;
use ipcx::ring::{RingOptions, RingReceiver, RingSender, Wait};
use ipcx::shm::Region;
use ipcx::shm::posix::{Shm, ShmOptions};

use common::{arg, child, finish, read_line, role, say, unique_name};

/// The layout's offsets, as the module documents them: what a hostile writer pokes.
const MAGIC: usize = 0;
const VERSION: usize = 4;
const DATA_OFFSET_FIELD: usize = 8;
const FLAGS: usize = 12;
const CAPACITY: usize = 16;
const RECEIVER_STATE: usize = 28;
const SENDER_WAIT: usize = 32;
const RECEIVER_WAIT: usize = 36;
/// The receiver's sleeper: its futex word, then its "sleeping" flag.
const RX_SEQ: usize = 256;
const RX_SLEEPING: usize = 260;
const HEAD: usize = 128;
const DATA: usize = 512;

/// Unlinks a POSIX shm name when dropped, so a failing test still leaves nothing behind.
struct UnlinkOnDrop(String);

impl Drop for UnlinkOnDrop {
    fn drop(&mut self) {
        let _ = Shm::unlink(&self.0);
    }
}

/// Kills and reaps a child if the test fails before it does.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads the child's stdout until it reports `want` (with [`say`]); fails if it never
/// does.
fn wait_for_line(child: &mut Child, want: &str) {
    let want = format!("@@{want}");
    let mut empty = 0;
    loop {
        let line = read_line(child);
        if line == want {
            return;
        }
        empty = if line.is_empty() { empty + 1 } else { 0 };
        assert!(empty < 100, "the child ended without reporting {want:?}");
    }
}

/// A deterministic pseudo-random number for message `seq` (splitmix64).
fn mix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Message `seq` of a stream for a ring whose largest message is `max`: every size from
/// 0 to `max` occurs (0 and `max` often), and the bytes depend on `seq` and position,
/// so a torn, reordered or repeated message cannot pass [`check`].
fn message(seq: u64, max: usize) -> Vec<u8> {
    let r = mix(seq);
    let len = match r % 8 {
        0 => 0,
        1 => max,
        2 => (r >> 8) as usize % 16,
        _ => (r >> 8) as usize % (max + 1),
    };
    (0..len)
        .map(|i| (mix(seq ^ ((i as u64) << 32)) & 0xff) as u8)
        .collect()
}

fn check(seq: u64, max: usize, got: &[u8]) {
    let want = message(seq, max);
    assert_eq!(got.len(), want.len(), "message {seq}: wrong length");
    assert!(got == want.as_slice(), "message {seq}: wrong bytes");
}

fn all_waits() -> [Wait; 3] {
    [Wait::Busy, Wait::Adaptive, Wait::Blocking]
}

// ---------------------------------------------------------------------------------------
// sizes, backpressure, timeouts (in one process: both ends have their own descriptions)

#[test]
fn sizes_zero_and_exactly_the_maximum_pass_and_one_more_is_too_large() {
    // Reliability 13.
    let (mut tx, mut rx) = RingOptions::new().capacity(4096).pair().unwrap();
    assert_eq!(tx.capacity(), 4096);
    let max = tx.max_message();
    assert_eq!(max, 4096 - 16);
    assert_eq!(rx.max_message(), max);
    let big = vec![7u8; max];
    let mut buf = vec![0u8; max];
    tx.send(&big).unwrap();
    // The ring holds the full one: no room for even an empty one until it is taken.
    assert_eq!(tx.try_send(b"").unwrap_err().kind(), ErrorKind::WouldBlock);
    assert_eq!(rx.recv(&mut buf).unwrap(), max);
    assert_eq!(buf, big);
    tx.send(b"").unwrap();
    assert_eq!(rx.recv(&mut buf).unwrap(), 0);
    tx.send(b"12345678").unwrap();
    assert_eq!(rx.recv(&mut buf).unwrap(), 8);
    // A full-size message now needs a pad to the end of the data area, which the
    // receiver skips while the sender waits for the room behind it.
    let tx = std::thread::scope(|s| {
        let big = &big;
        let sending = s.spawn(move || {
            tx.send(big).unwrap();
            tx
        });
        buf.fill(0);
        assert_eq!(rx.recv(&mut buf).unwrap(), max);
        assert_eq!(&buf, big);
        sending.join().unwrap()
    });
    let mut tx = tx;

    let err = tx.send(&vec![0u8; max + 1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge);
    let text = err.to_string();
    assert!(
        text.contains("send") && text.contains(&max.to_string()),
        "{text}"
    );
    let err = tx.loan(max + 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge);

    // A buffer too small: MessageTooLarge naming both sizes; the message stays pending.
    tx.send(b"hello").unwrap();
    let err = rx.recv(&mut [0u8; 3]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge);
    assert!(err.to_string().contains("5 bytes"), "{err}");
    assert_eq!(rx.recv(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
}

#[test]
fn full_ring_is_backpressure_and_empty_ring_would_block_in_every_wait_mode() {
    // Reliability 20 (bounded memory) and 17 (typed EAGAIN / timeouts).
    for wait in all_waits() {
        let (mut tx, mut rx) = RingOptions::new().capacity(256).wait(wait).pair().unwrap();
        let mut buf = [0u8; 256];
        let err = rx.try_recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock, "{wait}");
        assert!(err.to_string().contains("recv"), "{err}");
        let err = rx
            .recv_timeout(&mut buf, Duration::from_millis(20))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{wait}");
        assert_eq!(rx.try_recv_ref().unwrap_err().kind(), ErrorKind::WouldBlock);

        let mut sent = 0u64;
        loop {
            match tx.try_send(&sent.to_le_bytes()) {
                Ok(()) => sent += 1,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{wait}: {e}");
                    assert!(e.to_string().contains("full"), "{e}");
                    break;
                }
            }
        }
        // 16-byte records, and the word after the last kept free: 15 fit in 256 bytes.
        assert_eq!(sent, 15, "{wait}");
        let err = tx
            .send_timeout(b"x", Duration::from_millis(20))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{wait}");
        assert_eq!(tx.try_loan(1).unwrap_err().kind(), ErrorKind::WouldBlock);
        for i in 0..sent {
            let n = rx.try_recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &i.to_le_bytes());
        }
        assert_eq!(
            rx.try_recv(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
    }
}

#[test]
fn loans_and_views_move_messages_without_copies_and_uncommitted_loans_publish_nothing() {
    let (mut tx, mut rx) = RingOptions::new().capacity(1024).pair().unwrap();
    {
        let mut loan = tx.loan(300).unwrap();
        loan.fill(0xab);
    } // dropped, not committed
    assert_eq!(rx.try_recv_ref().unwrap_err().kind(), ErrorKind::WouldBlock);
    for round in 0..50u8 {
        let len = 100 + round as usize * 7;
        let mut loan = tx.loan(len).unwrap();
        loan.fill(round);
        loan.commit();
        let view = rx.recv_ref().unwrap();
        assert_eq!(view.len(), len);
        assert!(view.iter().all(|&b| b == round));
    }
}

#[test]
fn a_thread_blocked_on_an_empty_or_full_ring_is_woken_in_every_wait_mode() {
    for wait in all_waits() {
        let (mut tx, mut rx) = RingOptions::new().capacity(128).wait(wait).pair().unwrap();
        let n = 20_000u64;
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 112];
            for seq in 0..n {
                let got = rx.recv(&mut buf).unwrap();
                check(seq, 112, &buf[..got]);
            }
            rx
        });
        for seq in 0..n {
            tx.send(&message(seq, 112)).unwrap();
        }
        let mut rx = reader.join().unwrap();
        drop(tx);
        assert_eq!(
            rx.recv(&mut [0u8; 8]).unwrap_err().kind(),
            ErrorKind::PeerGone
        );
    }
}

/// Each side says in the header how it waits. A sender skips the wake-up (and the fence
/// before it) only for a receiver that said it spins: a receiver asleep on its futex is
/// woken (its futex word is bumped), and one that lies about it (a hostile write of
/// "busy") still gets every message, at the end of its sleep slice.
#[test]
fn each_side_says_how_it_waits_and_only_a_spinning_receiver_goes_unwoken() {
    let name = unique_name("shm");
    let ring = RingOptions::new()
        .capacity(4096)
        .wait(Wait::Blocking)
        .create_named(&name)
        .unwrap();
    let mut tx = RingOptions::new()
        .wait(Wait::Busy)
        .open_named(&name)
        .unwrap()
        .sender()
        .unwrap();
    let (_shm, region) = hostile(&name);
    assert_eq!(region.load::<u32>(SENDER_WAIT).unwrap(), 1, "busy");
    assert_eq!(
        region.load::<u32>(RECEIVER_WAIT).unwrap(),
        0,
        "not taken yet"
    );
    let rx = ring.receiver().unwrap();
    assert_eq!(region.load::<u32>(RECEIVER_WAIT).unwrap(), 3, "blocking");

    // A receiving thread that blocks until the main thread has seen it asleep and sent.
    let receive_one = |mut rx: RingReceiver| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            let n = rx.recv(&mut buf).unwrap();
            (rx, buf[..n].to_vec())
        })
    };
    // Bounded only so that a receiver that never announces fails the test instead of
    // hanging it; not a limit on how fast anything must be.
    let wait_until_asleep = || {
        let started = std::time::Instant::now();
        while region.load::<u32>(RX_SLEEPING).unwrap() != 1 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the blocked receiver never announced its sleep"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    };

    // A receiver that sleeps in 50 ms slices is awake for a few microseconds between
    // two; a send that lands there finds it awake and rightly does not wake it. Three
    // rounds make that chance negligible; a sender that never wakes fails all three.
    let mut rx = rx;
    let mut woken = 0;
    for _ in 0..3 {
        let reader = receive_one(rx);
        wait_until_asleep();
        let seq = region.load::<u32>(RX_SEQ).unwrap();
        tx.send(b"woken").unwrap();
        let got;
        (rx, got) = reader.join().unwrap();
        assert_eq!(got, b"woken");
        woken += usize::from(region.load::<u32>(RX_SEQ).unwrap() != seq);
    }
    assert!(
        woken > 0,
        "the sender never bumped the sleeping receiver's futex word"
    );

    // The receiver's word now says it spins, but it sleeps: nothing wakes it, and it
    // finds the message when its sleep slice ends.
    region.store(RECEIVER_WAIT, &1u32).unwrap();
    let reader = receive_one(rx);
    wait_until_asleep();
    let seq = region.load::<u32>(RX_SEQ).unwrap();
    tx.send(b"sleepy").unwrap();
    let (_rx, got) = reader.join().unwrap();
    assert_eq!(got, b"sleepy");
    assert_eq!(
        region.load::<u32>(RX_SEQ).unwrap(),
        seq,
        "no wake-up for a receiver that says it spins"
    );
}

// ---------------------------------------------------------------------------------------
// across processes

#[test]
fn random_sizes_arrive_whole_and_in_order_across_processes_in_every_wait_mode() {
    const TEST: &str = "random_sizes_arrive_whole_and_in_order_across_processes_in_every_wait_mode";
    if role().as_deref() == Some("sender") {
        let wait: Wait = arg("WAIT").parse().unwrap();
        let mut tx = RingOptions::new()
            .wait(wait)
            .open_named(&arg("NAME"))
            .unwrap()
            .sender()
            .unwrap();
        let max = tx.max_message();
        let count: u64 = arg("COUNT").parse().unwrap();
        for seq in 0..count {
            let msg = message(seq, max);
            if seq % 3 == 0 {
                let mut loan = tx.loan(msg.len()).unwrap();
                loan.copy_from_slice(&msg);
                loan.commit();
            } else {
                tx.send(&msg).unwrap();
            }
        }
        say("done");
        return;
    }
    for wait in all_waits() {
        let name = unique_name("shm");
        let mut rx = RingOptions::new()
            .capacity(4096)
            .wait(wait)
            .create_named(&name)
            .unwrap()
            .receiver()
            .unwrap();
        let count = 3000u64;
        let mut cmd = child(
            TEST,
            "sender",
            &[
                ("NAME", &name),
                ("WAIT", &wait.to_string()),
                ("COUNT", &count.to_string()),
            ],
        );
        let proc = cmd.spawn().unwrap();
        let max = rx.max_message();
        let mut buf = vec![0u8; max];
        for seq in 0..count {
            if seq % 2 == 0 {
                let n = rx.recv(&mut buf).unwrap();
                check(seq, max, &buf[..n]);
            } else {
                let view = rx.recv_ref().unwrap();
                check(seq, max, &view);
            }
        }
        let out = finish(proc);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = rx.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PeerGone, "{wait}: {err}");
        assert!(err.to_string().contains("closed"), "{err}");
    }
}

#[test]
fn an_anonymous_ring_is_inherited_by_a_child() {
    if role().as_deref() == Some("child") {
        let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
        let mut rx = RingOptions::new().from_fd(fd).unwrap().receiver().unwrap();
        let mut buf = vec![0u8; rx.max_message()];
        let mut total = 0;
        loop {
            match rx.recv(&mut buf) {
                Ok(n) => total += n,
                Err(e) if e.kind() == ErrorKind::PeerGone => break,
                Err(e) => panic!("{e}"),
            }
        }
        say(format!("received {total} bytes"));
        return;
    }
    let ring = RingOptions::new().capacity(64 << 10).anonymous().unwrap();
    let mut cmd = child("an_anonymous_ring_is_inherited_by_a_child", "child", &[]);
    cmd.stdin(Stdio::from(ring.as_fd().try_clone_to_owned().unwrap()));
    let proc = cmd.spawn().unwrap();
    let mut tx = ring.sender().unwrap();
    for _ in 0..100 {
        tx.send(&[1u8; 10_000]).unwrap();
    }
    drop(tx);
    let out = finish(proc);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(common::reports(&out), "received 1000000 bytes");
}

#[test]
fn sender_killed_at_random_points_leaves_only_whole_messages_then_peer_gone() {
    // Reliability 1: SIGKILL between reserving and publishing, at random instants.
    const TEST: &str = "sender_killed_at_random_points_leaves_only_whole_messages_then_peer_gone";
    if role().as_deref() == Some("sender") {
        let mut tx = RingOptions::new()
            .open_named(&arg("NAME"))
            .unwrap()
            .sender()
            .unwrap();
        let max = tx.max_message();
        say("sending");
        for seq in 0.. {
            let msg = message(seq, max);
            if seq % 2 == 0 {
                tx.send(&msg).unwrap();
            } else {
                // Write the loan byte by byte, so a kill lands mid-message often.
                let mut loan = tx.loan(msg.len()).unwrap();
                for (d, s) in loan.iter_mut().zip(&msg) {
                    *d = *s;
                }
                loan.commit();
            }
        }
        unreachable!();
    }
    let mut seed = mix(std::process::id() as u64);
    for round in 0..12 {
        let name = unique_name("shm");
        let wait = all_waits()[round % 3];
        let mut rx = RingOptions::new()
            .capacity(8192)
            .wait(wait)
            .create_named(&name)
            .unwrap()
            .receiver()
            .unwrap();
        let mut proc = child(TEST, "sender", &[("NAME", &name)]).spawn().unwrap();
        wait_for_line(&mut proc, "sending");
        // Kill it at a random instant while this thread keeps receiving.
        seed = mix(seed);
        let delay = Duration::from_micros(seed % 20_000);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = proc.kill();
            let _ = proc.wait();
        });
        let max = rx.max_message();
        let mut buf = vec![0u8; max];
        let mut seq = 0;
        loop {
            match rx.recv(&mut buf) {
                Ok(n) => {
                    check(seq, max, &buf[..n]);
                    seq += 1;
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::PeerGone, "{wait}: {e}");
                    assert!(e.to_string().contains("died"), "{e}");
                    break;
                }
            }
        }
        killer.join().unwrap();
    }
}

#[test]
fn a_half_written_loan_of_a_killed_sender_is_never_delivered() {
    // Reliability 1, deterministically: killed while holding an uncommitted loan.
    const TEST: &str = "a_half_written_loan_of_a_killed_sender_is_never_delivered";
    if role().as_deref() == Some("sender") {
        let mut tx = RingOptions::new()
            .open_named(&arg("NAME"))
            .unwrap()
            .sender()
            .unwrap();
        tx.send(b"whole").unwrap();
        let mut loan = tx.loan(1000).unwrap();
        loan[..500].fill(b'h');
        say("loaned");
        std::thread::sleep(Duration::from_secs(60));
        unreachable!();
    }
    let name = unique_name("shm");
    let mut rx = RingOptions::new()
        .capacity(4096)
        .wait(Wait::Blocking)
        .create_named(&name)
        .unwrap()
        .receiver()
        .unwrap();
    let mut proc = KillOnDrop(Some(
        child(TEST, "sender", &[("NAME", &name)]).spawn().unwrap(),
    ));
    wait_for_line(proc.0.as_mut().unwrap(), "loaned");
    proc.kill();
    let mut buf = [0u8; 4096];
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"whole");
    let err = rx.recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
    // And it stays gone.
    assert_eq!(
        rx.try_recv(&mut buf).unwrap_err().kind(),
        ErrorKind::PeerGone
    );
}

#[test]
fn receiver_killed_holding_a_view_makes_the_blocked_sender_see_peer_gone() {
    // Reliability 2: the reader dies holding loaned (viewed) messages.
    const TEST: &str = "receiver_killed_holding_a_view_makes_the_blocked_sender_see_peer_gone";
    if role().as_deref() == Some("receiver") {
        let mut rx = RingOptions::new()
            .open_named(&arg("NAME"))
            .unwrap()
            .receiver()
            .unwrap();
        let view = rx.recv_ref().unwrap();
        say(format!("holding {}", view.len()));
        std::thread::sleep(Duration::from_secs(60));
        unreachable!();
    }
    for wait in all_waits() {
        let name = unique_name("shm");
        let mut tx = RingOptions::new()
            .capacity(1024)
            .wait(wait)
            .create_named(&name)
            .unwrap()
            .sender()
            .unwrap();
        let mut proc = KillOnDrop(Some(
            child(TEST, "receiver", &[("NAME", &name)]).spawn().unwrap(),
        ));
        tx.send(&[5u8; 100]).unwrap();
        wait_for_line(proc.0.as_mut().unwrap(), "holding 100");
        while tx.try_send(&[6u8; 100]).is_ok() {}
        proc.kill();
        let err = tx.send(&[7u8; 100]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PeerGone, "{wait}: {err}");
        assert!(err.to_string().contains("died"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------
// hostile writers (reliability 8, 9, 10)

/// A second, independent mapping of a named ring's object: what a hostile peer writes.
fn hostile(name: &str) -> (Shm, Region) {
    let shm = ShmOptions::new().open(name).unwrap();
    let region = shm.map().unwrap();
    (shm, region)
}

#[test]
fn a_corrupted_header_field_is_refused_at_open_as_corrupt() {
    let name = unique_name("shm");
    let ring = RingOptions::new()
        .capacity(4096)
        .create_named(&name)
        .unwrap();
    let (_shm, region) = hostile(&name);
    let cases: [(usize, u64, usize, &str); 7] = [
        (MAGIC, 0x1234_5678, 4, "magic"),
        (VERSION, 99, 4, "version 99"),
        (DATA_OFFSET_FIELD, 64, 4, "offset 64"),
        (FLAGS, 2, 4, "flags 0x2"), // 1 is a multi-producer ring, refused by name
        (CAPACITY, 3000, 8, "3000 bytes"),
        (CAPACITY, 1 << 40, 8, "fits"),
        (CAPACITY, 8, 8, "8 bytes"),
    ];
    for (offset, value, size, expect) in cases {
        let mut saved = [0u8; 8];
        region.read(offset, &mut saved[..size]).unwrap();
        region.write(offset, &value.to_le_bytes()[..size]).unwrap();
        let err = RingOptions::new().open_named(&name).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{expect}: {err}");
        let text = err.to_string();
        assert!(text.contains("open ring") && text.contains(&name), "{text}");
        assert!(text.contains(expect), "{expect}: {text}");
        region.write(offset, &saved[..size]).unwrap();
    }
    // Restored: it opens again.
    RingOptions::new().open_named(&name).unwrap();
    drop(ring);
}

#[test]
fn other_shared_memory_and_uninitialised_objects_are_not_taken_for_rings() {
    // Reliability 3 and 8: garbage is Corrupt; a creator that never finished is a
    // clear "not initialised" error after the open wait.
    let name = unique_name("shm");
    let shm = ShmOptions::new().size(8192).create(&name).unwrap();
    let err = RingOptions::new()
        .open_wait(Duration::from_millis(50))
        .open_named(&name)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("not initialised"), "{err}");
    shm.map().unwrap().write(0, b"not a ring").unwrap();
    let err = RingOptions::new().open_named(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("magic"), "{err}");
    drop(shm);

    let small = unique_name("shm");
    let _shm = ShmOptions::new().size(100).create(&small).unwrap();
    let err = RingOptions::new().open_named(&small).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("too small"), "{err}");
}

#[test]
fn a_corrupted_record_header_is_corrupt_for_the_receiver_never_a_bad_read() {
    let name = unique_name("shm");
    let mut rx = RingOptions::new()
        .capacity(4096)
        .create_named(&name)
        .unwrap()
        .receiver()
        .unwrap();
    let (_shm, region) = hostile(&name);
    let mut buf = vec![0u8; 4096];
    let record = |tag: &[u8; 4], len: u32| {
        let mut w = [0u8; 8];
        w[..4].copy_from_slice(&len.to_le_bytes());
        w[4..].copy_from_slice(tag);
        w
    };
    let headers: [[u8; 8]; 6] = [
        record(b"rMSG", 5000),     // past the end of the data area
        record(b"rMSG", 4096 - 8), // leaves no word for the next header
        record(b"rMSG", u32::MAX), // a length that overflows when rounded
        record(b"junk", 0),        // neither message nor pad
        record(b"rPAD", 0),        // a pad that does not reach the end
        record(b"rPAD", 4096 - 8), // a pad at offset 0, which would loop
    ];
    for header in headers {
        region.write(DATA, &header).unwrap();
        for attempt in [rx.try_recv(&mut buf), rx.recv(&mut buf)] {
            let err = attempt.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{header:?}: {err}");
            let text = err.to_string();
            assert!(text.contains(&name) && text.contains("offset 0"), "{text}");
        }
        assert_eq!(rx.try_recv_ref().unwrap_err().kind(), ErrorKind::Corrupt);
    }
    // Put right, the ring works again: a valid header is a message like any other.
    region.write(DATA + 8, b"hi").unwrap();
    region.write(DATA, &record(b"rMSG", 2)).unwrap();
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"hi");
}

#[test]
fn a_corrupted_head_or_state_word_is_corrupt_for_the_sender() {
    let name = unique_name("shm");
    let ring = RingOptions::new()
        .capacity(256)
        .create_named(&name)
        .unwrap();
    let (_shm, region) = hostile(&name);
    let mut rx = RingOptions::new()
        .open_named(&name)
        .unwrap()
        .receiver()
        .unwrap();
    let mut tx = ring.sender().unwrap();
    while tx.try_send(&[1u8; 8]).is_ok() {}
    // The head jumps past the tail.
    region.store(HEAD, &1024u64).unwrap();
    let err = tx.try_send(&[1u8; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("released"), "{err}");
    // Not a multiple of 8.
    region.store(HEAD, &4u64).unwrap();
    assert_eq!(
        tx.try_send(&[1u8; 8]).unwrap_err().kind(),
        ErrorKind::Corrupt
    );
    region.store(HEAD, &0u64).unwrap();
    // A nonsense state word: the peer check says Corrupt, never hangs or trusts it.
    region.store(RECEIVER_STATE, &7u32).unwrap();
    let err = tx
        .send_timeout(&[1u8; 8], Duration::from_millis(200))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("state word"), "{err}");
    region.store(RECEIVER_STATE, &1u32).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(rx.recv(&mut buf).unwrap(), 8);
}

/// Reliability 10: a peer that rewrites payload bytes while they are received. The
/// receiver takes the length from the header word it read once, and copies the bytes
/// out before anything looks at them: every receive returns exactly the published
/// length, whatever the scribbler does to the bytes around it, and the scribbler must
/// really have raced some receives (some copies hold its bytes) for the run to count.
/// The bytes themselves may be a mix of the sender's and the scribbler's, as the docs
/// say.
#[test]
fn a_payload_rewritten_while_it_is_received_keeps_its_published_length() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let name = unique_name("shm");
    let ring = RingOptions::new()
        .capacity(4096)
        .create_named(&name)
        .unwrap();
    let mut tx = RingOptions::new()
        .open_named(&name)
        .unwrap()
        .sender()
        .unwrap();
    let mut rx = ring.receiver().unwrap();
    let (_shm, region) = hostile(&name);
    let stop = Arc::new(AtomicBool::new(false));
    let scribbler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let junk = [0x5au8; 64];
            let mut at = 0usize;
            let mut writes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Payload bytes only: the records are 64 bytes (a header word and 56
                // bytes), so every word but the first of each 64 may be hit.
                let offset = DATA + (at % 64) * 64 + 8 + (at % 7) * 8;
                region.write(offset, &junk[..8]).unwrap();
                at = at.wrapping_add(1);
                writes += 1;
            }
            writes
        })
    };
    let mut buf = [0u8; 128];
    let mut mixed = 0;
    // At least 20,000 receives, and on until the scribbler has raced one: it runs on
    // another thread, which a machine busy with other tests may not schedule for a
    // while. The bound in time only ends a run that never races; it is not a limit on
    // how fast anything must be.
    let started = std::time::Instant::now();
    let mut received = 0u64;
    while received < 20_000 || (mixed == 0 && started.elapsed() < Duration::from_secs(60)) {
        received += 1;
        if received.is_multiple_of(10_000) {
            std::thread::yield_now();
        }
        let len = 56;
        tx.send(&[0xa5u8; 56]).unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(n, len, "the length is the published one");
        let got = &buf[..n];
        assert!(got.iter().all(|&b| b == 0xa5 || b == 0x5a), "{got:?}");
        mixed += usize::from(got.contains(&0x5a));
    }
    stop.store(true, Ordering::Relaxed);
    let writes = scribbler.join().unwrap();
    eprintln!("{mixed} of {received} copies held scribbled bytes; {writes} scribbles");
    assert!(
        mixed > 0,
        "the scribbler never raced a receive ({writes} scribbles)"
    );
}

// ---------------------------------------------------------------------------------------
// ownership and the channel layer

#[test]
fn a_named_ring_is_unlinked_by_its_creator_only_and_carries_one_sender() {
    let name = unique_name("shm");
    let path = std::path::Path::new("/dev/shm").join(name.trim_start_matches('/'));
    let _guard = UnlinkOnDrop(name.clone());
    let rx = RingOptions::new()
        .create_named(&name)
        .unwrap()
        .receiver()
        .unwrap();
    assert_eq!(common::mode_of(&path) & 0o777, 0o600);
    let err = RingOptions::new().create_named(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    let tx = RingOptions::new()
        .open_named(&name)
        .unwrap()
        .sender()
        .unwrap();
    let err = RingOptions::new()
        .open_named(&name)
        .unwrap()
        .sender()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("one sender"), "{err}");
    let err = RingOptions::new()
        .open_named(&name)
        .unwrap()
        .receiver()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    drop(tx);
    assert!(path.exists(), "an opener never removes the object");
    drop(rx);
    assert!(!path.exists(), "the creator removes it");
    let err = RingOptions::new().open_named(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = RingOptions::new().create_named("a/b").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidName, "{err}");
}

#[test]
fn ring_addresses_work_through_the_channel_layer_with_their_options() {
    if role().as_deref() == Some("sender") {
        let addr: Address = arg("ADDR").parse().unwrap();
        let mut tx = channel::sender_timeout(&addr, Duration::from_secs(10)).unwrap();
        for i in 0..1000u32 {
            tx.send(&i.to_le_bytes().repeat(i as usize % 50)).unwrap();
        }
        tx.send(b"").unwrap();
        return;
    }
    let name = unique_name("shm");
    let addr: Address = format!("ring:{name}?capacity=4K&wait=blocking&mode=0600")
        .parse()
        .unwrap();
    assert_eq!(addr.options().capacity, Some(4096));
    assert_eq!(addr.options().wait, Some(Wait::Blocking));
    let err = format!("ring:{name}?wait=sometimes")
        .parse::<Address>()
        .unwrap_err();
    assert!(
        err.to_string().contains("busy, adaptive or blocking"),
        "{err}"
    );
    let mut rx = channel::receiver(&addr).unwrap();
    assert_eq!(rx.max_message(), 4096 - 16);
    assert_eq!(rx.address().unwrap().name().unwrap().as_str(), name);
    let mut cmd = child(
        "ring_addresses_work_through_the_channel_layer_with_their_options",
        "sender",
        &[("ADDR", &addr.to_string())],
    );
    let proc = cmd.spawn().unwrap();
    let mut buf = vec![0u8; rx.max_message()];
    for i in 0..1000u32 {
        let n = rx.recv_timeout(&mut buf, Duration::from_secs(20)).unwrap();
        assert_eq!(
            &buf[..n],
            i.to_le_bytes().repeat(i as usize % 50).as_slice()
        );
    }
    assert_eq!(rx.recv(&mut buf).unwrap(), 0);
    let out = finish(proc);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rx.recv(&mut buf).unwrap_err().kind(), ErrorKind::PeerGone);
}

#[test]
fn senders_and_receivers_are_send_and_work_as_trait_objects() {
    fn is_send<T: Send>() {}
    is_send::<RingSender>();
    is_send::<RingReceiver>();
    let (tx, rx) = RingOptions::new().capacity(1024).pair().unwrap();
    let mut tx: Box<dyn channel::Sender + Send> = Box::new(tx);
    let mut rx: Box<dyn channel::Receiver + Send> = Box::new(rx);
    tx.send(b"boxed").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(rx.recv(&mut buf).unwrap(), 5);
}

// ---------------------------------------------------------------------------------------
// multi-producer rings

/// The multi-producer layout's offsets (module docs of `ring::mpsc`), for two slots.
const PRODUCERS: usize = 128;
const SLOTS: usize = 384;
const LANES_OF_TWO: usize = 512;
const DATA_OF_TWO: usize = 512 + 2 * 384;

/// Message `seq` of producer `id`: its id and sequence number, then the bytes of
/// [`message`] for a stream of its own, so a torn, reordered, repeated or misattributed
/// message cannot pass [`check_from`].
fn message_from(id: u64, seq: u64, max: usize) -> Vec<u8> {
    let mut msg = Vec::with_capacity(max);
    msg.extend_from_slice(&id.to_le_bytes());
    msg.extend_from_slice(&seq.to_le_bytes());
    msg.extend(message(seq ^ (id << 48), max - 16));
    msg
}

/// Checks a message against the next one expected from its producer (by the id it
/// carries) and counts it.
fn check_from(next: &mut std::collections::HashMap<u64, u64>, max: usize, got: &[u8]) -> u64 {
    assert!(
        got.len() >= 16,
        "a message of {} bytes has no id",
        got.len()
    );
    let id = u64::from_le_bytes(got[..8].try_into().unwrap());
    let seq = u64::from_le_bytes(got[8..16].try_into().unwrap());
    let want = next.entry(id).or_insert(0);
    assert_eq!(
        seq, *want,
        "producer {id}: message {seq} arrived instead of {want}"
    );
    let expect = message_from(id, seq, max);
    assert!(
        got == expect.as_slice(),
        "producer {id}: message {seq} damaged"
    );
    *want += 1;
    id
}

/// A producer process: opens the ring, sends `COUNT` messages (every other one through a
/// loan written byte by byte), or forever when `COUNT` is 0.
fn mpsc_producer() {
    let mut tx = RingOptions::new()
        .producers(1)
        .open_named(&arg("NAME"))
        .unwrap()
        .sender()
        .unwrap();
    let id: u64 = arg("ID").parse().unwrap();
    let count: u64 = arg("COUNT").parse().unwrap();
    let max = tx.max_message();
    say("sending");
    let mut seq = 0;
    while count == 0 || seq < count {
        let msg = message_from(id, seq, max);
        if seq % 2 == 0 {
            tx.send(&msg).unwrap();
        } else {
            let mut loan = tx.loan(msg.len()).unwrap();
            for (d, s) in loan.iter_mut().zip(&msg) {
                *d = *s;
            }
            loan.commit();
        }
        seq += 1;
    }
}

#[test]
fn mpsc_producer_processes_deliver_thousands_of_messages_each_in_order_in_every_wait_mode() {
    const TEST: &str =
        "mpsc_producer_processes_deliver_thousands_of_messages_each_in_order_in_every_wait_mode";
    if role().as_deref() == Some("producer") {
        return mpsc_producer();
    }
    const COUNT: u64 = 3000;
    for wait in all_waits() {
        let name = unique_name("shm");
        let ring = RingOptions::new()
            .capacity(4096)
            .wait(wait)
            .producers(3)
            .create_named(&name)
            .unwrap();
        let mut rx = ring.receiver().unwrap();
        let mut kids: Vec<KillOnDrop> = (0..3)
            .map(|id| {
                let id = id.to_string();
                let count = COUNT.to_string();
                let args = [("NAME", name.as_str()), ("ID", &id), ("COUNT", &count)];
                KillOnDrop(Some(child(TEST, "producer", &args).spawn().unwrap()))
            })
            .collect();
        // Every producer holds its slot before the first receive: PeerGone means "no
        // producer now", true for a moment if one finished before another started.
        for k in &mut kids {
            wait_for_line(k.0.as_mut().unwrap(), "sending");
        }
        let max = rx.max_message();
        let mut buf = vec![0u8; max];
        let mut next = std::collections::HashMap::new();
        loop {
            match rx.recv(&mut buf) {
                Ok(n) => {
                    check_from(&mut next, max, &buf[..n]);
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::PeerGone, "{wait}: {e}");
                    assert!(e.to_string().contains("every producer"), "{e}");
                    break;
                }
            }
        }
        assert_eq!(next.len(), 3, "{wait}: {next:?}");
        assert!(next.values().all(|&n| n == COUNT), "{wait}: {next:?}");
        for mut k in kids {
            let c = k.0.take().unwrap();
            let out = finish(c);
            assert!(out.status.success(), "{wait}: {out:?}");
        }
    }
}

#[test]
fn mpsc_producer_killed_at_random_points_leaves_whole_messages_and_the_others_go_on() {
    // Reliability 1 with several producers: one is SIGKILLed at random instants while
    // the other two send; the receiver sees a whole, in-order prefix of the victim's
    // messages, every message of the others, and PeerGone only after all are gone.
    const TEST: &str =
        "mpsc_producer_killed_at_random_points_leaves_whole_messages_and_the_others_go_on";
    if role().as_deref() == Some("producer") {
        return mpsc_producer();
    }
    const COUNT: u64 = 2000;
    let mut seed = mix(u64::from(std::process::id()));
    for round in 0..9 {
        let wait = all_waits()[round % 3];
        let name = unique_name("shm");
        let ring = RingOptions::new()
            .capacity(4096)
            .wait(wait)
            .producers(3)
            .create_named(&name)
            .unwrap();
        let mut rx = ring.receiver().unwrap();
        let spawn = |id: &str, count: &str| {
            let args = [("NAME", name.as_str()), ("ID", id), ("COUNT", count)];
            child(TEST, "producer", &args).spawn().unwrap()
        };
        let mut victim = spawn("0", "0");
        wait_for_line(&mut victim, "sending");
        let mut others = [spawn("1", "2000"), spawn("2", "2000")];
        for c in &mut others {
            wait_for_line(c, "sending");
        }
        seed = mix(seed);
        let delay = Duration::from_micros(seed % 20_000);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = victim.kill();
            let _ = victim.wait();
        });
        let max = rx.max_message();
        let mut buf = vec![0u8; max];
        let mut next = std::collections::HashMap::new();
        loop {
            match rx.recv(&mut buf) {
                Ok(n) => {
                    check_from(&mut next, max, &buf[..n]);
                }
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::PeerGone, "{wait}: {e}");
                    break;
                }
            }
        }
        killer.join().unwrap();
        for c in others {
            assert!(finish(c).status.success());
        }
        assert_eq!(next.get(&1), Some(&COUNT), "{wait}: {next:?}");
        assert_eq!(next.get(&2), Some(&COUNT), "{wait}: {next:?}");
        // The victim's slot is free again: a new sender takes it and is heard. (It may
        // need a pad consumed first, so it sends from a thread of its own.)
        let mut tx = ring.sender().unwrap();
        let msg = message_from(0, next.get(&0).copied().unwrap_or(0), max);
        let sending = std::thread::spawn(move || tx.send(&msg));
        let n = rx.recv(&mut buf).unwrap();
        check_from(&mut next, max, &buf[..n]);
        sending.join().unwrap().unwrap();
    }
}

#[test]
fn mpsc_a_half_written_loan_of_a_killed_producer_is_skipped_and_its_slot_reused() {
    // Reliability 1, deterministically: killed while holding an uncommitted loan. The
    // live producer keeps its slot; the next sender must take the dead one's, and
    // resumes right after its last whole message.
    const TEST: &str =
        "mpsc_a_half_written_loan_of_a_killed_producer_is_skipped_and_its_slot_reused";
    if role().as_deref() == Some("victim") {
        let mut tx = RingOptions::new()
            .producers(1)
            .open_named(&arg("NAME"))
            .unwrap()
            .sender()
            .unwrap();
        tx.send(b"whole").unwrap();
        let mut loan = tx.loan(1000).unwrap();
        loan[..500].fill(b'h');
        say("loaned");
        std::thread::sleep(Duration::from_secs(60));
        unreachable!();
    }
    let name = unique_name("shm");
    let ring = RingOptions::new()
        .capacity(4096)
        .wait(Wait::Blocking)
        .producers(2)
        .create_named(&name)
        .unwrap();
    let mut rx = ring.receiver().unwrap();
    let mut live = ring.sender().unwrap();
    let mut proc = KillOnDrop(Some(
        child(TEST, "victim", &[("NAME", &name)]).spawn().unwrap(),
    ));
    wait_for_line(proc.0.as_mut().unwrap(), "loaned");
    // Both slots taken.
    assert_eq!(ring.sender().unwrap_err().kind(), ErrorKind::LimitReached);
    proc.kill();
    live.send(b"live").unwrap();
    let mut after = ring.sender().unwrap();
    assert_eq!(after.slot(), 1 - live.slot());
    after.send(b"after").unwrap();
    let mut buf = [0u8; 4096];
    let mut got = vec![];
    for _ in 0..3 {
        let (n, slot) = rx
            .recv_from_timeout(&mut buf, Duration::from_secs(10))
            .unwrap();
        got.push((slot, buf[..n].to_vec()));
    }
    let from_dead: Vec<_> = got.iter().filter(|(s, _)| *s == after.slot()).collect();
    assert_eq!(from_dead.len(), 2, "{got:?}");
    assert_eq!(from_dead[0].1, b"whole");
    assert_eq!(from_dead[1].1, b"after");
    assert!(got.iter().any(|(s, m)| *s == live.slot() && m == b"live"));
    assert_eq!(
        rx.try_recv(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    // All gone: PeerGone; not final, a new sender is heard again.
    drop((live, after));
    let err = rx
        .recv_timeout(&mut buf, Duration::from_secs(10))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
    let mut again = ring.sender().unwrap();
    again.send(b"again").unwrap();
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"again");
}

#[test]
fn mpsc_more_producers_than_slots_are_refused_and_a_closed_slot_is_reused_in_order() {
    let ring = RingOptions::new()
        .capacity(256)
        .producers(2)
        .anonymous()
        .unwrap();
    assert_eq!(ring.producers(), 2);
    let mut rx = ring.receiver().unwrap();
    assert_eq!(
        ring.receiver().unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let mut a = ring.sender().unwrap();
    let b = ring.sender().unwrap();
    let err = ring.sender().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("open ring") && text.contains("2 producer slots"),
        "{text}"
    );
    assert!(text.contains("RingOptions::producers"), "{text}");
    // Wrap a's lane a few times, then leave messages in it and close it.
    let mut buf = [0u8; 256];
    for i in 0..40u8 {
        a.send(&[i; 100]).unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[i; 100]);
    }
    a.send(b"one").unwrap();
    a.send(b"two").unwrap();
    let slot = a.slot();
    drop(a);
    let mut c = ring.sender().unwrap();
    assert_eq!(c.slot(), slot);
    c.send(b"three").unwrap();
    for want in [&b"one"[..], b"two", b"three"] {
        let (n, from) = rx
            .recv_from_timeout(&mut buf, Duration::from_secs(5))
            .unwrap();
        assert_eq!((&buf[..n], from), (want, slot));
    }
    // Too large, and out of range producer counts.
    let err = c.send(&[0; 241]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{err}");
    // Exactly the largest message (it may need a pad first, which only the receiver
    // can consume, so the send runs on its own thread).
    let full = std::thread::spawn(move || c.send(&[9; 240]).map(|()| c));
    assert_eq!(rx.recv(&mut buf).unwrap(), 240);
    assert_eq!(buf[..240], [9; 240]);
    let _c = full.join().unwrap().unwrap();
    for n in [0, ipcx::ring::MAX_PRODUCERS + 1] {
        let err = RingOptions::new().producers(n).anonymous().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(&format!("not {n}")), "{err}");
    }
    drop(b);
}

#[test]
fn mpsc_blocked_receiver_and_full_lanes_wake_in_every_wait_mode() {
    for wait in all_waits() {
        let ring = RingOptions::new()
            .capacity(64)
            .wait(wait)
            .producers(2)
            .anonymous()
            .unwrap();
        let mut rx = ring.receiver().unwrap();
        let mut txs = [ring.sender().unwrap(), ring.sender().unwrap()];
        let mut buf = [0u8; 64];
        assert_eq!(
            rx.try_recv(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        let err = rx
            .recv_timeout(&mut buf, Duration::from_millis(20))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        // Fill both lanes (48 bytes of message each), then send from threads that block.
        for tx in &mut txs {
            tx.send(&[1; 48]).unwrap();
            assert_eq!(
                tx.try_send(&[2; 48]).unwrap_err().kind(),
                ErrorKind::WouldBlock
            );
        }
        let threads: Vec<_> = txs
            .into_iter()
            .map(|mut tx| {
                std::thread::spawn(move || {
                    tx.send(&[2; 48]).unwrap();
                    tx.send(&[3; 48]).unwrap();
                })
            })
            .collect();
        let mut count = [0usize; 4];
        for _ in 0..6 {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(n, 48);
            count[buf[0] as usize] += 1;
        }
        assert_eq!(count, [0, 2, 2, 2], "{wait}");
        for t in threads {
            t.join().unwrap();
        }
        // The senders are gone: a blocked receiver learns it.
        let err = rx.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PeerGone, "{wait}: {err}");
    }
}

#[test]
fn mpsc_views_loans_and_a_gone_receiver() {
    let ring = RingOptions::new()
        .capacity(1024)
        .producers(2)
        .anonymous()
        .unwrap();
    let mut rx = ring.receiver().unwrap();
    let mut tx = ring.sender().unwrap();
    let mut loan = tx.loan(5).unwrap();
    loan.copy_from_slice(b"hello");
    loan.commit();
    {
        let mut loan = tx.loan(7).unwrap();
        loan.fill(0xab);
    } // dropped, not committed: publishes nothing
    tx.send(b"world").unwrap();
    let view = rx.recv_ref().unwrap();
    assert_eq!((&*view, view.slot()), (&b"hello"[..], tx.slot()));
    drop(view);
    let view = rx.try_recv_ref().unwrap();
    assert_eq!(&*view, b"world");
    drop(view);
    drop(rx);
    let err = tx.send(b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
    assert!(err.to_string().contains("receiver closed"), "{err}");
}

#[test]
fn mpsc_corrupted_header_and_slot_values_are_corrupt_never_trusted() {
    // Reliability 8 and 9 for the multi-producer layout.
    let name = unique_name("shm");
    let ring = RingOptions::new()
        .capacity(256)
        .producers(2)
        .create_named(&name)
        .unwrap();
    let (_shm, region) = hostile(&name);
    let open = || RingOptions::new().producers(1).open_named(&name);
    let cases: [(usize, u64, usize, &str); 9] = [
        (PRODUCERS, 0, 4, "0 producer slots"),
        (PRODUCERS, 65, 4, "65 producer slots"),
        (
            PRODUCERS,
            u64::from(u32::MAX),
            4,
            "4294967295 producer slots",
        ),
        (PRODUCERS, 64, 4, "do not fit"),
        (CAPACITY, 1 << 20, 8, "do not fit"),
        (PRODUCERS, 1, 4, "1 lanes put it"),
        (DATA_OFFSET_FIELD, 64, 4, "offset 64"),
        (FLAGS, 6, 4, "flags 0x6"),
        (CAPACITY, 100, 8, "100 bytes"),
    ];
    for (offset, value, size, expect) in cases {
        let mut saved = [0u8; 8];
        region.read(offset, &mut saved[..size]).unwrap();
        region.write(offset, &value.to_le_bytes()[..size]).unwrap();
        let err = open().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{expect}: {err}");
        let text = err.to_string();
        assert!(text.contains("open ring") && text.contains(&name), "{text}");
        assert!(text.contains(expect), "{expect}: {text}");
        region.write(offset, &saved[..size]).unwrap();
    }
    // The two kinds of ring are told apart, not taken for corrupt.
    let err = RingOptions::new().open_named(&name).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("multi-producer"), "{err}");
    let spsc_name = unique_name("shm");
    let spsc = RingOptions::new().create_named(&spsc_name).unwrap();
    let err = RingOptions::new()
        .producers(1)
        .open_named(&spsc_name)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("single-producer"), "{err}");
    drop(spsc);

    let ring2 = open().unwrap();
    let mut rx = ring.receiver().unwrap();
    let mut buf = [0u8; 256];
    // A slot state that is not 0, 1 or 2: the receiver's liveness check and a claimant
    // both refuse it.
    region.write(SLOTS + 16, &7u32.to_le_bytes()).unwrap();
    let err = rx.try_recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("producer slot 1"), "{err}");
    let mut tx = ring2.sender().unwrap(); // slot 0 is fine
    assert_eq!(tx.slot(), 0);
    let err = ring2.sender().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    region.write(SLOTS + 16, &0u32.to_le_bytes()).unwrap();
    // A record header that does not fit: Corrupt for the receiver.
    tx.send(b"fine").unwrap();
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);
    tx.send(b"spoilt").unwrap();
    region
        .write(
            DATA_OF_TWO + 16,
            &((u64::from(u32::from_le_bytes(*b"rMSG")) << 32) | 5000).to_le_bytes(),
        )
        .unwrap();
    let err = rx.recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("lane 0"), "{err}");
    // A head that moved back or past what was published: Corrupt for the sender once
    // it needs room, and for a sender resuming the lane.
    region
        .write(LANES_OF_TWO, &1_000_001u64.to_le_bytes())
        .unwrap();
    let err = loop {
        match tx.try_send(&[0; 100]) {
            Ok(()) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    drop(tx);
    let err = ring2.sender().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("lane 0"), "{err}");
}

#[test]
fn mpsc_ring_addresses_take_a_producers_option_through_the_channel_layer() {
    const TEST: &str = "mpsc_ring_addresses_take_a_producers_option_through_the_channel_layer";
    if role().as_deref() == Some("sender") {
        let addr: Address = arg("ADDR").parse().unwrap();
        let id: u8 = arg("ID").parse().unwrap();
        let mut tx = channel::sender_timeout(&addr, Duration::from_secs(10)).unwrap();
        for i in 0..500u32 {
            let mut msg = vec![id];
            msg.extend(i.to_le_bytes().repeat(i as usize % 30));
            tx.send(&msg).unwrap();
        }
        return;
    }
    let name = unique_name("shm");
    let addr: Address = format!("ring:{name}?capacity=4K&producers=2&wait=adaptive")
        .parse()
        .unwrap();
    assert_eq!(addr.options().producers, Some(2));
    for bad in ["0", "65", "two"] {
        let err = format!("ring:{name}?producers={bad}")
            .parse::<Address>()
            .unwrap_err();
        assert!(err.to_string().contains("1 to 64 producer slots"), "{err}");
    }
    let mut rx = channel::receiver(&addr).unwrap();
    assert_eq!(rx.max_message(), 4096 - 16);
    assert_eq!(rx.address().unwrap().options().producers, Some(2));
    let procs: Vec<_> = ["1", "2"]
        .iter()
        .map(|id| {
            let args = [("ADDR", addr.to_string()), ("ID", id.to_string())];
            let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
            child(TEST, "sender", &args).spawn().unwrap()
        })
        .collect();
    let mut buf = vec![0u8; rx.max_message()];
    let mut next = [0u32; 3];
    let (mut received, mut gaps) = (0, 0);
    while received < 1000 {
        let n = match rx.recv_timeout(&mut buf, Duration::from_secs(20)) {
            Ok(n) => n,
            // No sender now: one finished before the other connected. Not final.
            Err(e) if e.kind() == ErrorKind::PeerGone => {
                gaps += 1;
                assert!(gaps < 2000, "no sender came back: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        received += 1;
        let id = buf[0] as usize;
        let i = next[id];
        assert_eq!(
            &buf[1..n],
            i.to_le_bytes().repeat(i as usize % 30).as_slice()
        );
        next[id] += 1;
    }
    for p in procs {
        let out = finish(p);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(rx.recv(&mut buf).unwrap_err().kind(), ErrorKind::PeerGone);
    // A sender that leaves out the option is told what the ring is.
    let plain: Address = format!("ring:{name}").parse().unwrap();
    let err = channel::sender_timeout(&plain, Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("multi-producer"), "{err}");
}

/// Reliability 3: a creator that takes its side before publishing the header
/// (`create_named_sender` / `create_named_receiver`) and is then killed leaves openers a
/// ring whose other side is seen gone, never one whose side may still come.
#[test]
fn a_creator_that_claims_its_side_first_and_dies_leaves_a_ring_whose_side_is_seen_gone() {
    if let Some(r) = role() {
        let name = arg("NAME");
        let opts = RingOptions::new().capacity(4096);
        if r == "sender" {
            let mut tx = opts.create_named_sender(&name).unwrap();
            tx.send(b"whole").unwrap();
            // The peer (the test) removes the object: this process is killed.
            say("ready");
            std::thread::sleep(std::time::Duration::from_secs(60));
            drop(tx);
        } else {
            let _rx = opts.create_named_receiver(&name).unwrap();
            say("ready");
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
        return;
    }
    for side in ["sender", "receiver"] {
        let name = unique_name("shm");
        let _guard = UnlinkOnDrop(name.clone());
        let mut proc = child(
            "a_creator_that_claims_its_side_first_and_dies_leaves_a_ring_whose_side_is_seen_gone",
            side,
            &[("NAME", &name)],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
        wait_for_line(&mut proc, "ready");
        proc.kill().unwrap();
        proc.wait().unwrap();
        let ring = RingOptions::new().open_named(&name).unwrap();
        if side == "sender" {
            let mut rx = ring.receiver().unwrap();
            let mut buf = [0u8; 64];
            let n = rx.recv_timeout(&mut buf, Duration::from_secs(10)).unwrap();
            assert_eq!(&buf[..n], b"whole");
            let err = rx
                .recv_timeout(&mut buf, Duration::from_secs(10))
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
        } else {
            // Sends go in while there is room; once the ring is full, the wait for room
            // finds the receiver's lock free.
            let mut tx = ring.sender().unwrap();
            let err = (0..1000)
                .find_map(|_| tx.send_timeout(&[7u8; 64], Duration::from_secs(10)).err())
                .expect("a 4 KiB ring fills within 1000 messages of 64 bytes");
            assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
        }
    }
}
