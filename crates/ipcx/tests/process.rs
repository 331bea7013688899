//! Process watch across real processes: pidfds of children and of unrelated processes,
//! the PID-reuse race, signals through pidfds, exit statuses, EINTR and descriptor leaks.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::process::{ExitStatus, Pidfd, ProcessId};
use ipcx::unix::UnixSocketExt;

/// The next line a child reported with `common::say`, skipping libtest's own lines.
fn next_report(child: &mut Child) -> String {
    for _ in 0..100 {
        let line = common::read_line(child);
        if let Some(report) = line.strip_prefix("@@") {
            return report.to_string();
        }
    }
    panic!("the child reported nothing");
}

/// Child role: runs until its stdin reaches end of file, then exits with `code`.
fn exit_at_eof(code: i32) -> ! {
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    std::process::exit(code);
}

/// Child role: sleeps until killed (bounded, so a failed test leaves nothing behind).
fn sleep_until_killed() -> ! {
    std::thread::sleep(common::CHILD_LIMIT);
    std::process::exit(1);
}

/// A child playing `role` of `test`, with its stdin piped.
fn spawn(test: &str, role: &str) -> Child {
    let mut cmd = common::child(test, role, &[]);
    cmd.stdin(Stdio::piped());
    cmd.spawn().unwrap()
}

#[test]
fn child_exit_makes_the_pidfd_readable_and_leaves_the_status_to_child_wait() {
    if common::role().is_some() {
        exit_at_eof(7);
    }
    let mut child = spawn(
        "child_exit_makes_the_pidfd_readable_and_leaves_the_status_to_child_wait",
        "exiter",
    );
    let pidfd = Pidfd::from_child(&child).unwrap();
    assert_eq!(pidfd.pid(), child.id());
    assert!(!pidfd.has_exited());

    let running = pidfd.try_wait_exit().unwrap_err();
    assert_eq!(running.kind(), ErrorKind::WouldBlock);
    assert!(running.to_string().contains("still running"), "{running}");
    let no_status = pidfd.try_exit_status().unwrap_err();
    assert_eq!(no_status.kind(), ErrorKind::WouldBlock);
    let start = Instant::now();
    let timed = pidfd
        .wait_exit_timeout(Duration::from_millis(30))
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(timed.kind(), ErrorKind::TimedOut);
    assert!(
        timed.to_string().contains(&format!("pid {}", child.id()))
            && timed.to_string().contains("still running after 30ms"),
        "{timed}"
    );

    drop(child.stdin.take()); // end of file: the child exits
    pidfd.wait_exit_timeout(common::CHILD_LIMIT).unwrap();
    assert!(pidfd.has_exited());
    pidfd.try_wait_exit().unwrap();
    assert_eq!(pidfd.exit_status().unwrap(), ExitStatus::Exited(7));
    // Reading the status did not reap the child: it can be read again, and Child::wait
    // (inside finish) still gets it.
    assert_eq!(pidfd.try_exit_status().unwrap(), ExitStatus::Exited(7));
    let out = common::finish(child);
    assert_eq!(out.status.code(), Some(7));

    // Once reaped, the status is gone.
    let reaped = pidfd.try_exit_status().unwrap_err();
    assert_eq!(reaped.kind(), ErrorKind::InvalidInput);
    assert_eq!(reaped.errno(), Some(libc::ECHILD));
    assert!(
        reaped.to_string().starts_with("waitid \"pid ")
            && reaped.to_string().contains("not an unreaped child"),
        "{reaped}"
    );
}

#[test]
fn an_unrelated_process_is_watched_and_signalled_by_its_process_id() {
    const TEST: &str = "an_unrelated_process_is_watched_and_signalled_by_its_process_id";
    match common::role().as_deref() {
        Some("middle") => {
            // Start a grandchild of the test process, tell the test who it is, and reap
            // it when it dies: the test process is not its parent.
            let grandchild = common::child(TEST, "sleeper", &[]).spawn().unwrap();
            common::say(ProcessId::of(grandchild.id()).unwrap());
            let out = common::finish(grandchild);
            use std::os::unix::process::ExitStatusExt;
            common::say(format!(
                "grandchild ended by signal {:?}",
                out.status.signal()
            ));
            std::process::exit(0);
        }
        Some(_) => sleep_until_killed(),
        None => {}
    }
    let mut middle = common::child(TEST, "middle", &[]).spawn().unwrap();
    let id: ProcessId = next_report(&mut middle).parse().unwrap();
    assert_ne!(id.pid(), middle.id());

    let pidfd = Pidfd::open_checked(&id).unwrap();
    assert_eq!(pidfd.pid(), id.pid());
    assert!(common::is_cloexec(pidfd.as_fd()));
    assert!(!pidfd.has_exited());

    // The same pid with another start time is another process: refused.
    let forged = ProcessId::from_parts(id.pid(), id.start_time() + 1);
    let refused = Pidfd::open_checked(&forged).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::PeerGone);
    assert!(
        refused.to_string().contains("was reused")
            && refused.to_string().contains(&forged.to_string()),
        "{refused}"
    );

    // Not our child: its status is refused at once, without waiting for it to exit.
    let not_child = pidfd.exit_status().unwrap_err();
    assert_eq!(not_child.kind(), ErrorKind::InvalidInput);
    assert!(
        not_child.to_string().contains("only its parent"),
        "{not_child}"
    );

    pidfd.send_signal(0).unwrap(); // alive, and ours to signal
    pidfd.send_signal(libc::SIGTERM).unwrap();
    pidfd.wait_exit_timeout(common::CHILD_LIMIT).unwrap();
    let after = pidfd.send_signal(libc::SIGTERM).unwrap_err();
    assert_eq!(after.kind(), ErrorKind::PeerGone);
    assert_eq!(
        after.errno(),
        None,
        "ipcx saw the exit itself; nothing reached the kernel"
    );

    let out = common::finish(middle);
    assert!(out.status.success(), "{out:?}");
    assert!(
        common::reports(&out).contains(&format!(
            "grandchild ended by signal Some({})",
            libc::SIGTERM
        )),
        "{}",
        common::reports(&out)
    );
    // Its identity no longer opens anything.
    let gone = Pidfd::open_checked(&id).unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::PeerGone);
}

#[test]
fn a_process_id_of_an_exited_process_is_refused_before_and_after_reaping() {
    if common::role().is_some() {
        std::process::exit(0);
    }
    let child = spawn(
        "a_process_id_of_an_exited_process_is_refused_before_and_after_reaping",
        "quick",
    );
    // Taken while the child runs or is a zombie: either way it holds its pid.
    let id = ProcessId::of(child.id()).unwrap();
    let pidfd = Pidfd::from_child(&child).unwrap();
    pidfd.wait_exit_timeout(common::CHILD_LIMIT).unwrap();

    let zombie = Pidfd::open_checked(&id).unwrap_err();
    assert_eq!(zombie.kind(), ErrorKind::PeerGone);
    assert!(
        zombie.to_string().contains("zombie") && zombie.to_string().contains(&id.to_string()),
        "{zombie}"
    );

    assert!(common::finish(child).status.success()); // reaped: the pid is free for reuse
    let reaped = Pidfd::open_checked(&id).unwrap_err();
    assert_eq!(reaped.kind(), ErrorKind::PeerGone);
    assert!(reaped.to_string().contains("has exited"), "{reaped}");
    // ProcessId::of the bare pid finds nothing, or (if the pid was reused) someone else.
    match ProcessId::of(id.pid()) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::PeerGone, "{e}"),
        Ok(other) => assert_ne!(other, id),
    }
}

#[test]
fn from_child_refuses_a_child_that_was_already_reaped() {
    if common::role().is_some() {
        std::process::exit(0);
    }
    let mut child = spawn(
        "from_child_refuses_a_child_that_was_already_reaped",
        "quick",
    );
    child.wait().unwrap();
    let e = Pidfd::from_child(&child).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PeerGone);
    assert!(e.to_string().contains("already reaped"), "{e}");
}

#[test]
fn a_signal_after_exit_is_peer_gone_and_never_sent() {
    if common::role().is_some() {
        std::process::exit(0);
    }
    let child = spawn("a_signal_after_exit_is_peer_gone_and_never_sent", "quick");
    let pidfd = Pidfd::from_child(&child).unwrap();
    pidfd.wait_exit_timeout(common::CHILD_LIMIT).unwrap();
    // A zombie: kill(2) would "succeed" and do nothing; the pidfd says it is gone.
    let zombie = pidfd.kill().unwrap_err();
    assert_eq!(zombie.kind(), ErrorKind::PeerGone);
    assert_eq!(zombie.errno(), None, "refused before the kernel call");
    assert!(
        zombie
            .to_string()
            .starts_with(&format!("pidfd_send_signal \"pid {}\"", child.id()))
            && zombie.to_string().contains("has exited"),
        "{zombie}"
    );
    assert!(common::finish(child).status.success());
    let reaped = pidfd.send_signal(libc::SIGTERM).unwrap_err();
    assert_eq!(reaped.kind(), ErrorKind::PeerGone);
}

#[test]
fn a_child_killed_by_sigkill_reports_the_signal() {
    if common::role().is_some() {
        sleep_until_killed();
    }
    let child = spawn("a_child_killed_by_sigkill_reports_the_signal", "sleeper");
    let pidfd = Pidfd::from_child(&child).unwrap();
    pidfd.kill().unwrap();
    let status = pidfd.exit_status_timeout(common::CHILD_LIMIT).unwrap();
    assert_eq!(
        status,
        ExitStatus::Signaled {
            signal: libc::SIGKILL,
            core_dumped: false
        }
    );
    assert_eq!(status.to_string(), "killed by signal 9 (SIGKILL)");
    assert!(!status.success());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(common::finish(child).status.signal(), Some(libc::SIGKILL));
}

#[test]
fn waits_retry_eintr_with_the_remaining_time() {
    if common::role().is_some() {
        std::thread::sleep(Duration::from_millis(300));
        std::process::exit(3);
    }
    let child = spawn("waits_retry_eintr_with_the_remaining_time", "late");
    let pidfd = Pidfd::from_child(&child).unwrap();
    let (status, signals) =
        common::under_signal_storm(|| pidfd.exit_status_timeout(common::CHILD_LIMIT));
    assert_eq!(status.unwrap(), ExitStatus::Exited(3));
    assert!(signals > 0, "the storm interrupted nothing");
    assert_eq!(common::finish(child).status.code(), Some(3));
}

#[test]
fn a_timed_wait_under_a_signal_storm_lasts_its_full_time() {
    if common::role().is_some() {
        sleep_until_killed();
    }
    let child = spawn(
        "a_timed_wait_under_a_signal_storm_lasts_its_full_time",
        "sleeper",
    );
    let pidfd = Pidfd::from_child(&child).unwrap();
    let limit = Duration::from_millis(200);
    let start = Instant::now();
    let (result, signals) = common::under_signal_storm(|| pidfd.wait_exit_timeout(limit));
    assert!(start.elapsed() >= limit);
    assert_eq!(result.unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(signals > 0, "the storm interrupted nothing");
    pidfd.kill().unwrap();
    common::finish(child);
}

#[test]
fn a_pidfd_does_not_leak_into_a_child() {
    if common::role().as_deref() == Some("inspector") {
        let fd = common::arg("FD");
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "closed".into());
        common::say(format!("fd {fd}: {target}"));
        std::process::exit(0);
    }
    if common::role().is_some() {
        exit_at_eof(0);
    }
    let watched = spawn("a_pidfd_does_not_leak_into_a_child", "exiter");
    let pidfd = Pidfd::from_child(&watched).unwrap();
    assert!(common::is_cloexec(pidfd.as_fd()));
    assert!(common::fd_target(pidfd.as_fd()).contains("pidfd"));
    let fd = pidfd.as_fd().as_raw_fd().to_string();
    let report = common::run_ok(common::child(
        "a_pidfd_does_not_leak_into_a_child",
        "inspector",
        &[("FD", &fd)],
    ));
    assert!(
        report.starts_with(&format!("fd {fd}: ")) && !report.contains("pidfd"),
        "{report}"
    );
    drop(pidfd);
    let mut watched = watched;
    drop(watched.stdin.take()); // end of file: it exits
    assert!(common::finish(watched).status.success());
}

#[test]
fn bad_pids_and_signals_are_refused_before_any_system_call() {
    for pid in [0, u32::MAX, 1 << 31] {
        let e = Pidfd::open(pid).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.errno(), None);
        assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");
        assert_eq!(
            ProcessId::of(pid).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
    // A thread's id is not a process id.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        tx.send(rustix::thread::gettid().as_raw_nonzero().get() as u32)
            .unwrap();
        let _ = done_rx.recv();
    });
    let tid = rx.recv().unwrap();
    let e = Pidfd::open(tid).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("names a thread"), "{e}");
    drop(done_tx);
    thread.join().unwrap();

    let me = Pidfd::open_checked(&ProcessId::current().unwrap()).unwrap();
    for sig in [-1, 32, libc::SIGRTMAX() + 1] {
        let e = me.send_signal(sig).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "signal {sig}");
        assert!(e.to_string().contains("SIGRTMIN"), "{e}");
    }
    me.send_signal(0).unwrap();
}

#[test]
fn the_current_process_id_matches_what_a_peer_reads() {
    if common::role().is_some() {
        common::say(ProcessId::current().unwrap());
        std::process::exit(0);
    }
    let mut cmd = common::child(
        "the_current_process_id_matches_what_a_peer_reads",
        "me",
        &[],
    );
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let told: ProcessId = next_report(&mut child).parse().unwrap();
    let pidfd = Pidfd::from_child(&child).unwrap(); // before reaping: the pid is still its
    assert_eq!(told.pid(), child.id());
    // Read here while the child is alive or a zombie: the same start time.
    assert_eq!(ProcessId::of(child.id()).unwrap(), told);
    pidfd.wait_exit_timeout(common::CHILD_LIMIT).unwrap();
    assert!(common::finish(child).status.success());
}

#[test]
fn signalling_another_users_process_is_permission_denied() {
    if common::role().is_some() {
        let pid1 = Pidfd::open(1).unwrap();
        common::drop_root();
        let owner = std::fs::read_to_string("/proc/1/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok())
            });
        if owner == Some(rustix::process::geteuid().as_raw()) || owner.is_none() {
            common::say("SKIPPED: pid 1 belongs to this user");
            std::process::exit(0);
        }
        let e = pid1.send_signal(0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("CAP_KILL"), "{e}");
        common::say("refused");
        std::process::exit(0);
    }
    let report = common::run_ok(common::child(
        "signalling_another_users_process_is_permission_denied",
        "unprivileged",
        &[],
    ));
    println!("{report}");
    assert!(
        report == "refused" || report.starts_with("SKIPPED"),
        "{report}"
    );
}

#[test]
fn a_socket_peers_pidfd_watches_the_process_that_connected() {
    if common::role().is_some() {
        let _conn = UnixStream::connect(common::arg("PATH")).unwrap();
        exit_at_eof(0);
    }
    let dir = common::tempdir();
    let path = dir.path().join("s");
    let listener = UnixListener::bind(&path).unwrap();
    let mut cmd = common::child(
        "a_socket_peers_pidfd_watches_the_process_that_connected",
        "client",
        &[("PATH", path.to_str().unwrap())],
    );
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let (conn, _) = listener.accept().unwrap();
    let raw = match conn.peer_pidfd() {
        Ok(fd) => fd,
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            println!("SKIPPED: {e}");
            drop(child.stdin.take());
            common::finish(child);
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let pidfd = Pidfd::from_fd(raw).unwrap();
    assert_eq!(pidfd.pid(), child.id());
    assert!(!pidfd.has_exited());
    child.stdin.take().unwrap().write_all(b"bye").unwrap(); // then EOF: it exits
    pidfd.wait_exit_timeout(common::CHILD_LIMIT).unwrap();
    assert_eq!(pidfd.exit_status().unwrap(), ExitStatus::Exited(0));
    common::finish(child);

    // Not a pidfd at all.
    let (r, _w) = ipcx::pipe::pipe().unwrap();
    let e = Pidfd::from_fd(OwnedFd::from(r)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("not a pidfd"), "{e}");
}
