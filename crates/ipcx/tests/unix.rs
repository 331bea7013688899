//! Unix domain sockets across real processes: the three types, socket files, descriptor
//! passing, credentials, limits and faults.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipcx::unix::{
    BindOptions, ListenerExt, MAX_FDS_PER_MESSAGE, Seqpacket, UnixSocketExt, bind_datagram, listen,
    listen_seqpacket,
};
use ipcx::{ErrorKind, SocketExt};

const T: Duration = Duration::from_secs(10);

#[test]
fn stream_server_knows_its_client_by_kernel_credentials() {
    if common::role().is_some() {
        let mut s = ipcx::unix::connect_timeout(common::arg("PATH"), T).unwrap();
        s.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        common::say(String::from_utf8_lossy(&buf));
        std::process::exit(0);
    }
    let dir = common::tempdir();
    let path = dir.path().join("srv");
    let server = listen(&path).unwrap();
    let child = common::child(
        "stream_server_knows_its_client_by_kernel_credentials",
        "client",
        &[("PATH", path.to_str().unwrap())],
    )
    .spawn()
    .unwrap();
    let child_pid = child.id();
    let mut conn = server.accept_timeout(T).unwrap();
    let cred = conn.peer_credentials().unwrap();
    assert_eq!(cred.pid, Some(child_pid));
    assert_eq!(cred.uid, rustix::process::geteuid().as_raw());
    let pidfd = conn.peer_pidfd().unwrap();
    assert!(common::is_cloexec(pidfd.as_fd()));
    let mut buf = [0u8; 4];
    conn.read_exact(&mut buf).unwrap();
    conn.write_all(b"pong").unwrap();
    let out = common::finish(child);
    assert_eq!(common::reports(&out), "pong");
    // The pidfd refers to that very process: it turns readable once the process is gone.
    let ev = rustix::event::PollFlags::IN;
    let mut fds = [rustix::event::PollFd::new(&pidfd, ev)];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    assert_eq!(rustix::event::poll(&mut fds, Some(&zero)).unwrap(), 1);
}

#[test]
fn datagram_server_replies_to_the_sender_address() {
    if common::role().is_some() {
        let me = bind_datagram(common::arg("CLIENT")).unwrap();
        me.connect(common::arg("SERVER")).unwrap();
        me.send_timeout(b"question", T).unwrap();
        let mut buf = [0u8; 16];
        let n = me.recv_timeout(&mut buf, T).unwrap();
        common::say(String::from_utf8_lossy(&buf[..n]));
        std::process::exit(0);
    }
    let dir = common::tempdir();
    let (server_path, client_path) = (dir.path().join("s"), dir.path().join("c"));
    let server = bind_datagram(&server_path).unwrap();
    let child = common::child(
        "datagram_server_replies_to_the_sender_address",
        "client",
        &[
            ("SERVER", server_path.to_str().unwrap()),
            ("CLIENT", client_path.to_str().unwrap()),
        ],
    )
    .spawn()
    .unwrap();
    let mut buf = [0u8; 16];
    common::wait_readable(server.as_fd());
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"question");
    assert_eq!(from.as_pathname(), Some(client_path.as_path()));
    server.send_to_addr(b"answer", &from).unwrap();
    assert_eq!(common::reports(&common::finish(child)), "answer");
}

#[test]
fn seqpacket_keeps_boundaries_across_processes() {
    if common::role().is_some() {
        let s = Seqpacket::connect_timeout(common::arg("PATH"), T).unwrap();
        for msg in [&b"one"[..], b"", b"three", &[9u8; 1000]] {
            s.send_timeout(msg, T).unwrap();
        }
        common::say("sent");
        std::process::exit(0);
    }
    let dir = common::tempdir();
    let path = dir.path().join("seq");
    let server = listen_seqpacket(&path).unwrap();
    let child = common::child(
        "seqpacket_keeps_boundaries_across_processes",
        "client",
        &[("PATH", path.to_str().unwrap())],
    )
    .spawn()
    .unwrap();
    let conn = server.accept_timeout(T).unwrap();
    assert_eq!(conn.peer_credentials().unwrap().pid, Some(child.id()));
    let mut buf = [0u8; 2048];
    let mut sizes = Vec::new();
    for _ in 0..4 {
        sizes.push(conn.recv_timeout(&mut buf, T).unwrap());
    }
    assert_eq!(sizes, [3, 0, 5, 1000]);
    assert_eq!(common::reports(&common::finish(child)), "sent");
    assert_eq!(conn.recv_timeout(&mut buf, T).unwrap(), 0);
    assert!(conn.peer_closed());
}

#[test]
fn python_peers_speak_all_three_socket_types() {
    let script = r#"
import socket, sys
kind = {"stream": socket.SOCK_STREAM, "dgram": socket.SOCK_DGRAM, "seqpacket": socket.SOCK_SEQPACKET}[sys.argv[2]]
s = socket.socket(socket.AF_UNIX, kind)
s.settimeout(10)
s.connect(sys.argv[1])
s.send(b"hello " + sys.argv[2].encode())
if kind != socket.SOCK_DGRAM:
    print(s.recv(100).decode())
"#;
    let dir = common::tempdir();
    for kind in ["stream", "dgram", "seqpacket"] {
        let path = dir.path().join(kind);
        let Some(mut cmd) = common::python(script, &[path.to_str().unwrap(), kind]) else {
            return;
        };
        let mut buf = [0u8; 64];
        match kind {
            "stream" => {
                let server = listen(&path).unwrap();
                let child = cmd.spawn().unwrap();
                let conn = server.accept_timeout(T).unwrap();
                let n = conn.recv_timeout(&mut buf, T).unwrap();
                assert_eq!(&buf[..n], b"hello stream");
                conn.send_timeout(b"stream reply", T).unwrap();
                let out = common::finish(child);
                assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "stream reply");
            }
            "dgram" => {
                let server = bind_datagram(&path).unwrap();
                let child = cmd.spawn().unwrap();
                let n = server.recv_timeout(&mut buf, T).unwrap();
                assert_eq!(&buf[..n], b"hello dgram");
                assert!(common::finish(child).status.success());
            }
            _ => {
                let server = listen_seqpacket(&path).unwrap();
                let child = cmd.spawn().unwrap();
                let conn = server.accept_timeout(T).unwrap();
                let n = conn.recv_timeout(&mut buf, T).unwrap();
                assert_eq!(&buf[..n], b"hello seqpacket");
                conn.send_timeout(b"seqpacket reply", T).unwrap();
                let out = common::finish(child);
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout).trim(),
                    "seqpacket reply"
                );
            }
        }
    }
}

#[test]
fn python_peer_receives_a_descriptor_and_writes_through_it() {
    let script = r#"
import os, socket, sys
s = socket.socket(fileno=0)
msg, fds, flags, addr = socket.recv_fds(s, 16, 4)
os.write(fds[0], b"written by python via " + msg)
"#;
    let Some(mut cmd) = common::python(script, &[]) else {
        return;
    };
    let (ours, theirs) = ipcx::unix::stream_pair().unwrap();
    let (rx, tx) = ipcx::pipe::pipe().unwrap();
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    ours.send_fds(b"SCM_RIGHTS", &[tx.as_fd()]).unwrap();
    drop(tx);
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let n = rx.read_timeout(&mut buf, common::CHILD_LIMIT).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(common::finish(child).status.success());
    assert_eq!(
        String::from_utf8_lossy(&got),
        "written by python via SCM_RIGHTS"
    );
}

#[test]
fn descriptors_pass_to_a_child_process() {
    if common::role().is_some() {
        let sock = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned().unwrap());
        let mut buf = [0u8; 8];
        let (n, fds) = sock.recv_fds(&mut buf, 2).unwrap();
        assert_eq!((n, fds.len()), (3, 2));
        for fd in &fds {
            assert!(
                common::is_cloexec(fd.as_fd()),
                "received descriptors are close-on-exec"
            );
        }
        let mut it = fds.into_iter();
        let w = ipcx::pipe::PipeWriter::try_from(it.next().unwrap()).unwrap();
        w.try_write(b"via passed fd").unwrap();
        common::say("done");
        std::process::exit(0);
    }
    let (ours, theirs) = ipcx::unix::stream_pair().unwrap();
    let (rx, tx) = ipcx::pipe::pipe().unwrap();
    let mut cmd = common::child("descriptors_pass_to_a_child_process", "receiver", &[]);
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
    let child = cmd.spawn().unwrap();
    drop(cmd);
    let extra = tempfile::tempfile().unwrap();
    ours.send_fds(b"fds", &[tx.as_fd(), extra.as_fd()]).unwrap();
    drop(tx);
    let mut buf = [0u8; 32];
    let n = rx.read_timeout(&mut buf, common::CHILD_LIMIT).unwrap();
    assert_eq!(&buf[..n], b"via passed fd");
    assert_eq!(common::reports(&common::finish(child)), "done");
}

#[test]
fn more_descriptors_than_accepted_are_rejected_and_all_closed() {
    if common::role().is_some() {
        let (a, b) = Seqpacket::pair().unwrap();
        let files: Vec<std::fs::File> = (0..3).map(|_| tempfile::tempfile().unwrap()).collect();
        let borrowed: Vec<_> = files.iter().map(|f| f.as_fd()).collect();
        a.send_fds(b"x", &borrowed).unwrap();
        let before = common::open_fds();
        let err = b.recv_fds(&mut [0u8; 8], 1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert_eq!(
            common::open_fds(),
            before,
            "every received descriptor was closed"
        );
        // The same on a channel that accepts none: the kernel closes them, none arrive.
        a.send_fds(b"y", &borrowed).unwrap();
        let err2 = b.recv_blocking(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err2.kind(), ErrorKind::Corrupt);
        assert_eq!(common::open_fds(), before);
        // And the channel still works afterwards.
        a.send(b"ok").unwrap();
        assert_eq!(b.recv_timeout(&mut [0u8; 8], T).unwrap(), 2);
        common::say(&err);
        common::say(&err2);
        std::process::exit(0);
    }
    let out = common::run_ok(common::child(
        "more_descriptors_than_accepted_are_rejected_and_all_closed",
        "c",
        &[],
    ));
    assert!(
        out.contains("more than the 1 descriptors this receive accepts"),
        "{out}"
    );
    assert!(
        out.contains("attached descriptors this receive does not accept"),
        "{out}"
    );
}

#[test]
fn out_of_descriptors_while_receiving_them_is_limit_reached() {
    if common::role().is_some() {
        let (a, b) = UnixStream::pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        a.send_fds(b"z", &[file.as_fd()]).unwrap();
        let before = common::open_fds();
        common::set_nofile(common::lowest_free_fd());
        let err = b.recv_fds(&mut [0u8; 4], 4).unwrap_err();
        common::set_nofile(4096);
        assert_eq!(err.kind(), ErrorKind::LimitReached, "{err}");
        assert_eq!(common::open_fds(), before);
        a.send_fds(b"z", &[file.as_fd()]).unwrap();
        assert_eq!(
            b.recv_fds(&mut [0u8; 4], 4).unwrap().1.len(),
            1,
            "the socket still works"
        );
        common::say(err);
        std::process::exit(0);
    }
    let out = common::run_ok(common::child(
        "out_of_descriptors_while_receiving_them_is_limit_reached",
        "c",
        &[],
    ));
    assert!(
        out.contains("had no room for them (RLIMIT_NOFILE is"),
        "{out}"
    );
}

#[test]
fn descriptor_count_and_empty_data_are_checked_on_send() {
    let (a, b) = UnixStream::pair().unwrap();
    let file = tempfile::tempfile().unwrap();
    let many = vec![file.as_fd(); MAX_FDS_PER_MESSAGE + 1];
    assert_eq!(
        a.send_fds(b"x", &many).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        a.send_fds(b"", &[file.as_fd()]).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        b.recv_fds(&mut [0u8; 1], MAX_FDS_PER_MESSAGE + 1)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    // The most a message carries does pass.
    let max = vec![file.as_fd(); MAX_FDS_PER_MESSAGE];
    a.send_fds(b"m", &max).unwrap();
    assert_eq!(
        b.recv_fds(&mut [0u8; 1], MAX_FDS_PER_MESSAGE)
            .unwrap()
            .1
            .len(),
        MAX_FDS_PER_MESSAGE
    );
}

#[test]
fn out_of_descriptors_during_accept_keeps_the_listener_up() {
    if common::role().is_some() {
        let dir = common::tempdir();
        let server = listen(dir.path().join("l")).unwrap();
        let seq = listen_seqpacket(dir.path().join("q")).unwrap();
        let _c1 = UnixStream::connect(server.path()).unwrap();
        let _c2 = Seqpacket::connect(seq.path()).unwrap();
        common::set_nofile(common::lowest_free_fd());
        let e1 = server.try_accept().unwrap_err();
        let e2 = seq.try_accept().unwrap_err();
        common::set_nofile(4096);
        assert_eq!(
            (e1.kind(), e2.kind()),
            (ErrorKind::LimitReached, ErrorKind::LimitReached)
        );
        // The pending connections were not lost.
        server.accept_timeout(T).unwrap();
        seq.accept_timeout(T).unwrap();
        common::say(e1);
        std::process::exit(0);
    }
    let out = common::run_ok(common::child(
        "out_of_descriptors_during_accept_keeps_the_listener_up",
        "c",
        &[],
    ));
    assert!(out.starts_with("accept \"local unix:"), "{out}");
    assert!(out.contains("limit reached (EMFILE)"), "{out}");
}

#[test]
fn writing_to_a_closed_socket_is_peer_gone_not_sigpipe() {
    if common::role().is_some() {
        common::default_sigpipe();
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let e1 = a.send_blocking(b"x").unwrap_err();
        let (c, d) = Seqpacket::pair().unwrap();
        drop(d);
        let e2 = c.send(b"x").unwrap_err();
        let e3 = a.send_fds(b"x", &[c.as_fd()]).unwrap_err();
        assert!(!common::sigpipe_pending());
        for e in [&e1, &e2, &e3] {
            assert_eq!(e.kind(), ErrorKind::PeerGone, "{e}");
        }
        common::say(e1);
        std::process::exit(0);
    }
    let out = common::run_ok(common::child(
        "writing_to_a_closed_socket_is_peer_gone_not_sigpipe",
        "c",
        &[],
    ));
    assert!(
        out.ends_with("peer gone (EPIPE): the peer closed its end"),
        "{out}"
    );
}

#[test]
fn reading_a_closed_socket_is_eof() {
    let (a, b) = UnixStream::pair().unwrap();
    a.send_blocking(b"bye").unwrap();
    drop(a);
    let mut buf = [0u8; 8];
    assert_eq!(b.recv_timeout(&mut buf, T).unwrap(), 3);
    assert_eq!(b.recv_timeout(&mut buf, T).unwrap(), 0);
}

#[test]
fn message_sizes_at_and_over_the_buffer() {
    let (a, b) = Seqpacket::pair().unwrap();
    let (c, d) = UnixDatagram::pair().unwrap();
    for (tx, rx) in [(&a as &dyn SocketExtDyn, &b as &dyn SocketExtDyn), (&c, &d)] {
        let mut buf = [0u8; 16];
        tx.send(&[]).unwrap();
        assert_eq!(
            rx.recv(&mut buf).unwrap(),
            0,
            "a zero-length message arrives as one"
        );
        tx.send(&[1u8; 16]).unwrap();
        assert_eq!(rx.recv(&mut buf).unwrap(), 16, "exactly the buffer fits");
        tx.send(&[2u8; 17]).unwrap();
        tx.send(b"next").unwrap();
        let err = rx.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MessageTooLarge);
        assert!(
            err.to_string()
                .contains("a 17-byte message did not fit the 16-byte buffer"),
            "{err}"
        );
        assert_eq!(
            rx.recv(&mut buf).unwrap(),
            4,
            "the oversized message was consumed, not split"
        );
    }
    // A datagram larger than the socket can ever carry is refused at send.
    let huge = vec![0u8; c.send_buffer_size().unwrap() + 1];
    let err = c.try_send(&huge).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge);
    assert!(err.to_string().contains("SO_SNDBUF is"), "{err}");
}

/// The message calls of the two datagram-like types, for one loop over both.
trait SocketExtDyn {
    fn send(&self, m: &[u8]) -> ipcx::Result<usize>;
    fn recv(&self, b: &mut [u8]) -> ipcx::Result<usize>;
}
impl<S: SocketExt> SocketExtDyn for S {
    fn send(&self, m: &[u8]) -> ipcx::Result<usize> {
        self.send_timeout(m, T)
    }
    fn recv(&self, b: &mut [u8]) -> ipcx::Result<usize> {
        self.recv_timeout(b, T)
    }
}

#[test]
fn a_receiver_that_never_reads_bounds_the_sender() {
    let (a, _b) = UnixStream::pair().unwrap();
    let chunk = [0u8; 4096];
    let mut queued = 0usize;
    let err = loop {
        match a.try_send(&chunk) {
            Ok(n) => queued += n,
            Err(e) => break e,
        }
        assert!(
            queued < 64 << 20,
            "the kernel kept accepting data: no backpressure"
        );
    };
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    let start = Instant::now();
    let err = a
        .send_timeout(&chunk, Duration::from_millis(50))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn receive_waits_survive_signals() {
    let (a, b) = Seqpacket::pair().unwrap();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        a.send(b"through the storm").unwrap();
        a
    });
    let mut buf = [0u8; 32];
    let (n, signals) =
        common::under_signal_storm(|| b.recv_timeout(&mut buf, Duration::from_secs(20)));
    assert_eq!(n.unwrap(), 17);
    assert!(signals > 0);
    let _a = sender.join().unwrap();
    let (err, signals) =
        common::under_signal_storm(|| b.recv_timeout(&mut buf, Duration::from_millis(100)));
    assert_eq!(err.unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(signals > 0);
}

#[test]
fn socket_files_are_created_0600_whatever_the_umask() {
    if common::role().is_some() {
        let dir = common::arg("DIR");
        rustix::process::umask(rustix::fs::Mode::empty());
        let a = listen(Path::new(&dir).join("a")).unwrap();
        let b = bind_datagram(Path::new(&dir).join("b")).unwrap();
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let c = BindOptions::new()
            .mode(0o660)
            .listen_seqpacket(Path::new(&dir).join("c"))
            .unwrap();
        let paths = [
            a.path().to_path_buf(),
            b.path().to_path_buf(),
            c.path().to_path_buf(),
        ];
        let modes: Vec<String> = [a.path(), b.path(), c.path()]
            .iter()
            .map(|p| format!("{:o}", common::mode_of(p)))
            .collect();
        drop((a, b, c)); // exit() runs no destructors: remove the files first
        assert!(paths.iter().all(|p| !p.exists()));
        common::say(modes.join(" "));
        std::process::exit(0);
    }
    let dir = common::tempdir();
    let out = common::run_ok(common::child(
        "socket_files_are_created_0600_whatever_the_umask",
        "c",
        &[("DIR", dir.path().to_str().unwrap())],
    ));
    assert_eq!(out, "600 600 660");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the owners removed their files"
    );
}

#[test]
fn a_live_socket_is_never_taken_over() {
    let dir = common::tempdir();
    // Held by ipcx: its lock proves it alive.
    let path = dir.path().join("live");
    let _server = listen(&path).unwrap();
    // Held by a program that is not ipcx (no lock): the connect probe finds it alive.
    let foreign = dir.path().join("foreign");
    let other = std::os::unix::net::UnixListener::bind(&foreign).unwrap();
    for (target, why) in [
        (&path, ".lock and serves this path"),
        (&foreign, "a live socket is bound at this path"),
    ] {
        for err in [
            listen(target).unwrap_err(),
            listen_seqpacket(target).unwrap_err(),
            bind_datagram(target).unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
            assert!(err.to_string().contains(why), "{err}");
        }
    }
    drop(other);
}

#[test]
fn a_stale_socket_file_of_a_killed_owner_is_taken_over() {
    if common::role().is_some() {
        let _server = listen(common::arg("PATH")).unwrap();
        common::say("bound");
        // Die without running any destructor, as a crashed server would.
        common::die_like_a_crash();
    }
    let dir = common::tempdir();
    let path = dir.path().join("stale");
    let mut cmd = common::child(
        "a_stale_socket_file_of_a_killed_owner_is_taken_over",
        "victim",
        &[("PATH", path.to_str().unwrap())],
    );
    let out = common::finish(cmd.spawn().unwrap());
    assert_eq!(common::reports(&out), "bound");
    assert!(
        path.exists(),
        "the killed server left its socket file behind"
    );
    let server = listen(&path).unwrap();
    let _client = UnixStream::connect(&path).unwrap();
    server.accept_timeout(T).unwrap();
}

#[test]
fn planted_links_other_files_and_foreign_sockets_are_refused() {
    let dir = common::tempdir();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
    let err = listen(&link).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(
        err.to_string().contains("symbolic link is planted"),
        "{err}"
    );
    assert!(
        std::fs::symlink_metadata(&link).is_ok(),
        "the link was left alone"
    );

    let file = dir.path().join("file");
    std::fs::write(&file, b"data").unwrap();
    let err = bind_datagram(&file).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"data",
        "the file was left alone"
    );

    if !common::is_root() {
        println!(
            "SKIPPED foreign-owner case: only root can make a socket file owned by another user"
        );
        return;
    }
    let foreign = dir.path().join("foreign");
    drop(listen(&foreign).unwrap().keep()); // a stale socket file...
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap(); // ...of another user
    let err = listen(&foreign).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
    assert!(foreign.exists());
}

#[test]
fn invalid_socket_paths_are_rejected_before_any_system_call() {
    let dir = common::tempdir();
    let too_long = dir
        .path()
        .join("s".repeat(108 - dir.path().as_os_str().len()));
    let bad = [
        std::path::PathBuf::new(),
        too_long,
        dir.path().join(".."),
        std::path::PathBuf::from(
            <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(
                b"/tmp/a\0b".to_vec(),
            ),
        ),
    ];
    for path in &bad {
        let errors = [
            listen(path).map(drop).unwrap_err(),
            bind_datagram(path).map(drop).unwrap_err(),
            listen_seqpacket(path).map(drop).unwrap_err(),
            ipcx::unix::connect_timeout(path, T).map(drop).unwrap_err(),
            Seqpacket::connect(path).map(drop).unwrap_err(),
        ];
        for err in errors {
            assert_eq!(err.kind(), ErrorKind::InvalidName, "{path:?}: {err}");
            assert_eq!(err.errno(), None);
        }
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn connect_failures_are_typed() {
    let dir = common::tempdir();
    let missing = ipcx::unix::connect_timeout(dir.path().join("none"), T).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    let stale = dir.path().join("stale");
    drop(listen(&stale).unwrap().keep());
    let refused = ipcx::unix::connect_timeout(&stale, T).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::PeerGone);
    assert!(
        refused
            .to_string()
            .contains("(ECONNREFUSED): nothing is listening"),
        "{refused}"
    );

    // A listener that never accepts: once its backlog is full, connect times out.
    let full = BindOptions::new()
        .backlog(0)
        .listen_seqpacket(dir.path().join("full"))
        .unwrap();
    let mut clients = Vec::new();
    let err = loop {
        match Seqpacket::connect_timeout(full.path(), Duration::from_millis(30)) {
            Ok(c) => clients.push(c),
            Err(e) => break e,
        }
        assert!(clients.len() < 16, "the backlog never filled");
    };
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
}

#[test]
fn accept_forms_would_block_and_time_out() {
    let dir = common::tempdir();
    let stream = listen(dir.path().join("s")).unwrap();
    let seq = listen_seqpacket(dir.path().join("q")).unwrap();
    assert_eq!(
        stream.try_accept().unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_eq!(seq.try_accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    assert_eq!(
        stream
            .accept_timeout(Duration::from_millis(20))
            .unwrap_err()
            .kind(),
        ErrorKind::TimedOut
    );
    assert_eq!(
        seq.accept_timeout(Duration::from_millis(20))
            .unwrap_err()
            .kind(),
        ErrorKind::TimedOut
    );
}

#[test]
fn every_socket_descriptor_is_close_on_exec() {
    let dir = common::tempdir();
    let l = listen(dir.path().join("l")).unwrap();
    let q = listen_seqpacket(dir.path().join("q")).unwrap();
    let d = bind_datagram(dir.path().join("d")).unwrap();
    let c1 = ipcx::unix::connect_timeout(l.path(), T).unwrap();
    let a1 = l.accept_timeout(T).unwrap();
    let c2 = Seqpacket::connect(q.path()).unwrap();
    let a2 = q.accept_timeout(T).unwrap();
    let (p1, p2) = ipcx::unix::stream_pair().unwrap();
    let (p3, p4) = ipcx::unix::datagram_pair().unwrap();
    let (p5, p6) = ipcx::unix::seqpacket_pair().unwrap();
    let fds = [
        l.as_fd(),
        q.as_fd(),
        d.as_fd(),
        c1.as_fd(),
        a1.as_fd(),
        c2.as_fd(),
        a2.as_fd(),
        p1.as_fd(),
        p2.as_fd(),
        p3.as_fd(),
        p4.as_fd(),
        p5.as_fd(),
        p6.as_fd(),
    ];
    for (i, fd) in fds.into_iter().enumerate() {
        assert!(common::is_cloexec(fd), "descriptor {i} is inheritable");
    }
}

#[test]
fn credentials_of_a_socket_without_a_peer_are_an_error() {
    let dir = common::tempdir();
    let lone = bind_datagram(dir.path().join("lone")).unwrap();
    let err = lone.peer_credentials().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("the kernel recorded no peer"),
        "{err}"
    );
}

#[test]
fn descriptor_passing_has_try_and_timeout_forms() {
    let (a, b) = Seqpacket::pair().unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(
        b.try_recv_fds(&mut buf, 1).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let err = b
        .recv_fds_timeout(&mut buf, 1, Duration::from_millis(20))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    let file = tempfile::tempfile().unwrap();
    let sent = loop {
        match a.try_send_fds(b"f", &[file.as_fd()]) {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(
        sent.kind(),
        ErrorKind::WouldBlock,
        "a full socket pushes back"
    );
    let err = a
        .send_fds_timeout(b"f", &[file.as_fd()], Duration::from_millis(20))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    let (n, fds) = b.recv_fds_timeout(&mut buf, 1, T).unwrap();
    assert_eq!((n, fds.len()), (1, 1));
}

#[test]
fn datagram_send_to_and_recv_from_across_processes() {
    use ipcx::DatagramExt;
    if common::role().is_some() {
        let me = bind_datagram(common::arg("CLIENT")).unwrap();
        me.send_to_timeout(b"who am i", Path::new(&common::arg("SERVER")), T)
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = me.recv_from_timeout(&mut buf, T).unwrap();
        common::say(format!(
            "{} from {}",
            String::from_utf8_lossy(&buf[..n]),
            from.unwrap().display()
        ));
        std::process::exit(0);
    }
    let dir = common::tempdir();
    let (server_path, client_path) = (dir.path().join("s"), dir.path().join("c"));
    let server = bind_datagram(&server_path).unwrap();
    let child = common::child(
        "datagram_send_to_and_recv_from_across_processes",
        "client",
        &[
            ("SERVER", server_path.to_str().unwrap()),
            ("CLIENT", client_path.to_str().unwrap()),
        ],
    )
    .spawn()
    .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = server.recv_from_timeout(&mut buf, T).unwrap();
    assert_eq!(&buf[..n], b"who am i");
    let from = from.unwrap();
    assert_eq!(from, client_path);
    server
        .send_to_timeout(format!("you are {}", from.display()).as_bytes(), &from, T)
        .unwrap();
    let out = common::reports(&common::finish(child));
    assert_eq!(
        out,
        format!(
            "you are {0} from {1}",
            client_path.display(),
            server_path.display()
        )
    );
}

#[test]
fn datagram_send_to_and_recv_from_report_faults() {
    use ipcx::DatagramExt;
    let dir = common::tempdir();
    let server = bind_datagram(dir.path().join("s")).unwrap();
    let (anon, _other) = UnixDatagram::pair().unwrap();
    // An unbound sender has no address to reply to.
    anon.send_to_timeout(b"anon", server.path(), T).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(server.recv_from_timeout(&mut buf, T).unwrap(), (4, None));
    // Too large for the buffer: an error, and the datagram is consumed.
    anon.send_to_timeout(b"12345", server.path(), T).unwrap();
    let err = server.try_recv_from(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MessageTooLarge);
    assert_eq!(
        server.try_recv_from(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_eq!(
        server
            .recv_from_timeout(&mut buf, Duration::from_millis(20))
            .unwrap_err()
            .kind(),
        ErrorKind::TimedOut
    );
    // Nobody there, a stale file, an invalid name.
    let missing = anon
        .try_send_to(b"x", &dir.path().join("none"))
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    let stale = dir.path().join("stale");
    drop(bind_datagram(&stale).unwrap().keep());
    assert_eq!(
        anon.try_send_to(b"x", &stale).unwrap_err().kind(),
        ErrorKind::PeerGone
    );
    assert_eq!(
        anon.try_send_to(b"x", Path::new("")).unwrap_err().kind(),
        ErrorKind::InvalidName
    );
}

#[test]
fn accepting_threads_that_lose_the_race_wait_instead_of_spinning() {
    let dir = common::tempdir();
    let server = listen(dir.path().join("race")).unwrap();
    server.set_nonblocking(true).unwrap();
    let _client = UnixStream::connect(server.path()).unwrap();
    let results: Vec<ErrorKind> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    server
                        .accept_timeout(Duration::from_millis(200))
                        .map(drop)
                        .map_err(|e| e.kind())
                })
            })
            .collect();
        racers
            .into_iter()
            .filter_map(|r| r.join().unwrap().err())
            .collect()
    });
    assert_eq!(
        results,
        [ErrorKind::TimedOut],
        "one thread accepts, the other times out"
    );
    assert_eq!(
        server.try_accept().unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

#[test]
fn sending_to_a_full_unconnected_receiver_pushes_back() {
    use ipcx::DatagramExt;
    let dir = common::tempdir();
    let deaf = bind_datagram(dir.path().join("deaf")).unwrap();
    let (sender, _other) = UnixDatagram::pair().unwrap();
    let mut sent = 0;
    let err = loop {
        match sender.try_send_to(&[0u8; 512], deaf.path()) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 100_000, "the receiver's queue never filled");
    };
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    // poll says "writable" for an unconnected socket, so this must back off, not spin
    // or hang, and give up at its deadline.
    let start = Instant::now();
    let err = sender
        .send_to_timeout(&[0u8; 512], deaf.path(), Duration::from_millis(60))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(60));
    // Once the receiver reads, sending works again.
    deaf.recv_timeout(&mut [0u8; 512], T).unwrap();
    sender.send_to_timeout(&[0u8; 512], deaf.path(), T).unwrap();
}

#[test]
fn credentials_enabled_on_a_socket_do_not_make_messages_look_corrupt() {
    let (a, b) = Seqpacket::pair().unwrap();
    rustix::net::sockopt::set_socket_passcred(&b, true).unwrap();
    a.send(b"with creds").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(b.recv_timeout(&mut buf, T).unwrap(), 10);
    let file = tempfile::tempfile().unwrap();
    a.send_fds(b"fd", &[file.as_fd()]).unwrap();
    let (n, fds) = b.recv_fds_timeout(&mut buf, 1, T).unwrap();
    assert_eq!((n, fds.len()), (2, 1));
}

#[test]
fn a_stream_that_lost_data_with_unwanted_descriptors_says_so() {
    let (a, b) = UnixStream::pair().unwrap();
    let file = tempfile::tempfile().unwrap();
    a.send_fds(b"abc", &[file.as_fd()]).unwrap();
    let err = b.recv_timeout(&mut [0u8; 8], T).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(
        err.to_string()
            .contains("the 3 bytes that came with them were discarded"),
        "{err}"
    );
}

#[test]
fn concurrent_binders_of_one_path_yield_exactly_one_owner() {
    if common::role().is_some() {
        let path = common::arg("PATH");
        match listen(&path) {
            Ok(server) => {
                common::say("won");
                std::thread::sleep(Duration::from_millis(300));
                // The winner's file must still be its own, and it must still serve.
                let _c = UnixStream::connect(&path).unwrap();
                server.accept_timeout(T).unwrap();
            }
            Err(e) => common::say(format!("lost {:?}", e.kind())),
        }
        std::process::exit(0);
    }
    let dir = common::tempdir();
    let path = dir.path().join("contested");
    let children: Vec<_> = (0..6)
        .map(|_| {
            common::child(
                "concurrent_binders_of_one_path_yield_exactly_one_owner",
                "binder",
                &[("PATH", path.to_str().unwrap())],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    let outcomes: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = common::finish(c);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            common::reports(&out)
        })
        .collect();
    let winners = outcomes.iter().filter(|o| *o == "won").count();
    assert!(winners >= 1, "{outcomes:?}");
    // Binders that start after the winner left may win in turn; but while one owns the
    // path, every other gets AlreadyExists, and no one ever loses for another reason.
    assert!(
        outcomes
            .iter()
            .all(|o| o == "won" || o == "lost AlreadyExists"),
        "{outcomes:?}"
    );
}

#[test]
fn a_live_owner_is_recognised_even_when_its_file_looks_stale() {
    let dir = common::tempdir();
    let path = dir.path().join("owned");
    let _server = listen(&path).unwrap();
    // Swap in a socket that is bound but not listening: it refuses connections exactly
    // as a dead one does, which is what a server between bind and listen looks like.
    std::fs::remove_file(&path).unwrap();
    let imposter = rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        None,
    )
    .unwrap();
    rustix::net::bind(&imposter, &rustix::net::SocketAddrUnix::new(&path).unwrap()).unwrap();
    let err = listen(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(
        path.exists(),
        "the file was not taken for stale and removed"
    );
}

#[test]
fn only_seqpacket_sockets_are_adopted_as_seqpacket() {
    let (a, _b) = UnixStream::pair().unwrap();
    let err = Seqpacket::try_from(OwnedFd::from(a)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let (c, _d) = Seqpacket::pair().unwrap();
    Seqpacket::try_from(OwnedFd::from(c)).unwrap();
}
