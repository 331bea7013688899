//! Waiting on many descriptors at once across real processes: a pipe, a POSIX message
//! queue, a Unix socket and a pidfd in one set; peers that exit while the parent waits;
//! signals during the wait; descriptors that cannot be polled.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::mq::posix::MessageQueue;
use ipcx::pipe::pipe;
use ipcx::poll::{Interest, PollSet, Ready};
use ipcx::process::Pidfd;

/// The indices in `ready`.
fn indices(ready: &[Ready]) -> Vec<usize> {
    ready.iter().map(|r| r.index).collect()
}

#[test]
fn a_pipe_a_queue_a_socket_and_a_pidfd_each_become_ready() {
    if common::role().is_some() {
        // stdin is a socket to the parent (commands in, replies out), stderr a pipe.
        let mut sock = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned().unwrap());
        let queue = MessageQueue::open(common::arg("MQ")).unwrap();
        let mut byte = [0u8; 1];
        loop {
            sock.read_exact(&mut byte).unwrap();
            match byte[0] {
                b'p' => std::io::stderr().write_all(b"p").unwrap(),
                b'm' => queue.send(b"m", 0).unwrap(),
                b's' => sock.write_all(b"s").unwrap(),
                _ => std::process::exit(0),
            }
        }
    }
    let name = common::unique_name("mq");
    let queue = MessageQueue::create(&name).unwrap();
    let (from_child, child_stderr) = pipe().unwrap();
    let (sock, child_sock) = UnixStream::pair().unwrap();
    let mut cmd = common::child(
        "a_pipe_a_queue_a_socket_and_a_pidfd_each_become_ready",
        "peer",
        &[("MQ", &name)],
    );
    cmd.stdin(Stdio::from(OwnedFd::from(child_sock)))
        .stderr(Stdio::from(child_stderr));
    let child = cmd.spawn().unwrap();
    drop(cmd); // the parent's copies of the child's ends
    let pidfd = Pidfd::from_child(&child).unwrap();

    let mut set = PollSet::new();
    let p = set.add(&from_child, Interest::READABLE);
    let m = set.add(&queue, Interest::READABLE);
    let s = set.add(&sock, Interest::READABLE);
    let d = set.add(&pidfd, Interest::READABLE);
    assert_eq!((p, m, s, d, set.len()), (0, 1, 2, 3, 4));
    assert!(set.try_wait().unwrap().is_empty());

    let mut buf = [0u8; 64];
    for (command, index) in [(b'p', p), (b'm', m), (b's', s)] {
        (&sock).write_all(&[command]).unwrap();
        let ready = set.wait_timeout(common::CHILD_LIMIT).unwrap();
        assert_eq!(indices(&ready), vec![index], "after {:?}", command as char);
        assert!(ready[0].readable && !ready[0].hangup && !ready[0].error);
        // Drain it, so that only the next step's entry is ready next time.
        let mut big = vec![0u8; queue.max_msg_size()];
        let n = match index {
            0 => from_child.try_read(&mut buf).unwrap(),
            1 => queue.try_recv(&mut big).unwrap().0,
            _ => (&sock).read(&mut buf).unwrap(),
        };
        assert_eq!(n, 1);
    }

    // The child exits: its pipe and socket hang up, and its pidfd becomes readable,
    // though not necessarily at the same instant (files close before the exit is
    // reported), so gather until all three are seen.
    (&sock).write_all(b"x").unwrap();
    let mut seen = BTreeSet::new();
    let start = Instant::now();
    while seen.len() < 3 {
        assert!(start.elapsed() < common::CHILD_LIMIT, "saw only {seen:?}");
        for r in set.wait_timeout(common::CHILD_LIMIT).unwrap() {
            assert_ne!(r.index, m, "the queue has nothing");
            if r.index == d && r.readable {
                seen.insert("pidfd");
            }
            if r.index == p && r.hangup {
                seen.insert("pipe hangup");
            }
            if r.index == s && r.hangup && r.readable {
                seen.insert("socket hangup");
            }
        }
    }
    assert_eq!(from_child.try_read(&mut buf).unwrap(), 0, "end of file");
    assert!(common::finish(child).status.success());
}

#[test]
fn a_peer_that_exits_while_the_parent_waits_is_seen_on_both_pipe_ends_and_its_pidfd() {
    if common::role().is_some() {
        std::thread::sleep(Duration::from_millis(200));
        std::process::exit(0);
    }
    // The child's stdin: filled up, so that its write end is not writable until the
    // reader goes away. Its stderr: empty, so not readable until the writer goes away.
    let (child_stdin, to_child) = pipe().unwrap();
    let (from_child, child_stderr) = pipe().unwrap();
    while to_child.try_write(&[0u8; 4096]).is_ok() {}
    let mut cmd = common::child(
        "a_peer_that_exits_while_the_parent_waits_is_seen_on_both_pipe_ends_and_its_pidfd",
        "exiter",
        &[],
    );
    cmd.stdin(Stdio::from(child_stdin))
        .stderr(Stdio::from(child_stderr));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let pidfd = Pidfd::from_child(&child).unwrap();

    let mut set = PollSet::new();
    let w = set.add(&to_child, Interest::WRITABLE);
    let r = set.add(&from_child, Interest::READABLE);
    let d = set.add(&pidfd, Interest::READABLE);
    let mut seen = BTreeSet::new();
    let start = Instant::now();
    while seen.len() < 3 {
        assert!(start.elapsed() < common::CHILD_LIMIT, "saw only {seen:?}");
        // Blocks in poll while the child sleeps, then wakes as it exits.
        for ready in set.wait_timeout(common::CHILD_LIMIT).unwrap() {
            if ready.index == w {
                assert!(ready.error, "{ready:?}");
                seen.insert("writer error");
            } else if ready.index == r {
                assert!(ready.hangup, "{ready:?}");
                seen.insert("reader hangup");
            } else if ready.index == d && ready.readable {
                seen.insert("pidfd");
            }
        }
    }
    let gone = to_child.try_write(b"x").unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::PeerGone);
    assert!(common::finish(child).status.success());
}

#[test]
fn poll_retries_eintr_until_an_entry_is_ready() {
    if common::role().is_some() {
        std::thread::sleep(Duration::from_millis(300));
        std::io::stderr().write_all(b"late").unwrap();
        std::process::exit(0);
    }
    let (from_child, child_stderr) = pipe().unwrap();
    let mut cmd = common::child("poll_retries_eintr_until_an_entry_is_ready", "late", &[]);
    cmd.stderr(Stdio::from(child_stderr));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let mut set = PollSet::new();
    set.add(&from_child, Interest::READABLE);
    let (ready, signals) = common::under_signal_storm(|| set.wait_timeout(common::CHILD_LIMIT));
    let ready = ready.unwrap();
    assert_eq!(indices(&ready), vec![0]);
    assert!(ready[0].readable);
    assert!(signals > 0, "the storm interrupted nothing");
    assert!(common::finish(child).status.success());
}

#[test]
fn a_timeout_is_an_empty_answer_that_signals_do_not_shorten() {
    let (rx, _tx) = pipe().unwrap();
    let mut set = PollSet::new();
    set.add(&rx, Interest::READABLE);
    let limit = Duration::from_millis(200);
    let start = Instant::now();
    let (ready, signals) = common::under_signal_storm(|| set.wait_timeout(limit));
    assert!(start.elapsed() >= limit);
    assert!(ready.unwrap().is_empty());
    assert!(signals > 0, "the storm interrupted nothing");

    // Zero entries: a timed wait sleeps, a blocking one is refused.
    let mut empty = PollSet::new();
    assert!(empty.is_empty());
    assert!(
        empty
            .wait_timeout(Duration::from_millis(1))
            .unwrap()
            .is_empty()
    );
    assert!(empty.try_wait().unwrap().is_empty());
    let e = empty.wait().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("for ever"), "{e}");
}

#[test]
fn interests_select_what_is_reported() {
    let (a, b) = UnixStream::pair().unwrap();
    let mut set = PollSet::new();
    let i = set.add(&a, Interest::READABLE);
    assert!(set.try_wait().unwrap().is_empty(), "nothing to read yet");
    set.set_interest(i, Interest::READABLE | Interest::WRITABLE);
    let ready = set.try_wait().unwrap();
    assert_eq!(indices(&ready), vec![i]);
    assert!(ready[0].writable && !ready[0].readable);
    (&b).write_all(b"x").unwrap();
    let ready = set.try_wait().unwrap();
    assert!(ready[0].writable && ready[0].readable);
    set.set_interest(i, Interest::WRITABLE);
    let ready = set.try_wait().unwrap();
    assert!(ready[0].writable && !ready[0].readable);
    // A shut-down peer shows as a hang-up even when only writing is asked for.
    drop(b);
    let ready = set.try_wait().unwrap();
    assert!(ready[0].hangup, "{ready:?}");
}

#[test]
fn a_descriptor_that_cannot_be_polled_is_an_error_naming_its_index() {
    let (rx, _tx) = pipe().unwrap();
    // An O_PATH descriptor is open but has no file operations: poll reports POLLNVAL.
    let path_only = rustix::fs::open(
        "/",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let mut set = PollSet::new();
    set.add(&rx, Interest::READABLE);
    set.add(&path_only, Interest::READABLE);
    for result in [
        set.try_wait(),
        set.wait_timeout(common::CHILD_LIMIT),
        set.wait(),
    ] {
        let e = result.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.operation(), "poll");
        assert_eq!(e.object(), Some("PollSet entry 1"));
        assert!(e.to_string().contains("POLLNVAL"), "{e}");
    }
}
