//! TCP over IPv6 loopback and UDP over IPv4 loopback between two processes.
//!
//! The parent binds a TCP listener on `[::1]:0` with
//! [`TcpOptions`](ipcx::net::TcpOptions) (no-delay on, so small replies go out at once)
//! and a UDP socket on `127.0.0.1:0` with [`UdpOptions`](ipcx::net::UdpOptions), then
//! starts a second copy of this program as its child, passing both addresses on the
//! command line. The child connects with `TcpOptions::connect` (bounded by a timeout),
//! sends a few lines and reads the echoes; the parent accepts with
//! [`ListenerExt::accept_timeout`]. Then the child sends a UDP datagram with
//! [`DatagramExt::send_to_timeout`]; the parent receives it with
//! [`DatagramExt::recv_from_timeout`], which also gives the sender's address, and answers
//! there. Only loopback addresses are used: the child refuses any other, and the parent
//! answers no other.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example tcp_udp
//! ```

mod common;

use std::error::Error;
use std::ffi::OsStr;
use std::net::SocketAddr;

use common::{Lines, Reaper, TIMEOUT, send_all};
use ipcx::net::{DatagramExt, ListenerExt, TcpOptions, UdpOptions};

/// The lines the child sends over TCP.
const REQUESTS: [&str; 3] = ["hello over tcp", "no delay please", "bye"];

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[tcp, udp]| child(&tcp, &udp))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let listener = TcpOptions::new().nodelay(true).bind("[::1]:0".parse()?)?;
    let tcp_addr = listener.local_addr()?;
    println!("[parent] TCP listener on {tcp_addr}");
    let udp = UdpOptions::new().bind("127.0.0.1:0".parse()?)?;
    let udp_addr = udp.local_addr()?;
    println!("[parent] UDP socket on {udp_addr}");

    let child = Reaper::spawn(
        common::child_command()?
            .arg(tcp_addr.to_string())
            .arg(udp_addr.to_string()),
    )?;
    println!(
        "[parent] started child pid {} with both addresses as arguments",
        child.id()
    );

    // TCP: echo each line until the child closes the connection.
    let conn = listener.accept_timeout(TIMEOUT)?;
    println!(
        "[parent] accepted a TCP connection from {}; no-delay: {}",
        conn.peer_addr()?,
        conn.nodelay()?
    );
    let mut lines = Lines::new();
    while let Some(line) = lines.recv_line(&conn, TIMEOUT)? {
        println!("[parent] TCP request {line:?}");
        send_all(&conn, format!("echo: {line}\n").as_bytes(), TIMEOUT)?;
    }
    println!("[parent] end of file: the child closed the TCP connection");
    drop(conn);

    // UDP: the kernel tells us who sent the datagram; answer there if it is loopback.
    let mut buf = [0u8; 512];
    let (n, sender) = udp.recv_from_timeout(&mut buf, TIMEOUT)?;
    println!(
        "[parent] UDP datagram of {n} bytes from {sender}: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    if !sender.ip().is_loopback() {
        return Err(format!("refusing to answer a non-loopback address {sender}").into());
    }
    udp.send_to_timeout(b"welcome", &sender, TIMEOUT)?;
    println!("[parent] answered \"welcome\" to {sender}");

    let status = child.wait_success(TIMEOUT)?;
    println!("[parent] child exited with {status}; done");
    Ok(())
}

fn child(tcp: &OsStr, udp: &OsStr) -> Result<(), Box<dyn Error>> {
    let tcp_addr = loopback_addr(tcp)?;
    let udp_addr = loopback_addr(udp)?;

    let conn = TcpOptions::new().nodelay(true).connect(tcp_addr, TIMEOUT)?;
    println!(
        "[child] connected from {} to {tcp_addr}",
        conn.local_addr()?
    );
    let mut lines = Lines::new();
    for request in REQUESTS {
        send_all(&conn, format!("{request}\n").as_bytes(), TIMEOUT)?;
        let reply = lines
            .recv_line(&conn, TIMEOUT)?
            .ok_or("the server closed the connection")?;
        println!("[child] sent {request:?}, got {reply:?}");
    }
    drop(conn);
    println!("[child] closed the TCP connection");

    // An unconnected UDP socket: send_to names the destination, and recv_from names the
    // sender, so the child can tell the parent's answer from any stray datagram.
    let udp = UdpOptions::new().bind("127.0.0.1:0".parse()?)?;
    udp.send_to_timeout(b"hello over udp", &udp_addr, TIMEOUT)?;
    println!(
        "[child] sent a UDP hello from {} to {udp_addr}",
        udp.local_addr()?
    );
    let mut buf = [0u8; 512];
    let (n, from) = udp.recv_from_timeout(&mut buf, TIMEOUT)?;
    if from != udp_addr {
        return Err(format!("a UDP datagram came from {from}, not the parent").into());
    }
    println!(
        "[child] UDP answer from {from}: {:?}; exiting",
        String::from_utf8_lossy(&buf[..n])
    );
    Ok(())
}

/// Parses an address the parent passed, refusing any that is not loopback.
fn loopback_addr(arg: &OsStr) -> Result<SocketAddr, Box<dyn Error>> {
    let addr: SocketAddr = arg
        .to_str()
        .ok_or_else(|| format!("{} is not an address", arg.display()))?
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address; refusing it").into());
    }
    Ok(addr)
}
