//! Handing a sealed memfd to another process over a Unix socket.
//!
//! The parent creates an anonymous shared memory file with [`Memfd::create`], writes a
//! frame into it, seals it against shrinking, growing and writing, and sends the
//! descriptor to its child with `SCM_RIGHTS`. The child accepts it with
//! [`Memfd::from_peer`], which checks the seals and the size before mapping, maps it
//! read-only and reads the frame. Because of the seals the child knows that no one can
//! change the contents or truncate the file under its mapping (no `SIGBUS`). Nothing is
//! named, so nothing can be left behind.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example memfd_handoff
//! ```

mod common;

use std::error::Error;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;

use common::{Reaper, TIMEOUT};
use ipcx::SocketExt;
use ipcx::shm::memfd::{Memfd, Seals};
use ipcx::unix::UnixSocketExt;

const SIZE: usize = 1 << 20;
const FRAME: &[u8] = b"frame 1: 1 MiB of pixels, sealed";

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[]| child())
}

fn parent() -> Result<(), Box<dyn Error>> {
    let memfd = Memfd::create("frame", SIZE)?;
    {
        let region = memfd.map()?;
        region.write(0, FRAME)?;
    } // the writable mapping must be gone before WRITE can be sealed
    memfd.seal(Seals::SHRINK | Seals::GROW | Seals::WRITE | Seals::SEAL)?;
    println!(
        "[parent] created a {SIZE}-byte memfd, wrote a frame, sealed it with {}",
        memfd.seals()?
    );

    let (mine, theirs) = ipcx::unix::stream_pair()?;
    let mut cmd = common::child_command()?;
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
    let child = Reaper::spawn(&mut cmd)?;
    drop(cmd);
    mine.send_fds_timeout(b"frame", &[memfd.as_fd()], TIMEOUT)?;
    println!("[parent] sent the descriptor to child pid {}", child.id());

    let mut ack = [0u8; 64];
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
    let memfd = Memfd::from_peer(fd, Seals::WRITE | Seals::GROW, SIZE)?;
    eprintln!(
        "[child] received a memfd of {} bytes sealed with {}",
        memfd.size(),
        memfd.seals()?
    );
    let region = memfd.map_read_only()?;
    let mut frame = vec![0u8; FRAME.len()];
    region.read(0, &mut frame)?;
    if frame != FRAME {
        return Err("the frame differs from what the parent wrote".into());
    }
    eprintln!("[child] read {:?}", String::from_utf8_lossy(&frame));
    stream.send_timeout(b"frame received intact", TIMEOUT)?;
    Ok(())
}
