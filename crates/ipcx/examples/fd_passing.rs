//! Passing open descriptors to a child process over a Unix socket (`SCM_RIGHTS`).
//!
//! The parent creates a connected pair with [`ipcx::unix::stream_pair`] and starts a
//! second copy of this program as its child with one end as the child's stdin; the child
//! recovers it as a `UnixStream`. The parent then opens a temporary file and creates a
//! pipe, and sends both descriptors in one message with
//! [`UnixSocketExt::send_fds_timeout`]. The child receives them with
//! [`UnixSocketExt::recv_fds_timeout`], reads the file and writes what it found through
//! the pipe's write end, which it never had before; the parent reads the pipe. Both sides
//! also print the peer credentials of their end: for a socket pair the kernel records the
//! process that created the pair, so both name the parent.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example fd_passing
//! ```

mod common;

use std::error::Error;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;

use common::{Reaper, TIMEOUT, TempDir, read_to_end_timeout};
use ipcx::SocketExt;
use ipcx::pipe::{PipeWriter, pipe};
use ipcx::unix::UnixSocketExt;

/// What the temporary file holds.
const FILE_TEXT: &str = "a secret only the parent could open\n";

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[]| child())
}

fn parent() -> Result<(), Box<dyn Error>> {
    let dir = TempDir::new("fd-passing")?;

    let (mine, theirs) = ipcx::unix::stream_pair()?;
    let cred = mine.peer_credentials()?;
    println!(
        "[parent] created a socket pair; the peer credentials of my end say {cred} \
         (a pair records its creator: me)"
    );

    let mut cmd = common::child_command()?;
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
    let child = Reaper::spawn(&mut cmd)?;
    drop(cmd); // close the parent's copy of the child's end
    println!(
        "[parent] started child pid {} with the other end as its stdin",
        child.id()
    );

    let path = dir.path().join("secret.txt");
    std::fs::write(&path, FILE_TEXT)?;
    let file = File::open(&path)?;
    let (results, results_w) = pipe()?;
    println!(
        "[parent] opened {} and created a pipe for the answer",
        path.display()
    );

    mine.send_fds_timeout(b"file+pipe", &[file.as_fd(), results_w.as_fd()], TIMEOUT)?;
    println!("[parent] sent the file and the pipe's write end in one SCM_RIGHTS message");
    // The child has its own copies now. Closing ours means the pipe reaches end of file
    // as soon as the child closes its write end.
    drop(results_w);
    drop(file);

    let answer = read_to_end_timeout(&results, TIMEOUT)?;
    let answer = String::from_utf8_lossy(&answer);
    println!("[parent] read from the pipe: {:?}", answer.trim_end());

    let mut buf = [0u8; 16];
    let n = mine.recv_timeout(&mut buf, TIMEOUT)?;
    println!(
        "[parent] the child acknowledged on the socket: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    let status = child.wait_success(TIMEOUT)?;
    if !answer.contains(&FILE_TEXT.trim_end().to_uppercase()) {
        return Err("the answer does not contain the file's text".into());
    }
    println!("[parent] child exited with {status}");
    dir.remove()?;
    println!("[parent] removed the temporary directory; done");
    Ok(())
}

fn child() -> Result<(), Box<dyn Error>> {
    // Our stdin is the parent's socket: duplicate it into a UnixStream of our own.
    let stream = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let cred = stream.peer_credentials()?;
    println!("[child] stdin is a Unix socket; its peer credentials say {cred}");
    if cred.pid != Some(std::os::unix::process::parent_id()) {
        return Err(format!("the pair's creator ({cred}) is not my parent").into());
    }
    println!("[child] that is my parent's pid: it created the pair");

    let mut buf = [0u8; 64];
    let (n, fds) = stream.recv_fds_timeout(&mut buf, 2, TIMEOUT)?;
    println!(
        "[child] received {n} bytes {:?} and {} descriptors",
        String::from_utf8_lossy(&buf[..n]),
        fds.len()
    );
    let mut fds = fds.into_iter();
    let (Some(file), Some(pipe_w), None) = (fds.next(), fds.next(), fds.next()) else {
        return Err("expected exactly two descriptors".into());
    };

    let mut text = String::new();
    File::from(file).take(4096).read_to_string(&mut text)?;
    println!("[child] read the passed file: {:?}", text.trim_end());

    let writer = PipeWriter::try_from(pipe_w)?;
    let answer = format!(
        "child {} read {} bytes: {}\n",
        std::process::id(),
        text.len(),
        text.trim_end().to_uppercase()
    );
    writer.write_all_timeout(answer.as_bytes(), TIMEOUT)?;
    drop(writer);
    println!("[child] wrote the answer through the passed pipe and closed it");

    stream.send_timeout(b"done", TIMEOUT)?;
    println!("[child] sent \"done\" on the socket and exits");
    Ok(())
}
