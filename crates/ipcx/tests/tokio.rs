//! The tokio wrappers (`ipcx::tokio`) across real processes: pipes and FIFOs, seqpacket
//! sockets and listeners, POSIX message queues, and cancellation: a future dropped
//! before it completes loses nothing.
//!
//! Every async test runs on tokio's current-thread runtime (`#[tokio::test]`). The
//! children are this test binary re-executed in a role (see `tests/common`) and use
//! ipcx's blocking API. A descriptor for a child is passed as its stdin, which libtest
//! leaves alone (its stdout carries libtest's own output). Every wait is bounded.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::pin;
use std::process::Stdio;
use std::task::Poll;
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::fifo::Fifo;
use ipcx::mq::Access;
use ipcx::mq::posix::{MQ_PRIO_MAX, MessageQueue, MqOptions};
use ipcx::pipe::{PipeReader, PipeWriter, pipe};
use ipcx::tokio::{
    AsyncMessageQueue, AsyncPipeReader, AsyncPipeWriter, AsyncSeqpacket, AsyncSeqpacketListener,
};
use ipcx::unix::{Seqpacket, SeqpacketListener, SocketFile, listen_seqpacket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// The bound on each blocking call of a child.
const T: Duration = Duration::from_secs(10);

/// A wait that is expected to run out: nothing can arrive during it.
const SHORT: Duration = Duration::from_millis(10);

/// Awaits `fut`, failing the test if it takes longer than [`common::CHILD_LIMIT`].
async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    timeout(common::CHILD_LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {:?}", common::CHILD_LIMIT))
}

/// In a child: a duplicate of the descriptor the parent passed as stdin.
fn stdin_fd() -> OwnedFd {
    std::io::stdin().as_fd().try_clone_to_owned().unwrap()
}

fn text(buf: &[u8]) -> String {
    String::from_utf8_lossy(buf).into_owned()
}

/// A small queue, far below the default limits.
fn small() -> MqOptions {
    MqOptions::new().capacity(4).max_msg_size(64)
}

/// The futures are `Send`, so the wrappers also work on multi-threaded runtimes (a
/// compile-time check).
#[allow(dead_code)]
fn futures_are_send(
    q: &AsyncMessageQueue,
    s: &AsyncSeqpacket,
    l: &AsyncSeqpacketListener<SocketFile<SeqpacketListener>>,
    bare: &AsyncSeqpacketListener,
    buf: &mut [u8],
) {
    fn send<F: Send>(_: F) {}
    send(q.recv(buf));
    send(q.send(b"", 0));
    send(s.recv(buf));
    send(s.send(b""));
    send(l.accept());
    send(bare.accept());
}

// ---------------------------------------------------------------------------------------
// Pipes and FIFOs
// ---------------------------------------------------------------------------------------

/// A child writes in chunks; the parent reads with reads that a 1 ms timeout often drops
/// (cancellation of `read`), and still gets every byte, in order, then end of file.
#[tokio::test]
async fn async_pipe_reads_a_child_until_end_of_file() {
    const TEST: &str = "async_pipe_reads_a_child_until_end_of_file";
    if common::role().is_some() {
        let w = PipeWriter::try_from(stdin_fd()).unwrap();
        for i in 0..20 {
            w.write_all_timeout(format!("chunk {i}\n").as_bytes(), T)
                .unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        std::process::exit(0);
    }
    let (reader, writer) = pipe().unwrap();
    let mut cmd = common::child(TEST, "writer", &[]);
    cmd.stdin(Stdio::from(writer));
    let child = cmd.spawn().unwrap();
    drop(cmd); // the parent's copy of the write end must go, or end of file never comes
    let mut reader = AsyncPipeReader::new(reader).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 7];
    let (mut dropped, deadline) = (0, Instant::now() + common::CHILD_LIMIT);
    loop {
        assert!(
            Instant::now() < deadline,
            "no end of file; got {}",
            text(&got)
        );
        match timeout(Duration::from_millis(1), reader.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("read: {e}"),
            Err(_) => dropped += 1,
        }
    }
    let want: String = (0..20).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(text(&got), want);
    assert!(common::finish(child).status.success());
    println!("{dropped} read futures were dropped before completing");
}

/// The parent writes 4 MiB (many times the pipe's capacity) with `write_all`: each write
/// waits for the child to drain the pipe. Dropping the writer is the child's end of file.
#[tokio::test]
async fn async_pipe_writes_to_a_child_with_backpressure() {
    const TEST: &str = "async_pipe_writes_to_a_child_with_backpressure";
    const LEN: usize = 4 << 20;
    if common::role().is_some() {
        let r = PipeReader::try_from(stdin_fd()).unwrap();
        let (mut total, mut sum) = (0usize, 0u64);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = r.read_timeout(&mut buf, T).unwrap();
            if n == 0 {
                break;
            }
            total += n;
            sum += buf[..n].iter().map(|&b| u64::from(b)).sum::<u64>();
        }
        common::say(format!("read {total} bytes, sum {sum}"));
        std::process::exit(0);
    }
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
    let (reader, writer) = pipe().unwrap();
    let capacity = writer.capacity().unwrap();
    assert!(LEN > 16 * capacity);
    let mut cmd = common::child(TEST, "reader", &[]);
    cmd.stdin(Stdio::from(reader));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let mut writer = AsyncPipeWriter::new(writer).unwrap();
    bounded("write_all", writer.write_all(&data)).await.unwrap();
    writer.flush().await.unwrap();
    writer.shutdown().await.unwrap();
    drop(writer);
    let out = common::finish(child);
    assert!(out.status.success());
    assert_eq!(
        common::reports(&out),
        format!("read {LEN} bytes, sum {sum}")
    );
}

/// Reliability 19: writing to a pipe whose reader (another process) has exited is a
/// `BrokenPipe` error holding `PeerGone`, in a process where `SIGPIPE` would kill.
#[tokio::test]
async fn async_pipe_write_to_an_exited_reader_is_broken_pipe_not_sigpipe() {
    const TEST: &str = "async_pipe_write_to_an_exited_reader_is_broken_pipe_not_sigpipe";
    match common::role().as_deref() {
        Some("reader") => std::process::exit(0),
        Some("writer") => {
            common::default_sigpipe();
            let (reader, writer) = pipe().unwrap();
            let mut cmd = common::child(TEST, "reader", &[]);
            cmd.stdin(Stdio::from(reader));
            let child = cmd.spawn().unwrap();
            drop(cmd);
            assert!(common::finish(child).status.success());
            let mut writer = AsyncPipeWriter::new(writer).unwrap();
            let err = bounded("write", writer.write(b"anyone there?"))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            let inner = err
                .get_ref()
                .and_then(|e| e.downcast_ref::<ipcx::Error>())
                .unwrap();
            assert_eq!(inner.kind(), ErrorKind::PeerGone);
            assert!(!common::sigpipe_pending());
            common::say(inner);
            std::process::exit(0);
        }
        _ => {}
    }
    let out = common::run_ok(common::child(TEST, "writer", &[]));
    assert_eq!(
        out,
        "write \"pipe\": peer gone (EPIPE): every read end is closed: the reader exited or \
         dropped it"
    );
}

/// A FIFO that no writer has opened yet is not at end of file: the read waits (and is
/// dropped by a timeout), then gets what a writer process sends, then end of file.
#[tokio::test]
async fn async_fifo_reader_waits_for_a_writer_process() {
    const TEST: &str = "async_fifo_reader_waits_for_a_writer_process";
    if common::role().is_some() {
        let fifo = Fifo::open(common::arg("PATH")).unwrap();
        let w = fifo.open_writer_timeout(T).unwrap();
        w.write_all_timeout(b"through the fifo", T).unwrap();
        std::process::exit(0);
    }
    let dir = common::tempdir();
    let path = dir.path().join("fifo");
    let fifo = Fifo::create(&path).unwrap();
    let mut reader = AsyncPipeReader::new(fifo.open_reader().unwrap()).unwrap();
    let mut buf = [0u8; 64];
    assert!(timeout(SHORT, reader.read(&mut buf)).await.is_err());
    let child = common::child(TEST, "writer", &[("PATH", path.to_str().unwrap())])
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    bounded("read_to_end", reader.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got, b"through the fifo");
    assert!(common::finish(child).status.success());
}

// ---------------------------------------------------------------------------------------
// Seqpacket
// ---------------------------------------------------------------------------------------

/// Messages keep their boundaries; one larger than the buffer is `MessageTooLarge` (and
/// consumed, the next one intact); the parent's async send reaches the child; the child's
/// exit is end of file, and a send after it is `PeerGone`.
#[tokio::test]
async fn async_seqpacket_keeps_boundaries_and_reports_truncation() {
    const TEST: &str = "async_seqpacket_keeps_boundaries_and_reports_truncation";
    if common::role().is_some() {
        let s = Seqpacket::try_from(stdin_fd()).unwrap();
        for msg in [&b"one"[..], b"two", &[7u8; 3000], &[8u8; 200], b"after"] {
            s.send_timeout(msg, T).unwrap();
        }
        let mut buf = [0u8; 64];
        let n = s.recv_timeout(&mut buf, T).unwrap();
        common::say(format!("child got {}", text(&buf[..n])));
        std::process::exit(0);
    }
    let (mine, theirs) = Seqpacket::pair().unwrap();
    let mut cmd = common::child(TEST, "peer", &[]);
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let s = AsyncSeqpacket::new(mine).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = bounded("recv", s.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"one");
    let n = bounded("recv", s.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"two");
    let n = bounded("recv", s.recv(&mut buf)).await.unwrap();
    assert_eq!((n, buf[0], buf[n - 1]), (3000, 7, 7));
    let err = bounded("recv", s.recv(&mut buf[..100])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{err}");
    assert!(
        err.to_string()
            .contains("a 200-byte message did not fit the 100-byte buffer"),
        "{err}"
    );
    let n = bounded("recv", s.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"after");
    assert_eq!(bounded("send", s.send(b"hello child")).await.unwrap(), 11);
    let out = common::finish(child);
    assert!(out.status.success());
    assert_eq!(common::reports(&out), "child got hello child");
    assert_eq!(bounded("recv", s.recv(&mut buf)).await.unwrap(), 0);
    assert!(s.peer_closed());
    let gone = bounded("send", s.send(b"too late")).await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::PeerGone, "{gone}");
}

/// A listener accepts a child's connection; an accept dropped by a timeout before
/// anyone connected took nothing; `into_inner` returns the owning `SocketFile`.
#[tokio::test]
async fn async_seqpacket_listener_accepts_a_child() {
    const TEST: &str = "async_seqpacket_listener_accepts_a_child";
    if common::role().is_some() {
        let s = Seqpacket::connect_timeout(common::arg("PATH"), T).unwrap();
        let hello = format!("hello from {}", std::process::id());
        s.send_timeout(hello.as_bytes(), T).unwrap();
        let mut buf = [0u8; 64];
        let n = s.recv_timeout(&mut buf, T).unwrap();
        common::say(text(&buf[..n]));
        std::process::exit(0);
    }
    let dir = common::tempdir();
    let path = dir.path().join("seq");
    let server = AsyncSeqpacketListener::new(listen_seqpacket(&path).unwrap()).unwrap();
    assert!(timeout(SHORT, server.accept()).await.is_err());
    let child = common::child(TEST, "client", &[("PATH", path.to_str().unwrap())])
        .spawn()
        .unwrap();
    let conn = bounded("accept", server.accept()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = bounded("recv", conn.recv(&mut buf)).await.unwrap();
    assert_eq!(text(&buf[..n]), format!("hello from {}", child.id()));
    bounded("send", conn.send(b"welcome")).await.unwrap();
    let out = common::finish(child);
    assert!(out.status.success());
    assert_eq!(common::reports(&out), "welcome");
    // Nothing else is pending.
    assert_eq!(
        server.get_ref().try_accept().unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let file = server.into_inner();
    assert!(path.exists());
    drop(file);
    assert!(!path.exists(), "the SocketFile removes its file on drop");
}

// ---------------------------------------------------------------------------------------
// POSIX message queues
// ---------------------------------------------------------------------------------------

/// A child sends with priorities and exits; async receives come out highest priority
/// first, in order within a priority.
#[tokio::test]
async fn async_mq_receives_by_priority_across_processes() {
    const TEST: &str = "async_mq_receives_by_priority_across_processes";
    if common::role().is_some() {
        let q = MqOptions::new()
            .access(Access::SendOnly)
            .open(common::arg("NAME"))
            .unwrap();
        for (msg, prio) in [
            ("low-1", 1),
            ("high-1", 9),
            ("mid", 5),
            ("low-2", 1),
            ("high-2", 9),
            ("top", MQ_PRIO_MAX - 1),
        ] {
            q.send_timeout(msg.as_bytes(), prio, T).unwrap();
        }
        common::say("sent");
        std::process::exit(0);
    }
    let name = common::unique_name("mq");
    let q = MqOptions::new()
        .capacity(8)
        .max_msg_size(32)
        .create(&name)
        .unwrap();
    let q = AsyncMessageQueue::new(q).unwrap();
    let out = common::run_ok(common::child(TEST, "sender", &[("NAME", &name)]));
    assert_eq!(out, "sent");
    let mut buf = [0u8; 32];
    let mut got = Vec::new();
    for _ in 0..6 {
        let (n, prio) = bounded("recv", q.recv(&mut buf)).await.unwrap();
        got.push((text(&buf[..n]), prio));
    }
    let want = [
        ("top", MQ_PRIO_MAX - 1),
        ("high-1", 9),
        ("high-2", 9),
        ("mid", 5),
        ("low-1", 1),
        ("low-2", 1),
    ]
    .map(|(m, p)| (m.to_string(), p));
    assert_eq!(got, want);
    assert_eq!(
        q.get_ref().try_recv(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

/// An async send into a full queue waits until a child process makes room; a send
/// dropped by a timeout while the queue was full sent nothing.
#[tokio::test]
async fn async_mq_send_waits_for_room_and_a_dropped_send_sends_nothing() {
    const TEST: &str = "async_mq_send_waits_for_room_and_a_dropped_send_sends_nothing";
    if common::role().is_some() {
        let q = MqOptions::new()
            .access(Access::ReceiveOnly)
            .open(common::arg("NAME"))
            .unwrap();
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        for _ in 0..3 {
            let (n, _) = q.recv_timeout(&mut buf, T).unwrap();
            got.push(text(&buf[..n]));
        }
        let rest = q.try_recv(&mut buf).unwrap_err();
        common::say(format!("{}; then {}", got.join(","), rest.kind()));
        std::process::exit(0);
    }
    let name = common::unique_name("mq");
    let q = MqOptions::new()
        .capacity(2)
        .max_msg_size(64)
        .create(&name)
        .unwrap();
    let q = AsyncMessageQueue::new(q).unwrap();
    bounded("send", q.send(b"first", 0)).await.unwrap();
    bounded("send", q.send(b"second", 0)).await.unwrap();
    assert!(timeout(SHORT, q.send(b"dropped", 0)).await.is_err());
    assert_eq!(q.get_ref().attributes().unwrap().messages, 2);
    let child = common::child(TEST, "receiver", &[("NAME", &name)])
        .spawn()
        .unwrap();
    bounded("send", q.send(b"third", 0)).await.unwrap();
    let out = common::finish(child);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        common::reports(&out),
        "first,second,third; then would block"
    );
}

/// The synchronous type's checks hold: buffer too small, message too large, priority
/// out of range, receiving on a send-only handle; each before any system call.
#[tokio::test]
async fn async_mq_errors_are_typed() {
    let name = common::unique_name("mq");
    let q = AsyncMessageQueue::new(small().create(&name).unwrap()).unwrap();
    let e = bounded("recv", q.recv(&mut [0u8; 16])).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    assert!(
        e.to_string().contains("pass a buffer of at least 64 bytes"),
        "{e}"
    );
    let e = bounded("send", q.send(&[0u8; 65], 0)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    assert!(
        e.to_string().starts_with(&format!("mq_send \"{name}\"")),
        "{e}"
    );
    let e = bounded("send", q.send(b"x", MQ_PRIO_MAX))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(
        e.to_string().contains("priority 32768 is out of range"),
        "{e}"
    );
    let tx = MqOptions::new()
        .access(Access::SendOnly)
        .open(&name)
        .unwrap();
    let tx = AsyncMessageQueue::new(tx).unwrap();
    let e = bounded("recv", tx.recv(&mut [0u8; 64])).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("Access::SendOnly"), "{e}");
}

/// Outside a runtime, registering fails with an error that names the operation, the
/// object and the remedy, and gives the value back: an owning queue is not dropped (and
/// so not unlinked) with the error. `into_inner` returns a usable synchronous handle.
#[test]
fn registering_outside_a_runtime_gives_the_value_back() {
    let name = common::unique_name("mq");
    let q = small().create(&name).unwrap();
    let err = AsyncMessageQueue::new(q).unwrap_err();
    assert_eq!(err.error().kind(), ErrorKind::Other);
    assert!(
        err.to_string().starts_with(&format!(
            "register with tokio \"{name}\": failed: no tokio runtime is running on this thread"
        )),
        "{err}"
    );
    assert!(err.to_string().contains("enable_io"), "{err}");
    let q = err.into_inner();
    assert!(q.is_owner());
    drop(MessageQueue::open(&name).unwrap()); // still there

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let q = rt.block_on(async {
        let q = AsyncMessageQueue::new(q).unwrap();
        q.send(b"x", 1).await.unwrap();
        q.into_inner()
    });
    let mut buf = [0u8; 64];
    assert_eq!(q.try_recv(&mut buf).unwrap(), (1, 1));

    // `?` turns the error into an ipcx::Error or an io::Error.
    let (r, w) = pipe().unwrap();
    let e: ipcx::Error = AsyncPipeReader::new(r).unwrap_err().into();
    assert_eq!(
        (e.operation(), e.object()),
        ("register with tokio", Some("pipe"))
    );
    let e: io::Error = AsyncPipeWriter::new(w).unwrap_err().into();
    assert_eq!(e.kind(), io::ErrorKind::Other);
}

// ---------------------------------------------------------------------------------------
// Cancellation: a dropped recv future loses no message
// ---------------------------------------------------------------------------------------

/// How many messages the cancellation tests send.
const N: usize = 40;

fn numbered() -> Vec<String> {
    (0..N).map(|i| format!("m{i}")).collect()
}

/// Receives `N` messages with `recv`, while futures keep being dropped: first under a
/// 10 ms timeout, then in a `select!` whose short sleep often wins. Returns the messages
/// and how many futures were dropped.
async fn recv_while_dropping(
    mut recv: impl AsyncFnMut(&mut [u8]) -> ipcx::Result<usize>,
    buf: &mut [u8],
) -> (Vec<String>, usize) {
    let (mut got, mut dropped) = (Vec::new(), 0);
    let deadline = Instant::now() + common::CHILD_LIMIT;
    while got.len() < N {
        assert!(Instant::now() < deadline, "only {got:?} arrived");
        let n = if got.len() % 2 == 0 {
            timeout(SHORT, recv(&mut *buf)).await.ok()
        } else {
            tokio::select! {
                r = recv(&mut *buf) => Some(r),
                () = tokio::time::sleep(Duration::from_micros(300)) => None,
            }
        };
        match n {
            Some(r) => got.push(text(&buf[..r.unwrap()])),
            None => dropped += 1,
        }
    }
    (got, dropped)
}

/// The cancellation test for POSIX queues: a child sends `N` numbered messages,
/// spaced out; the parent's receives are dropped again and again (by `timeout` and by
/// `select!`), and still every message arrives, in order.
#[tokio::test]
async fn mq_recv_futures_dropped_by_timeout_and_select_lose_no_message() {
    const TEST: &str = "mq_recv_futures_dropped_by_timeout_and_select_lose_no_message";
    if common::role().is_some() {
        let q = MqOptions::new()
            .access(Access::SendOnly)
            .open(common::arg("NAME"))
            .unwrap();
        for (i, msg) in numbered().iter().enumerate() {
            q.send_timeout(msg.as_bytes(), 0, T).unwrap();
            std::thread::sleep(Duration::from_millis(1 + i as u64 % 3));
        }
        common::say("sent");
        std::process::exit(0);
    }
    let name = common::unique_name("mq");
    let q = AsyncMessageQueue::new(small().create(&name).unwrap()).unwrap();
    let mut buf = [0u8; 64];
    // No sender exists yet: this future is certainly dropped before completing.
    assert!(timeout(SHORT, q.recv(&mut buf)).await.is_err());
    let child = common::child(TEST, "sender", &[("NAME", &name)])
        .spawn()
        .unwrap();
    let (got, dropped) = recv_while_dropping(
        async |b: &mut [u8]| q.recv(b).await.map(|(n, _)| n),
        &mut buf,
    )
    .await;
    assert_eq!(got, numbered());
    let out = common::finish(child);
    assert!(out.status.success());
    assert_eq!(common::reports(&out), "sent");
    assert_eq!(
        q.get_ref().try_recv(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    println!(
        "{} recv futures were dropped before completing",
        dropped + 1
    );
}

/// The same for seqpacket: every message, in order, then end of file.
#[tokio::test]
async fn seqpacket_recv_futures_dropped_by_timeout_and_select_lose_no_message() {
    const TEST: &str = "seqpacket_recv_futures_dropped_by_timeout_and_select_lose_no_message";
    if common::role().is_some() {
        let s = Seqpacket::try_from(stdin_fd()).unwrap();
        for (i, msg) in numbered().iter().enumerate() {
            s.send_timeout(msg.as_bytes(), T).unwrap();
            std::thread::sleep(Duration::from_millis(1 + i as u64 % 3));
        }
        std::process::exit(0);
    }
    let (mine, theirs) = Seqpacket::pair().unwrap();
    let s = AsyncSeqpacket::new(mine).unwrap();
    let mut buf = [0u8; 64];
    assert!(timeout(SHORT, s.recv(&mut buf)).await.is_err());
    let mut cmd = common::child(TEST, "sender", &[]);
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let (got, dropped) = recv_while_dropping(async |b: &mut [u8]| s.recv(b).await, &mut buf).await;
    assert_eq!(got, numbered());
    assert!(common::finish(child).status.success());
    assert_eq!(bounded("recv", s.recv(&mut buf)).await.unwrap(), 0);
    println!(
        "{} recv futures were dropped before completing",
        dropped + 1
    );
}

/// The sharpest case, made deterministic: a `recv` future is polled once (and waits), a
/// message then arrives from another process and the reactor wakes the future, and the
/// future is dropped without being polled again. The message is still there.
#[tokio::test]
async fn a_woken_recv_future_dropped_unpolled_takes_nothing() {
    const TEST: &str = "a_woken_recv_future_dropped_unpolled_takes_nothing";
    match common::role().as_deref() {
        Some("mq") => {
            let q = MqOptions::new()
                .access(Access::SendOnly)
                .open(common::arg("NAME"))
                .unwrap();
            q.send_timeout(b"only one", 3, T).unwrap();
            std::process::exit(0);
        }
        Some("seqpacket") => {
            let s = Seqpacket::try_from(stdin_fd()).unwrap();
            s.send_timeout(b"only one", T).unwrap();
            std::process::exit(0);
        }
        _ => {}
    }
    async fn poll_once(fut: std::pin::Pin<&mut impl Future>) -> bool {
        let mut fut = fut;
        std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
    }

    let name = common::unique_name("mq");
    let q = AsyncMessageQueue::new(small().create(&name).unwrap()).unwrap();
    let mut buf = [0u8; 64];
    {
        let fut = pin!(q.recv(&mut buf));
        assert!(
            poll_once(fut).await,
            "the queue is empty: the first poll waits"
        );
        common::run_ok(common::child(TEST, "mq", &[("NAME", &name)]));
        common::wait_readable(q.as_fd());
        tokio::task::yield_now().await; // the reactor sees the message and wakes the future
    } // dropped here, never polled again
    let (n, prio) = bounded("recv", q.recv(&mut buf)).await.unwrap();
    assert_eq!((text(&buf[..n]), prio), ("only one".to_string(), 3));

    let (mine, theirs) = Seqpacket::pair().unwrap();
    let s = AsyncSeqpacket::new(mine).unwrap();
    {
        let fut = pin!(s.recv(&mut buf));
        assert!(
            poll_once(fut).await,
            "nothing is queued: the first poll waits"
        );
        let mut cmd = common::child(TEST, "seqpacket", &[]);
        cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
        assert!(common::finish(cmd.spawn().unwrap()).status.success());
        drop(cmd);
        common::wait_readable(s.as_fd());
        tokio::task::yield_now().await;
    }
    let n = bounded("recv", s.recv(&mut buf)).await.unwrap();
    assert_eq!(text(&buf[..n]), "only one");
    assert_eq!(bounded("recv", s.recv(&mut buf)).await.unwrap(), 0);
}
