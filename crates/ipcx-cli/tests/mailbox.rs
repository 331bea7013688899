//! `mailbox:` addresses in `ipcx send`/`recv`, and `ipcx mailbox serve`/`request`:
//! mailboxes across processes and over TCP loopback, with raw TCP peers that are not
//! ipcx (malformed and oversized frames, a bad hello, a silent peer, one connection too
//! many), each refused while the server stays up.
//!
//! Every test runs its processes with `XDG_RUNTIME_DIR` set to a private directory of
//! its own, so its mailboxes are out of everyone else's way and go with the directory.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Running, TempDir};
use ipcx::ErrorKind;
use ipcx::mailbox::{MailboxOptions, RemoteMailbox};

const T: Duration = Duration::from_secs(10);

/// A private runtime directory: `XDG_RUNTIME_DIR` for the commands, and the `ipcx`
/// directory in it for this process's own mailboxes.
struct Runtime {
    tmp: TempDir,
}

impl Runtime {
    fn new(name: &str) -> Runtime {
        let tmp = TempDir::new(name);
        std::fs::set_permissions(&tmp.0, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        ipcx::runtime::ensure_private_dir(&tmp.0.join("ipcx")).unwrap();
        Runtime { tmp }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.0.join("ipcx")
    }

    fn ipcx(&self) -> Command {
        let mut cmd = common::ipcx();
        cmd.env("XDG_RUNTIME_DIR", &self.tmp.0);
        cmd
    }

    /// `ipcx mailbox serve --tcp 127.0.0.1:0 EXTRA…`, and the address it serves on.
    fn serve(&self, extra: &[&str]) -> (Running, String) {
        let mut cmd = self.ipcx();
        cmd.args(["mailbox", "serve", "--tcp", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut server = Running::spawn(cmd);
        let mut out = BufReader::new(server.child().stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("serving ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        (server, addr)
    }

    /// A mailbox `name` in this runtime directory answering every request with
    /// `reply(payload)`, on a thread that ends when the returned guard is dropped.
    fn echo(&self, name: &str) -> Echo {
        let mailbox = MailboxOptions::new().dir(self.dir()).bind(name).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Acquire) {
                if let Ok(env) = mailbox.recv_timeout(Duration::from_millis(50)) {
                    let mut answer = b"echo:".to_vec();
                    answer.extend_from_slice(env.payload());
                    let _ = env.reply(&answer);
                }
            }
        });
        Echo {
            stop,
            thread: Some(thread),
        }
    }
}

struct Echo {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A hello for mailbox `name`, as a peer in any language writes it.
fn hello(name: &str) -> Vec<u8> {
    let mut h = b"IPMT\x01".to_vec();
    h.push(name.len() as u8);
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(name.as_bytes());
    h
}

/// An IPMB v1 header.
fn header(kind: u8, flags: u16, id: u64, len: u64) -> Vec<u8> {
    let mut h = b"IPMB\x01".to_vec();
    h.push(kind);
    h.extend_from_slice(&flags.to_le_bytes());
    h.extend_from_slice(&id.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

/// Reads the server's answer to a hello: (status, text).
fn read_answer(s: &mut TcpStream) -> (u8, String) {
    let mut head = [0u8; 16];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head[0..5], b"IPMT\x01");
    let len = u16::from_le_bytes([head[6], head[7]]) as usize;
    let mut text = vec![0u8; len];
    s.read_exact(&mut text).unwrap();
    (head[5], String::from_utf8(text).unwrap())
}

/// Whether the server closed the connection (EOF or reset) within `T`.
fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(T)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn raw(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s
}

#[test]
fn send_and_recv_round_trip_through_a_local_mailbox_and_over_tcp() {
    let rt = Runtime::new("mbox-roundtrip");
    let mut recv = rt.ipcx();
    recv.args(["recv", "mailbox:inbox", "--count", "4", "--timeout", "10s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let recv = Running::spawn(recv);
    let out = rt
        .ipcx()
        .args([
            "send",
            "mailbox:inbox",
            "hello",
            "world",
            "--timeout",
            "10s",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let (_server, addr) = rt.serve(&[]);
    let out = rt
        .ipcx()
        .args([
            "send",
            &format!("mailbox:inbox@{addr}"),
            "over",
            "tcp",
            "-t",
            "10s",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let out = recv.finish(T);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out), "hello\nworld\nover\ntcp\n");
    // The receiver removed its mailbox, and no sender left one behind.
    let left: Vec<_> = std::fs::read_dir(rt.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().starts_with("tcp-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn request_reply_over_tcp_through_ipcx_mailbox_serve() {
    let rt = Runtime::new("mbox-tcp");
    let _echo = rt.echo("echo");
    let (_server, addr) = rt.serve(&[]);
    // The command line: a request, its reply on stdout.
    let out = rt
        .ipcx()
        .args(["mailbox", "request", &format!("echo@{addr}"), "ping"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out), "echo:ping\n");
    // The library, from several threads on one connection, with a payload large enough
    // to travel by memfd on the server's side.
    let remote =
        std::sync::Arc::new(RemoteMailbox::connect_timeout(&format!("echo@{addr}"), T).unwrap());
    std::thread::scope(|s| {
        for t in 0..4 {
            let remote = remote.clone();
            s.spawn(move || {
                for i in 0..25 {
                    let msg = format!("t{t}-{i}");
                    let reply = remote.request(msg.as_bytes(), T).unwrap();
                    assert_eq!(reply, format!("echo:{msg}").as_bytes());
                }
            });
        }
    });
    let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
    let reply = remote.request(&big, T).unwrap();
    assert_eq!(&reply[..5], b"echo:");
    assert!(reply[5..] == big[..]);
    // A local mailbox's request() to name@host:port goes the same way.
    let me = MailboxOptions::new().dir(rt.dir()).bind("client").unwrap();
    let reply = me
        .request(&format!("echo@{addr}"), b"via mailbox", T)
        .unwrap();
    assert_eq!(reply, b"echo:via mailbox");
}

#[test]
fn a_name_the_server_does_not_have_is_a_clear_error() {
    let rt = Runtime::new("mbox-nope");
    let (_server, addr) = rt.serve(&[]);
    let err = RemoteMailbox::connect_timeout(&format!("nope@{addr}"), T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let text = err.to_string();
    assert!(text.contains(&format!("nope@{addr}")), "{text}");
    assert!(
        text.contains("no mailbox is bound under this name"),
        "{text}"
    );
    let out = rt
        .ipcx()
        .args(["mailbox", "request", &format!("nope@{addr}"), "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        common::stderr(&out).contains("not found"),
        "{}",
        common::stderr(&out)
    );
    // Nothing listening at all.
    drop(_server);
    let err = RemoteMailbox::connect_timeout(&format!("nope@{addr}"), T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
    assert!(err.to_string().contains("ipcx mailbox serve"), "{err}");
}

/// Reliability 7 and 8 over TCP: a peer that is not ipcx sends a bad hello, a header
/// with a bad magic, the memfd flag, a reply instead of a request, a length above the
/// cap (2^40 bytes: refused before any allocation) and a queued-bytes overrun; each
/// connection is refused or closed, and the server serves the next client.
#[test]
fn raw_tcp_peers_with_malformed_or_oversized_frames_are_refused_and_the_server_stays_up() {
    let rt = Runtime::new("mbox-raw");
    let _echo = rt.echo("echo");
    let (_server, addr) = rt.serve(&["--max-payload", "4096", "--max-queued-bytes", "2048"]);
    // A hello that is not one: answered with status 3 and the reason, then closed.
    let mut s = raw(&addr);
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let (status, text) = read_answer(&mut s);
    assert_eq!(status, 3, "{text}");
    assert!(text.contains("not \"IPMT\""), "{text}");
    assert!(closed(&mut s));
    // A bad name in the hello.
    let mut s = raw(&addr);
    s.write_all(&hello("../etc")).unwrap();
    let (status, text) = read_answer(&mut s);
    assert_eq!(status, 3, "{text}");
    assert!(closed(&mut s));
    // Headers that are not valid frames: the connection is closed.
    for bad in [
        {
            let mut h = header(1, 0, 1, 2);
            h[0..4].copy_from_slice(b"IPMX");
            h
        },
        header(1, 1, 1, 0), // memfd flag over TCP
        header(2, 0, 1, 0), // a reply from a client
        header(1, 0, 0, 0), // a request with correlation id 0
        header(9, 0, 1, 0), // unknown kind
    ] {
        let mut s = raw(&addr);
        s.write_all(&hello("echo")).unwrap();
        assert_eq!(read_answer(&mut s).0, 0);
        s.write_all(&bad).unwrap();
        assert!(closed(&mut s), "{bad:02x?}");
    }
    // A request of 2^40 bytes: refused with reason 3 (too large), then closed.
    let mut s = raw(&addr);
    s.write_all(&hello("echo")).unwrap();
    assert_eq!(read_answer(&mut s).0, 0);
    s.write_all(&header(1, 0, 7, 1 << 40)).unwrap();
    let mut head = [0u8; 24];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[5], 4, "a refusal");
    assert_eq!(u64::from_le_bytes(head[8..16].try_into().unwrap()), 7);
    let len = u64::from_le_bytes(head[16..24].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    assert_eq!(u32::from_le_bytes(body[0..4].try_into().unwrap()), 3);
    assert!(String::from_utf8_lossy(&body[4..]).contains("above the server's cap of 4096"));
    assert!(closed(&mut s));
    // Within the cap but above the queued-bytes bound: read past, refused with reason 2,
    // and the connection stays in step.
    let remote = RemoteMailbox::connect_timeout(&format!("echo@{addr}"), T).unwrap();
    let err = remote.request(&[7u8; 3000], T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitReached, "{err}");
    assert!(err.to_string().contains("bound of 2048 bytes"), "{err}");
    assert_eq!(
        remote.request(b"still here", T).unwrap(),
        b"echo:still here"
    );
    // The client refuses above the cap the server announced, before sending.
    let err = remote.request(&[0u8; 5000], T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{err}");
    assert!(err.to_string().contains("at most 4096 bytes"), "{err}");
    // And a fresh client is served.
    let fresh = RemoteMailbox::connect_timeout(&format!("echo@{addr}"), T).unwrap();
    assert_eq!(fresh.request(b"after", T).unwrap(), b"echo:after");
}

/// Reliability 27 and slow peers: one connection more than --max-connections is closed
/// at once, and a peer that says nothing for --idle-timeout is disconnected.
#[test]
fn connections_are_capped_and_silent_peers_are_disconnected() {
    let rt = Runtime::new("mbox-cap");
    let _echo = rt.echo("echo");
    let (_server, addr) = rt.serve(&["--max-connections", "1", "--idle-timeout", "300ms"]);
    let first = RemoteMailbox::connect_timeout(&format!("echo@{addr}"), T).unwrap();
    let err = RemoteMailbox::connect_timeout(&format!("echo@{addr}"), T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
    assert!(err.to_string().contains("connection limit"), "{err}");
    // The first goes silent: the server closes it, which frees its place.
    let mut silent = raw(&addr);
    drop(first);
    common::wait_until("the first connection's place to free up", || {
        silent = raw(&addr);
        silent.write_all(&hello("echo")).is_ok() && {
            let mut head = [0u8; 16];
            silent.read_exact(&mut head).is_ok() && head[5] == 0 && {
                let len = u16::from_le_bytes([head[6], head[7]]) as usize;
                let mut t = vec![0u8; len];
                silent.read_exact(&mut t).is_ok()
            }
        }
    });
    assert!(closed(&mut silent), "an idle connection was not closed");
    // The server counts the connection out just after closing it.
    let mut again = None;
    common::wait_until("the idle connection's place to free up", || {
        again = RemoteMailbox::connect_timeout(&format!("echo@{addr}"), T).ok();
        again.is_some()
    });
    let again = again.unwrap();
    assert_eq!(again.request(b"next", T).unwrap(), b"echo:next");
}

/// The TCP wire format as documented, spoken by a peer that is not ipcx (Python's
/// standard library): hello, answer, a request, its reply; and a one-way message.
#[test]
fn a_python_peer_speaks_the_documented_tcp_format() {
    if !common::have_python() {
        return;
    }
    let rt = Runtime::new("mbox-python");
    let _echo = rt.echo("echo");
    let (_server, addr) = rt.serve(&[]);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let script = r#"
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=10)
def exact(n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            sys.exit("connection closed")
        b += chunk
    return b
name = b"echo"
s.sendall(b"IPMT" + struct.pack("<BBH", 1, len(name), 0) + name)
magic, version, status, text_len, cap = struct.unpack("<4sBBHQ", exact(16))
text = exact(text_len)
assert (magic, version, status) == (b"IPMT", 1, 0), (magic, version, status, text)
payload = b"from python"
s.sendall(b"IPMB" + struct.pack("<BBHQQ", 1, 1, 0, 42, len(payload)) + payload)
magic, version, kind, flags, cid, length = struct.unpack("<4sBBHQQ", exact(24))
assert (magic, version, kind, flags, cid) == (b"IPMB", 1, 2, 0, 42), (kind, cid)
print(exact(length).decode(), cap)
"#;
    let out = Command::new("python3")
        .args(["-c", script, host, port])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(
        common::stdout(&out).trim(),
        format!("echo:from python {}", ipcx::mailbox::DEFAULT_MAX_PAYLOAD)
    );
}

/// `ipcx relay` between two mailboxes: messages sent to one arrive at the other, whole
/// and in order, and the sender's identity is the relay's own ephemeral mailbox.
#[test]
fn relay_moves_messages_from_one_mailbox_to_another() {
    let rt = Runtime::new("mbox-relay");
    let mut recv = rt.ipcx();
    recv.args(["recv", "mailbox:out", "-c", "3", "-t", "10s", "-f", "hex"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let recv = Running::spawn(recv);
    let mut relay = rt.ipcx();
    relay
        .args(["relay", "mailbox:in", "mailbox:out", "-c", "3", "-t", "10s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let relay = Running::spawn(relay);
    let out = rt
        .ipcx()
        .args(["send", "mailbox:in", "a", "", "ccc", "-t", "10s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let out = relay.finish(T);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let out = recv.finish(T);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out), "61\n\n636363\n");
}
