//! `ipcx send`, `recv` and `relay` across real processes: a round trip over every
//! address kind of the channel layer, peers that are not ipcx (a C `mq_send` with
//! priorities, a Python Unix-socket client speaking the frame format), and the exit
//! codes scripts rely on.
//!
//! No test asserts a time.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::io::{BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Guard, Running, TempDir, ipcx, line_with, run, stderr, stdout, unique_key, unique_name,
};

const LONG: Duration = Duration::from_secs(30);

/// The messages every round trip carries: text, an empty message, spaces and UTF-8.
const MSGS: [&str; 3] = ["hello", "", "two words, ünïcode"];

/// The JSON lines `recv --format json` prints for `msgs`.
fn expected_json(msgs: &[&str]) -> String {
    use base64::Engine as _;
    msgs.iter()
        .map(|m| {
            format!(
                "{{\"len\":{},\"data\":\"{}\"}}\n",
                m.len(),
                base64::engine::general_purpose::STANDARD.encode(m)
            )
        })
        .collect()
}

/// `ipcx recv ADDR --count 3 --timeout 20s --format json`, its output piped.
fn json_receiver(addr: &str) -> Command {
    let mut recv = ipcx();
    recv.args([
        "recv",
        addr,
        "--count",
        "3",
        "--timeout",
        "20s",
        "--format",
        "json",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    recv
}

/// Starts `ipcx recv ADDR --count N --format json`, runs `ipcx send` to it, and checks
/// that every message arrived intact and in order.
fn round_trip(addr: &str) {
    let recv = json_receiver(addr);
    let recv = Running::spawn(recv);
    let sent = run(&["send", addr, "--timeout", "20s", MSGS[0], MSGS[1], MSGS[2]]);
    assert!(sent.status.success(), "send {addr}: {}", stderr(&sent));
    let got = recv.finish(LONG);
    assert!(got.status.success(), "recv {addr}: {}", stderr(&got));
    assert_eq!(stdout(&got), expected_json(&MSGS), "over {addr}");
}

/// As [`round_trip`], for a receiver on port 0: the sender learns the port from the
/// line `recv` prints on stderr.
fn round_trip_ephemeral(addr: &str) {
    let recv = json_receiver(addr);
    let mut recv = Running::spawn(recv);
    let mut err = BufReader::new(recv.child().stderr.take().unwrap());
    let line = line_with(&mut err, "receiving on");
    let actual = line.rsplit(' ').next().unwrap().to_string();
    assert!(
        actual.starts_with(&addr[..4]) && !actual.ends_with(":0"),
        "{line}"
    );
    let sent = run(&[
        "send",
        &actual,
        "--timeout",
        "20s",
        MSGS[0],
        MSGS[1],
        MSGS[2],
    ]);
    assert!(sent.status.success(), "send {actual}: {}", stderr(&sent));
    let got = recv.finish(LONG);
    assert!(got.status.success(), "recv {actual}");
    assert_eq!(stdout(&got), expected_json(&MSGS), "over {actual}");
}

#[test]
fn round_trip_over_a_shell_pipeline() {
    let exe = env!("CARGO_BIN_EXE_ipcx");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{exe}' send pipe: hello '' 'two words, ünïcode' | '{exe}' recv pipe: --format json"
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected_json(&MSGS));
}

#[test]
fn round_trip_over_a_fifo() {
    let dir = TempDir::new("fifo");
    round_trip(&format!("fifo:{}", dir.join("jobs.fifo")));
}

#[test]
fn round_trip_over_a_unix_stream_socket() {
    let dir = TempDir::new("unix");
    round_trip(&format!("unix:{}", dir.join("jobs.sock")));
}

#[test]
fn round_trip_over_a_unix_datagram_socket() {
    let dir = TempDir::new("dgram");
    round_trip(&format!("unix-dgram:{}", dir.join("jobs.sock")));
}

#[test]
fn round_trip_over_a_unix_seqpacket_socket() {
    let dir = TempDir::new("seq");
    round_trip(&format!("unix-seqpacket:{}", dir.join("jobs.sock")));
}

#[test]
fn round_trip_over_tcp() {
    round_trip_ephemeral("tcp:127.0.0.1:0");
}

#[test]
fn round_trip_over_udp() {
    round_trip_ephemeral("udp:127.0.0.1:0");
}

#[test]
fn round_trip_over_a_posix_message_queue() {
    let name = unique_name("mq");
    let _cleanup = Guard(|| {
        let _ = ipcx::mq::posix::MessageQueue::unlink(&name);
    });
    round_trip(&format!("mq:{name}"));
    // The receiver removed its queue when it finished.
    let err = ipcx::mq::posix::MessageQueue::open(&name).unwrap_err();
    assert_eq!(err.kind(), ipcx::ErrorKind::NotFound);
}

#[test]
fn round_trip_over_a_system_v_message_queue() {
    let key = unique_key();
    let _cleanup = Guard(|| {
        let _ = ipcx::mq::sysv::SysvMq::remove_key(ipcx::sysv::Key::new(key));
    });
    round_trip(&format!("sysv-mq:{key:#x}"));
}

#[test]
fn round_trip_over_shared_memory() {
    let name = unique_name("shm");
    let _cleanup = Guard(|| {
        let _ = ipcx::shm::posix::Shm::unlink(&name);
    });
    round_trip(&format!("shm:{name}"));
}

#[test]
fn stdin_is_one_message_or_one_per_line() {
    let dir = TempDir::new("stdin");
    let addr = format!("unix-seqpacket:{}", dir.join("s.sock"));
    let mut recv = ipcx();
    recv.args([
        "recv",
        &addr,
        "--count",
        "3",
        "--timeout",
        "20s",
        "--format",
        "hex",
    ])
    .stdout(Stdio::piped());
    let recv = Running::spawn(recv);

    // Binary bytes, a NUL and newlines included, as one message.
    let blob = b"\x00\x01\xff\nline\n";
    let mut send = ipcx();
    send.args(["send", &addr, "--timeout", "20s"])
        .stdin(Stdio::piped());
    let mut send = Running::spawn(send);
    send.child().stdin.take().unwrap().write_all(blob).unwrap();
    assert!(send.finish(LONG).status.success());

    let mut send = ipcx();
    send.args(["send", "--lines", &addr, "-", "--timeout", "20s"])
        .stdin(Stdio::piped());
    let mut send = Running::spawn(send);
    send.child()
        .stdin
        .take()
        .unwrap()
        .write_all(b"ab\ncd\n")
        .unwrap();
    assert!(send.finish(LONG).status.success());

    let got = recv.finish(LONG);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(stdout(&got), "0001ff0a6c696e650a\n6162\n6364\n");
}

#[test]
fn relay_forwards_from_a_socket_to_a_queue() {
    let dir = TempDir::new("relay");
    let from = format!("unix:{}", dir.join("in.sock"));
    let name = unique_name("relay");
    let _cleanup = Guard(|| {
        let _ = ipcx::mq::posix::MessageQueue::unlink(&name);
    });
    let to = format!("mq:{name}");

    let mut recv = ipcx();
    recv.args([
        "recv",
        &to,
        "--count",
        "3",
        "--timeout",
        "20s",
        "--format",
        "json",
    ])
    .stdout(Stdio::piped());
    let recv = Running::spawn(recv);
    let mut relay = ipcx();
    relay.args(["relay", &from, &to, "--timeout", "20s"]);
    let relay = Running::spawn(relay);
    let sent = run(&["send", &from, "--timeout", "20s", MSGS[0], MSGS[1], MSGS[2]]);
    assert!(sent.status.success(), "{}", stderr(&sent));

    // The sender left, so the relay ends (end of stream) and succeeds.
    assert!(relay.finish(LONG).status.success());
    let got = recv.finish(LONG);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(stdout(&got), expected_json(&MSGS));
}

/// A C program that is not ipcx creates a POSIX queue and sends three messages with
/// priorities 1, 9 and 5; `ipcx recv --existing` drains it highest priority first.
#[test]
fn a_c_mq_send_with_priorities_is_read_in_priority_order() {
    let Some(peer) = common::compile_c(
        "mq-prio",
        r#"
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    struct mq_attr attr = { .mq_maxmsg = 8, .mq_msgsize = 64 };
    mqd_t q = mq_open(argv[1], O_CREAT | O_EXCL | O_WRONLY, 0600, &attr);
    if (q == (mqd_t)-1) { perror("mq_open"); return 1; }
    const char *msgs[] = { "low", "high", "middle" };
    unsigned prios[] = { 1, 9, 5 };
    for (int i = 0; i < 3; i++)
        if (mq_send(q, msgs[i], strlen(msgs[i]), prios[i]) != 0) { perror("mq_send"); return 1; }
    return mq_close(q);
}
"#,
        &["-lrt"],
    ) else {
        return;
    };
    let name = unique_name("cprio");
    let _cleanup = Guard(|| {
        let _ = ipcx::mq::posix::MessageQueue::unlink(&name);
    });
    let status = std::process::Command::new(&peer)
        .arg(&name)
        .status()
        .unwrap();
    assert!(status.success());

    let out = run(&[
        "recv",
        "--existing",
        &format!("mq:{name}"),
        "--count",
        "3",
        "--timeout",
        "10s",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "{\"len\":4,\"data\":\"aGlnaA==\",\"prio\":9}\n\
         {\"len\":6,\"data\":\"bWlkZGxl\",\"prio\":5}\n\
         {\"len\":3,\"data\":\"bG93\",\"prio\":1}\n"
    );
    // --existing never removes the queue: it is still there for its creator.
    assert!(ipcx::mq::posix::MessageQueue::open(&name).is_ok());
}

/// A Python client that is not ipcx connects to `ipcx recv unix:…` and writes three
/// messages in ipcx's stream frame format (8-byte header: "IX", version 1, flags 0,
/// u32 little-endian length), then closes: recv prints them and ends at end of stream.
#[test]
fn a_python_unix_socket_client_speaking_the_frame_format() {
    if !common::have_python() {
        return;
    }
    let dir = TempDir::new("py");
    let path = dir.join("py.sock");
    let mut recv = ipcx();
    recv.args(["recv", &format!("unix:{path}"), "--timeout", "20s"])
        .stdout(Stdio::piped());
    let recv = Running::spawn(recv);
    let script = r#"
import socket, struct, sys, time
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
for _ in range(2000):
    try:
        s.connect(path)
        break
    except (FileNotFoundError, ConnectionRefusedError):
        time.sleep(0.01)
else:
    sys.exit("no ipcx receiver at " + path)
for msg in [b"from python", b"", "ünïcode".encode()]:
    s.sendall(b"IX\x01\x00" + struct.pack("<I", len(msg)) + msg)
s.close()
"#;
    let py = std::process::Command::new("python3")
        .args(["-c", script, &path])
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", stderr(&py));
    let got = recv.finish(LONG);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(stdout(&got), "from python\n\nünïcode\n");
}

#[test]
fn a_receiver_that_waits_too_long_exits_3() {
    let name = unique_name("timeout");
    let _cleanup = Guard(|| {
        let _ = ipcx::mq::posix::MessageQueue::unlink(&name);
    });
    let out = run(&[
        "recv",
        &format!("mq:{name}"),
        "--count",
        "1",
        "--timeout",
        "100ms",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert!(stderr(&out).contains(&name), "{}", stderr(&out));
}

#[test]
fn a_sender_with_no_receiver_exits_3() {
    let dir = TempDir::new("nobody");
    let out = run(&[
        "send",
        &format!("unix:{}", dir.join("none.sock")),
        "x",
        "--timeout",
        "100ms",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("start the receiver first"),
        "{}",
        stderr(&out)
    );
}

/// `shm:` takes one sender for its whole life: when it leaves before --count messages
/// came, recv fails (exit 1) saying how many arrived. (fifo:, unix:, unix-seqpacket: and
/// tcp: wait for the next sender instead, as `stdin_is_one_message_or_one_per_line`
/// shows with two senders.)
#[test]
fn a_sender_that_leaves_early_is_an_error_with_count() {
    let name = unique_name("early");
    let _cleanup = Guard(|| {
        let _ = ipcx::shm::posix::Shm::unlink(&name);
    });
    let addr = format!("shm:{name}");
    let mut recv = ipcx();
    recv.args(["recv", &addr, "--count", "2", "--timeout", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let recv = Running::spawn(recv);
    assert!(
        run(&["send", &addr, "--timeout", "20s", "only one"])
            .status
            .success()
    );
    let got = recv.finish(LONG);
    assert_eq!(got.status.code(), Some(1));
    assert_eq!(stdout(&got), "only one\n");
    assert!(
        stderr(&got).contains("after 1 of the 2 messages"),
        "{}",
        stderr(&got)
    );
}

#[test]
fn bad_addresses_and_options_are_usage_errors() {
    let out = run(&["recv", "bogus:x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown transport `bogus`"),
        "{}",
        stderr(&out)
    );
    let out = run(&["send", "unix:/tmp/x.sock", "--prio", "3", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--prio applies to mq:"),
        "{}",
        stderr(&out)
    );
    let out = run(&["recv", "mq:/x", "--timeout", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["recv", "--existing", "unix:/tmp/x.sock"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_terminated_receiver_removes_its_object() {
    let name = unique_name("term");
    let _cleanup = Guard(|| {
        let _ = ipcx::mq::posix::MessageQueue::unlink(&name);
    });
    let mut recv = ipcx();
    recv.args(["recv", &format!("mq:{name}")]);
    let recv = Running::spawn(recv);
    common::wait_until("the queue", || {
        ipcx::mq::posix::MessageQueue::open(&name).is_ok()
    });
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(recv.pid() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let out = recv.finish(LONG);
    assert_eq!(out.status.code(), Some(128 + 15));
    let err = ipcx::mq::posix::MessageQueue::open(&name).unwrap_err();
    assert_eq!(err.kind(), ipcx::ErrorKind::NotFound);
}

/// The same for a ring, which is a POSIX shared memory object.
#[test]
fn a_terminated_ring_receiver_removes_its_ring() {
    let name = unique_name("term-ring");
    let _cleanup = Guard(|| {
        let _ = ipcx::shm::posix::Shm::unlink(&name);
    });
    let mut recv = ipcx();
    recv.args(["recv", &format!("ring:{name}")]);
    let recv = Running::spawn(recv);
    let path = format!("/dev/shm{name}");
    common::wait_until("the ring", || std::path::Path::new(&path).exists());
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(recv.pid() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let out = recv.finish(LONG);
    assert_eq!(out.status.code(), Some(128 + 15));
    assert!(!std::path::Path::new(&path).exists(), "{path} is left");
}

#[test]
fn help_documents_addresses_formats_and_exit_codes() {
    for cmd in ["send", "recv", "relay"] {
        let out = run(&[cmd, "--help"]);
        assert!(out.status.success());
        let text = stdout(&out);
        for needle in [
            "ADDRESSES:",
            "unix-seqpacket:/path",
            "EXIT STATUS:",
            "3  timed out",
        ] {
            assert!(
                text.contains(needle),
                "{cmd} --help lacks {needle}:\n{text}"
            );
        }
    }
    assert!(stdout(&run(&["recv", "--help"])).contains("{\"len\":5,\"data\":\"aGVsbG8=\"}"));
}
