//! Seqpacket sockets: a connection that keeps message boundaries.
//!
//! The parent listens with [`ipcx::unix::listen_seqpacket`] and starts a second copy of
//! this program as its child, which connects with [`Seqpacket::connect_timeout`] and sends
//! five messages in a row, one of them larger than the parent's receive buffer. The parent
//! receives with `recv_timeout`: each receive returns exactly one message (a stream socket
//! would have run them together), and the oversized one is reported as `MessageTooLarge`
//! rather than silently cut, without disturbing the messages after it. The parent then
//! answers, and sees the connection close when the child exits.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example unix_seqpacket
//! ```

mod common;

use std::error::Error;
use std::path::Path;

use common::{Reaper, TIMEOUT, TempDir};
use ipcx::ErrorKind;
use ipcx::unix::{Seqpacket, UnixSocketExt};

/// The size of the parent's receive buffer.
const BUF: usize = 64;

/// The size of the one message that does not fit the parent's buffer.
const BIG: usize = 200;

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[path]| child(Path::new(&path)))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let dir = TempDir::new("unix-seqpacket")?;
    let listener = ipcx::unix::listen_seqpacket(dir.path().join("seq.sock"))?;
    println!(
        "[parent] listening for seqpacket connections at {}",
        listener.path().display()
    );

    let child = Reaper::spawn(common::child_command()?.arg(listener.path()))?;
    println!("[parent] started child pid {}", child.id());

    let conn = listener.accept_timeout(TIMEOUT)?;
    println!(
        "[parent] accepted a connection from {}",
        conn.peer_credentials()?
    );

    // Receive until the child's last message, one message per receive.
    let mut buf = [0u8; BUF];
    let (mut received, mut refused) = (0, 0);
    loop {
        match conn.recv_timeout(&mut buf, TIMEOUT) {
            Ok(0) => return Err("the child closed the connection too early".into()),
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                println!("[parent] one receive, one message of {n} bytes: {text:?}");
                received += 1;
                if text == "last" {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::MessageTooLarge => {
                println!("[parent] a message did not fit the {BUF}-byte buffer: {e}");
                refused += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }

    let answer = format!("received {received} messages, refused {refused}");
    conn.send_timeout(answer.as_bytes(), TIMEOUT)?;
    println!("[parent] answered {answer:?}");

    // The child exits after reading the answer: a receive of 0 bytes with peer_closed()
    // set is end of file.
    let n = conn.recv_timeout(&mut buf, TIMEOUT)?;
    if n != 0 || !conn.peer_closed() {
        return Err("expected end of file from the child".into());
    }
    println!("[parent] received 0 bytes and peer_closed() is true: the child closed");

    let status = child.wait_success(TIMEOUT)?;
    if (received, refused) != (4, 1) {
        return Err(format!("expected 4 messages and 1 refused, got {answer}").into());
    }
    println!("[parent] child exited with {status}");
    drop(conn);
    drop(listener);
    dir.remove()?;
    println!("[parent] removed the socket file and the temporary directory; done");
    Ok(())
}

fn child(path: &Path) -> Result<(), Box<dyn Error>> {
    let conn = Seqpacket::connect_timeout(path, TIMEOUT)?;
    println!("[child] connected to {}", path.display());

    let big = vec![b'x'; BIG];
    let messages: [&[u8]; 5] = [b"one", b"two two", b"three three three", &big, b"last"];
    for msg in messages {
        conn.send_timeout(msg, TIMEOUT)?;
        println!("[child] sent a {}-byte message", msg.len());
    }

    let mut buf = [0u8; 256];
    let n = conn.recv_timeout(&mut buf, TIMEOUT)?;
    println!(
        "[child] the parent answered {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    drop(conn);
    println!("[child] closed the connection and exits");
    Ok(())
}
