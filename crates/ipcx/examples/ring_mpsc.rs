//! A multi-producer ring: three sender processes, one receiver, one shared-memory object.
//!
//! The parent creates an anonymous ring with three producer slots
//! ([`RingOptions::producers`]), becomes its receiver, and starts three children, handing
//! each the ring's descriptor over a Unix socket. Each child opens the ring with
//! [`MpscOptions::from_fd`](ipcx::ring::MpscOptions::from_fd), claims a producer slot
//! (its own lane of the ring) and sends a thousand numbered messages, half of them written
//! in place through a loan. The parent checks that each sender's messages arrive whole and
//! in order, and sees `PeerGone` once all three have closed. A fourth sender would get
//! `LimitReached`; a slot whose sender left is free for the next one.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example ring_mpsc
//! ```

mod common;

use std::error::Error;
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;

use common::{Reaper, TIMEOUT};
use ipcx::ErrorKind;
use ipcx::SocketExt;
use ipcx::ring::{RingOptions, Wait};
use ipcx::unix::UnixSocketExt;

const SENDERS: usize = 3;
const COUNT: u32 = 1000;

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[id]| child(id))
}

/// Message `i` of sender `id`: its id, its number, and `i % 200` bytes of filler.
fn message(id: u8, i: u32) -> Vec<u8> {
    let mut msg = vec![id];
    msg.extend_from_slice(&i.to_le_bytes());
    msg.resize(5 + (i % 200) as usize, id ^ (i as u8));
    msg
}

fn parent() -> Result<(), Box<dyn Error>> {
    let ring = RingOptions::new()
        .capacity(16 << 10)
        .wait(Wait::Adaptive)
        .producers(SENDERS)
        .anonymous()?;
    let mut rx = ring.receiver()?;
    println!(
        "[parent] created an anonymous ring with {} producer slots of {} bytes each",
        ring.producers(),
        ring.capacity()
    );
    let mut children = Vec::new();
    for id in 0..SENDERS {
        let (mine, theirs) = ipcx::unix::stream_pair()?;
        let mut cmd = common::child_command()?;
        cmd.arg(id.to_string())
            .stdin(Stdio::from(OwnedFd::from(theirs)));
        let child = Reaper::spawn(&mut cmd)?;
        mine.send_fds_timeout(b"ring", &[ring.as_fd()], TIMEOUT)?;
        children.push((child, mine));
    }
    // Wait until every child holds its slot: `PeerGone` means "no sender now", which
    // would be true for a moment if the first child finished before the last started.
    for (_, mine) in &children {
        let mut ack = [0u8; 16];
        mine.recv_timeout(&mut ack, TIMEOUT)?;
    }
    drop(ring); // the receiver and the children keep it alive

    let mut buf = vec![0u8; rx.max_message()];
    let mut next = [0u32; SENDERS];
    loop {
        match rx.recv_timeout(&mut buf, TIMEOUT) {
            Ok(n) => {
                let id = buf[0];
                let i = next[id as usize];
                if buf[..n] != message(id, i) {
                    return Err(format!("sender {id}: message {i} arrived damaged").into());
                }
                next[id as usize] += 1;
            }
            Err(e) if e.kind() == ErrorKind::PeerGone => {
                println!("[parent] {e}");
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if next != [COUNT; SENDERS] {
        return Err(format!("expected {COUNT} messages from each sender, got {next:?}").into());
    }
    println!("[parent] {COUNT} messages from each of {SENDERS} senders, whole and in order");
    for (child, _) in children {
        child.wait_success(TIMEOUT)?;
    }
    println!("[parent] done");
    Ok(())
}

fn child(id: OsString) -> Result<(), Box<dyn Error>> {
    let id: u8 = id.to_str().ok_or("a numeric id")?.parse()?;
    let stream = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut buf = [0u8; 16];
    let (_, fds) = stream.recv_fds_timeout(&mut buf, 1, TIMEOUT)?;
    let fd = fds.into_iter().next().ok_or("no descriptor arrived")?;
    let mut tx = RingOptions::new().producers(1).from_fd(fd)?.sender()?;
    eprintln!("[child {id}] claimed producer slot {}", tx.slot());
    stream.send_timeout(b"claimed", TIMEOUT)?;
    for i in 0..COUNT {
        let msg = message(id, i);
        if i % 2 == 0 {
            tx.send_timeout(&msg, TIMEOUT)?;
        } else {
            let mut loan = tx.loan_timeout(msg.len(), TIMEOUT)?;
            loan.copy_from_slice(&msg);
            loan.commit();
        }
    }
    eprintln!("[child {id}] sent {COUNT} messages; closing");
    Ok(())
}
