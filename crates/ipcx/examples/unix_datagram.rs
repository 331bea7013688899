//! A Unix datagram server that replies to each sender's own bound address.
//!
//! The parent binds a datagram socket file with [`ipcx::unix::bind_datagram`] (mode 0600,
//! removed on drop) and starts a second copy of this program as its child. The child binds
//! a socket file of its own in the same directory, so the server has an address to answer
//! to, connects it to the server's path, and sends a few datagrams with
//! `SocketExt::send_timeout`, waiting for each answer with `SocketExt::recv_timeout`. The
//! server's socket is not connected: it receives with [`DatagramExt::recv_from_timeout`],
//! which also returns the sender's bound path, and answers that path with
//! [`DatagramExt::send_to_timeout`]. A datagram larger than the server's buffer would be
//! reported as `MessageTooLarge` rather than silently cut.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example unix_datagram
//! ```

mod common;

use std::error::Error;
use std::path::Path;

use common::{Reaper, TIMEOUT, TempDir};
use ipcx::unix::DatagramExt;
use ipcx::{ErrorKind, SocketExt};

/// The datagrams the child sends; the last one ends the conversation.
const REQUESTS: [&str; 3] = ["ping 1", "ping 2", "bye"];

/// The server's socket file name inside the run's directory.
const SERVER: &str = "server.sock";

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[dir]| child(Path::new(&dir)))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let dir = TempDir::new("unix-datagram")?;
    let server = ipcx::unix::bind_datagram(dir.path().join(SERVER))?;
    println!(
        "[parent] bound the datagram server at {}",
        server.path().display()
    );

    let child = Reaper::spawn(common::child_command()?.arg(dir.path()))?;
    println!("[parent] started child pid {}", child.id());

    let mut buf = [0u8; 512];
    loop {
        let (n, from) = match server.recv_from_timeout(&mut buf, TIMEOUT) {
            Ok(received) => received,
            Err(e) if e.kind() == ErrorKind::MessageTooLarge => {
                // The datagram was discarded whole; its sender is not known.
                println!("[parent] dropped a datagram too large for the buffer: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        // An unbound sender (`None`) has no address, so it cannot be answered.
        let Some(sender) = from else {
            println!("[parent] received {n} bytes {text:?} from an unbound socket; ignoring it");
            continue;
        };
        println!(
            "[parent] received {n} bytes {text:?} from {}",
            sender.display()
        );
        let reply = format!("ack: {text}");
        server.send_to_timeout(reply.as_bytes(), &sender, TIMEOUT)?;
        println!("[parent] replied {reply:?} to the sender's path");
        if text == "bye" {
            break;
        }
    }

    let status = child.wait_success(TIMEOUT)?;
    println!("[parent] child exited with {status}");
    drop(server);
    dir.remove()?;
    println!("[parent] removed the server socket and the temporary directory; done");
    Ok(())
}

fn child(dir: &Path) -> Result<(), Box<dyn Error>> {
    // Bind an address of our own: a datagram from an unbound socket cannot be answered.
    let me = ipcx::unix::bind_datagram(dir.join(format!("client-{}.sock", std::process::id())))?;
    me.connect(dir.join(SERVER))?;
    println!(
        "[child] bound {} and connected it to the server",
        me.path().display()
    );
    let mut buf = [0u8; 512];
    for request in REQUESTS {
        me.send_timeout(request.as_bytes(), TIMEOUT)?;
        println!("[child] sent {request:?}");
        let n = me.recv_timeout(&mut buf, TIMEOUT)?;
        println!(
            "[child] the server answered {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    drop(me);
    println!("[child] dropped its socket (its file is removed) and exits");
    Ok(())
}
