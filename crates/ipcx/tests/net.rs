//! TCP and UDP over IPv4 and IPv6 across real processes, on loopback only.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use ipcx::ListenerExt;
use ipcx::net::{TcpOptions, UdpOptions};
use ipcx::{ErrorKind, SocketExt};

const T: Duration = Duration::from_secs(10);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn tcp_echo_across_processes_over_ipv4_and_ipv6() {
    if common::role().is_some() {
        let to: SocketAddr = common::arg("ADDR").parse().unwrap();
        let mut s = TcpOptions::new().nodelay(true).connect(to, T).unwrap();
        s.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        common::say(String::from_utf8_lossy(&buf));
        std::process::exit(0);
    }
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let listener = TcpOptions::new().nodelay(true).bind(addr(bind)).unwrap();
        let local = listener.local_addr().unwrap().to_string();
        let child = common::child(
            "tcp_echo_across_processes_over_ipv4_and_ipv6",
            "client",
            &[("ADDR", &local)],
        )
        .spawn()
        .unwrap();
        let conn = listener.accept_timeout(T).unwrap();
        let mut buf = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            got += conn.recv_timeout(&mut buf[got..], T).unwrap();
        }
        assert_eq!(&buf, b"ping");
        conn.send_timeout(b"pong", T).unwrap();
        assert_eq!(
            common::reports(&common::finish(child)),
            "pong",
            "over {bind}"
        );
    }
}

#[test]
fn dual_stack_listener_accepts_ipv4_clients_unless_v6_only() {
    let dual = TcpOptions::new().bind(addr("[::]:0")).unwrap();
    let port = dual.local_addr().unwrap().port();
    let _c = TcpOptions::new()
        .connect(SocketAddr::from(([127, 0, 0, 1], port)), T)
        .unwrap();
    let conn = dual.accept_timeout(T).unwrap();
    let peer = conn.peer_addr().unwrap();
    assert!(
        matches!(peer, SocketAddr::V6(a) if a.ip().to_ipv4_mapped().is_some()),
        "{peer}"
    );

    let v6only = TcpOptions::new()
        .dual_stack(false)
        .bind(addr("[::]:0"))
        .unwrap();
    let port = v6only.local_addr().unwrap().port();
    let err = TcpOptions::new()
        .connect(SocketAddr::from(([127, 0, 0, 1], port)), T)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PeerGone);
    assert!(
        err.to_string()
            .contains("(ECONNREFUSED): nothing listens on this port"),
        "{err}"
    );
    TcpOptions::new()
        .connect(SocketAddr::from((Ipv6Addr::LOCALHOST, port)), T)
        .unwrap();
}

#[test]
fn options_reach_the_socket() {
    let listener = TcpOptions::new()
        .recv_buffer_size(256 * 1024)
        .bind(addr("127.0.0.1:0"))
        .unwrap();
    let c = TcpOptions::new()
        .nodelay(true)
        .send_buffer_size(128 * 1024)
        .connect(listener.local_addr().unwrap(), T)
        .unwrap();
    assert!(c.nodelay().unwrap());
    // The kernel doubles the value for its bookkeeping.
    assert_eq!(c.send_buffer_size().unwrap(), 256 * 1024);
    c.set_recv_buffer_size(64 * 1024).unwrap();
    assert_eq!(c.recv_buffer_size().unwrap(), 128 * 1024);
    assert!(common::is_cloexec(c.as_fd()));
    assert!(common::is_cloexec(listener.as_fd()));
    let accepted = listener.accept_timeout(T).unwrap();
    assert!(common::is_cloexec(accepted.as_fd()));
    // The blocking mode std expects is restored after the non-blocking connect.
    assert!(
        !rustix::fs::fcntl_getfl(&c)
            .unwrap()
            .contains(rustix::fs::OFlags::NONBLOCK)
    );
}

#[test]
fn a_port_in_use_is_already_exists_and_reuse_addr_allows_restart() {
    let first = TcpOptions::new().bind(addr("127.0.0.1:0")).unwrap();
    let taken = first.local_addr().unwrap();
    let err = TcpOptions::new().bind(taken).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(
        err.to_string()
            .starts_with(&format!("bind \"{taken}\": already exists (EADDRINUSE)")),
        "{err}"
    );

    // A server restarted while its last connection sits in TIME_WAIT binds again.
    let client = TcpStream::connect(taken).unwrap();
    let (server_side, _) = first.accept().unwrap();
    drop(server_side); // the server closes first, so the server side goes to TIME_WAIT
    drop(client);
    drop(first);
    TcpOptions::new().bind(taken).unwrap();
}

#[test]
fn tcp_write_to_a_closed_peer_is_peer_gone_not_sigpipe() {
    if common::role().is_some() {
        common::default_sigpipe();
        let l = TcpOptions::new().bind(addr("127.0.0.1:0")).unwrap();
        let c = TcpOptions::new()
            .connect(l.local_addr().unwrap(), T)
            .unwrap();
        drop(l.accept_timeout(T).unwrap());
        // The first writes may be accepted before the peer's reset arrives.
        let err = (0..2000)
            .find_map(|_| {
                let sent = c.send_timeout(b"x", T);
                std::thread::sleep(Duration::from_millis(5));
                sent.err()
            })
            .expect("writes to a closed peer kept succeeding for 10 s");
        assert_eq!(err.kind(), ErrorKind::PeerGone, "{err}");
        assert!(!common::sigpipe_pending());
        common::say("survived");
        std::process::exit(0);
    }
    let out = common::run_ok(common::child(
        "tcp_write_to_a_closed_peer_is_peer_gone_not_sigpipe",
        "c",
        &[],
    ));
    assert_eq!(out, "survived");
}

#[test]
fn tcp_read_from_a_closed_peer_is_eof() {
    let l = TcpOptions::new().bind(addr("[::1]:0")).unwrap();
    let c = TcpOptions::new()
        .connect(l.local_addr().unwrap(), T)
        .unwrap();
    let s = l.accept_timeout(T).unwrap();
    s.send_timeout(b"end", T).unwrap();
    drop(s);
    let mut buf = [0u8; 8];
    let mut got = 0;
    loop {
        let n = c.recv_timeout(&mut buf[got..], T).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(&buf[..got], b"end");
}

#[test]
fn udp_datagrams_over_ipv4_and_ipv6() {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let a = UdpOptions::new()
            .recv_buffer_size(64 * 1024)
            .bind(addr(bind))
            .unwrap();
        let b = UdpOptions::new().bind(addr(bind)).unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(
            b.try_recv(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        a.send_timeout(b"", T).unwrap();
        assert_eq!(
            b.recv_timeout(&mut buf, T).unwrap(),
            0,
            "an empty datagram arrives as one"
        );
        a.send_timeout(&[5u8; 8], T).unwrap();
        assert_eq!(b.recv_timeout(&mut buf, T).unwrap(), 8);
        a.send_timeout(&[6u8; 9], T).unwrap();
        let err = b.recv_timeout(&mut buf, T).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MessageTooLarge);
        assert!(
            err.to_string()
                .contains("a 9-byte message did not fit the 8-byte buffer"),
            "{err}"
        );
        let err = b
            .recv_timeout(&mut buf, Duration::from_millis(20))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        // Over the UDP maximum: refused at send, with the limit that applies.
        let err = a.try_send(&vec![0u8; 70_000]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MessageTooLarge, "{err}");
        let limit = if bind.starts_with('[') {
            "65527"
        } else {
            "65507"
        };
        assert!(err.to_string().contains(limit), "{err}");
    }
}

#[test]
fn python_peers_over_tcp_and_udp() {
    let script = r#"
import socket, sys
host, port, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
if kind == "tcp":
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"tcp from python")
    print(s.recv(100).decode())
else:
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(10)
    s.sendto(b"udp from python", (host, port))
    print(s.recvfrom(100)[0].decode())
"#;
    for host in ["127.0.0.1", "::1"] {
        let bind = SocketAddr::new(host.parse().unwrap(), 0);
        let tcp = TcpOptions::new().bind(bind).unwrap();
        let port = tcp.local_addr().unwrap().port().to_string();
        let Some(mut cmd) = common::python(script, &[host, &port, "tcp"]) else {
            return;
        };
        let child = cmd.spawn().unwrap();
        let conn = tcp.accept_timeout(T).unwrap();
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < 15 {
            got += conn.recv_timeout(&mut buf[got..], T).unwrap();
        }
        assert_eq!(&buf[..got], b"tcp from python");
        conn.send_timeout(b"tcp reply", T).unwrap();
        let out = common::finish(child);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "tcp reply");

        let udp = UdpOptions::new().bind(bind).unwrap();
        let port = udp.local_addr().unwrap().port().to_string();
        let Some(mut cmd) = common::python(script, &[host, &port, "udp"]) else {
            return;
        };
        let child = cmd.spawn().unwrap();
        common::wait_readable(udp.as_fd());
        let (n, from) = udp.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"udp from python");
        udp.connect(from).unwrap();
        udp.send_timeout(b"udp reply", T).unwrap();
        let out = common::finish(child);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "udp reply");
    }
}

#[test]
fn udp_send_to_and_recv_from_report_the_peer() {
    use ipcx::DatagramExt;
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let a = UdpOptions::new().bind(addr(bind)).unwrap();
        let b = UdpOptions::new().bind(addr(bind)).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(
            b.try_recv_from(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        a.send_to_timeout(b"ping", &b.local_addr().unwrap(), T)
            .unwrap();
        let (n, from) = b.recv_from_timeout(&mut buf, T).unwrap();
        assert_eq!((n, from), (4, a.local_addr().unwrap()));
        b.send_to_timeout(b"pong!", &from, T).unwrap();
        let err = a.recv_from_timeout(&mut buf, T).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::MessageTooLarge,
            "five bytes do not fit four"
        );
    }
}

#[test]
fn sending_on_an_unconnected_socket_is_a_usage_error_not_a_gone_peer() {
    let s = UdpOptions::new().bind(addr("127.0.0.1:0")).unwrap();
    let err = s.try_send(b"to whom?").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains("use DatagramExt::send_to"),
        "{err}"
    );
}
