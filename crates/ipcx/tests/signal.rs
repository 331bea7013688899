//! Signals across real processes: signalfd and masks, the trap of a thread that does not
//! block the signal (reliability 21), sending with `sigqueue` values and through pidfds,
//! handler-style signals through signal-hook, EINTR (18) and close-on-exec (22).
//!
//! Signals sent to a process are only ever sent to child processes started for the
//! purpose: the test harness runs many threads that block nothing, so a process-directed
//! signal to it would take one of them. In-process tests direct their signals at one
//! thread (`raise`, `tgkill`).
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdout, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::signal::{
    SignalFd, SignalMask, SignalPipe, SignalSet, SignalSource, block_in_child, kill,
    send_via_pidfd, signal_name, sigqueue, threads_not_blocking,
};
use libc::{SIGCHLD, SIGKILL, SIGSEGV, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};

fn set(signals: &[i32]) -> SignalSet {
    SignalSet::new(signals).unwrap()
}

fn tid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// Sends `sig` to one thread of this process (so the harness's other threads never see it).
fn tgkill(tid: u32, sig: i32) {
    // SAFETY: tgkill takes plain integers; `tid` is a live thread of this process (the
    // caller keeps it alive until the signal is read).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            tid as libc::pid_t,
            sig as libc::c_int,
        )
    };
    assert_eq!(rc, 0, "tgkill: {}", std::io::Error::last_os_error());
}

/// A pidfd for a child we have not waited for yet (so its PID cannot have been reused).
fn pidfd_of(child: &Child) -> OwnedFd {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap()
}

/// Reads a child's stdout up to its report `want`, returning the reports seen on the way.
fn wait_for_report(stdout: &mut BufReader<ChildStdout>, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "the child ended before reporting {want:?}; it said {seen:?}"
        );
        if let Some(report) = line.trim_end().strip_prefix("@@") {
            if report == want {
                return seen;
            }
            seen.push(report.to_string());
        }
    }
}

/// The rest of a child's reports, to end of file.
fn remaining_reports(stdout: BufReader<ChildStdout>) -> Vec<String> {
    stdout
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| l.strip_prefix("@@").map(str::to_string))
        .collect()
}

/// Spawns a child role with its stdout read line by line.
fn spawn_with_reports(mut cmd: std::process::Command) -> (Child, BufReader<ChildStdout>) {
    let mut child = cmd.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdout)
}

/// A thread spawned before the mask: it does not block `SIGUSR1`. Returns its tid and a
/// sender that ends it.
fn spawn_early_thread() -> (u32, mpsc::Sender<()>) {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("early-thread".into())
        .spawn(move || {
            tid_tx.send(tid()).unwrap();
            let _ = stop_rx.recv_timeout(common::CHILD_LIMIT);
        })
        .unwrap();
    (tid_rx.recv().unwrap(), stop_tx)
}

#[test]
fn a_thread_that_does_not_block_takes_the_signal_and_the_process_dies() {
    if common::role().is_some() {
        let (early, _stop) = spawn_early_thread();
        let usr1 = set(&[SIGUSR1]);
        let _mask = SignalMask::block(&usr1).unwrap();
        // This thread blocks SIGUSR1, so the signalfd is accepted...
        let sfd = SignalFd::new(&usr1).unwrap();
        // ...but the diagnostic names the thread that does not.
        let bad = sfd.threads_not_blocking().unwrap();
        let listed = bad
            .iter()
            .any(|t| t.tid == early && t.name == "early-thread" && t.unblocked == usr1);
        common::say(format!("early thread listed: {listed}"));
        common::say("ready");
        let got = sfd.read_timeout(common::CHILD_LIMIT);
        common::say(format!("the signalfd read {got:?}"));
        std::process::exit(0);
    }
    let (mut child, mut stdout) = spawn_with_reports(common::child(
        "a_thread_that_does_not_block_takes_the_signal_and_the_process_dies",
        "child",
        &[],
    ));
    let before = wait_for_report(&mut stdout, "ready");
    assert_eq!(before, ["early thread listed: true"]);
    // Our own child, not yet waited for: its PID cannot have been reused.
    kill(child.id(), SIGUSR1).unwrap();
    let after = remaining_reports(stdout);
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(SIGUSR1),
        "the child should have died of SIGUSR1 in a thread that did not block it; \
         it exited with {status:?} and said {after:?}"
    );
    assert!(
        after.is_empty(),
        "the signalfd must never see it: {after:?}"
    );
}

#[test]
fn a_handler_in_a_thread_that_does_not_block_steals_the_signal_from_the_signalfd() {
    if common::role().is_some() {
        let ran = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(SIGUSR1, ran.clone()).unwrap();
        let (_early, _stop) = spawn_early_thread();
        let usr1 = set(&[SIGUSR1]);
        let _mask = SignalMask::block(&usr1).unwrap();
        let sfd = SignalFd::new(&usr1).unwrap();
        common::say("ready");
        let start = Instant::now();
        while !ran.load(Ordering::Acquire) && start.elapsed() < common::CHILD_LIMIT {
            std::thread::sleep(Duration::from_millis(2));
        }
        let got = sfd.try_read().map_err(|e| e.kind());
        common::say(format!(
            "handler ran: {}; signalfd: {got:?}",
            ran.load(Ordering::Acquire)
        ));
        std::process::exit(0);
    }
    let (mut child, mut stdout) = spawn_with_reports(common::child(
        "a_handler_in_a_thread_that_does_not_block_steals_the_signal_from_the_signalfd",
        "child",
        &[],
    ));
    wait_for_report(&mut stdout, "ready");
    kill(child.id(), SIGUSR1).unwrap();
    let after = remaining_reports(stdout);
    assert!(child.wait().unwrap().success());
    assert_eq!(after, ["handler ran: true; signalfd: Err(WouldBlock)"]);
}

#[test]
fn blocked_in_every_thread_signals_reach_the_signalfd_with_sender_and_value() {
    let rtmin = libc::SIGRTMIN();
    if common::role().is_some() {
        let all = set(&[SIGUSR1, SIGTERM, rtmin]);
        // The pattern for main: block first (here the parent already blocked the set
        // before this program's first instruction, since the test harness starts its own
        // thread before any test runs), then spawn.
        let _mask = SignalMask::block(&all).unwrap();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let _ = stop_rx.recv_timeout(common::CHILD_LIMIT);
        });
        let sfd = SignalFd::new(&all).unwrap();
        common::say(format!(
            "threads not blocking: {:?}",
            sfd.threads_not_blocking().unwrap()
        ));
        common::say("ready");
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).unwrap();
        let parent = std::os::unix::process::parent_id();
        let uid = rustix::process::getuid().as_raw();
        loop {
            match sfd.try_read() {
                Ok(info) => common::say(format!(
                    "{} {:?} value {} from parent: {}",
                    signal_name(info.signal),
                    info.source(),
                    info.value,
                    info.pid == parent && info.uid == uid
                )),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        drop(stop_tx);
        worker.join().unwrap();
        std::process::exit(0);
    }
    let mut cmd = common::child(
        "blocked_in_every_thread_signals_reach_the_signalfd_with_sender_and_value",
        "child",
        &[],
    );
    block_in_child(&mut cmd, &set(&[SIGUSR1, SIGTERM, rtmin])).unwrap();
    cmd.stdin(Stdio::piped());
    let (mut child, mut stdout) = spawn_with_reports(cmd);
    let before = wait_for_report(&mut stdout, "ready");
    assert_eq!(before, ["threads not blocking: []"]);

    let pid = child.id();
    // A standard signal sent twice before it is read is merged: only the first value.
    sigqueue(pid, SIGUSR1, 7).unwrap();
    sigqueue(pid, SIGUSR1, 8).unwrap();
    // Real-time signals queue, each with its value, in order.
    sigqueue(pid, rtmin, 1).unwrap();
    sigqueue(pid, rtmin, 2).unwrap();
    // Through a pidfd: it can only ever reach this child.
    send_via_pidfd(pidfd_of(&child), SIGTERM).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();

    let after = remaining_reports(stdout);
    let out = common::finish(child);
    assert!(out.status.success(), "{out:?} {after:?}");
    assert_eq!(
        after,
        [
            "SIGUSR1 Queue value 7 from parent: true",
            "SIGTERM Kill value 0 from parent: true",
            "SIGRTMIN Queue value 1 from parent: true",
            "SIGRTMIN Queue value 2 from parent: true",
        ]
    );
}

#[test]
fn threads_not_blocking_names_the_threads_that_would_take_the_signal() {
    let usr2 = set(&[SIGUSR2]);
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let stop_rx = Arc::new(std::sync::Mutex::new(stop_rx));
    let mut threads = Vec::new();
    for (name, block) in [("blocks-usr2", true), ("misses-usr2", false)] {
        let (tx, stop_rx) = (tx.clone(), stop_rx.clone());
        threads.push(
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let _mask = block.then(|| SignalMask::block(&set(&[SIGUSR2])).unwrap());
                    // A thread spawned here inherits this thread's mask.
                    let (child_tx, child_rx) = mpsc::channel();
                    let inner_stop = stop_rx.clone();
                    let inherited = std::thread::spawn(move || {
                        child_tx.send(tid()).unwrap();
                        let _ = inner_stop
                            .lock()
                            .unwrap()
                            .recv_timeout(Duration::from_secs(30));
                    });
                    tx.send((name, tid(), child_rx.recv().unwrap())).unwrap();
                    let _ = stop_rx
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(30));
                    inherited.join().unwrap();
                })
                .unwrap(),
        );
    }
    let mut tids = std::collections::HashMap::new();
    for _ in 0..2 {
        let (name, own, inherited) = rx.recv().unwrap();
        tids.insert(name, (own, inherited));
    }
    let bad = threads_not_blocking(&usr2).unwrap();
    let listed = |tid: u32| bad.iter().find(|t| t.tid == tid);
    let (blocks, blocks_child) = tids["blocks-usr2"];
    let (misses, misses_child) = tids["misses-usr2"];
    assert!(
        listed(blocks).is_none() && listed(blocks_child).is_none(),
        "{bad:?}"
    );
    let entry = listed(misses).unwrap();
    assert_eq!(
        (entry.name.as_str(), entry.unblocked),
        ("misses-usr2", usr2)
    );
    assert!(
        entry.to_string().contains("does not block {SIGUSR2}"),
        "{entry}"
    );
    assert!(listed(misses_child).is_some());
    drop(stop_tx);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn signalfd_refuses_what_it_could_never_read() {
    // A fresh thread, so the mask is known: it blocks nothing.
    std::thread::spawn(|| {
        let err = SignalFd::new(&set(&[SIGUSR2, SIGWINCH])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let msg = err.to_string();
        assert!(
            msg.starts_with("signalfd \"{SIGUSR2, SIGWINCH}\": invalid argument"),
            "{msg}"
        );
        assert!(msg.contains("does not block {SIGUSR2, SIGWINCH}"), "{msg}");
        assert!(msg.contains("SignalMask::block"), "{msg}");

        let _mask = SignalMask::block(&set(&[SIGUSR2])).unwrap();
        let err = SignalFd::new(&set(&[SIGUSR2, SIGWINCH])).unwrap_err();
        assert!(
            err.to_string().contains("does not block {SIGWINCH}"),
            "{err}"
        );

        let err = SignalFd::new(&SignalSet::empty()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("empty"), "{err}");

        let err = SignalFd::new(&set(&[SIGKILL])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains("SIGKILL cannot be blocked"),
            "{err}"
        );

        let mut sfd = SignalFd::new(&set(&[SIGUSR2])).unwrap();
        let err = sfd.set_signals(&set(&[SIGWINCH])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(sfd.signals(), set(&[SIGUSR2]));

        for bad in [0, -5, 32, 65] {
            let err = SignalSet::new(&[bad]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(
                err.to_string()
                    .starts_with(&format!("sigaddset \"signal {bad}\": invalid argument")),
                "{err}"
            );
        }
    })
    .join()
    .unwrap();
}

#[test]
fn signalfd_reads_a_signal_sent_to_its_thread_and_follows_set_signals() {
    std::thread::spawn(|| {
        let _mask = SignalMask::block(&set(&[SIGUSR2, SIGWINCH])).unwrap();
        let mut sfd = SignalFd::new(&set(&[SIGUSR2])).unwrap();
        assert_eq!(sfd.try_read().unwrap_err().kind(), ErrorKind::WouldBlock);
        signal_hook::low_level::raise(SIGUSR2).unwrap();
        let info = sfd.read_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(info.signal, SIGUSR2);
        assert_eq!(info.source(), SignalSource::Thread);
        assert_eq!(info.pid, std::process::id());
        assert!(info.to_string().starts_with("SIGUSR2 from pid"), "{info}");

        // SIGWINCH is blocked but not in the set: it stays pending, unread.
        signal_hook::low_level::raise(SIGWINCH).unwrap();
        assert_eq!(sfd.try_read().unwrap_err().kind(), ErrorKind::WouldBlock);
        assert!(ipcx::signal::pending().contains(SIGWINCH));
        sfd.set_signals(&set(&[SIGUSR2, SIGWINCH])).unwrap();
        assert_eq!(sfd.try_read().unwrap().signal, SIGWINCH);
        assert!(ipcx::signal::pending().is_empty());
        let start = Instant::now();
        let err = sfd.read_timeout(Duration::from_millis(30)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(30));
    })
    .join()
    .unwrap();
}

#[test]
fn eintr_is_retried_with_the_remaining_time() {
    // The storm interrupts this thread with SIGUSR1 (which has a handler); the signalfd
    // reads SIGUSR2.
    let _mask = SignalMask::block(&set(&[SIGUSR2])).unwrap();
    let sfd = SignalFd::new(&set(&[SIGUSR2])).unwrap();

    let me = tid();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        tgkill(me, SIGUSR2);
    });
    let (got, signals) = common::under_signal_storm(|| sfd.read_timeout(Duration::from_secs(20)));
    sender.join().unwrap();
    assert_eq!(got.unwrap().signal, SIGUSR2);
    assert!(
        signals > 0,
        "no signal was delivered, so EINTR was not provoked"
    );

    let start = Instant::now();
    let (err, signals) =
        common::under_signal_storm(|| sfd.read_timeout(Duration::from_millis(150)));
    assert_eq!(err.unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(signals > 0);
    assert!(start.elapsed() >= Duration::from_millis(150));

    // The signal pipe's wait too (on a signal no other test raises).
    let pipe = SignalPipe::register(&[libc::SIGRTMIN() + 3]).unwrap();
    let start = Instant::now();
    let (err, signals) =
        common::under_signal_storm(|| pipe.read_timeout(Duration::from_millis(150)));
    assert_eq!(err.unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(signals > 0);
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[test]
fn signal_pipe_reports_which_signals_arrived_and_coalesces() {
    let pipe = SignalPipe::register(&[SIGUSR2, SIGWINCH]).unwrap();
    assert_eq!(pipe.try_read().unwrap_err().kind(), ErrorKind::WouldBlock);
    signal_hook::low_level::raise(SIGUSR2).unwrap();
    signal_hook::low_level::raise(SIGUSR2).unwrap();
    signal_hook::low_level::raise(SIGWINCH).unwrap();
    common::wait_readable(pipe.as_fd());
    // Three deliveries, two kinds: one report naming both.
    assert_eq!(pipe.try_read().unwrap(), set(&[SIGUSR2, SIGWINCH]));
    assert_eq!(pipe.try_read().unwrap_err().kind(), ErrorKind::WouldBlock);

    for bad in [&[SIGKILL][..], &[SIGSEGV], &[], &[0]] {
        let err = SignalPipe::register(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}: {err}");
    }
    let err = SignalPipe::register(&[SIGSEGV]).unwrap_err();
    assert!(
        err.to_string().starts_with("sigaction \"SIGSEGV\""),
        "{err}"
    );
}

#[test]
fn signal_pipe_in_a_child_wakes_on_sigterm_and_sigchld() {
    if common::role().is_some() {
        let pipe = SignalPipe::register(&[SIGTERM, SIGCHLD]).unwrap();
        common::say("ready");
        let got = pipe.read_timeout(common::CHILD_LIMIT).unwrap();
        common::say(format!("got {got}"));
        // A child of our own exits: SIGCHLD.
        let mut grandchild = std::process::Command::new("true").spawn().unwrap();
        let got = pipe.read_timeout(common::CHILD_LIMIT).unwrap();
        assert!(grandchild.wait().unwrap().success());
        common::say(format!("got {got}"));
        std::process::exit(0);
    }
    let (mut child, mut stdout) = spawn_with_reports(common::child(
        "signal_pipe_in_a_child_wakes_on_sigterm_and_sigchld",
        "child",
        &[],
    ));
    wait_for_report(&mut stdout, "ready");
    send_via_pidfd(pidfd_of(&child), SIGTERM).unwrap();
    let after = remaining_reports(stdout);
    assert!(child.wait().unwrap().success(), "{after:?}");
    assert_eq!(after, ["got {SIGTERM}", "got {SIGCHLD}"]);
}

#[test]
fn sending_to_no_process_or_a_bad_target_is_a_clear_error() {
    let err = kill(0, SIGTERM).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("process group"), "{err}");
    let err = kill(std::process::id(), 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("pidfd"), "{err}");
    let err = sigqueue(u32::MAX, SIGTERM, 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    // A PID above pid_max can belong to no process.
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for err in [
        kill(pid_max + 1, SIGWINCH).unwrap_err(),
        sigqueue(pid_max + 1, SIGWINCH, 1).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::PeerGone);
        assert!(
            err.to_string()
                .contains(&format!("\"pid {}\": peer gone (ESRCH)", pid_max + 1)),
            "{err}"
        );
    }

    // Not a pidfd.
    let efd = ipcx::eventfd::EventFd::new(0).unwrap();
    let err = send_via_pidfd(&efd, SIGWINCH).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("not a pidfd"), "{err}");
}

#[test]
fn a_pidfd_never_signals_a_process_that_is_gone() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pidfd = pidfd_of(&child);
    assert!(child.wait().unwrap().success());
    // The PID may already be someone else's; the pidfd still names the exited child.
    let err = send_via_pidfd(&pidfd, SIGTERM).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone);
    let msg = err.to_string();
    assert!(
        msg.starts_with("pidfd_send_signal \"pidfd\": peer gone: "),
        "{msg}"
    );
    assert!(msg.contains("has exited"), "{msg}");
}

#[test]
fn signalling_another_users_process_is_permission_denied() {
    if common::role().is_some() {
        let parent = std::os::unix::process::parent_id();
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(parent as i32).unwrap(),
            rustix::process::PidfdFlags::empty(),
        )
        .unwrap();
        common::drop_root();
        // SIGWINCH: harmless to the parent should the check ever let it through.
        for err in [
            kill(parent, SIGWINCH).unwrap_err(),
            sigqueue(parent, SIGWINCH, 1).unwrap_err(),
            send_via_pidfd(&pidfd, SIGWINCH).unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
            assert!(err.to_string().contains("(EPERM)"), "{err}");
            assert!(err.to_string().contains("another user"), "{err}");
        }
        common::say("denied x3");
        std::process::exit(0);
    }
    if !common::is_root() {
        println!("SKIPPED: needs root to drop to another user in a child");
        return;
    }
    let out = common::run_ok(common::child(
        "signalling_another_users_process_is_permission_denied",
        "child",
        &[],
    ));
    assert_eq!(out, "denied x3");
}

#[test]
fn a_full_signal_queue_is_limit_reached_naming_rlimit_sigpending() {
    let rtmin = libc::SIGRTMIN();
    if common::role().is_some() {
        let rt = set(&[rtmin]);
        let sfd = SignalFd::new(&rt).unwrap();
        let limit = rustix::process::getrlimit(rustix::process::Resource::Sigpending);
        rustix::process::setrlimit(
            rustix::process::Resource::Sigpending,
            rustix::process::Rlimit {
                current: Some(1),
                maximum: limit.maximum,
            },
        )
        .unwrap();
        let me = std::process::id();
        let mut sent = 0;
        let err = loop {
            match sigqueue(me, rtmin, sent) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 10_000, "RLIMIT_SIGPENDING of 1 was not enforced");
        };
        assert_eq!(err.kind(), ErrorKind::LimitReached, "{err}");
        common::say(format!("{err}"));
        // The queued ones are still there, in order.
        for value in 0..sent {
            assert_eq!(sfd.try_read().unwrap().value, value);
        }
        std::process::exit(0);
    }
    let mut cmd = common::child(
        "a_full_signal_queue_is_limit_reached_naming_rlimit_sigpending",
        "child",
        &[],
    );
    block_in_child(&mut cmd, &set(&[rtmin])).unwrap();
    let out = common::run_ok(cmd);
    assert!(out.starts_with("sigqueue \"pid "), "{out}");
    assert!(out.contains("limit reached (EAGAIN)"), "{out}");
    assert!(
        out.contains("RLIMIT_SIGPENDING allows, SigQ queued/limit now "),
        "{out}"
    );
}

#[test]
fn signal_descriptors_do_not_leak_into_children() {
    if common::role().is_some() {
        common::say(common::assert_not_inherited(&common::arg("TARGETS")));
        std::process::exit(0);
    }
    let _mask = SignalMask::block(&set(&[SIGUSR2])).unwrap();
    let sfd = SignalFd::new(&set(&[SIGUSR2])).unwrap();
    let pipe = SignalPipe::register(&[libc::SIGRTMIN() + 4]).unwrap();
    for fd in [sfd.as_fd(), pipe.as_fd()] {
        assert!(common::is_cloexec(fd));
    }
    assert_eq!(common::fd_target(sfd.as_fd()), "anon_inode:[signalfd]");
    let targets = [
        common::fd_target(sfd.as_fd()),
        common::fd_target(pipe.as_fd()),
    ]
    .join(",");
    let out = common::run_ok(common::child(
        "signal_descriptors_do_not_leak_into_children",
        "inspect",
        &[("TARGETS", &targets)],
    ));
    assert_eq!(out, "2");
}
