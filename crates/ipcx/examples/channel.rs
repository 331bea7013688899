//! One piece of code, three transports: the channel layer between two processes.
//!
//! For each address (given on the command line, or by default a Unix stream socket, a
//! POSIX message queue and a shared-memory mailbox), the parent opens the receiving side
//! with [`channel::receiver`], which creates the socket file, queue or shared memory, and
//! starts a second copy of this program as its child with the address. The child opens
//! the sending side with [`channel::sender_timeout`] and sends a few messages, among them
//! an empty one and one of the channel's maximum size, then exits. The parent receives
//! them with the same [`Receiver`] calls whatever the transport, sees the child's
//! departure as `PeerGone` where the transport can tell (a queue cannot: its wait times
//! out instead), and drops the receiver, which removes what it created.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example channel
//! cargo run -p ipcx --example channel -- tcp:127.0.0.1:0 udp:127.0.0.1:0 unix-seqpacket:/tmp/demo.sock
//! ```

mod common;

use std::error::Error;
use std::ffi::OsString;
use std::time::Duration;

use common::{Reaper, TIMEOUT};
use ipcx::ErrorKind;
use ipcx::addr::Address;
use ipcx::channel::{self, Receiver, Sender};

/// What the child sends before its maximum-size message.
const MESSAGES: [&[u8]; 3] = [b"hello", b"", b"from the same code on every transport"];

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "child") {
        return common::run(
            || Err("the parent role takes addresses, not `child`".into()),
            |[addr]| child(&addr.to_string_lossy()),
        );
    }
    println!("[parent] pid {}", std::process::id());
    let dir = common::TempDir::new("channel")?;
    let pid = std::process::id();
    let addresses: Vec<String> = if args.is_empty() {
        vec![
            format!("unix:{}/channel.sock?max=64K", dir.path().display()),
            format!("mq:/ipcx-example-channel-{pid}?capacity=4&msgsize=4096"),
            format!("shm:/ipcx-example-channel-{pid}?capacity=2&max=16K"),
        ]
    } else {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    };
    for text in &addresses {
        let addr: Address = text.parse()?;
        let result = parent(&addr);
        if let Err(e) = &result {
            eprintln!("[parent] FAILED on {addr}: {e}");
        }
        result?;
    }
    dir.remove()?;
    println!("[parent] done");
    Ok(())
}

fn parent(addr: &Address) -> Result<(), Box<dyn Error>> {
    let mut rx = channel::receiver(addr)?;
    // For `tcp:…:0` this is the port the system chose.
    let reach = rx.address().unwrap_or_else(|| addr.clone());
    println!(
        "\n[parent] receiving on {reach} (messages up to {} bytes)",
        rx.max_message()
    );
    let child = Reaper::spawn(common::child_command()?.arg(reach.to_string()))?;
    let mut buf = vec![0u8; rx.max_message()];
    for _ in 0..MESSAGES.len() + 1 {
        let n = rx.recv_timeout(&mut buf, TIMEOUT)?;
        let shown = String::from_utf8_lossy(&buf[..n.min(40)]);
        println!("[parent] got {n:6} bytes: {shown:?}");
    }
    child.wait_success(TIMEOUT)?;
    match rx.recv_timeout(&mut buf, Duration::from_millis(200)) {
        Err(e) if e.kind() == ErrorKind::PeerGone => println!("[parent] the sender has gone: {e}"),
        Err(e) if e.kind() == ErrorKind::TimedOut => {
            println!("[parent] nothing more (this transport cannot tell that the sender left)");
        }
        Err(e) => return Err(e.into()),
        Ok(n) => return Err(format!("unexpected {n}-byte message").into()),
    }
    Ok(())
}

fn child(addr: &str) -> Result<(), Box<dyn Error>> {
    let addr: Address = addr.parse()?;
    let mut tx = channel::sender_timeout(&addr, TIMEOUT)?;
    for msg in MESSAGES {
        tx.send_timeout(msg, TIMEOUT)?;
    }
    let max = tx.max_message();
    tx.send_timeout(&vec![b'x'; max], TIMEOUT)?;
    // One byte more is refused before anything is sent.
    match tx.send(&vec![b'x'; max + 1]) {
        Err(e) if e.kind() == ErrorKind::MessageTooLarge => {
            eprintln!("[child] {} sent; one byte more: {e}", MESSAGES.len() + 1);
        }
        Err(e) => return Err(e.into()),
        Ok(()) => return Err("a message above the maximum should be refused".into()),
    }
    tx.flush_timeout(TIMEOUT)?;
    Ok(())
}
