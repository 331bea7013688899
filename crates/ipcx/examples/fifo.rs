//! A named pipe (FIFO) between two processes that share only a path.
//!
//! The parent creates a FIFO with [`Fifo::create`] (mode 0600, removed again when the
//! `Fifo` is dropped) and first shows that [`Fifo::try_open_writer`] fails with
//! `PeerGone` while no process has the FIFO open for reading. It then opens the read end
//! (which never blocks) and starts a second copy of this program as its child, passing it
//! the path. The child opens the FIFO with [`Fifo::open`], waits for the reader with
//! [`Fifo::open_writer_timeout`], writes a few messages and exits; the parent reads with
//! `read_timeout` until end of file.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example fifo
//! ```

mod common;

use std::error::Error;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use common::{Lines, Reaper, TIMEOUT, TempDir};
use ipcx::ErrorKind;
use ipcx::fifo::Fifo;

/// The messages the child writes, one line each.
const MESSAGES: [&str; 3] = ["job 1: compile", "job 2: test", "job 3: ship"];

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[path]| child(Path::new(&path)))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let dir = TempDir::new("fifo")?;
    let path = dir.path().join("jobs.fifo");

    let fifo = Fifo::create(&path)?;
    let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
    println!(
        "[parent] created FIFO {} with mode {mode:04o}; owner: {}",
        path.display(),
        fifo.is_owner()
    );

    // No reader yet: a writer cannot open, and try_open_writer says so at once.
    match fifo.try_open_writer() {
        Err(e) if e.kind() == ErrorKind::PeerGone => {
            println!("[parent] try_open_writer with no reader fails as expected: {e}");
        }
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("try_open_writer succeeded with no reader".into()),
    }

    let reader = fifo.open_reader()?;
    println!("[parent] opened the read end (this never blocks, even with no writer)");

    let child = Reaper::spawn(common::child_command()?.arg(&path))?;
    println!(
        "[parent] started child pid {} and gave it the path",
        child.id()
    );

    // Read until end of file: the child has opened, written and closed its end. A FIFO is
    // a byte stream, so one read may return part of a message or several; `Lines` puts
    // whole lines back together.
    let deadline = Instant::now() + TIMEOUT;
    let mut lines = Lines::new();
    let mut received = 0;
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = reader.read_timeout(&mut buf, left)?;
        if n == 0 {
            println!("[parent] end of file: the writer closed its end");
            break;
        }
        println!("[parent] read_timeout returned {n} bytes");
        lines.push(&buf[..n])?;
        while let Some(line) = lines.next_line() {
            println!("[parent] message: {line:?}");
            received += 1;
        }
    }

    let status = child.wait_success(TIMEOUT)?;
    if received != MESSAGES.len() || lines.has_partial() {
        return Err(format!("expected {} whole messages, got {received}", MESSAGES.len()).into());
    }
    println!("[parent] child exited with {status}");

    drop(reader);
    drop(fifo);
    println!(
        "[parent] dropped the Fifo; the path still exists: {}",
        path.exists()
    );
    dir.remove()?;
    println!("[parent] removed the temporary directory; done");
    Ok(())
}

fn child(path: &Path) -> Result<(), Box<dyn Error>> {
    let fifo = Fifo::open(path)?;
    println!(
        "[child] opened the existing FIFO {}; owner: {} (it will not remove it)",
        path.display(),
        fifo.is_owner()
    );
    let writer = fifo.open_writer_timeout(TIMEOUT)?;
    println!("[child] opened the write end (a reader was there)");
    for msg in MESSAGES {
        writer.write_all_timeout(format!("{msg}\n").as_bytes(), TIMEOUT)?;
        println!("[child] wrote {msg:?}");
    }
    drop(writer);
    println!("[child] closed the write end and exits");
    Ok(())
}
