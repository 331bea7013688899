//! eventfd across real processes: counting, semaphore mode, overflow and saturation
//! (reliability 21), sharing by inheritance and over a Unix socket, EINTR (18), descriptor
//! limits (15) and close-on-exec (22).
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::eventfd::{EventFd, MAX_COUNT};
use ipcx::unix::UnixSocketExt;
use rustix::fs::OFlags;

/// The eventfd a child received as its stdin, adopted through a copy of the descriptor.
fn stdin_eventfd() -> EventFd {
    let fd = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
    EventFd::try_from(fd).unwrap()
}

fn is_nonblocking(fd: impl AsFd) -> bool {
    rustix::fs::fcntl_getfl(fd)
        .unwrap()
        .contains(OFlags::NONBLOCK)
}

#[test]
fn counter_mode_adds_writes_and_a_read_takes_them_all() {
    let efd = EventFd::new(1).unwrap();
    efd.write(2).unwrap();
    efd.try_write(3).unwrap();
    efd.write_timeout(4, Duration::from_secs(5)).unwrap();
    assert_eq!(efd.read().unwrap(), 10);
    // A write of 0 changes nothing and wakes nobody.
    efd.write(0).unwrap();
    let err = efd.try_read().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(
        err.to_string()
            .starts_with("read \"eventfd\": would block (EAGAIN)"),
        "{err}"
    );
    assert!(err.to_string().contains("counter is 0"), "{err}");
    let start = Instant::now();
    let err = efd.read_timeout(Duration::from_millis(50)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn semaphore_mode_reads_one_at_a_time() {
    let sem = EventFd::semaphore(2).unwrap();
    sem.write(1).unwrap();
    for _ in 0..3 {
        assert_eq!(sem.try_read().unwrap(), 1);
    }
    assert_eq!(sem.try_read().unwrap_err().kind(), ErrorKind::WouldBlock);
    assert_eq!(
        sem.read_timeout(Duration::from_millis(20))
            .unwrap_err()
            .kind(),
        ErrorKind::TimedOut
    );
}

#[test]
fn writing_u64_max_is_refused_before_the_system_call() {
    let efd = EventFd::new(5).unwrap();
    for err in [
        efd.write(u64::MAX).unwrap_err(),
        efd.try_write(u64::MAX).unwrap_err(),
        efd.write_timeout(u64::MAX, Duration::from_secs(1))
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.errno(), None, "refused by ipcx, not the kernel");
        let msg = err.to_string();
        assert!(
            msg.starts_with("write \"eventfd\": invalid argument"),
            "{msg}"
        );
        assert!(msg.contains("u64::MAX"), "{msg}");
    }
    // Nothing was added.
    assert_eq!(efd.try_read().unwrap(), 5);
}

#[test]
fn a_saturated_counter_refuses_more_without_losing_or_wrapping() {
    let efd = EventFd::new(0).unwrap();
    efd.write(MAX_COUNT).unwrap();
    let err = efd.try_write(1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(err.to_string().contains("u64::MAX - 1"), "{err}");
    let start = Instant::now();
    let err = efd
        .write_timeout(1, Duration::from_millis(100))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert!(err.to_string().contains("saturates"), "{err}");
    assert_eq!(efd.try_read().unwrap(), MAX_COUNT);

    // Room for 5 but a write of 10: the kernel reports the eventfd writable (1 fits), so
    // the wait must not spin on poll; it times out like any other.
    efd.write(MAX_COUNT - 5).unwrap();
    assert_eq!(efd.try_write(10).unwrap_err().kind(), ErrorKind::WouldBlock);
    let err = efd
        .write_timeout(10, Duration::from_millis(60))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    efd.try_write(5).unwrap();
    assert_eq!(efd.try_read().unwrap(), MAX_COUNT);
}

#[test]
fn a_reader_in_another_process_unblocks_a_saturated_writer() {
    if common::role().is_some() {
        let efd = stdin_eventfd();
        let got = efd.read_timeout(common::CHILD_LIMIT).unwrap();
        common::say(format!("child read {got}"));
        std::process::exit(0);
    }
    let efd = Arc::new(EventFd::new(0).unwrap());
    efd.write(MAX_COUNT).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (efd, done) = (efd.clone(), done.clone());
        std::thread::spawn(move || {
            efd.write(1).unwrap(); // the blocking form: waits for a reader
            done.store(true, Ordering::Release);
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !done.load(Ordering::Acquire),
        "a write past the maximum must wait"
    );

    let mut cmd = common::child(
        "a_reader_in_another_process_unblocks_a_saturated_writer",
        "reader",
        &[],
    );
    cmd.stdin(Stdio::from(efd.try_clone().unwrap()));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let out = common::finish(child);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(common::reports(&out), format!("child read {MAX_COUNT}"));
    writer.join().unwrap();
    assert!(done.load(Ordering::Acquire));
    assert_eq!(efd.try_read().unwrap(), 1);
}

#[test]
fn shared_with_a_child_by_inheritance_as_stdin() {
    if common::role().is_some() {
        let efd = stdin_eventfd();
        let got = efd.read_timeout(common::CHILD_LIMIT).unwrap();
        efd.write(9).unwrap();
        common::say(format!("child read {got}, wrote 9"));
        std::process::exit(0);
    }
    let efd = EventFd::new(0).unwrap();
    let mut cmd = common::child("shared_with_a_child_by_inheritance_as_stdin", "c", &[]);
    cmd.stdin(Stdio::from(efd.try_clone().unwrap()));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    efd.write(5).unwrap();
    let out = common::finish(child);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(common::reports(&out), "child read 5, wrote 9");
    assert_eq!(efd.try_read().unwrap(), 9);
    // The child adopted and dropped its copy; the shared description stays non-blocking,
    // so this process's calls still never block.
    assert!(is_nonblocking(&efd));
    assert_eq!(efd.try_read().unwrap_err().kind(), ErrorKind::WouldBlock);
}

#[test]
fn shared_with_a_child_over_a_unix_socket() {
    if common::role().is_some() {
        let sock = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned().unwrap());
        let mut buf = [0u8; 8];
        let (n, fds) = sock
            .recv_fds_timeout(&mut buf, 1, common::CHILD_LIMIT)
            .unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"efd"[..], 1));
        let efd = EventFd::try_from(fds.into_iter().next().unwrap()).unwrap();
        let got = efd.read_timeout(common::CHILD_LIMIT).unwrap();
        efd.write(11).unwrap();
        common::say(format!("child read {got}, wrote 11"));
        std::process::exit(0);
    }
    let efd = EventFd::new(0).unwrap();
    let (mine, theirs) = ipcx::unix::stream_pair().unwrap();
    let mut cmd = common::child("shared_with_a_child_over_a_unix_socket", "c", &[]);
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    mine.send_fds(b"efd", &[efd.as_fd()]).unwrap();
    efd.write(4).unwrap();
    let out = common::finish(child);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(common::reports(&out), "child read 4, wrote 11");
    assert_eq!(efd.try_read().unwrap(), 11);
}

#[test]
fn adopting_checks_the_kind_and_restores_a_blocking_mode() {
    let (rx, _tx) = ipcx::pipe::pipe().unwrap();
    let err = EventFd::try_from(OwnedFd::from(rx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("pipe:[") && err.to_string().contains("not an eventfd"),
        "{err}"
    );
    let null = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let err = EventFd::try_from(null).unwrap_err();
    assert!(err.to_string().contains("/dev/null"), "{err}");

    // A blocking eventfd made elsewhere: non-blocking while ipcx holds it, blocking again
    // afterwards for the other holders.
    let raw = rustix::event::eventfd(3, rustix::event::EventfdFlags::CLOEXEC).unwrap();
    let other_holder = raw.try_clone().unwrap();
    let efd = EventFd::try_from(raw).unwrap();
    assert!(is_nonblocking(&other_holder));
    assert_eq!(efd.try_read().unwrap(), 3);
    assert_eq!(efd.try_read().unwrap_err().kind(), ErrorKind::WouldBlock);
    drop(efd);
    assert!(!is_nonblocking(&other_holder));

    let efd = EventFd::try_from(other_holder).unwrap();
    let back = OwnedFd::from(efd);
    assert!(!is_nonblocking(&back), "into OwnedFd restores the mode");

    // One ipcx created stays non-blocking when it leaves (its copies share the flag).
    let ours = OwnedFd::from(EventFd::new(0).unwrap());
    assert!(is_nonblocking(&ours));
    assert!(common::is_cloexec(ours.as_fd()));
}

#[test]
fn eintr_is_retried_with_the_remaining_time() {
    let efd = Arc::new(EventFd::new(0).unwrap());

    // A count arrives in the middle of the storm: read_timeout returns it.
    let writer = {
        let efd = efd.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            efd.write(6).unwrap();
        })
    };
    let (got, signals) = common::under_signal_storm(|| efd.read_timeout(Duration::from_secs(20)));
    assert_eq!(got.unwrap(), 6);
    assert!(
        signals > 0,
        "no signal was delivered, so EINTR was not provoked"
    );
    writer.join().unwrap();

    // Nothing arrives: the timeout holds, and it is TimedOut, never Interrupted.
    let start = Instant::now();
    let (err, signals) =
        common::under_signal_storm(|| efd.read_timeout(Duration::from_millis(150)));
    assert_eq!(err.unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(signals > 0);
    assert!(start.elapsed() >= Duration::from_millis(150));

    // The same for a writer waiting on a saturated counter.
    efd.write(MAX_COUNT).unwrap();
    let start = Instant::now();
    let (err, signals) =
        common::under_signal_storm(|| efd.write_timeout(1, Duration::from_millis(150)));
    assert_eq!(err.unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(signals > 0);
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[test]
fn out_of_descriptors_is_limit_reached_naming_the_limit() {
    if common::role().is_some() {
        let spare = EventFd::new(0).unwrap();
        let limit = common::lowest_free_fd();
        common::set_nofile(limit);
        let err = EventFd::new(0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LimitReached);
        let clone_err = spare.try_clone().unwrap_err();
        assert_eq!(clone_err.kind(), ErrorKind::LimitReached);
        // The existing eventfd keeps working.
        spare.write(1).unwrap();
        assert_eq!(spare.read().unwrap(), 1);
        common::say(format!("{limit} {err}"));
        std::process::exit(0);
    }
    let out = common::run_ok(common::child(
        "out_of_descriptors_is_limit_reached_naming_the_limit",
        "c",
        &[],
    ));
    let (limit, msg) = out.trim().split_once(' ').unwrap();
    assert!(msg.starts_with("eventfd: limit reached (EMFILE)"), "{msg}");
    assert!(
        msg.contains(&format!("RLIMIT_NOFILE, now {limit}")),
        "{msg}"
    );
}

#[test]
fn eventfds_do_not_leak_into_children() {
    if common::role().is_some() {
        let mine = common::open_fd_targets();
        assert!(
            !mine.iter().any(|t| t == "anon_inode:[eventfd]"),
            "an eventfd leaked into the child: {mine:?}"
        );
        common::say("no eventfd");
        std::process::exit(0);
    }
    let a = EventFd::new(0).unwrap();
    let b = EventFd::semaphore(1).unwrap();
    let c = a.try_clone().unwrap();
    let adopted =
        EventFd::try_from(rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap())
            .unwrap();
    for fd in [a.as_fd(), b.as_fd(), c.as_fd(), adopted.as_fd()] {
        assert!(common::is_cloexec(fd));
        assert_eq!(common::fd_target(fd), "anon_inode:[eventfd]");
    }
    let out = common::run_ok(common::child(
        "eventfds_do_not_leak_into_children",
        "inspect",
        &[],
    ));
    assert_eq!(out, "no eventfd");
    // Keep them open until the child has looked.
    drop((a, b, c, adopted));
}

#[test]
fn is_pollable_with_everything_else() {
    let efd = EventFd::new(0).unwrap();
    let ready = |events| {
        let mut fds = [rustix::event::PollFd::new(&efd, events)];
        rustix::event::poll(&mut fds, Some(&rustix::time::Timespec::default())).unwrap();
        fds[0].revents()
    };
    use rustix::event::PollFlags;
    assert!(!ready(PollFlags::IN).contains(PollFlags::IN));
    assert!(ready(PollFlags::OUT).contains(PollFlags::OUT));
    efd.write(1).unwrap();
    assert!(ready(PollFlags::IN).contains(PollFlags::IN));
    efd.write(MAX_COUNT - 1).unwrap();
    assert!(!ready(PollFlags::OUT).contains(PollFlags::OUT));
}

/// Review regression: every copy of an eventfd shares one `O_NONBLOCK` flag, so an
/// adopted blocking eventfd is made blocking again only when the last ipcx handle of it
/// goes; a clone outliving the original still never blocks in `try_read`.
#[test]
fn a_clone_of_an_adopted_eventfd_stays_non_blocking_until_the_last_handle_goes() {
    let raw = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
    let outside = raw.try_clone().unwrap(); // another holder, outside ipcx
    let adopted = EventFd::try_from(raw).unwrap();
    let clone = adopted.try_clone().unwrap();
    drop(adopted);
    let nonblocking = |fd: &std::os::fd::OwnedFd| {
        rustix::fs::fcntl_getfl(fd)
            .unwrap()
            .contains(rustix::fs::OFlags::NONBLOCK)
    };
    assert!(
        nonblocking(&outside),
        "the clone still needs non-blocking mode"
    );
    assert_eq!(clone.try_read().unwrap_err().kind(), ErrorKind::WouldBlock);
    drop(clone);
    assert!(
        !nonblocking(&outside),
        "the last ipcx handle restored blocking mode"
    );
}
