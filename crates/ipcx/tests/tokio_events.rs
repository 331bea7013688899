//! The tokio wrappers for eventfds, signals and process exits, across real processes:
//! every wait is bounded, and a future dropped before it completes loses nothing.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use ipcx::eventfd::EventFd;
use ipcx::process::{ExitStatus, Pidfd};
use ipcx::signal::{SignalFd, SignalMask, SignalPipe, SignalSet, block_in_child, sigqueue};
use ipcx::tokio::{AsyncEventFd, AsyncPidfd, AsyncSignalFd, AsyncSignalPipe};
use tokio::time::timeout;

/// A wait that is expected to run out: nothing can arrive during it.
const SHORT: Duration = Duration::from_millis(10);

/// Waits until the child reports "ready" (libtest prints its own lines first).
fn wait_ready(child: &mut std::process::Child) {
    loop {
        let line = common::read_line(child);
        if line == "@@ready" {
            return;
        }
        assert!(
            line.is_empty() || !line.starts_with("@@"),
            "unexpected report {line:?}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited before it was ready"
        );
    }
}

/// A child's single-threaded runtime.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[tokio::test]
async fn eventfd_counts_from_a_child_and_a_dropped_read_loses_nothing() {
    if common::role().is_some() {
        let events =
            EventFd::try_from(std::io::stdin().as_fd().try_clone_to_owned().unwrap()).unwrap();
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(20));
            events.write(1).unwrap();
        }
        return;
    }
    let events = EventFd::new(0).unwrap();
    let theirs = OwnedFd::from(events.try_clone().unwrap());
    let events = AsyncEventFd::new(events).unwrap();
    // Nothing yet: a read that runs out of time is dropped, taking nothing.
    assert!(timeout(SHORT, events.read()).await.is_err());
    let mut cmd = common::child(
        "eventfd_counts_from_a_child_and_a_dropped_read_loses_nothing",
        "writer",
        &[],
    );
    cmd.stdin(Stdio::from(theirs));
    let child = cmd.spawn().unwrap();
    let mut total = 0;
    let start = std::time::Instant::now();
    while total < 5 {
        assert!(
            start.elapsed() < common::CHILD_LIMIT,
            "only {total} of 5 counted"
        );
        // Reads that time out between the child's writes are dropped: no count is lost.
        if let Ok(n) = timeout(SHORT, events.read()).await {
            total += n.unwrap();
        }
    }
    assert_eq!(total, 5);
    let out = common::finish(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    events.write(7).await.unwrap();
    assert_eq!(events.get_ref().try_read().unwrap(), 7);
}

#[test]
fn signalfd_stream_receives_queued_values_in_a_child() {
    if common::role().is_some() {
        // `block_in_child` blocked the signals before this process's first thread.
        let set = SignalSet::new(&[libc::SIGUSR1, libc::SIGUSR2]).unwrap();
        let signals = SignalFd::new(&set).unwrap();
        runtime().block_on(async {
            let signals = AsyncSignalFd::new(signals).unwrap();
            common::say("ready");
            for _ in 0..2 {
                let info = timeout(common::CHILD_LIMIT, signals.recv())
                    .await
                    .unwrap()
                    .unwrap();
                common::say(format!("{} {}", info.signal, info.value));
            }
        });
        return;
    }
    let set = SignalSet::new(&[libc::SIGUSR1, libc::SIGUSR2]).unwrap();
    let mut cmd = common::child(
        "signalfd_stream_receives_queued_values_in_a_child",
        "receiver",
        &[],
    );
    block_in_child(&mut cmd, &set).unwrap();
    let mut child = cmd.spawn().unwrap();
    wait_ready(&mut child);
    sigqueue(child.id(), libc::SIGUSR1, 11).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    sigqueue(child.id(), libc::SIGUSR2, 22).unwrap();
    let out = common::finish(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        common::reports(&out),
        format!("{} 11\n{} 22", libc::SIGUSR1, libc::SIGUSR2)
    );
}

#[test]
fn signal_pipe_stream_wakes_on_a_handler_style_signal() {
    if common::role().is_some() {
        let pipe = SignalPipe::register(&[libc::SIGUSR2]).unwrap();
        runtime().block_on(async {
            let pipe = AsyncSignalPipe::new(pipe).unwrap();
            common::say("ready");
            let set = timeout(common::CHILD_LIMIT, pipe.recv())
                .await
                .unwrap()
                .unwrap();
            common::say(set.contains(libc::SIGUSR2));
        });
        return;
    }
    let mut child = common::child(
        "signal_pipe_stream_wakes_on_a_handler_style_signal",
        "waiter",
        &[],
    )
    .spawn()
    .unwrap();
    wait_ready(&mut child);
    let pidfd = Pidfd::from_child(&child).unwrap();
    pidfd.send_signal(libc::SIGUSR2).unwrap();
    let out = common::finish(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(common::reports(&out), "true");
}

#[tokio::test]
async fn pidfd_exit_is_awaited_and_the_status_read_without_reaping() {
    if common::role().is_some() {
        std::thread::sleep(Duration::from_millis(100));
        std::process::exit(3);
    }
    let mut child = common::child(
        "pidfd_exit_is_awaited_and_the_status_read_without_reaping",
        "exiter",
        &[],
    )
    .spawn()
    .unwrap();
    let pidfd = AsyncPidfd::new(Pidfd::from_child(&child).unwrap()).unwrap();
    // Still running: a wait that runs out is dropped harmlessly.
    assert!(timeout(SHORT, pidfd.exited()).await.is_err());
    timeout(common::CHILD_LIMIT, pidfd.exited())
        .await
        .unwrap()
        .unwrap();
    let status = pidfd.exit_status().await.unwrap();
    assert_eq!(status, ExitStatus::Exited(3));
    // Not reaped by ipcx: std still collects the child.
    assert_eq!(child.wait().unwrap().code(), Some(3));
}

#[tokio::test]
async fn signal_mask_guard_and_signalfd_registration_outside_threads_is_refused() {
    // SignalFd refuses a set the calling thread does not block, before any async use.
    let set = SignalSet::new(&[libc::SIGWINCH]).unwrap();
    let err = SignalFd::new(&set).unwrap_err();
    assert_eq!(err.kind(), ipcx::ErrorKind::InvalidInput, "{err}");
    let _mask = SignalMask::block(&set).unwrap();
    let signals = AsyncSignalFd::new(SignalFd::new(&set).unwrap()).unwrap();
    assert!(timeout(SHORT, signals.recv()).await.is_err());
}

#[test]
fn signalfd_on_a_multi_thread_runtime_needs_the_mask_before_the_workers() {
    // The workers inherit the mask of the thread that starts them: blocked before the
    // runtime exists, a process-directed signal reaches the signalfd (and a recv dropped
    // by a timeout before it arrives loses nothing); started first, the workers do not
    // block it and `threads_not_blocking` names them.
    match common::role().as_deref() {
        Some("blocked-first") => {
            let set = SignalSet::new(&[libc::SIGUSR1]).unwrap();
            let signals = SignalFd::new(&set).unwrap();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let signals = AsyncSignalFd::new(signals).unwrap();
                assert!(timeout(SHORT, signals.recv()).await.is_err(), "nothing yet");
                common::say("ready");
                let info = timeout(common::CHILD_LIMIT, signals.recv())
                    .await
                    .unwrap()
                    .unwrap();
                common::say(format!("value {}", info.value));
            });
            return;
        }
        Some("runtime-first") => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ipcx-worker")
                .enable_all()
                .build()
                .unwrap();
            // tokio starts its workers in the background: wait until both exist.
            let start = std::time::Instant::now();
            while worker_threads() < 2 {
                assert!(
                    start.elapsed() < common::CHILD_LIMIT,
                    "the workers never started"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            let set = SignalSet::new(&[libc::SIGUSR1]).unwrap();
            let _mask = SignalMask::block(&set).unwrap();
            let bad = ipcx::signal::threads_not_blocking(&set).unwrap();
            let workers = bad
                .iter()
                .filter(|t| t.name.starts_with("ipcx-worker"))
                .count();
            common::say(format!("workers not blocking: {workers}"));
            drop(rt);
            return;
        }
        _ => {}
    }
    let set = SignalSet::new(&[libc::SIGUSR1]).unwrap();
    let mut cmd = common::child(
        "signalfd_on_a_multi_thread_runtime_needs_the_mask_before_the_workers",
        "blocked-first",
        &[],
    );
    block_in_child(&mut cmd, &set).unwrap();
    let mut child = cmd.spawn().unwrap();
    wait_ready(&mut child);
    sigqueue(child.id(), libc::SIGUSR1, 5).unwrap();
    let out = common::finish(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(common::reports(&out), "value 5");

    let said = common::run_ok(common::child(
        "signalfd_on_a_multi_thread_runtime_needs_the_mask_before_the_workers",
        "runtime-first",
        &[],
    ));
    assert_eq!(said, "workers not blocking: 2");
}

/// How many threads of this process are named `ipcx-worker`.
fn worker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "ipcx-worker")
        .count()
}
