//! Anonymous pipes between a parent and a child process.
//!
//! The parent first shows two pipe features in-process: packet mode (`PipeOptions::packet`,
//! one write is one message) and the pipe capacity (`capacity`/`set_capacity`). Then it
//! creates two pipes with [`ipcx::pipe::pipe`] and starts a second copy of this program as
//! its child, with one pipe as the child's stdin and the other as the child's stdout. The
//! parent writes a few lines and closes its write end; the child reads its stdin up to end
//! of file and answers with a summary on its stdout, which the parent reads with
//! `read_timeout`.
//!
//! The child prints its steps on stderr, because its stdout is the reply pipe.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example pipe_to_child
//! ```

mod common;

use std::error::Error;
use std::io::Write;
use std::os::fd::AsFd;
use std::process::Stdio;

use common::{Reaper, TIMEOUT, read_to_end_timeout};
use ipcx::pipe::{PIPE_BUF, PipeOptions, PipeReader, pipe};

/// The lines the parent sends to the child.
const LINES: [&str; 3] = ["first line", "second line", "third and last line"];

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[]| child())
}

fn parent() -> Result<(), Box<dyn Error>> {
    packet_mode()?;

    // Pipe 1 carries the parent's lines to the child's stdin; pipe 2 carries the child's
    // reply from its stdout back to the parent.
    let (child_stdin, to_child) = pipe()?;
    let (from_child, child_stdout) = pipe()?;
    println!(
        "[parent] created two pipes; the one to the child holds {} bytes",
        to_child.capacity()?
    );
    let granted = to_child.set_capacity(128 * 1024)?;
    println!("[parent] asked for a capacity of 128 KiB; the kernel granted {granted} bytes");

    let mut cmd = common::child_command()?;
    cmd.stdin(Stdio::from(child_stdin))
        .stdout(Stdio::from(child_stdout));
    let child = Reaper::spawn(&mut cmd)?;
    // The Command still holds the parent's copies of the child's ends. The child would
    // never see end of file on its stdin (and the parent never on the reply pipe) while
    // they are open, so drop them now.
    drop(cmd);
    println!(
        "[parent] started child pid {} with the pipes as its stdin and stdout",
        child.id()
    );

    for line in LINES {
        to_child.write_all_timeout(format!("{line}\n").as_bytes(), TIMEOUT)?;
        println!("[parent] wrote {line:?}");
    }
    drop(to_child);
    println!("[parent] closed the write end: the child will see end of file");

    let reply = read_to_end_timeout(&from_child, TIMEOUT)?;
    let reply = String::from_utf8_lossy(&reply);
    println!("[parent] child replied: {}", reply.trim_end());

    let status = child.wait_success(TIMEOUT)?;
    let expected = format!("got {} lines", LINES.len());
    if !reply.contains(&expected) {
        return Err(format!("the reply does not mention {expected}").into());
    }
    println!("[parent] child exited with {status}; done");
    Ok(())
}

/// Packet mode: each write is one message and each read returns one whole message.
fn packet_mode() -> Result<(), Box<dyn Error>> {
    let (rx, tx) = PipeOptions::new().packet(true).create()?;
    println!("[parent] packet-mode pipe created (O_DIRECT)");
    tx.write_timeout(b"hello", TIMEOUT)?;
    tx.write_timeout(b"packet world", TIMEOUT)?;
    println!("[parent] wrote two messages of 5 and 12 bytes");
    // Packet-mode reads need a buffer of at least PIPE_BUF bytes.
    let mut buf = [0u8; PIPE_BUF];
    for _ in 0..2 {
        let n = rx.read_timeout(&mut buf, TIMEOUT)?;
        println!(
            "[parent] one read returned one message of {n} bytes: {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    match tx.try_write(&[0u8; PIPE_BUF + 1]) {
        Err(e) => println!("[parent] a {}-byte packet is refused: {e}", PIPE_BUF + 1),
        Ok(n) => return Err(format!("a {n}-byte packet was accepted").into()),
    }
    Ok(())
}

fn child() -> Result<(), Box<dyn Error>> {
    // Adopt a duplicate of stdin as an ipcx PipeReader to get read_timeout. (Adoption makes
    // the shared stdin descriptor non-blocking underneath; dropping the PipeReader makes it
    // blocking again.)
    let stdin = PipeReader::try_from(std::io::stdin().as_fd().try_clone_to_owned()?)?;
    let input = read_to_end_timeout(&stdin, TIMEOUT)?;
    eprintln!(
        "[child] read {} bytes from stdin up to end of file",
        input.len()
    );
    let text = String::from_utf8_lossy(&input);
    for line in text.lines() {
        eprintln!("[child] got line {line:?}");
    }
    let reply = format!(
        "child {} got {} lines, {} bytes\n",
        std::process::id(),
        text.lines().count(),
        input.len()
    );
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(reply.as_bytes())?;
    stdout.flush()?;
    eprintln!("[child] wrote the reply to stdout (the second pipe) and exits");
    Ok(())
}
