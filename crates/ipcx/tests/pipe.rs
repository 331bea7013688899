//! Anonymous pipes across real processes: success, limits and faults.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::io::{IoSlice, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::pipe::{PIPE_BUF, PipeOptions, pipe, sendfile};

#[test]
fn parent_writes_to_child_stdin() {
    if common::role().is_some() {
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input).unwrap();
        common::say(format!(
            "child got {} bytes: {}",
            input.len(),
            String::from_utf8_lossy(&input)
        ));
        std::process::exit(0);
    }
    let (reader, mut writer) = pipe().unwrap();
    let mut cmd = common::child("parent_writes_to_child_stdin", "reader", &[]);
    cmd.stdin(Stdio::from(reader));
    let child = cmd.spawn().unwrap();
    drop(cmd); // the parent's copy of the read end must go, or the child never sees EOF
    writer.write_all(b"hello from the parent").unwrap();
    drop(writer);
    let out = common::finish(child);
    assert!(out.status.success());
    assert_eq!(
        common::reports(&out),
        "child got 21 bytes: hello from the parent"
    );
}

#[test]
fn python_peer_reverses_bytes_through_two_pipes() {
    let Some(mut cmd) = common::python(
        "import sys; d=sys.stdin.buffer.read(); sys.stdout.buffer.write(d[::-1])",
        &[],
    ) else {
        return;
    };
    let (to_child, mut to_child_w) = pipe().unwrap();
    let (from_child, from_child_w) = pipe().unwrap();
    cmd.stdin(Stdio::from(to_child))
        .stdout(Stdio::from(from_child_w));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    to_child_w.write_all(b"ipcx").unwrap();
    drop(to_child_w);
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    loop {
        let n = from_child
            .read_timeout(&mut buf, common::CHILD_LIMIT)
            .unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(common::finish(child).status.success());
    assert_eq!(got, b"xcpi");
}

#[test]
fn packet_mode_keeps_boundaries_and_enforces_pipe_buf() {
    let (rx, tx) = PipeOptions::new().packet(true).create().unwrap();
    let exact = vec![7u8; PIPE_BUF];
    tx.try_write(b"a").unwrap();
    tx.try_write(&exact).unwrap();
    let mut buf = vec![0u8; 2 * PIPE_BUF];
    assert_eq!(rx.try_read(&mut buf).unwrap(), 1);
    assert_eq!(rx.try_read(&mut buf).unwrap(), PIPE_BUF);

    let too_big = tx.try_write(&vec![0u8; PIPE_BUF + 1]).unwrap_err();
    assert_eq!(too_big.kind(), ErrorKind::MessageTooLarge);
    assert!(
        too_big
            .to_string()
            .contains("at most PIPE_BUF (4096) bytes"),
        "{too_big}"
    );

    let empty = tx.try_write(b"").unwrap_err();
    assert_eq!(empty.kind(), ErrorKind::InvalidInput);

    let small = rx.try_read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(small.kind(), ErrorKind::InvalidInput);
    assert!(small.to_string().contains("at least PIPE_BUF"), "{small}");
}

#[test]
fn stream_mode_handles_empty_and_large_writes() {
    let (rx, tx) = pipe().unwrap();
    assert_eq!(tx.try_write(b"").unwrap(), 0);
    assert_eq!(
        rx.try_read(&mut [0u8; 8]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    // A write larger than the capacity is partial in non-blocking form: backpressure.
    let cap = tx.capacity().unwrap();
    let big = vec![1u8; cap * 2];
    let n = tx.try_write(&big).unwrap();
    assert_eq!(n, cap);
    let full = tx.try_write(b"x").unwrap_err();
    assert_eq!(full.kind(), ErrorKind::WouldBlock);
    let timed = tx
        .write_timeout(b"x", Duration::from_millis(20))
        .unwrap_err();
    assert_eq!(timed.kind(), ErrorKind::TimedOut);
}

#[test]
fn capacity_is_read_set_and_shrink_checked() {
    let (rx, tx) = pipe().unwrap();
    assert_eq!(rx.capacity().unwrap(), 65536);
    assert_eq!(tx.set_capacity(1 << 20).unwrap(), 1 << 20);
    assert_eq!(rx.capacity().unwrap(), 1 << 20);
    tx.write_all_timeout(&vec![0u8; 200_000], Duration::from_secs(5))
        .unwrap();
    let busy = tx.set_capacity(4096).unwrap_err();
    assert_eq!(busy.errno(), Some(libc::EBUSY));
    assert!(
        busy.to_string().contains("drain it before shrinking"),
        "{busy}"
    );
}

#[test]
fn capacity_above_pipe_max_size_names_the_limit() {
    if common::role().is_some() {
        common::drop_root();
        let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let (_rx, tx) = pipe().unwrap();
        let err = tx.set_capacity(max * 2).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LimitReached, "{err}");
        common::say(&err);
        std::process::exit(0);
    }
    let out = common::run_ok(common::child(
        "capacity_above_pipe_max_size_names_the_limit",
        "small",
        &[],
    ));
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size").unwrap();
    assert!(
        out.contains("F_SETPIPE_SZ \"pipe\": limit reached (EPERM)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "/proc/sys/fs/pipe-max-size is {} bytes",
            max.trim()
        )),
        "{out}"
    );
}

#[test]
fn empty_pipe_would_block_and_times_out() {
    let (rx, _tx) = pipe().unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        rx.try_read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let start = Instant::now();
    let err = rx
        .read_timeout(&mut buf, Duration::from_millis(50))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(err.to_string().contains("no progress within 50ms"), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn nonblocking_option_applies_to_read_and_write_traits() {
    let (mut rx, tx) = PipeOptions::new().nonblocking(true).create().unwrap();
    let err = rx.read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    // The ipcx error survives the conversion into io::Error.
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<ipcx::Error>())
        .unwrap();
    assert_eq!(inner.operation(), "read");
    // Handed out as a descriptor, the end keeps the mode the caller chose.
    let fd = OwnedFd::from(tx);
    assert!(
        rustix::fs::fcntl_getfl(&fd)
            .unwrap()
            .contains(rustix::fs::OFlags::NONBLOCK)
    );
    let (_rx, tx) = pipe().unwrap();
    let fd = OwnedFd::from(tx);
    assert!(
        !rustix::fs::fcntl_getfl(&fd)
            .unwrap()
            .contains(rustix::fs::OFlags::NONBLOCK)
    );
}

#[test]
fn eintr_is_retried_with_the_remaining_time() {
    // Data arrives while signals keep interrupting the wait: the read still gets it.
    let (rx, tx) = pipe().unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        tx.try_write(b"late").unwrap();
        tx
    });
    let mut buf = [0u8; 8];
    let (n, signals) =
        common::under_signal_storm(|| rx.read_timeout(&mut buf, Duration::from_secs(20)));
    assert_eq!(n.unwrap(), 4);
    assert!(
        signals > 0,
        "no signal was delivered, so EINTR was not provoked"
    );
    let _tx = writer.join().unwrap();

    // No data: the timeout still holds, and it is TimedOut, never Interrupted.
    let start = Instant::now();
    let (err, signals) =
        common::under_signal_storm(|| rx.read_timeout(&mut buf, Duration::from_millis(150)));
    assert_eq!(err.unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(signals > 0);
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[test]
fn writing_to_a_closed_pipe_is_peer_gone_not_sigpipe() {
    if common::role().is_some() {
        common::default_sigpipe();
        let (rx, tx) = pipe().unwrap();
        drop(rx);
        let err = tx.try_write(b"anyone?").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PeerGone);
        assert!(
            !common::sigpipe_pending(),
            "the SIGPIPE the write raised must be consumed"
        );
        // splice and vmsplice into the dead pipe raise SIGPIPE in the kernel too.
        let src = tempfile::tempfile().unwrap();
        let err2 = tx.vmsplice(&[IoSlice::new(b"x")]).unwrap_err();
        assert_eq!(err2.kind(), ErrorKind::PeerGone);
        let (rx2, tx2) = pipe().unwrap();
        tx2.try_write(b"y").unwrap();
        drop(tx2);
        let err3 = rx2.splice_to(&tx, 1).unwrap_err();
        assert_eq!(err3.kind(), ErrorKind::PeerGone);
        drop(src);
        common::say(format!("survived: {err}"));
        std::process::exit(0);
    }
    let out = common::run_ok(common::child(
        "writing_to_a_closed_pipe_is_peer_gone_not_sigpipe",
        "writer",
        &[],
    ));
    assert!(
        out.contains("survived: write \"pipe\": peer gone (EPIPE): every read end is closed"),
        "{out}"
    );
}

#[test]
fn a_sigpipe_already_blocked_by_the_caller_is_left_alone() {
    if common::role().is_some() {
        common::default_sigpipe();
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `set` is a local initialised by sigemptyset; the mask change is this
        // child's own, single test thread.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), std::ptr::null_mut());
            libc::raise(libc::SIGPIPE);
        }
        assert!(common::sigpipe_pending());
        let (rx, tx) = pipe().unwrap();
        drop(rx);
        assert_eq!(tx.try_write(b"x").unwrap_err().kind(), ErrorKind::PeerGone);
        // The caller's own pending SIGPIPE is still there for the caller to handle.
        assert!(common::sigpipe_pending());
        common::say("ok");
        std::process::exit(0);
    }
    let out = common::run_ok(common::child(
        "a_sigpipe_already_blocked_by_the_caller_is_left_alone",
        "c",
        &[],
    ));
    assert_eq!(out.trim(), "ok");
}

#[test]
fn reading_a_closed_pipe_is_eof() {
    let (rx, tx) = pipe().unwrap();
    tx.try_write(b"last").unwrap();
    drop(tx);
    let mut buf = [0u8; 8];
    assert_eq!(rx.try_read(&mut buf).unwrap(), 4);
    assert_eq!(rx.try_read(&mut buf).unwrap(), 0);
    assert_eq!(
        rx.read_timeout(&mut buf, Duration::from_secs(5)).unwrap(),
        0
    );
}

#[test]
fn pipe_descriptors_do_not_leak_into_children() {
    if common::role().is_some() {
        common::say(common::assert_not_inherited(&common::arg("TARGETS")));
        std::process::exit(0);
    }
    let (rx, tx) = pipe().unwrap();
    let (prx, ptx) = PipeOptions::new().packet(true).create().unwrap();
    for fd in [rx.as_fd(), tx.as_fd(), prx.as_fd(), ptx.as_fd()] {
        assert!(common::is_cloexec(fd));
    }
    let targets = [
        common::fd_target(rx.as_fd()),
        common::fd_target(prx.as_fd()),
    ]
    .join(",");
    let out = common::run_ok(common::child(
        "pipe_descriptors_do_not_leak_into_children",
        "inspect",
        &[("TARGETS", &targets)],
    ));
    assert_eq!(out, "2");
}

#[test]
fn out_of_descriptors_is_limit_reached_naming_the_limit() {
    if common::role().is_some() {
        let limit = common::lowest_free_fd() + 4;
        common::set_nofile(limit);
        let mut pipes = Vec::new();
        let err = loop {
            match pipe() {
                Ok(p) => pipes.push(p),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), ErrorKind::LimitReached);
        common::say(format!("{limit} {err}"));
        std::process::exit(0);
    }
    let out = common::run_ok(common::child(
        "out_of_descriptors_is_limit_reached_naming_the_limit",
        "c",
        &[],
    ));
    let (limit, msg) = out.trim().split_once(' ').unwrap();
    assert!(msg.starts_with("pipe2: limit reached (EMFILE)"), "{msg}");
    assert!(
        msg.contains(&format!("RLIMIT_NOFILE, now {limit}")),
        "{msg}"
    );
}

#[test]
fn splice_moves_between_a_pipe_and_a_file() {
    let (rx, tx) = pipe().unwrap();
    tx.try_write(b"spliced bytes").unwrap();
    let mut file = tempfile::tempfile().unwrap();
    assert_eq!(rx.splice_to(&file, 64).unwrap(), 13);
    file.seek(SeekFrom::Start(0)).unwrap();
    assert_eq!(tx.splice_from(&file, 64).unwrap(), 13);
    let mut buf = [0u8; 32];
    let n = rx.try_read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"spliced bytes");
}

#[test]
fn tee_duplicates_without_consuming() {
    let (rx, tx) = pipe().unwrap();
    let (copy_rx, copy_tx) = pipe().unwrap();
    tx.try_write(b"twice").unwrap();
    assert_eq!(rx.tee_to(&copy_tx, 64).unwrap(), 5);
    let mut buf = [0u8; 8];
    let n = copy_rx.try_read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"twice");
    let n = rx.try_read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"twice");
}

#[test]
fn vmsplice_queues_user_buffers_for_a_child() {
    if common::role().is_some() {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).unwrap();
        common::say(input);
        std::process::exit(0);
    }
    let (rx, tx) = pipe().unwrap();
    let mut cmd = common::child("vmsplice_queues_user_buffers_for_a_child", "cat", &[]);
    cmd.stdin(Stdio::from(rx));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let parts: [&'static [u8]; 3] = [b"zero", b"-copy", b" gather"];
    let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    assert_eq!(tx.vmsplice(&slices).unwrap(), 16);
    drop(tx);
    let out = common::finish(child);
    assert_eq!(common::reports(&out), "zero-copy gather");
}

#[test]
fn sendfile_copies_a_file_into_a_pipe_and_a_socket() {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(b"0123456789").unwrap();
    let (rx, tx) = pipe().unwrap();
    let mut offset = 2u64;
    assert_eq!(sendfile(&tx, &file, Some(&mut offset), 5).unwrap(), 5);
    assert_eq!(offset, 7);
    let mut buf = [0u8; 16];
    let n = rx.try_read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"23456");

    let (a, mut b) = ipcx::unix::stream_pair().unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    assert_eq!(sendfile(&a, &file, None, 64).unwrap(), 10);
    let mut got = [0u8; 10];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"0123456789");
}

#[test]
fn adopting_descriptors_checks_they_are_pipes() {
    let (std_rx, mut std_tx) = std::io::pipe().unwrap();
    let rx = ipcx::pipe::PipeReader::try_from(std_rx).unwrap();
    std_tx.write_all(b"std").unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(rx.try_read(&mut buf).unwrap(), 3);
    let file: OwnedFd = tempfile::tempfile().unwrap().into();
    let err = ipcx::pipe::PipeReader::try_from(file).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("not a pipe or FIFO"), "{err}");
}

#[test]
fn dropping_an_adopted_blocking_end_restores_blocking_mode() {
    let (std_rx, _std_tx) = std::io::pipe().unwrap();
    let fd = OwnedFd::from(std_rx);
    let other_holder = fd.try_clone().unwrap(); // a duplicate shares the file description
    let nonblock = |fd: &OwnedFd| {
        rustix::fs::fcntl_getfl(fd)
            .unwrap()
            .contains(rustix::fs::OFlags::NONBLOCK)
    };
    let rx = ipcx::pipe::PipeReader::try_from(fd).unwrap();
    assert!(
        nonblock(&other_holder),
        "ipcx works non-blocking underneath"
    );
    assert_eq!(
        rx.try_read(&mut [0u8; 4]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    drop(rx);
    assert!(
        !nonblock(&other_holder),
        "the other holder gets its blocking descriptor back"
    );
}

#[test]
fn zero_copy_calls_have_timeouts() {
    let (rx, tx) = pipe().unwrap();
    let (copy_rx, copy_tx) = pipe().unwrap();
    let file = tempfile::tempfile().unwrap();
    let short = Duration::from_millis(20);
    // Nothing to move: each waits for data, then gives up.
    assert_eq!(
        rx.splice_to_timeout(&file, 8, short).unwrap_err().kind(),
        ErrorKind::TimedOut
    );
    assert_eq!(
        rx.tee_to_timeout(&copy_tx, 8, short).unwrap_err().kind(),
        ErrorKind::TimedOut
    );
    // A full pipe: each waits for room, then gives up.
    while tx.try_write(&[0u8; 4096]).is_ok() {}
    let mut src = tempfile::tempfile().unwrap();
    src.write_all(&[1u8; 4096]).unwrap();
    src.seek(SeekFrom::Start(0)).unwrap();
    assert_eq!(
        tx.splice_from_timeout(&src, 8, short).unwrap_err().kind(),
        ErrorKind::TimedOut
    );
    assert_eq!(
        tx.vmsplice_timeout(&[IoSlice::new(b"x")], short)
            .unwrap_err()
            .kind(),
        ErrorKind::TimedOut
    );
    let err = ipcx::pipe::sendfile_timeout(&tx, &src, Some(&mut 0), 8, short).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    drop(copy_rx);
}

#[test]
fn sendfile_errors_name_source_and_destination() {
    let (rx, tx) = pipe().unwrap();
    drop(rx);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"data").unwrap();
    let err = sendfile(&tx, file.as_file(), Some(&mut 0), 4).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("sendfile \"{} -> pipe:[", file.path().display())),
        "{text}"
    );
}

#[test]
fn adopting_the_wrong_end_is_refused() {
    // A read end adopted as a writer would let vmsplice write into borrowed memory.
    let (std_rx, std_tx) = std::io::pipe().unwrap();
    let err = ipcx::pipe::PipeWriter::try_from(OwnedFd::from(std_rx)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("not open for writing"), "{err}");
    let err = ipcx::pipe::PipeReader::try_from(OwnedFd::from(std_tx)).unwrap_err();
    assert!(err.to_string().contains("not open for reading"), "{err}");
}

#[test]
fn packet_mode_refuses_moves_that_cannot_make_packets() {
    let (_rx, tx) = PipeOptions::new().packet(true).create().unwrap();
    let err = tx.vmsplice(&[IoSlice::new(b"one")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("makes packets only from write()"),
        "{err}"
    );
    let file = tempfile::tempfile().unwrap();
    assert_eq!(
        tx.splice_from(&file, 8).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn timeout_forms_refuse_a_blocking_socket_they_cannot_bound() {
    let (rx, tx) = pipe().unwrap();
    tx.try_write(b"0123456789").unwrap();
    let (a, b) = ipcx::unix::stream_pair().unwrap();
    let err = rx
        .splice_to_timeout(&a, 10, Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("set_nonblocking(true)"), "{err}");
    a.set_nonblocking(true).unwrap();
    assert_eq!(
        rx.splice_to_timeout(&a, 10, Duration::from_secs(1))
            .unwrap(),
        10
    );
    let mut got = [0u8; 10];
    b.read_exact_timeout_for_test(&mut got);
    assert_eq!(&got, b"0123456789");
}

trait ReadExactForTest {
    fn read_exact_timeout_for_test(&self, buf: &mut [u8]);
}
impl ReadExactForTest for std::os::unix::net::UnixStream {
    fn read_exact_timeout_for_test(&self, buf: &mut [u8]) {
        use ipcx::SocketExt;
        let mut got = 0;
        while got < buf.len() {
            got += self
                .recv_timeout(&mut buf[got..], Duration::from_secs(10))
                .unwrap();
        }
    }
}
