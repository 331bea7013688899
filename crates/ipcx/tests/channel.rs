//! The channel conformance suite: the same generic checks run against every transport,
//! between real processes, plus the address grammar and the faults the channel layer must
//! survive.
//!
//! For each transport, `conformance_*` runs [`drive_sender`] in one process and
//! [`check_receiver`] in the other (the receiver is the parent, except for `pipe:`, whose
//! channel is the child's stdin), with acknowledgements flowing back between phases so a
//! lossy transport (UDP) is never flooded. `receiver_gone_*` checks the other direction:
//! the receiver exits and the sender must learn of it.
//!
//! Every name and key a test creates comes from `common::unique_name`/`unique_key`, and
//! a guard removes it even if a child dies half-way.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ipcx::ErrorKind;
use ipcx::addr::{Address, Transport};
use ipcx::channel::{self, Receiver, Sender, StreamReceiver, StreamSender};
use ipcx::pipe::PipeWriter;

use common::Reports;

/// The bound on every wait for the other process.
const T: Duration = Duration::from_secs(10);
/// Messages in the ordering phase.
const ORDER: usize = 100;

// ---------------------------------------------------------------------------------------
// The generic checks
// ---------------------------------------------------------------------------------------

/// The sizes of the boundary phase that fit the channel.
fn sizes(max: usize) -> Vec<usize> {
    [0, 1, 7, 100, 4095, 4096, 5000, 20_000, 70_000]
        .into_iter()
        .filter(|&n| n <= max)
        .collect()
}

/// A message whose every byte depends on its seed and position.
fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seed * 31 + i * 7) as u8).collect()
}

/// The sender's half of the suite. `wait` blocks until the receiver acknowledged the
/// previous phase.
fn drive_sender(tx: &mut dyn Sender, wait: &mut dyn FnMut()) {
    let max = tx.max_message();
    common::say(format!("sender max {max}"));
    // Order.
    for i in 0..ORDER {
        tx.send(format!("msg-{i}").as_bytes()).unwrap();
    }
    wait();
    // Boundaries: different sizes back to back, the empty message among them.
    for (i, &len) in sizes(max).iter().enumerate() {
        tx.send_timeout(&pattern(i, len), T).unwrap();
    }
    wait();
    // Exactly the maximum.
    tx.send_timeout(&pattern(99, max), T).unwrap();
    wait();
    // A message the receiver first offers too small a buffer.
    tx.send(b"0123456789").unwrap();
    wait();
    // One byte over the maximum: refused before anything is sent, naming the limit.
    let err = tx.send(&vec![0u8; max + 1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{err}");
    assert!(
        err.to_string().contains(&format!("at most {max} bytes")),
        "{err}"
    );
    tx.try_send(b"try").unwrap();
    tx.send_timeout(b"last", T).unwrap();
    tx.flush_timeout(T).unwrap();
    wait();
    common::say("sender done");
}

/// The receiver's half of the suite. `ack` tells the sender a phase is complete.
fn check_receiver(rx: &mut dyn Receiver, ack: &mut dyn FnMut()) {
    let max = rx.max_message();
    let mut buf = vec![0u8; max];
    for i in 0..ORDER {
        let n = rx.recv_timeout(&mut buf, T).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&buf[..n]),
            format!("msg-{i}"),
            "order"
        );
    }
    ack();
    for (i, &len) in sizes(max).iter().enumerate() {
        let n = rx.recv_timeout(&mut buf, T).unwrap();
        assert_eq!(n, len, "boundaries: message {i}");
        assert!(buf[..n] == pattern(i, len)[..], "content of message {i}");
    }
    ack();
    let n = rx.recv_timeout(&mut buf, T).unwrap();
    assert_eq!(n, max, "the maximum-size message");
    assert!(
        buf[..n] == pattern(99, max)[..],
        "content of the maximum-size message"
    );
    ack();
    // Too small a buffer: an error naming both sizes, and the message stays pending.
    let err = rx.recv_timeout(&mut buf[..4], T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("10 bytes but the buffer has 4 bytes"),
        "{text}"
    );
    let n = rx.recv_timeout(&mut buf, T).unwrap();
    assert_eq!(&buf[..n], b"0123456789");
    ack();
    for want in [&b"try"[..], b"last"] {
        let n = rx.recv_timeout(&mut buf, T).unwrap();
        assert_eq!(&buf[..n], want);
    }
    let err = rx.try_recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    ack();
}

/// A fresh receiver has nothing: `try_recv` says WouldBlock and `recv_timeout` TimedOut,
/// both naming the address.
fn check_empty(rx: &mut dyn Receiver, addr: &str) {
    let mut buf = vec![0u8; rx.max_message()];
    let err = rx.try_recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    let start = Instant::now();
    let err = rx
        .recv_timeout(&mut buf, Duration::from_millis(30))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(start.elapsed() >= Duration::from_millis(30));
    let text = err.to_string();
    assert!(text.contains("no message arrived within 30ms"), "{text}");
    let scheme = addr.split(':').next().unwrap();
    assert!(text.contains(&format!("\"{scheme}:")), "{text}");
}

// ---------------------------------------------------------------------------------------
// Transports
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pipe,
    Fifo,
    Unix,
    UnixDgram,
    UnixSeqpacket,
    Tcp,
    Tcp6,
    Udp,
    Udp6,
    Mq,
    SysvMq,
    Shm,
    Ring,
    Mailbox,
}

impl Kind {
    /// Whether a receiver learns that its sender has gone (see the table in the
    /// `channel` module docs).
    fn sees_sender_gone(self) -> bool {
        !matches!(
            self,
            Kind::UnixDgram | Kind::Udp | Kind::Udp6 | Kind::Mq | Kind::SysvMq | Kind::Mailbox
        )
    }
}

/// Removes what a receiver created, if a process died before its owner could.
enum Guard {
    None,
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Mq(String),
    Shm(String),
    Sysv(ipcx::sysv::Key),
    /// A mailbox's socket file in the runtime directory.
    Mailbox(std::path::PathBuf),
}

impl Drop for Guard {
    fn drop(&mut self) {
        match self {
            Guard::Mq(name) => {
                let _ = ipcx::mq::posix::MessageQueue::unlink(name.as_str());
            }
            Guard::Shm(name) => {
                let _ = ipcx::shm::posix::Shm::unlink(name);
            }
            Guard::Sysv(key) => {
                let _ = ipcx::mq::sysv::SysvMq::remove_key(*key);
            }
            Guard::Mailbox(path) => {
                let _ = std::fs::remove_file(&*path);
                let mut lock = path.clone().into_os_string();
                lock.push(".lock");
                let _ = std::fs::remove_file(lock);
            }
            Guard::None | Guard::Dir(_) => {}
        }
    }
}

fn ipv6_loopback() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

/// An address for a new channel of `kind`, and the guard for what it creates.
fn setup(kind: Kind) -> (String, Guard) {
    let in_dir = |scheme: &str, options: &str| {
        let dir = common::tempdir();
        let addr = format!("{scheme}:{}/ch{options}", dir.path().display());
        (addr, Guard::Dir(dir))
    };
    match kind {
        Kind::Pipe => ("pipe:?max=1M".into(), Guard::None),
        Kind::Fifo => in_dir("fifo", "?max=1M"),
        Kind::Unix => in_dir("unix", "?max=1M"),
        Kind::UnixDgram => in_dir("unix-dgram", ""),
        Kind::UnixSeqpacket => in_dir("unix-seqpacket", ""),
        Kind::Tcp => ("tcp:127.0.0.1:0?max=1M".into(), Guard::None),
        Kind::Tcp6 => ("tcp:[::1]:0?max=1M".into(), Guard::None),
        Kind::Udp => ("udp:127.0.0.1:0".into(), Guard::None),
        Kind::Udp6 => ("udp:[::1]:0".into(), Guard::None),
        Kind::Mq => {
            let name = common::unique_name("mq");
            (
                format!("mq:{name}?capacity=8&msgsize=8192"),
                Guard::Mq(name),
            )
        }
        Kind::SysvMq => {
            let key = common::unique_key("sysv-msg");
            (format!("sysv-mq:{}", key.raw()), Guard::Sysv(key))
        }
        Kind::Shm => {
            let name = common::unique_name("shm");
            (format!("shm:{name}?capacity=2&max=128K"), Guard::Shm(name))
        }
        Kind::Ring => {
            let name = common::unique_name("shm");
            (format!("ring:{name}?capacity=256K"), Guard::Shm(name))
        }
        Kind::Mailbox => {
            // Mailboxes live in the runtime directory, which the test's children share;
            // the name is unique as POSIX names are, without the slash.
            let name = common::unique_name("mailbox");
            let name = name.trim_start_matches('/').to_string();
            let dir = ipcx::runtime::ensure_runtime_dir().unwrap();
            (
                format!("mailbox:{name}?max=1M"),
                Guard::Mailbox(dir.join(&name)),
            )
        }
    }
}

/// Waits for a child (bounded by `common::CHILD_LIMIT`, killing it if it overruns).
fn wait_exit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > common::CHILD_LIMIT {
            let _ = child.kill();
            panic!("child overran {:?}", common::CHILD_LIMIT);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes "go" lines to a child that waits for them on its stdin.
fn ack_to(stdin: &mut ChildStdin) -> impl FnMut() + '_ {
    move || stdin.write_all(b"go\n").unwrap()
}

/// A child's wait for the parent's "go" on its stdin.
fn wait_stdin() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "go", "the parent stopped acknowledging");
}

/// The whole suite for one transport.
fn conformance(test: &str, kind: Kind) {
    if matches!(kind, Kind::Tcp6 | Kind::Udp6) && !ipv6_loopback() {
        println!("SKIPPED: no IPv6 loopback here");
        return;
    }
    if kind == Kind::Pipe {
        return conformance_pipe(test);
    }
    if common::role().is_some() {
        // The sender, in the child.
        let addr: Address = common::arg("ADDR").parse().unwrap();
        let mut tx = channel::sender_timeout(&addr, T).unwrap();
        drive_sender(&mut tx, &mut wait_stdin);
        drop(tx);
        return;
    }
    let (text, _guard) = setup(kind);
    let addr: Address = text.parse().unwrap();
    let mut rx = channel::receiver(&addr).unwrap();
    check_empty(&mut rx, &text);
    let reach = rx.address().unwrap().to_string();
    if matches!(kind, Kind::Tcp | Kind::Tcp6 | Kind::Udp | Kind::Udp6) {
        assert!(!reach.contains(":0?") && !reach.ends_with(":0"), "{reach}");
    }
    let mut child = common::child(test, "sender", &[("ADDR", &reach)])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    check_receiver(&mut rx, &mut ack_to(&mut stdin));
    let out = common::finish(child);
    let reports = common::reports(&out);
    assert!(
        out.status.success(),
        "sender failed: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        reports,
        format!("sender max {}\nsender done", rx.max_message())
    );
    // The sender has exited.
    let mut buf = vec![0u8; rx.max_message()];
    if kind.sees_sender_gone() {
        let err = rx.recv_timeout(&mut buf, T).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
    } else {
        let err = rx
            .recv_timeout(&mut buf, Duration::from_millis(100))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    }
    drop(stdin);
}

/// `pipe:`: the channel is the child's stdin, so the child receives and the parent
/// sends; acknowledgements come back as the child's reports.
fn conformance_pipe(test: &str) {
    if common::role().is_some() {
        let addr: Address = "pipe:?max=1M".parse().unwrap();
        let mut rx = channel::receiver(&addr).unwrap();
        check_empty(&mut rx, "pipe:");
        common::say("ready");
        check_receiver(&mut rx, &mut || common::say("ack"));
        let mut buf = vec![0u8; rx.max_message()];
        let err = rx.recv_timeout(&mut buf, T).unwrap_err();
        common::say(format!("{:?}", err.kind()));
        return;
    }
    let mut child = common::child(test, "receiver", &[])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reports = Reports::new(child.stdout.take().unwrap(), T);
    let stdin = child.stdin.take().unwrap();
    let writer = PipeWriter::try_from(OwnedFd::from(stdin)).unwrap();
    let mut tx = StreamSender::from_pipe(writer)
        .with_max_message(1 << 20)
        .unwrap();
    reports.expect("ready");
    drive_sender(&mut tx, &mut || reports.expect("ack"));
    drop(tx);
    reports.expect("PeerGone");
    assert!(wait_exit(&mut child).success());
}

/// The receiver (a child) exits; the sender must learn of it.
fn receiver_gone(test: &str, kind: Kind) {
    if matches!(kind, Kind::Tcp6 | Kind::Udp6) && !ipv6_loopback() {
        println!("SKIPPED: no IPv6 loopback here");
        return;
    }
    if common::role().is_some() {
        let addr: Address = common::arg("ADDR").parse().unwrap();
        let mut rx = channel::receiver(&addr).unwrap();
        common::say(format!("ready {}", rx.address().unwrap()));
        let mut buf = vec![0u8; rx.max_message()];
        let n = rx.recv_timeout(&mut buf, T).unwrap();
        common::say(format!("got {}", String::from_utf8_lossy(&buf[..n])));
        return;
    }
    let (text, _guard) = setup(kind);
    let mut cmd = common::child(test, "receiver", &[("ADDR", &text)]);
    if kind == Kind::Pipe {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    let mut reports = Reports::new(child.stdout.take().unwrap(), T);
    let ready = reports.next();
    let reach = ready.strip_prefix("ready ").unwrap().to_string();
    let mut tx: Box<dyn Sender> = if kind == Kind::Pipe {
        let stdin = child.stdin.take().unwrap();
        let writer = PipeWriter::try_from(OwnedFd::from(stdin)).unwrap();
        Box::new(
            StreamSender::from_pipe(writer)
                .with_max_message(1 << 20)
                .unwrap(),
        )
    } else {
        channel::sender_timeout(&reach.parse().unwrap(), T).unwrap()
    };
    tx.send_timeout(b"hello", T).unwrap();
    reports.expect("got hello");
    assert!(wait_exit(&mut child).success());
    // The receiver is gone: sends fail with PeerGone, at once or (UDP, TCP, a queue that
    // first fills up) after a few more.
    let deadline = Instant::now() + T;
    let mut sent = 0;
    let err = loop {
        match tx.send_timeout(b"x", Duration::from_millis(50)) {
            Ok(()) => sent += 1,
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {}
            Err(e) => break e,
        }
        assert!(
            Instant::now() < deadline,
            "the sender never saw the receiver go ({sent} sends went through)"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
    let scheme = text.split(':').next().unwrap();
    assert!(err.to_string().contains(&format!("\"{scheme}:")), "{err}");
}

macro_rules! transports {
    ($($kind:ident: $conf:ident, $gone:ident;)*) => {$(
        #[test]
        fn $conf() {
            conformance(stringify!($conf), Kind::$kind);
        }

        #[test]
        fn $gone() {
            receiver_gone(stringify!($gone), Kind::$kind);
        }
    )*};
}

transports! {
    Pipe: conformance_pipe_stdin, receiver_gone_pipe;
    Fifo: conformance_fifo, receiver_gone_fifo;
    Unix: conformance_unix, receiver_gone_unix;
    UnixDgram: conformance_unix_dgram, receiver_gone_unix_dgram;
    UnixSeqpacket: conformance_unix_seqpacket, receiver_gone_unix_seqpacket;
    Tcp: conformance_tcp, receiver_gone_tcp;
    Tcp6: conformance_tcp6, receiver_gone_tcp6;
    Udp: conformance_udp, receiver_gone_udp;
    Udp6: conformance_udp6, receiver_gone_udp6;
    Mq: conformance_mq, receiver_gone_mq;
    SysvMq: conformance_sysv_mq, receiver_gone_sysv_mq;
    Shm: conformance_shm, receiver_gone_shm;
    Ring: conformance_ring, receiver_gone_ring;
    Mailbox: conformance_mailbox, receiver_gone_mailbox;
}

// ---------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------

/// Reliability 7 and 8 across processes: a peer that announces a frame above the cap, or
/// sends a header that is not a frame, gets Corrupt from the receiver, which never
/// allocates for it; the connection is dropped and the next sender is served.
#[test]
fn stream_receiver_refuses_bad_headers_from_a_real_peer() {
    if common::role().is_some() {
        use std::os::unix::net::UnixStream;
        let path = common::arg("PATH");
        let mut s = UnixStream::connect(&path).unwrap();
        let header: &[u8] = match common::arg("WHAT").as_str() {
            // "IX", version 1, no flags, length 1 GiB.
            "huge" => b"IX\x01\x00\x00\x00\x00\x40",
            _ => b"GET / HTTP/1.1\r\n",
        };
        s.write_all(header).unwrap();
        // Stay until the receiver has judged and dropped the connection.
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut rest);
        return;
    }
    let dir = common::tempdir();
    let path = dir.path().join("s");
    let addr = Address::unix(&path)
        .unwrap()
        .with_option("max", "1M")
        .unwrap();
    let mut rx = channel::receiver(&addr).unwrap();
    let mut buf = vec![0u8; 64];
    for (what, says) in [
        (
            "huge",
            "1073741824-byte message, above this channel's cap of 1048576 bytes",
        ),
        ("http", "not ipcx-framed"),
    ] {
        let path = path.display().to_string();
        let child = common::child(
            "stream_receiver_refuses_bad_headers_from_a_real_peer",
            "peer",
            &[("PATH", &path), ("WHAT", what)],
        )
        .spawn()
        .unwrap();
        let err = rx.recv_timeout(&mut buf, T).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains(says), "{err}");
        assert!(err.to_string().contains("\"unix:"), "{err}");
        let out = common::finish(child);
        assert!(out.status.success());
    }
}

/// A sender that dies in the middle of a message: the receiver says how much arrived.
#[test]
fn stream_sender_dying_mid_message_is_peer_gone_with_the_count() {
    if common::role().is_some() {
        let writer = PipeWriter::try_from(OwnedFd::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open(common::arg("PATH"))
                .unwrap(),
        ))
        .unwrap();
        // A 100-byte message of which only 30 bytes are ever written.
        let mut frame = ipcx::channel::frame::encode_header(100).unwrap().to_vec();
        frame.extend_from_slice(&[1u8; 30]);
        writer.write_all_timeout(&frame, T).unwrap();
        std::process::exit(0);
    }
    let dir = common::tempdir();
    let path = dir.path().join("f");
    let mut rx = channel::receiver(&Address::fifo(&path).unwrap()).unwrap();
    let path = path.display().to_string();
    let out = common::run_ok(common::child(
        "stream_sender_dying_mid_message_is_peer_gone_with_the_count",
        "sender",
        &[("PATH", &path)],
    ));
    assert_eq!(out, "");
    let err = rx.recv_timeout(&mut [0u8; 256], T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
    assert!(
        err.to_string()
            .contains("the stream ended 30 bytes into a 100-byte message"),
        "{err}"
    );
}

/// Reliability 1-style: a shm peer killed with SIGKILL (no chance to mark its state) is
/// noticed through its lock, on both sides.
#[test]
fn shm_peer_killed_is_peer_gone() {
    if let Some(role) = common::role() {
        let addr: Address = common::arg("ADDR").parse().unwrap();
        // Each side stays open until it is killed.
        let _tx;
        let _rx;
        if role == "sender" {
            let mut tx = channel::sender_timeout(&addr, T).unwrap();
            tx.send(b"before").unwrap();
            _tx = tx;
        } else {
            _rx = channel::receiver(&addr).unwrap();
            common::say("ready");
        }
        common::say("waiting");
        std::thread::sleep(common::CHILD_LIMIT);
        return;
    }
    // The sender dies.
    let name = common::unique_name("shm");
    let addr: Address = format!("shm:{name}?capacity=1&max=64").parse().unwrap();
    let mut rx = channel::receiver(&addr).unwrap();
    let text = addr.to_string();
    let mut child = common::child("shm_peer_killed_is_peer_gone", "sender", &[("ADDR", &text)])
        .spawn()
        .unwrap();
    let mut reports = Reports::new(child.stdout.take().unwrap(), T);
    let mut buf = [0u8; 64];
    let n = rx.recv_timeout(&mut buf, T).unwrap();
    assert_eq!(&buf[..n], b"before");
    reports.expect("waiting");
    child.kill().unwrap();
    wait_exit(&mut child);
    let err = rx.recv_timeout(&mut buf, T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
    assert!(err.to_string().contains("died without closing"), "{err}");
    drop(rx);

    // The receiver dies, with the sender blocked on a full channel.
    let name = common::unique_name("shm");
    let _guard = Guard::Shm(name.clone());
    let text = format!("shm:{name}?capacity=1&max=64");
    let mut child = common::child(
        "shm_peer_killed_is_peer_gone",
        "receiver",
        &[("ADDR", &text)],
    )
    .spawn()
    .unwrap();
    let mut reports = Reports::new(child.stdout.take().unwrap(), T);
    reports.expect("ready");
    let mut tx = channel::sender_timeout(&text.parse().unwrap(), T).unwrap();
    tx.send(b"fills the one slot").unwrap();
    child.kill().unwrap();
    wait_exit(&mut child);
    let err = tx.send_timeout(b"blocked", T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
    assert!(err.to_string().contains("died without closing"), "{err}");
}

/// A shm channel carries one sender for its whole life.
#[test]
fn shm_refuses_a_second_sender() {
    let name = common::unique_name("shm");
    let addr: Address = format!("shm:{name}").parse().unwrap();
    let _rx = channel::receiver(&addr).unwrap();
    let tx = channel::try_sender(&addr).unwrap();
    let err = channel::try_sender(&addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("one sender"), "{err}");
    drop(tx);
    // Even after the first has gone.
    let err = channel::try_sender(&addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
}

/// Reliability 9/10: a slot length corrupted in shared memory is Corrupt, never a read
/// out of bounds; a header that does not fit the object is refused by the sender.
#[test]
fn shm_corrupt_lengths_and_headers_are_refused() {
    use ipcx::shm::posix::ShmOptions;
    let name = common::unique_name("shm");
    let addr: Address = format!("shm:{name}?capacity=1&max=64").parse().unwrap();
    let mut rx = channel::receiver(&addr).unwrap();
    let mut tx = channel::try_sender(&addr).unwrap();
    tx.send(b"fine").unwrap();
    // Scribble over the slot's length, as a broken peer could.
    let shm = ShmOptions::new().open(&name).unwrap();
    let region = shm.map().unwrap();
    let slots = region.len() - 128; // one slot of round_up(8 + 64, 64) = 128 bytes
    region.store(slots, &u64::MAX).unwrap();
    let mut buf = [0u8; 64];
    let err = rx.recv_timeout(&mut buf, T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(
        err.to_string().contains("above the channel's 64 bytes"),
        "{err}"
    );
    // The channel goes on.
    tx.send(b"next").unwrap();
    let n = rx.recv_timeout(&mut buf, T).unwrap();
    assert_eq!(&buf[..n], b"next");

    // A header announcing more slots than the object holds.
    let name = common::unique_name("shm");
    let addr: Address = format!("shm:{name}?capacity=1&max=64").parse().unwrap();
    let _rx = channel::receiver(&addr).unwrap();
    let shm = ShmOptions::new().open(&name).unwrap();
    shm.map().unwrap().store(8, &1000u32).unwrap();
    let err = channel::try_sender(&addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("1000 slots of 64 bytes"), "{err}");
}

/// Opening a sender with no receiver: try_sender fails at once, sender_timeout after its
/// timeout, both naming the address and saying to start the receiver.
#[test]
fn senders_without_a_receiver_name_the_address() {
    let dir = common::tempdir();
    let mq = common::unique_name("mq");
    let key = common::unique_key("sysv-msg");
    let shm = common::unique_name("shm");
    for text in [
        format!("unix:{}/none", dir.path().display()),
        format!("unix-seqpacket:{}/none", dir.path().display()),
        format!("unix-dgram:{}/none", dir.path().display()),
        format!("fifo:{}/none", dir.path().display()),
        format!("mq:{mq}"),
        format!("sysv-mq:{}", key.raw()),
        format!("shm:{shm}"),
    ] {
        let addr: Address = text.parse().unwrap();
        let err = channel::try_sender(&addr).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::NotFound | ErrorKind::PeerGone),
            "{text}: {err}"
        );
        assert!(err.to_string().contains(&format!("\"{addr}\"")), "{err}");
        assert!(
            err.to_string().contains("start the receiver first"),
            "{err}"
        );
        let start = Instant::now();
        let err = channel::sender_timeout(&addr, Duration::from_millis(40)).unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(40));
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{text}: {err}");
        assert!(err.to_string().contains("no receiver appeared"), "{err}");
        assert!(err.to_string().contains(&format!("\"{addr}\"")), "{err}");
    }
}

/// A receiver created before its sender: the sender waits for it.
#[test]
fn sender_waits_for_a_receiver_that_comes_later() {
    let dir = common::tempdir();
    let addr = Address::unix_seqpacket(dir.path().join("late")).unwrap();
    let a = addr.clone();
    let receiver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let mut rx = channel::receiver(&a).unwrap();
        let mut buf = vec![0u8; rx.max_message()];
        let n = rx.recv_timeout(&mut buf, T).unwrap();
        buf.truncate(n);
        buf
    });
    let mut tx = channel::sender_timeout(&addr, T).unwrap();
    tx.send(b"made it").unwrap();
    assert_eq!(receiver.join().unwrap(), b"made it");
}

/// A mailbox receiver binds locally only; a sender to a mailbox nobody bound is told so,
/// naming the address; the receiver names its sender's ephemeral mailbox.
#[test]
fn mailbox_addresses_local_and_remote() {
    let (text, _guard) = setup(Kind::Mailbox);
    let addr: Address = text.parse().unwrap();
    let err = channel::try_sender(&addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().contains("no receiver at this address yet"),
        "{err}"
    );
    assert!(err.to_string().contains("\"mailbox:"), "{err}");
    let remote: Address = "mailbox:jobs@127.0.0.1:9".parse().unwrap();
    let err = channel::receiver(&remote).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("ipcx mailbox serve"), "{err}");
    let mut rx = channel::receiver(&addr).unwrap();
    let mut tx = channel::try_sender(&addr).unwrap();
    tx.send_timeout(b"hi", T).unwrap();
    let mut buf = vec![0u8; rx.max_message()];
    let n = rx.recv_timeout(&mut buf, T).unwrap();
    assert_eq!(&buf[..n], b"hi");
    drop(rx);
    let err = tx.send_timeout(b"x", T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
}

/// A second receiver on a taken name, path or port fails with AlreadyExists.
#[test]
fn a_second_receiver_is_refused() {
    let dir = common::tempdir();
    let mq = common::unique_name("mq");
    let key = common::unique_key("sysv-msg");
    let shm = common::unique_name("shm");
    for text in [
        format!("unix:{}/taken", dir.path().display()),
        format!("fifo:{}/taken.fifo", dir.path().display()),
        format!("mq:{mq}"),
        format!("sysv-mq:{}", key.raw()),
        format!("shm:{shm}"),
    ] {
        let addr: Address = text.parse().unwrap();
        let _first = channel::receiver(&addr).unwrap();
        let err = channel::receiver(&addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{text}: {err}");
    }
    let first = channel::receiver(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
    let taken = first.address().unwrap();
    let err = channel::receiver(&taken).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
}

/// A stream receiver built on a pipe end (what `ipcx bench` does for a child's stdout).
#[test]
fn stream_channel_over_an_anonymous_pipe() {
    let (r, w) = ipcx::pipe::pipe().unwrap();
    let mut tx = StreamSender::from_pipe(w);
    let mut rx = StreamReceiver::from_pipe(r);
    assert_eq!(tx.max_message(), ipcx::channel::frame::DEFAULT_MAX);
    // A message larger than the pipe: try_send writes what fits, keeps the rest, and
    // reports the message as sent; the receiver gets it whole once flushed.
    let big = pattern(5, 300_000);
    tx.try_send(&big).unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 400_000];
        let n = rx.recv_timeout(&mut buf, T).unwrap();
        buf.truncate(n);
        (buf, rx)
    });
    tx.flush_timeout(T).unwrap();
    let (got, mut rx) = reader.join().unwrap();
    assert!(got == big);
    drop(tx);
    let err = rx.recv_timeout(&mut [0u8; 8], T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone);
}

/// Stream channels made from a socket someone else connected name that socket in their
/// errors (its file, its peer's, or `tcp:HOST:PORT`), never `pipe:`.
#[test]
fn stream_channels_from_sockets_name_the_socket_in_errors() {
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::net::{UnixListener, UnixStream};

    let too_big = u32::MAX as usize + 1;
    let check = |err: ipcx::Error, kind: ErrorKind, names: &str| {
        assert_eq!(err.kind(), kind, "{err}");
        let text = err.to_string();
        assert!(text.contains(names), "the error names {names}: {text}");
        assert!(!text.contains("pipe:"), "{text}");
    };

    // Unix: the sender names the listener's file (its peer), and so does the receiver
    // of the accepted connection (its own address).
    let dir = common::tempdir();
    let path = dir.path().join("adopted.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let client = UnixStream::connect(&path).unwrap();
    let (server, _) = listener.accept().unwrap();
    let named = format!("unix:{}", path.display());
    let tx = StreamSender::from_unix(client);
    check(
        tx.with_max_message(too_big).unwrap_err(),
        ErrorKind::InvalidInput,
        &named,
    );
    let mut tx = StreamSender::from_unix(UnixStream::connect(&path).unwrap());
    let mut rx = StreamReceiver::from_unix(server);
    drop(listener.accept().unwrap());
    let mut gone = Err(());
    for _ in 0..100 {
        // The peer's close shows on the next send or the one after.
        match tx.send_timeout(b"x", T) {
            Err(e) => {
                gone = Ok(e);
                break;
            }
            Ok(()) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    check(gone.unwrap(), ErrorKind::PeerGone, &named);
    // The first sender (dropped with its error) was this receiver's peer.
    let err = rx.recv_timeout(&mut [0u8; 8], T).unwrap_err();
    check(err, ErrorKind::PeerGone, &named);

    // A socket pair has no name: the error says so.
    let (a, _b) = UnixStream::pair().unwrap();
    let mut rx = StreamReceiver::from_unix(a);
    check(
        rx.try_recv(&mut [0u8; 8]).unwrap_err(),
        ErrorKind::WouldBlock,
        "unnamed unix stream socket",
    );

    // TCP: the sender names the server's address, the receiver the address it was
    // reached at (the same one).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    let named = format!("tcp:127.0.0.1:{port}");
    let tx = StreamSender::from_tcp(client);
    let mut rx = StreamReceiver::from_tcp(server);
    check(
        rx.recv_timeout(&mut [0u8; 8], Duration::from_millis(10))
            .unwrap_err(),
        ErrorKind::TimedOut,
        &named,
    );
    drop(tx);
    check(
        rx.recv_timeout(&mut [0u8; 8], T).unwrap_err(),
        ErrorKind::PeerGone,
        &named,
    );
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    check(
        StreamSender::from_tcp(client)
            .with_max_message(too_big)
            .unwrap_err(),
        ErrorKind::InvalidInput,
        &named,
    );
}

/// Fills a socket channel until the sender's next `try_send` would block; returns how
/// many messages went in.
fn fill(tx: &mut (dyn Sender + Send), msg: &[u8]) -> usize {
    let mut sent = 0;
    loop {
        match tx.try_send(msg) {
            Ok(()) => sent += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return sent,
            Err(e) => panic!("filling the channel: {e}"),
        }
        assert!(sent < 1_000_000, "the channel never filled");
    }
}

/// A receive into a buffer smaller than the next message, on a message socket, leaves
/// the message in the kernel (it is peeked at, not taken into a spare buffer of the
/// channel's maximum): the channel stays exactly as full as it was, the error names the
/// message's size, and the next receive with room takes it. The empty, blocking and timed
/// forms with a small buffer wait and time out as with a large one.
#[test]
fn small_buffers_leave_the_message_in_the_kernel() {
    let dir = common::tempdir();
    for scheme in ["unix-dgram", "unix-seqpacket"] {
        let addr: Address = format!("{scheme}:{}/small", dir.path().display())
            .parse()
            .unwrap();
        let mut rx = channel::receiver(&addr).unwrap();
        let mut tx = channel::sender_timeout(&addr, T).unwrap();
        let mut small = [0u8; 4];

        let err = rx.try_recv(&mut small).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock, "{scheme}: {err}");
        let err = rx
            .recv_timeout(&mut small, Duration::from_millis(20))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{scheme}: {err}");

        let msg = b"0123456789";
        let sent = fill(tx.as_mut(), msg);
        assert!(sent > 0, "{scheme}");
        for _ in 0..3 {
            let err = rx.try_recv(&mut small).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{scheme}: {err}");
            let text = err.to_string();
            assert!(
                text.contains("10 bytes but the buffer has 4 bytes") && text.contains(scheme),
                "{text}"
            );
            let err = rx.recv_timeout(&mut small, T).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{scheme}: {err}");
        }
        // Nothing was taken out of the socket: the channel is as full as before.
        let err = tx.try_send(msg).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::WouldBlock,
            "{scheme}: a too-small receive took the message out of the kernel"
        );
        // A buffer that fits, though smaller than the channel's maximum, takes them all
        // in order; the blocking form with a small buffer waits for the next one.
        let mut fits = [0u8; 10];
        for _ in 0..sent {
            assert_eq!(rx.recv_timeout(&mut fits, T).unwrap(), 10, "{scheme}");
            assert_eq!(&fits, msg);
        }
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(b"late").unwrap();
            tx
        });
        let n = rx.recv(&mut small).unwrap();
        assert_eq!(&small[..n], b"late", "{scheme}");
        drop(late.join().unwrap());
        if scheme == "unix-seqpacket" {
            // The end of the connection shows through the peek as through a receive.
            let err = rx.recv_timeout(&mut small, T).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::PeerGone, "{scheme}: {err}");
        }
    }
}

/// A Unix datagram receiver shared by several senders: a message too large for the
/// buffer stays first in line (later senders' messages wait behind it, in order), and a
/// datagram above the channel's cap is taken and reported, so it cannot stop the
/// receiver for everyone else.
#[test]
fn datagram_receiver_with_several_senders_keeps_order_around_large_messages() {
    let dir = common::tempdir();
    let path = format!("{}/shared", dir.path().display());
    let addr: Address = format!("unix-dgram:{path}?max=100").parse().unwrap();
    let mut rx = channel::receiver(&addr).unwrap();
    let mut a = channel::sender_timeout(&addr, T).unwrap();
    // A sender that was told a larger cap than the receiver's.
    let wide: Address = format!("unix-dgram:{path}?max=1000").parse().unwrap();
    let mut b = channel::sender_timeout(&wide, T).unwrap();

    a.send(b"from a, ten").unwrap();
    b.send(b"b1").unwrap();
    b.send(&[7u8; 500]).unwrap();
    a.send(b"a2").unwrap();

    let mut small = [0u8; 4];
    for _ in 0..2 {
        let err = rx.recv_timeout(&mut small, T).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{err}");
        assert!(
            err.to_string().contains("11 bytes but the buffer has 4"),
            "{err}"
        );
    }
    let mut buf = [0u8; 11];
    assert_eq!(rx.recv_timeout(&mut buf, T).unwrap(), 11);
    assert_eq!(&buf, b"from a, ten");
    let n = rx.recv_timeout(&mut small, T).unwrap();
    assert_eq!(&small[..n], b"b1");
    // Above the receiver's cap of 100: taken and discarded, whatever the buffer.
    let err = rx.recv_timeout(&mut small, T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{err}");
    assert!(
        err.to_string()
            .contains("500-byte datagram is above this channel's cap of 100 bytes"),
        "{err}"
    );
    let n = rx.recv_timeout(&mut small, T).unwrap();
    assert_eq!(&small[..n], b"a2");
}

/// Reliability 18: signals during a wait never surface as errors nor cut the timeout
/// short, on the transports whose waits are built differently (poll on a socket, slices
/// of semaphore waits, queue readiness, System V polling).
#[test]
fn signals_do_not_cut_waits_short() {
    let dir = common::tempdir();
    let mq = common::unique_name("mq");
    let shm = common::unique_name("shm");
    let key = common::unique_key("sysv-msg");
    for text in [
        format!("unix:{}/sig", dir.path().display()),
        format!("shm:{shm}"),
        format!("mq:{mq}?capacity=2&msgsize=64"),
        format!("sysv-mq:{}", key.raw()),
    ] {
        let addr: Address = text.parse().unwrap();
        let mut rx = channel::receiver(&addr).unwrap();
        let mut buf = vec![0u8; rx.max_message()];
        let start = Instant::now();
        let (result, signals) =
            common::under_signal_storm(|| rx.recv_timeout(&mut buf, Duration::from_millis(300)));
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{text}: {err}");
        assert!(start.elapsed() >= Duration::from_millis(300), "{text}");
        assert!(signals > 0, "{text}: no signal arrived during the wait");
    }
}

// ---------------------------------------------------------------------------------------
// The address grammar
// ---------------------------------------------------------------------------------------

#[test]
fn addresses_parse_print_and_round_trip() {
    for (input, canonical) in [
        ("pipe:", "pipe:"),
        ("pipe:?max=64K", "pipe:?max=65536"),
        ("fifo:/run/app/jobs.fifo", "fifo:/run/app/jobs.fifo"),
        (
            "fifo:rel/jobs?max=1k&mode=640",
            "fifo:rel/jobs?mode=0640&max=1024",
        ),
        (
            "unix:/run/app.sock?mode=0660",
            "unix:/run/app.sock?mode=0660",
        ),
        ("unix-dgram:/tmp/d", "unix-dgram:/tmp/d"),
        (
            "unix-seqpacket:/tmp/s?max=1M",
            "unix-seqpacket:/tmp/s?max=1048576",
        ),
        ("tcp:localhost:7000", "tcp:localhost:7000"),
        (
            "tcp:127.0.0.1:0?nodelay=false",
            "tcp:127.0.0.1:0?nodelay=false",
        ),
        ("tcp:[::1]:7000", "tcp:[::1]:7000"),
        ("udp:[fe80::1]:53", "udp:[fe80::1]:53"),
        (
            "mq:jobs?prio=3&msgsize=8192&capacity=10",
            "mq:/jobs?capacity=10&msgsize=8192&prio=3",
        ),
        ("sysv-mq:0x4a4f4253?type=2", "sysv-mq:0x4a4f4253?type=2"),
        ("sysv-mq:1234", "sysv-mq:0x4d2"),
        ("sysv-mq:-1", "sysv-mq:0xffffffff"),
        (
            "shm:/jobs?capacity=8&max=4K&mode=0600",
            "shm:/jobs?mode=0600&capacity=8&max=4096",
        ),
        ("ring:/jobs", "ring:/jobs"),
        ("mailbox:jobs", "mailbox:jobs"),
        ("unix:/tmp/a%3Fb", "unix:/tmp/a%3Fb"),
        ("fifo:/tmp/100%25", "fifo:/tmp/100%25"),
        // Names escape `?` and `%` as paths do: the query starts at the first bare `?`.
        ("mq:/a%3Fb?prio=1", "mq:/a%3Fb?prio=1"),
        ("shm:100%25", "shm:/100%25"),
        ("ring:/r%3f", "ring:/r%3F"),
        ("mq:/tab%09", "mq:/tab%09"),
        ("mailbox:jobs@127.0.0.1:7300", "mailbox:jobs@127.0.0.1:7300"),
        (
            "mailbox:jobs@[::1]:7300?max=1K&mode=640",
            "mailbox:jobs@[::1]:7300?mode=0640&max=1024",
        ),
    ] {
        let a: Address = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(a.to_string(), canonical, "{input}");
        let again: Address = canonical.parse().unwrap();
        assert_eq!(again, a, "{canonical} round trip");
        assert_eq!(again.to_string(), canonical);
    }
    let a: Address = "unix:/tmp/a%3Fb".parse().unwrap();
    assert_eq!(a.path().unwrap(), std::path::Path::new("/tmp/a?b"));
    let a: Address = "mq:/a%3Fb?prio=1".parse().unwrap();
    assert_eq!(a.name().unwrap().as_str(), "/a?b");
    assert_eq!(a.options().prio, Some(1));
    assert_eq!(
        "mailbox:jobs@[::1]:7300"
            .parse::<Address>()
            .unwrap()
            .mailbox(),
        Some("jobs@[::1]:7300")
    );
    for (name, printed) in [
        ("a?b", "mq:/a%3Fb"),
        ("50%", "mq:/50%25"),
        ("ü?", "mq:/ü%3F"),
    ] {
        let a = Address::mq(name).unwrap();
        assert_eq!(a.to_string(), printed);
        assert_eq!(printed.parse::<Address>().unwrap(), a, "{printed}");
        let a = Address::shm(name)
            .unwrap()
            .with_option("capacity", "2")
            .unwrap();
        let again: Address = a.to_string().parse().unwrap();
        assert_eq!(again, a);
        assert_eq!(again.name().unwrap().as_str(), format!("/{name}"));
    }
    let a: Address = "tcp:[::1]:7000?max=2".parse().unwrap();
    assert_eq!(a.host_port(), Some(("::1", 7000)));
    assert_eq!(a.transport(), Transport::Tcp);
    assert_eq!(a.options().max, Some(2));
    let a: Address = "sysv-mq:0x10".parse().unwrap();
    assert_eq!(a.key(), Some(ipcx::sysv::Key::new(16)));
    assert_eq!(
        "mq:/x".parse::<Address>().unwrap().name().unwrap().as_str(),
        "/x"
    );
    // Built in code, with the same checks.
    let a = Address::mq("jobs")
        .unwrap()
        .with_option("capacity", "3")
        .unwrap();
    assert_eq!(a.to_string(), "mq:/jobs?capacity=3");
    assert!(Address::mq("a/b").is_err());
    assert_eq!(Address::tcp("::1", 80).unwrap().to_string(), "tcp:[::1]:80");
    assert!(Address::sysv_mq(ipcx::sysv::Key::PRIVATE).is_err());
    // Every transport's scheme parses back.
    for t in Transport::ALL {
        assert_eq!(t.scheme().parse::<Transport>().unwrap(), t);
    }
}

#[test]
fn bad_addresses_say_what_is_wrong() {
    let long_name = format!("mq:/{}", "x".repeat(256));
    let long_path = format!("unix:/tmp/{}", "s".repeat(120));
    for (input, kind, says) in [
        (
            "",
            ErrorKind::InvalidInput,
            "an address is TRANSPORT:TARGET",
        ),
        (
            "/tmp/x.sock",
            ErrorKind::InvalidInput,
            "an address is TRANSPORT:TARGET",
        ),
        (
            "unixx:/tmp/x",
            ErrorKind::InvalidInput,
            "unknown transport `unixx`; one of: pipe, fifo, unix",
        ),
        (
            "pipe:/dev/stdin",
            ErrorKind::InvalidInput,
            "`pipe:` takes no target",
        ),
        ("unix:", ErrorKind::InvalidInput, "the path is empty"),
        ("unix:/tmp/", ErrorKind::InvalidName, "names a directory"),
        (
            long_path.as_str(),
            ErrorKind::InvalidName,
            "the limit is 107 bytes",
        ),
        ("fifo:/tmp/%zz", ErrorKind::InvalidInput, "two hex digits"),
        ("tcp:7000", ErrorKind::InvalidInput, "expected HOST:PORT"),
        (
            "tcp:localhost:http",
            ErrorKind::InvalidInput,
            "`http` is not a port number",
        ),
        (
            "tcp:localhost:70000",
            ErrorKind::InvalidInput,
            "`70000` is not a port number",
        ),
        (
            "tcp:::1:7000",
            ErrorKind::InvalidInput,
            "an IPv6 address goes in brackets",
        ),
        ("tcp:[::1:7000", ErrorKind::InvalidInput, "lacks its `]`"),
        (
            "tcp:[127.0.0.1]:7000",
            ErrorKind::InvalidInput,
            "only IPv6 addresses go in brackets",
        ),
        (
            "tcp:[::g]:7000",
            ErrorKind::InvalidInput,
            "`::g` is not an IPv6 address",
        ),
        (
            "tcp:bad host:7000",
            ErrorKind::InvalidInput,
            "neither an IP address nor a host name",
        ),
        ("udp::7000", ErrorKind::InvalidInput, "the host is empty"),
        ("mq:", ErrorKind::InvalidName, "at least one character"),
        ("mq:/a/b", ErrorKind::InvalidName, "no '/' after the first"),
        (
            long_name.as_str(),
            ErrorKind::InvalidName,
            "the limit is 255 bytes",
        ),
        (
            "shm:..",
            ErrorKind::InvalidName,
            "'.' and '..' are not names",
        ),
        (
            "sysv-mq:jobs",
            ErrorKind::InvalidInput,
            "`jobs` is not a System V key",
        ),
        ("sysv-mq:0", ErrorKind::InvalidInput, "IPC_PRIVATE"),
        ("mailbox:a/b", ErrorKind::InvalidName, "'/' is not allowed"),
        (
            "mailbox:a?b",
            ErrorKind::InvalidInput,
            "option `b` has no value",
        ),
        ("mailbox:x.lock", ErrorKind::InvalidName, "reserved"),
        ("mailbox:jobs@host", ErrorKind::InvalidInput, "no `:PORT`"),
        ("mailbox:jobs@host:0", ErrorKind::InvalidInput, "1 to 65535"),
        (
            "mailbox:@host:7",
            ErrorKind::InvalidName,
            "at least one character",
        ),
        ("mq:/100%", ErrorKind::InvalidInput, "two hex digits"),
        ("shm:/%zz", ErrorKind::InvalidInput, "two hex digits"),
        ("mq:/%FF", ErrorKind::InvalidInput, "not UTF-8"),
        (
            "mq:/a%2Fb",
            ErrorKind::InvalidName,
            "no '/' after the first",
        ),
        (
            "mailbox:a%2Fb",
            ErrorKind::InvalidName,
            "'/' is not allowed",
        ),
        ("mq:/jobs?", ErrorKind::InvalidInput, "nothing follows `?`"),
        (
            "mq:/jobs?capacity",
            ErrorKind::InvalidInput,
            "option `capacity` has no value",
        ),
        (
            "mq:/jobs?capacity=",
            ErrorKind::InvalidInput,
            "option `capacity` has an empty value",
        ),
        (
            "mq:/jobs?colour=blue",
            ErrorKind::InvalidInput,
            "unknown option `colour`; mq: takes mode, capacity, msgsize, prio",
        ),
        (
            "udp:127.0.0.1:1?max=5",
            ErrorKind::InvalidInput,
            "udp: addresses take no options",
        ),
        (
            "mq:/jobs?capacity=2&capacity=3",
            ErrorKind::InvalidInput,
            "option `capacity` is given twice",
        ),
        (
            "mq:/jobs?capacity=0",
            ErrorKind::InvalidInput,
            "option `capacity=0`: must be at least 1",
        ),
        (
            "mq:/jobs?capacity=ten",
            ErrorKind::InvalidInput,
            "option `capacity=ten`: expected a positive number",
        ),
        (
            "mq:/jobs?prio=32768",
            ErrorKind::InvalidInput,
            "a priority is from 0 to 32767",
        ),
        (
            "unix:/tmp/x?mode=999",
            ErrorKind::InvalidInput,
            "option `mode=999`: a permission mode is octal, from 0 to 0777",
        ),
        (
            "unix:/tmp/x?mode=1777",
            ErrorKind::InvalidInput,
            "from 0 to 0777",
        ),
        (
            "sysv-mq:5?type=0",
            ErrorKind::InvalidInput,
            "a message type is a positive number",
        ),
        (
            "tcp:h:1?nodelay=yes",
            ErrorKind::InvalidInput,
            "expected true or false",
        ),
        (
            "tcp:h:1?max=5G",
            ErrorKind::InvalidInput,
            "a framed message is at most 4294967295 bytes",
        ),
        (
            "shm:/x?prio=1",
            ErrorKind::InvalidInput,
            "shm: takes mode, capacity, max",
        ),
        // A sign is not part of any number in an address, though Rust's parsers take `+`.
        (
            "unix:/tmp/x?mode=+7",
            ErrorKind::InvalidInput,
            "option `mode=+7`: no sign is allowed; write mode=7",
        ),
        (
            "unix:/tmp/x?mode=0o+7",
            ErrorKind::InvalidInput,
            "option `mode=0o+7`: no sign is allowed",
        ),
        (
            "mq:/jobs?prio=+3",
            ErrorKind::InvalidInput,
            "option `prio=+3`: no sign is allowed; write prio=3",
        ),
        (
            "mq:/jobs?capacity=+5",
            ErrorKind::InvalidInput,
            "option `capacity=+5`: no sign is allowed; write capacity=5",
        ),
        (
            "mq:/jobs?msgsize=+5K",
            ErrorKind::InvalidInput,
            "option `msgsize=+5K`: no sign is allowed",
        ),
        (
            "pipe:?max=+5",
            ErrorKind::InvalidInput,
            "option `max=+5`: no sign is allowed",
        ),
        (
            "sysv-mq:5?type=+2",
            ErrorKind::InvalidInput,
            "option `type=+2`: no sign is allowed; write type=2",
        ),
        (
            "sysv-mq:5?type=-2",
            ErrorKind::InvalidInput,
            "option `type=-2`: no sign is allowed",
        ),
        (
            "tcp:localhost:+80",
            ErrorKind::InvalidInput,
            "`+80` is not a port number",
        ),
        (
            "sysv-mq:+5",
            ErrorKind::InvalidInput,
            "`+5` is not a System V key",
        ),
        (
            "sysv-mq:0x+5",
            ErrorKind::InvalidInput,
            "`0x+5` is not a System V key",
        ),
    ] {
        let err = input.parse::<Address>().unwrap_err();
        assert_eq!(err.kind(), kind, "{input}: {err}");
        assert_eq!(err.operation(), "parse address", "{input}");
        let text = err.to_string();
        assert!(text.contains(says), "{input}: {text}");
        assert!(
            text.starts_with(&format!("parse address {input:?}")),
            "the message names the whole address: {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Typed values (feature `serde`)
// ---------------------------------------------------------------------------------------

#[cfg(feature = "serde")]
mod typed {
    use super::*;
    use ipcx::channel::{TypedReceiver, TypedSender};

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    enum Op {
        Build { target: String, jobs: u16 },
        Stop,
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Job {
        id: u64,
        op: Op,
        tags: Vec<String>,
        deadline_ms: Option<u32>,
    }

    fn jobs() -> Vec<Job> {
        vec![
            Job {
                id: 1,
                op: Op::Build {
                    target: "ipcx".into(),
                    jobs: 2,
                },
                tags: vec!["fast".into(), "ci".into()],
                deadline_ms: Some(1500),
            },
            Job {
                id: u64::MAX,
                op: Op::Stop,
                tags: vec![],
                deadline_ms: None,
            },
        ]
    }

    /// A struct round trip across processes, over a queue and a seqpacket socket.
    #[test]
    fn typed_values_cross_processes() {
        if common::role().is_some() {
            let addr: Address = common::arg("ADDR").parse().unwrap();
            let mut tx = TypedSender::new(channel::sender_timeout(&addr, T).unwrap());
            for job in jobs() {
                tx.send(&job).unwrap();
            }
            // Bytes that are not a Job, sent underneath the typed layer.
            tx.get_mut().send(&[0xff; 3]).unwrap();
            return;
        }
        let dir = common::tempdir();
        let mq = common::unique_name("mq");
        for text in [
            format!("mq:{mq}?capacity=4&msgsize=1024"),
            format!("unix-seqpacket:{}/typed", dir.path().display()),
        ] {
            let addr: Address = text.parse().unwrap();
            let mut rx = TypedReceiver::<Job, _>::new(channel::receiver(&addr).unwrap());
            let child = common::child(
                "typed::typed_values_cross_processes",
                "sender",
                &[("ADDR", &text)],
            )
            .spawn()
            .unwrap();
            for want in jobs() {
                assert_eq!(rx.recv_timeout(T).unwrap(), want);
            }
            let err = rx.recv_timeout(T).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
            assert!(
                err.to_string().contains("a 3-byte message is not a"),
                "{err}"
            );
            let out = common::finish(child);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Review regression: a `pipe:` channel on stdin/stdout must not make the process's own
/// stdin/stdout non-blocking (that description is shared with everything else writing
/// to it, which would then fail with `EAGAIN`).
#[test]
fn pipe_address_leaves_the_process_stdio_blocking() {
    if common::role().is_some() {
        let nonblocking = |fd: std::os::fd::BorrowedFd<'_>| {
            rustix::fs::fcntl_getfl(fd)
                .unwrap()
                .contains(rustix::fs::OFlags::NONBLOCK)
        };
        use std::os::fd::AsFd;
        let addr: Address = "pipe:".parse().unwrap();
        let tx = channel::try_sender(&addr).unwrap();
        let rx = channel::receiver(&addr).unwrap();
        common::say(format!(
            "stdout non-blocking: {}, stdin non-blocking: {}",
            nonblocking(std::io::stdout().as_fd()),
            nonblocking(std::io::stdin().as_fd())
        ));
        drop((tx, rx));
        return;
    }
    let (_keep_writing_end, reader_for_child) = {
        let (r, w) = ipcx::pipe::pipe().unwrap();
        (w, r)
    };
    let mut cmd = common::child(
        "pipe_address_leaves_the_process_stdio_blocking",
        "stdio",
        &[],
    );
    cmd.stdin(Stdio::from(OwnedFd::from(reader_for_child)));
    let said = common::run_ok(cmd);
    assert_eq!(
        said,
        "stdout non-blocking: false, stdin non-blocking: false"
    );
}

/// Review regression: after its sender leaves, a FIFO receiver reports the departure once,
/// then waits for the next sender (it used to fail at once, for ever, spinning callers).
#[test]
fn fifo_receiver_waits_for_the_next_sender_after_one_leaves() {
    if common::role().is_some() {
        let addr: Address = common::arg("ADDR").parse().unwrap();
        let mut tx = channel::sender_timeout(&addr, Duration::from_secs(10)).unwrap();
        tx.send(common::arg("MSG").as_bytes()).unwrap();
        return;
    }
    let dir = common::tempdir();
    let addr: Address = format!("fifo:{}", dir.path().join("jobs").display())
        .parse()
        .unwrap();
    let mut rx = channel::receiver(&addr).unwrap();
    let mut buf = vec![0u8; 64];
    let test = "fifo_receiver_waits_for_the_next_sender_after_one_leaves";
    let a = addr.to_string();
    common::run_ok(common::child(
        test,
        "first",
        &[("ADDR", &a), ("MSG", "one")],
    ));
    let n = rx.recv_timeout(&mut buf, Duration::from_secs(10)).unwrap();
    assert_eq!(&buf[..n], b"one");
    let gone = rx
        .recv_timeout(&mut buf, Duration::from_secs(10))
        .unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::PeerGone, "{gone}");
    // No sender now: the receive waits its whole time instead of failing at once.
    let start = Instant::now();
    let idle = rx
        .recv_timeout(&mut buf, Duration::from_millis(100))
        .unwrap_err();
    assert_eq!(idle.kind(), ErrorKind::TimedOut, "{idle}");
    assert!(start.elapsed() >= Duration::from_millis(100));
    common::run_ok(common::child(
        test,
        "second",
        &[("ADDR", &a), ("MSG", "two")],
    ));
    let n = rx.recv_timeout(&mut buf, Duration::from_secs(10)).unwrap();
    assert_eq!(&buf[..n], b"two");
}

/// One receiver through every form in turn. A pipe or FIFO receiver blocks inside `read`
/// for `recv` and turns non-blocking for the other forms: `try_recv` and `recv_timeout`
/// right after a blocking `recv` must still return at once or on time, and `recv` after
/// them must still wait for the next message.
fn every_form_in_turn(tx: &mut (dyn Sender + Send), rx: &mut dyn Receiver) {
    let mut buf = [0u8; 64];
    tx.send(b"one").unwrap();
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"one");
    let err = rx.try_recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    let err = rx
        .recv_timeout(&mut buf, Duration::from_millis(50))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    tx.send(b"two").unwrap();
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"two");
    tx.send(b"three").unwrap();
    let n = rx.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"three");
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            tx.send(b"four").unwrap();
        });
        // Blocking again, with nothing there yet: waits for the late message.
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"four");
    });
    let err = rx.try_recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
}

/// `every_form_in_turn` on an anonymous pipe handed over with `from_pipe`, on a FIFO and
/// on a Unix stream, in a child so that a receive that hangs fails the test. The pipe end
/// the caller handed over keeps its mode: the receiver switches a description of its own.
#[test]
fn receivers_move_between_blocking_and_non_blocking_forms() {
    if common::role().is_some() {
        let (r, w) = ipcx::pipe::pipe().unwrap();
        let shared = rustix::io::fcntl_dupfd_cloexec(&r, 0).unwrap();
        let before = rustix::fs::fcntl_getfl(&shared).unwrap();
        let mut tx = StreamSender::from_pipe(w);
        let mut rx = StreamReceiver::from_pipe(r);
        tx.send(b"blocking").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(rx.recv(&mut buf).unwrap(), 8);
        // Right after a blocking receive (its own description is now blocking), the
        // caller's description still has the flags it had.
        assert_eq!(rustix::fs::fcntl_getfl(&shared).unwrap(), before);
        every_form_in_turn(&mut tx, &mut rx);
        assert_eq!(rustix::fs::fcntl_getfl(&shared).unwrap(), before);

        let dir = common::tempdir();
        for scheme in ["fifo", "unix"] {
            let addr: Address = format!("{scheme}:{}/{scheme}", dir.path().display())
                .parse()
                .unwrap();
            let mut rx = channel::receiver(&addr).unwrap();
            let mut tx = channel::sender_timeout(&addr, T).unwrap();
            every_form_in_turn(&mut *tx, &mut *rx);
        }
        common::say("every form behaved");
        std::process::exit(0);
    }
    let out = common::finish(
        common::child(
            "receivers_move_between_blocking_and_non_blocking_forms",
            "child",
            &[],
        )
        .spawn()
        .unwrap(),
    );
    assert!(
        out.status.success() && common::reports(&out).contains("every form behaved"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A pipe sender reads SIGPIPE's disposition when it is made. Made while SIGPIPE kills
/// (as in a C program), its sends to a pipe whose reader is gone are `PeerGone`, the
/// process lives, and no SIGPIPE is left pending.
#[test]
fn pipe_sender_made_under_default_sigpipe_survives_a_gone_reader() {
    if common::role().is_some() {
        common::default_sigpipe();
        let (r, w) = ipcx::pipe::pipe().unwrap();
        let mut tx = StreamSender::from_pipe(w);
        drop(r);
        let err = tx.send(b"into the void").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
        assert!(!common::sigpipe_pending(), "the SIGPIPE must be consumed");
        common::say("alive after EPIPE");
        std::process::exit(0);
    }
    let out = common::finish(
        common::child(
            "pipe_sender_made_under_default_sigpipe_survives_a_gone_reader",
            "child",
            &[],
        )
        .spawn()
        .unwrap(),
    );
    assert!(
        out.status.success() && common::reports(&out).contains("alive after EPIPE"),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A message that `try_send` reported sent but only partly wrote (it is larger than the
/// pipe) still arrives whole when the sender is dropped at once: the drop lingers to write
/// the rest while the receiver reads. With no linger, the rest is given up and the
/// receiver sees the stream end inside the message.
#[test]
fn dropping_a_sender_lingers_to_finish_a_committed_message() {
    for linger in [StreamSender::DEFAULT_LINGER, Duration::ZERO] {
        let (r, w) = ipcx::pipe::pipe().unwrap();
        let mut tx = StreamSender::from_pipe(w).with_linger(linger);
        let mut rx = StreamReceiver::from_pipe(r);
        let big = pattern(9, 300_000);
        tx.try_send(&big).unwrap();
        let dropper = std::thread::spawn(move || drop(tx));
        let mut buf = vec![0u8; 400_000];
        let got = rx.recv_timeout(&mut buf, T);
        dropper.join().unwrap();
        if linger.is_zero() {
            let err = got.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
        } else {
            let n = got.unwrap();
            assert!(buf[..n] == big[..], "the message must arrive whole");
            let err = rx.recv_timeout(&mut buf, T).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
        }
    }
}

/// A zero timeout still moves what can move at once: `send_timeout(ZERO)` with room and
/// `recv_timeout(ZERO)` with a message waiting succeed on every kind of wait (socket,
/// FIFO, queue readiness, shared-memory semaphores); with nothing waiting, the receive
/// times out.
#[test]
fn a_zero_timeout_still_takes_what_is_there() {
    let dir = common::tempdir();
    let mq = common::unique_name("mq");
    let shm = common::unique_name("shm");
    for text in [
        format!("shm:{shm}"),
        format!("mq:{mq}"),
        format!("unix:{}/zero", dir.path().display()),
        format!("unix-seqpacket:{}/zero-sp", dir.path().display()),
        format!("fifo:{}/zero-fifo", dir.path().display()),
    ] {
        let addr: Address = text.parse().unwrap();
        let mut rx = channel::receiver(&addr).unwrap();
        let mut tx = channel::sender_timeout(&addr, T).unwrap();
        tx.send_timeout(b"now", Duration::ZERO)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut buf = vec![0u8; rx.max_message()];
        let n = rx
            .recv_timeout(&mut buf, Duration::ZERO)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(&buf[..n], b"now", "{text}");
        let err = rx.recv_timeout(&mut buf, Duration::ZERO).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{text}: {err}");
    }
}

/// `from_pipe` on a named FIFO whose writer has come and gone reports the end of the
/// stream: the receiver keeps the FIFO's own description (a reopened one would never
/// show the hang-up) instead of waiting for ever.
#[test]
fn a_stream_receiver_on_a_fifo_whose_writer_left_sees_peer_gone() {
    let dir = common::tempdir();
    let fifo = ipcx::fifo::FifoOptions::new()
        .create(dir.path().join("left"))
        .unwrap();
    let reader = fifo.open_reader().unwrap();
    drop(fifo.try_open_writer().unwrap());
    let mut rx = StreamReceiver::from_pipe(reader);
    let err = rx.recv_timeout(&mut [0u8; 16], T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
}

/// A receiver shared by `fork` (parent and child both receive on it) never turns a
/// child's `recv_timeout` into an endless wait when the parent's blocking `recv` has put
/// the shared description in blocking mode.
#[test]
fn a_forked_child_receiving_on_a_pipe_channel_keeps_its_timeouts() {
    if common::role().is_none() {
        let out = common::finish(
            common::child(
                "a_forked_child_receiving_on_a_pipe_channel_keeps_its_timeouts",
                "child",
                &[],
            )
            .spawn()
            .unwrap(),
        );
        assert!(
            out.status.success() && common::reports(&out).contains("child timed out"),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let (r, w) = ipcx::pipe::pipe().unwrap();
    let mut tx = StreamSender::from_pipe(w);
    let mut rx = StreamReceiver::from_pipe(r);
    // SAFETY: this role process has not started any thread of its own; the child only
    // receives on the channel and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: alarm only arms a timer; its default action ends this child if the
        // receive below hangs, so the parent sees a failure instead of waiting for ever.
        unsafe { libc::alarm(20) };
        // Let the parent enter its blocking receive first.
        std::thread::sleep(Duration::from_millis(300));
        let got = rx.recv_timeout(&mut [0u8; 16], Duration::from_millis(200));
        let code = match got {
            Err(e) if e.kind() == ErrorKind::TimedOut => 0,
            _ => 1,
        };
        // SAFETY: _exit ends the forked child without running the parent's destructors
        // or the test harness's exit code.
        unsafe { libc::_exit(code) };
    }
    let waiter = std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a local the call writes.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        tx.send(b"release").unwrap();
        status
    });
    let mut buf = [0u8; 16];
    let n = rx.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"release");
    let status = waiter.join().unwrap();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child's recv_timeout must time out (status {status:#x})"
    );
    common::say("child timed out");
    std::process::exit(0);
}
