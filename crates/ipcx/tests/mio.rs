//! ipcx descriptors in a `mio::Poll` (`ipcx::mio`), across real processes: a pipe, a
//! seqpacket socket and listener, and a POSIX message queue each report the readiness
//! another process causes, and are drained with their `try_` methods until `WouldBlock`
//! (mio is edge-triggered).
//!
//! Children are this test binary re-executed in a role (see `tests/common`); a descriptor
//! for a child is passed as its stdin. Every wait is bounded.
#![cfg(feature = "mio")]
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::mq::Access;
use ipcx::mq::posix::MqOptions;
use ipcx::pipe::{PipeReader, PipeWriter, pipe};
use ipcx::unix::{Seqpacket, listen_seqpacket};
use mio::{Events, Interest, Poll, Token};

/// The bound on each blocking call of a child.
const T: Duration = Duration::from_secs(10);

/// In a child: a duplicate of the descriptor the parent passed as stdin.
fn stdin_fd() -> OwnedFd {
    std::io::stdin().as_fd().try_clone_to_owned().unwrap()
}

fn text(buf: &[u8]) -> String {
    String::from_utf8_lossy(buf).into_owned()
}

/// What the events for one token said.
struct Seen {
    readable: bool,
    writable: bool,
    write_closed: bool,
}

/// Waits (until `deadline`, failing the test then) for events carrying `token`.
fn wait_for(poll: &mut Poll, events: &mut Events, token: Token, deadline: Instant) -> Seen {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no event for {token:?} in time");
        match poll.poll(events, Some(left)) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => other.unwrap(),
        }
        let mut seen = Seen {
            readable: false,
            writable: false,
            write_closed: false,
        };
        let mut any = false;
        for e in events.iter().filter(|e| e.token() == token) {
            any = true;
            seen.readable |= e.is_readable() || e.is_read_closed();
            seen.writable |= e.is_writable();
            seen.write_closed |= e.is_write_closed() || e.is_error();
        }
        if any {
            return seen;
        }
    }
}

/// A child writes chunks into a pipe; each event is followed by `try_read` until
/// `WouldBlock`, and the loop ends at end of file. No byte is missed although mio
/// reports only edges.
#[test]
fn pipe_from_a_child_is_seen_and_drained() {
    const TEST: &str = "pipe_from_a_child_is_seen_and_drained";
    if common::role().is_some() {
        let w = PipeWriter::try_from(stdin_fd()).unwrap();
        for i in 0..10 {
            w.write_all_timeout(format!("chunk {i}\n").as_bytes(), T)
                .unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        std::process::exit(0);
    }
    let (mut reader, writer) = pipe().unwrap();
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    poll.registry()
        .register(&mut reader, Token(1), Interest::READABLE)
        .unwrap();
    let mut cmd = common::child(TEST, "writer", &[]);
    cmd.stdin(Stdio::from(writer));
    let child = cmd.spawn().unwrap();
    drop(cmd);

    let deadline = Instant::now() + common::CHILD_LIMIT;
    let (mut got, mut wakeups, mut eof) = (Vec::new(), 0, false);
    let mut buf = [0u8; 5];
    while !eof {
        assert!(wait_for(&mut poll, &mut events, Token(1), deadline).readable);
        wakeups += 1;
        loop {
            match reader.try_read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("try_read: {e}"),
            }
        }
    }
    let want: String = (0..10).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(text(&got), want);
    assert!(common::finish(child).status.success());
    poll.registry().deregister(&mut reader).unwrap();
    println!("{wakeups} wake-ups");
}

/// The write end: full, it waits for a writable event, which a child draining the pipe
/// causes; once the child has exited, the event says write-closed and `try_write` is
/// `PeerGone`, never `SIGPIPE`.
#[test]
fn pipe_writer_is_woken_by_a_draining_child_and_then_by_its_exit() {
    const TEST: &str = "pipe_writer_is_woken_by_a_draining_child_and_then_by_its_exit";
    if common::role().is_some() {
        let r = PipeReader::try_from(stdin_fd()).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            match r.read_timeout(&mut buf, T).unwrap() {
                0 => break,
                n => total += n,
            }
            if total >= 3 << 16 {
                break; // leave without reading the rest: the writer then sees EPIPE
            }
        }
        common::say(format!("read {total}"));
        std::process::exit(0);
    }
    let (reader, mut writer) = pipe().unwrap();
    let cap = writer.capacity().unwrap();
    let chunk = vec![1u8; 4096];
    while writer.try_write(&chunk).is_ok() {}
    assert_eq!(
        writer.try_write(&chunk).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    poll.registry()
        .register(&mut writer, Token(2), Interest::WRITABLE)
        .unwrap();
    let mut cmd = common::child(TEST, "reader", &[]);
    cmd.stdin(Stdio::from(reader));
    let child = cmd.spawn().unwrap();
    drop(cmd);

    let deadline = Instant::now() + common::CHILD_LIMIT;
    let mut written = cap;
    let gone = loop {
        let seen = wait_for(&mut poll, &mut events, Token(2), deadline);
        assert!(seen.writable || seen.write_closed);
        let result = loop {
            match writer.try_write(&chunk) {
                Ok(n) => written += n,
                Err(e) => break e,
            }
        };
        match result.kind() {
            ErrorKind::WouldBlock => continue,
            ErrorKind::PeerGone => break result,
            _ => panic!("try_write: {result}"),
        }
    };
    assert!(gone.to_string().contains("peer gone (EPIPE)"), "{gone}");
    let out = common::finish(child);
    assert!(out.status.success());
    assert!(written >= 3 << 16, "wrote {written}");
    assert!(common::reports(&out).starts_with("read "));
}

/// A seqpacket socket (a child holds the other end) and a listener (a child connects):
/// each event is drained with `try_recv`/`try_accept`; boundaries are kept; the child's
/// exit is end of file.
#[test]
fn seqpacket_and_listener_events_from_children() {
    const TEST: &str = "seqpacket_and_listener_events_from_children";
    match common::role().as_deref() {
        Some("peer") => {
            let s = Seqpacket::try_from(stdin_fd()).unwrap();
            for msg in ["one", "two", "three"] {
                s.send_timeout(msg.as_bytes(), T).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            std::process::exit(0);
        }
        Some("client") => {
            let s = Seqpacket::connect_timeout(common::arg("PATH"), T).unwrap();
            s.send_timeout(b"connected", T).unwrap();
            std::process::exit(0);
        }
        _ => {}
    }
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    let deadline = Instant::now() + common::CHILD_LIMIT;

    let (mut mine, theirs) = Seqpacket::pair().unwrap();
    poll.registry()
        .register(&mut mine, Token(3), Interest::READABLE)
        .unwrap();
    let mut cmd = common::child(TEST, "peer", &[]);
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let (mut got, mut eof) = (Vec::new(), false);
    let mut buf = [0u8; 64];
    while !eof {
        assert!(wait_for(&mut poll, &mut events, Token(3), deadline).readable);
        loop {
            match mine.try_recv(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => got.push(text(&buf[..n])),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("try_recv: {e}"),
            }
        }
    }
    assert_eq!(got, ["one", "two", "three"]);
    assert!(mine.peer_closed());
    assert!(common::finish(child).status.success());

    let dir = common::tempdir();
    let path = dir.path().join("seq");
    let mut server = listen_seqpacket(&path).unwrap();
    poll.registry()
        .register(&mut server, Token(4), Interest::READABLE)
        .unwrap();
    let child = common::child(TEST, "client", &[("PATH", path.to_str().unwrap())])
        .spawn()
        .unwrap();
    assert!(wait_for(&mut poll, &mut events, Token(4), deadline).readable);
    let mut conns = Vec::new();
    loop {
        match server.try_accept() {
            Ok(conn) => conns.push(conn),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("try_accept: {e}"),
        }
    }
    assert_eq!(conns.len(), 1);
    let conn = &mut conns[0];
    poll.registry()
        .register(conn, Token(5), Interest::READABLE)
        .unwrap();
    // The message may have arrived before the registration: epoll reports a descriptor
    // that is already ready when it is added.
    assert!(wait_for(&mut poll, &mut events, Token(5), deadline).readable);
    let n = conn.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"connected");
    assert!(common::finish(child).status.success());
    poll.registry().deregister(&mut server).unwrap();
}

/// A child sends to a POSIX queue; the queue's descriptor reports readable, and
/// `try_recv` drains it until `WouldBlock`. Reregistering for writable on a full queue
/// reports room once a message is taken.
#[test]
fn posix_mq_events_from_a_child() {
    const TEST: &str = "posix_mq_events_from_a_child";
    if common::role().is_some() {
        let q = MqOptions::new()
            .access(Access::SendOnly)
            .open(common::arg("NAME"))
            .unwrap();
        // Falling priorities: the order received is the order sent, however the receives
        // interleave with the sends.
        for (msg, prio) in [("urgent", 9), ("normal", 5), ("low", 1)] {
            q.send_timeout(msg.as_bytes(), prio, T).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        common::say("sent");
        std::process::exit(0);
    }
    let name = common::unique_name("mq");
    let mut q = MqOptions::new()
        .capacity(4)
        .max_msg_size(64)
        .create(&name)
        .unwrap();
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    poll.registry()
        .register(&mut q, Token(6), Interest::READABLE)
        .unwrap();
    let child = common::child(TEST, "sender", &[("NAME", &name)])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + common::CHILD_LIMIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < 3 {
        assert!(wait_for(&mut poll, &mut events, Token(6), deadline).readable);
        loop {
            match q.try_recv(&mut buf) {
                Ok((n, prio)) => got.push((text(&buf[..n]), prio)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("try_recv: {e}"),
            }
        }
    }
    let want = [("urgent", 9), ("normal", 5), ("low", 1)].map(|(m, p)| (m.to_string(), p));
    assert_eq!(got, want);
    let out = common::finish(child);
    assert!(out.status.success());
    assert_eq!(common::reports(&out), "sent");

    // Fill the queue, then watch for room.
    while q.try_send(b"x", 0).is_ok() {}
    poll.registry()
        .reregister(&mut q, Token(6), Interest::WRITABLE)
        .unwrap();
    let other = MqOptions::new()
        .access(Access::ReceiveOnly)
        .open(&name)
        .unwrap();
    other.try_recv(&mut buf).unwrap();
    assert!(wait_for(&mut poll, &mut events, Token(6), deadline).writable);
    q.try_send(b"y", 0).unwrap();
    poll.registry().deregister(&mut q).unwrap();
}

/// Waits (bounded) for an event with `token` on `poll`.
fn wait_event(poll: &mut Poll, token: Token) {
    let mut events = Events::with_capacity(8);
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < common::CHILD_LIMIT,
            "no event for {token:?}"
        );
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        if events.iter().any(|e| e.token() == token && e.is_readable()) {
            return;
        }
    }
}

/// An eventfd written by a child and the child's pidfd, registered with mio; then a
/// signalfd and a signal pipe, woken by signals to this thread.
#[test]
fn eventfd_pidfd_signalfd_and_signal_pipe_register_with_mio() {
    use ipcx::eventfd::EventFd;
    use ipcx::process::Pidfd;
    use ipcx::signal::{SignalFd, SignalMask, SignalPipe, SignalSet};
    use mio::event::Source;

    if common::role().is_some() {
        let events = EventFd::try_from(stdin_fd()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        events.write(2).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        return; // then exit: the pidfd becomes readable
    }
    let mut poll = Poll::new().unwrap();
    let mut events = EventFd::new(0).unwrap();
    let theirs = OwnedFd::from(events.try_clone().unwrap());
    let mut cmd = common::child(
        "eventfd_pidfd_signalfd_and_signal_pipe_register_with_mio",
        "writer",
        &[],
    );
    cmd.stdin(Stdio::from(theirs));
    let child = cmd.spawn().unwrap();
    let mut pidfd = Pidfd::from_child(&child).unwrap();
    events
        .register(poll.registry(), Token(1), Interest::READABLE)
        .unwrap();
    pidfd
        .register(poll.registry(), Token(2), Interest::READABLE)
        .unwrap();
    wait_event(&mut poll, Token(1));
    assert_eq!(events.try_read().unwrap(), 2);
    wait_event(&mut poll, Token(2));
    assert!(pidfd.has_exited());
    let out = common::finish(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Thread-directed signals reach this thread's signalfd; a handler-style signal
    // reaches the signal pipe whichever thread takes it.
    let set = SignalSet::new(&[libc::SIGWINCH]).unwrap();
    let _mask = SignalMask::block(&set).unwrap();
    let mut signals = SignalFd::new(&set).unwrap();
    signals
        .register(poll.registry(), Token(3), Interest::READABLE)
        .unwrap();
    // SAFETY: pthread_kill to this very thread, with a signal it blocks.
    unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGWINCH) };
    wait_event(&mut poll, Token(3));
    assert_eq!(signals.try_read().unwrap().signal, libc::SIGWINCH);

    let mut pipe = SignalPipe::register(&[libc::SIGURG]).unwrap();
    pipe.register(poll.registry(), Token(4), Interest::READABLE)
        .unwrap();
    // SAFETY: raise takes a signal number; SIGURG's handler is signal-hook's.
    unsafe { libc::raise(libc::SIGURG) };
    wait_event(&mut poll, Token(4));
    assert!(pipe.try_read().unwrap().contains(libc::SIGURG));
}
