//! The shared-memory ring between two processes: copying sends, a zero-copy loan, and a
//! zero-copy receive.
//!
//! The parent creates an anonymous ring ([`RingOptions::anonymous`]: a sealed memfd),
//! hands its descriptor to the child over a Unix socket, and becomes the ring's sender.
//! The child opens it with [`RingOptions::from_fd`], which checks the seals and the
//! header, and becomes its receiver. The parent sends a thousand messages of growing
//! size with `send`, then writes one 64 KiB message in place through a loan; the child
//! takes the first with `recv` (a copy) and the last with `recv_ref` (a view into the
//! ring), and sees `PeerGone` when the parent drops its sender. No message costs a
//! system call while both sides are busy, and nothing is named, so nothing is left
//! behind.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example ring
//! ```

mod common;

use std::error::Error;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;

use common::{Reaper, TIMEOUT};
use ipcx::ErrorKind;
use ipcx::SocketExt;
use ipcx::ring::{RingOptions, Wait};
use ipcx::unix::UnixSocketExt;

const COUNT: usize = 1000;
const BIG: usize = 64 << 10;

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[]| child())
}

fn parent() -> Result<(), Box<dyn Error>> {
    let ring = RingOptions::new()
        .capacity(256 << 10)
        .wait(Wait::Adaptive)
        .anonymous()?;
    println!(
        "[parent] created an anonymous ring of {} bytes (largest message {})",
        ring.capacity(),
        ring.max_message()
    );
    let (mine, theirs) = ipcx::unix::stream_pair()?;
    let mut cmd = common::child_command()?;
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
    let child = Reaper::spawn(&mut cmd)?;
    drop(cmd);
    mine.send_fds_timeout(b"ring", &[ring.as_fd()], TIMEOUT)?;
    println!("[parent] sent the ring to child pid {}", child.id());

    let mut tx = ring.sender()?;
    for i in 0..COUNT {
        let msg = vec![(i % 251) as u8; i];
        tx.send_timeout(&msg, TIMEOUT)?;
    }
    let mut loan = tx.loan_timeout(BIG, TIMEOUT)?;
    for (i, byte) in loan.iter_mut().enumerate() {
        *byte = (i % 256) as u8;
    }
    loan.commit();
    println!("[parent] sent {COUNT} messages and one {BIG}-byte loan; closing");
    drop(tx);

    let mut ack = [0u8; 128];
    let n = mine.recv_timeout(&mut ack, TIMEOUT)?;
    println!(
        "[parent] the child says: {}",
        String::from_utf8_lossy(&ack[..n])
    );
    let status = child.wait_success(TIMEOUT)?;
    println!("[parent] child exited with {status}; done");
    Ok(())
}

fn child() -> Result<(), Box<dyn Error>> {
    let stream = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut buf = [0u8; 16];
    let (_, fds) = stream.recv_fds_timeout(&mut buf, 1, TIMEOUT)?;
    let fd = fds.into_iter().next().ok_or("no descriptor arrived")?;
    let mut rx = RingOptions::new().from_fd(fd)?.receiver()?;
    eprintln!("[child] opened a ring of {} bytes", rx.capacity());

    let mut msg = vec![0u8; rx.max_message()];
    let mut bytes = 0;
    for i in 0..COUNT {
        let n = rx.recv_timeout(&mut msg, TIMEOUT)?;
        if n != i || msg[..n].iter().any(|&b| b != (i % 251) as u8) {
            return Err(format!("message {i} arrived damaged ({n} bytes)").into());
        }
        bytes += n;
    }
    let view = rx.recv_ref_timeout(TIMEOUT)?;
    let intact = view.len() == BIG && view.iter().enumerate().all(|(i, &b)| b == (i % 256) as u8);
    if !intact {
        return Err("the loaned message arrived damaged".into());
    }
    drop(view); // gives its room back to the sender
    match rx.recv_timeout(&mut msg, TIMEOUT) {
        Err(e) if e.kind() == ErrorKind::PeerGone => eprintln!("[child] {e}"),
        other => return Err(format!("expected PeerGone, got {other:?}").into()),
    }
    let report = format!("{COUNT} messages ({bytes} bytes) and a {BIG}-byte view, all intact");
    stream.send_timeout(report.as_bytes(), TIMEOUT)?;
    Ok(())
}
